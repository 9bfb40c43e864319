#!/usr/bin/env python3
"""Checks the files LlamaModel.export wrote for SmolLM2-135M-Instruct (the Q4_1 asset) with the
reference tools — transformers and the gguf package (llama.cpp's gguf-py) — never our code.

    scripts/check-llama-export.sh            # builds, exports (a Swift test), runs this
    /tmp/lorta-torch-venv/bin/python scripts/check_llama_export.py EXPORT_DIR [SOURCE_GGUF]

EXPORT_DIR holds smollm2-hf-f32/, smollm2.f32.gguf, smollm2.q8_0.gguf,
smollm2-override.f32.gguf and override.npy (LlamaExportTests.exportSmolLM2ForThePythonCheck).
Checks, each printed with its figure; exit 1 when one fails:

 1. weights: every tensor of smollm2.f32.gguf equals gguf-py's dequantization of the source
    tensor bit for bit (same names, dims, Q/K rows in GGUF order); every tensor of
    smollm2.q8_0.gguf equals gguf.quants.quantize(source dequantized, Q8_0) byte for byte (norms
    F32); metadata equal to the source's except general.file_type.
 2. logits: transformers on the source GGUF (dequantized to float32) is the reference;
    the exported Hugging Face directory (AutoModelForCausalLM.from_pretrained(dir)) and the
    exported F32 GGUF (from_pretrained(dir, gguf_file=...)) must give identical logits; the Q8_0
    GGUF's max |Δlogit| and greedy agreement are reported.
 3. tokenizer: AutoTokenizer.from_pretrained(exported dir) gives the ids of the repository's BPE
    fixture (Tests/LoRTATests/Fixtures/bpe/smollm2_cases.json, made with the hub tokenizer.json)
    for every string; the chat template renders as the GGUF's.
 4. override: layer 3's q_proj read back by transformers from smollm2-override.f32.gguf equals
    override.npy exactly (transformers un-permutes the rows itself).
"""
import json
import os
import sys

os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' GGUF loading progress bars

import numpy as np
import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PROMPTS = ["The movie was a delight from start to finish, and the cast", "def fib(n):\n    return",
           "12 + 30 = 42, and 1999 was", "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"]
failures = []


def check(ok, label):
    print(("ok   " if ok else "FAIL ") + label)
    if not ok:
        failures.append(label)


def unpermute(w, n):
    return w.reshape(n, w.shape[0] // n // 2, 2, *w.shape[1:]).swapaxes(2, 1).reshape(w.shape)


def main():
    import gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer
    out = os.path.abspath(sys.argv[1])
    source = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    torch.set_num_threads(2)

    # 1. weights and metadata
    src = gguf.GGUFReader(source)
    deq = {t.name: gguf.dequantize(t.data, t.tensor_type).astype(np.float32) for t in src.tensors}
    def fields(r):
        return {k: (f.types, [bytes(f.parts[i]) for i in f.data]) for k, f in r.fields.items()
                if not k.startswith("GGUF.")}
    src_fields = fields(src)
    for name, qtype, ftype in [("smollm2.f32.gguf", gguf.GGMLQuantizationType.F32, 0),
                               ("smollm2.q8_0.gguf", gguf.GGMLQuantizationType.Q8_0, 7)]:
        r = gguf.GGUFReader(os.path.join(out, name))
        f = fields(r)
        same_meta = set(f) == set(src_fields) and all(f[k] == src_fields[k] for k in f if k != "general.file_type")
        check(same_meta and int(r.fields["general.file_type"].parts[-1][0]) == ftype,
              f"{name}: metadata = source's ({len(f)} keys) except general.file_type = {ftype}")
        tensors = {t.name: t for t in r.tensors}
        check(set(tensors) == set(deq), f"{name}: the source's {len(deq)} tensor names")
        bad = []
        for tname, ref in deq.items():
            t = tensors[tname]
            want_type = gguf.GGMLQuantizationType.F32 if ref.ndim == 1 else qtype
            expected = gguf.quants.quantize(ref, want_type)
            if t.tensor_type != want_type or [int(x) for x in t.shape] != list(reversed(ref.shape)) \
                    or np.asarray(t.data).tobytes() != np.ascontiguousarray(expected).tobytes():
                bad.append(tname)
        check(not bad, f"{name}: every tensor = gguf-py's {qtype.name} of the source's dequantized tensor, bit for bit"
              + (f" (differ: {bad[:5]})" if bad else ""))

    # 2. logits
    tok_ref = AutoTokenizer.from_pretrained(os.path.dirname(source), gguf_file=os.path.basename(source))
    ref = AutoModelForCausalLM.from_pretrained(os.path.dirname(source), gguf_file=os.path.basename(source), dtype=torch.float32).eval()
    ids = [tok_ref(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    def logits(m):
        with torch.no_grad():
            return [m(torch.tensor([s])).logits[0].float().numpy() for s in ids]
    reference = logits(ref)
    del ref
    hf = AutoModelForCausalLM.from_pretrained(os.path.join(out, "smollm2-hf-f32"), dtype=torch.float32).eval()
    got = logits(hf)
    del hf
    d = max(float(np.abs(a - b).max()) for a, b in zip(got, reference))
    check(d == 0.0, f"Hugging Face float32 export: max |Δlogit| vs the source GGUF in transformers = {d:g} over {sum(map(len, ids))} positions")
    for name in ["smollm2.f32.gguf", "smollm2.q8_0.gguf"]:
        m = AutoModelForCausalLM.from_pretrained(out, gguf_file=name, dtype=torch.float32).eval()
        got = logits(m)
        del m
        d = max(float(np.abs(a - b).max()) for a, b in zip(got, reference))
        agree = np.mean(np.concatenate([a.argmax(-1) == b.argmax(-1) for a, b in zip(got, reference)]))
        scale = max(float(np.abs(b).max()) for b in reference)
        if name.endswith("f32.gguf"):
            check(d == 0.0, f"{name}: max |Δlogit| = {d:g}")
        else:
            check(agree >= 0.9, f"{name}: max |Δlogit| = {d:.4f} (max |logit| {scale:.1f}), argmax agreement {agree:.3f}")

    # 3. tokenizer
    tok = AutoTokenizer.from_pretrained(os.path.join(out, "smollm2-hf-f32"))
    cases = json.load(open(os.path.join(ROOT, "Tests/LoRTATests/Fixtures/bpe/smollm2_cases.json"), encoding="utf-8"))["cases"]
    wrong = [c["text"] for c in cases if tok(c["text"], add_special_tokens=False)["input_ids"] != c["ids"]]
    check(not wrong, f"tokenizer.json in transformers: {len(cases) - len(wrong)}/{len(cases)} fixture strings give the hub tokenizer's ids"
          + (f" (first wrong: {wrong[0]!r})" if wrong else ""))
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    a = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    b = tok_ref.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    check(a == b, "chat template renders as the GGUF's")

    # 4. override
    m = AutoModelForCausalLM.from_pretrained(out, gguf_file="smollm2-override.f32.gguf", dtype=torch.float32).eval()
    w = m.model.layers[3].self_attn.q_proj.weight.detach().numpy()
    expected = np.load(os.path.join(out, "override.npy"))
    check(np.array_equal(w, expected), "override of layer 3 q_proj read back by transformers = the given matrix, exactly")
    other = m.model.layers[4].self_attn.q_proj.weight.detach().numpy()
    src_q4 = unpermute(deq["blk.4.attn_q.weight"], 9)
    check(np.array_equal(other, src_q4), "layer 4 q_proj unchanged")

    print("all checks passed" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
