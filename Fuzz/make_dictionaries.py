#!/usr/bin/env python3
"""Writes Fuzz/dictionaries/<harness>.dict: the string literals (keys, type names, markers) of
the Swift sources each harness reaches, in libFuzzer's dictionary syntax; for JSON inputs each
identifier also as a quoted JSON string. Swift's string comparisons are not instrumented, so
without a dictionary libFuzzer rarely guesses a key such as "num_attention_heads".

    python3 Fuzz/make_dictionaries.py        (from the repository root)
"""
import os
import re

SOURCES = "Sources/LoRTA/"
HARNESSES = {  # harness: (source files, input is JSON)
    "safetensors": (["IO/SafeTensors.swift", "IO/SafeTensorsReader.swift", "IO/SafeTensorsJSON.swift"], True),
    "gguf": (["IO/GGUFReader.swift", "IO/GGUFMetadata.swift", "IO/GGUFValue.swift", "Models/LlamaGGUF.swift",
              "Text/ByteLevelBPETokenizer+GGUF.swift", "Text/PreTokenizer.swift", "Models/LlamaTokenizerExport.swift"], False),
    "npy": (["IO/NumpyFile.swift"], False),
    "peft-config": (["Adapters/PEFTAdapterConfiguration.swift", "Adapters/LoRTAFiles.swift"], True),
    "bert-config": (["Models/BertConfiguration.swift"], True),
    "llama-config": (["Models/LlamaConfiguration.swift"], True),
    "bpe-json": (["Text/ByteLevelBPETokenizer+HuggingFace.swift", "Text/PreTokenizer.swift", "Text/AddedToken.swift"], True),
    "bpe-config": (["Text/ByteLevelBPETokenizer+HuggingFace.swift", "Text/AddedToken.swift"], True),
    "chat-template": (["Text/ChatTemplate.swift", "Text/JinjaSubset.swift"], False),
    "causal-jsonl": (["Training/CausalLMDataset.swift"], True),
    "stats-file": (["Monitoring/StatisticsFile.swift", "Monitoring/DetectorFile.swift",
                    "Monitoring/CovarianceEstimator.swift", "IO/SafeTensors.swift"], True),
    "optimizer-checkpoint": (["Training/OptimizerCheckpoint.swift", "Training/LearningRateSchedule.swift",
                              "IO/SafeTensors.swift"], True),
    "trainer-checkpoint": (["Training/TrainingCheckpoint.swift", "Training/TrainingConfiguration.swift",
                            "Training/LearningRateSchedule.swift", "Training/SequenceClassificationTask.swift"], True),
    "adapter-dir": (["Adapters/AdapterFiles.swift", "Adapters/PEFTAdapterConfiguration.swift",
                     "Adapters/LoRTAFiles.swift"], True),
}


def unescape_swift(s):
    out, i = "", 0
    while i < len(s):
        if s[i] != "\\":
            out += s[i]
            i += 1
            continue
        n = s[i + 1]
        if n == "u":
            j = s.index("}", i)
            out += chr(int(s[i + 3:j], 16))
            i = j + 1
        else:
            out += {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}.get(n, n)
            i += 2
    return out


def libfuzzer_entry(data):
    body = ""
    for b in data:
        if b == 0x5C:
            body += "\\\\"
        elif b == 0x22:
            body += '\\"'
        elif 0x20 <= b < 0x7F:
            body += chr(b)
        else:
            body += "\\x%02X" % b
    return '"' + body + '"'


def main():
    os.makedirs("Fuzz/dictionaries", exist_ok=True)
    for harness, (files, is_json) in HARNESSES.items():
        literals = set()
        for f in files:
            src = open(SOURCES + f, encoding="utf-8").read()
            src = re.sub(r"(?m)^\s*//.*$", "", src)          # comment lines
            src = re.sub(r'"""[\s\S]*?"""', "", src)          # multi-line strings (messages)
            for s in re.findall(r'"((?:[^"\\\n]|\\.)*)"', src):
                if "\\(" in s or not 1 <= len(s) <= 48 or (" " in s and len(s) > 12):
                    continue                                  # interpolations, messages
                literals.add(unescape_swift(s))
        entries = set()
        for s in literals:
            entries.add(libfuzzer_entry(s.encode("utf-8")))
            if is_json and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", s):
                entries.add(libfuzzer_entry(('"' + s + '"').encode()))
        with open(f"Fuzz/dictionaries/{harness}.dict", "w", encoding="utf-8") as out:
            out.write(f"# libFuzzer dictionary for the {harness} harness (made by Fuzz/make_dictionaries.py):\n"
                      f"# the string literals of {', '.join(files)}.\n")
            for e in sorted(entries):
                out.write(e + "\n")
        print(f"{harness}: {len(entries)} entries")


if __name__ == "__main__":
    main()
