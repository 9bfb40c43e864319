#!/usr/bin/env python3
"""Times SmolLM2-135M-Instruct in PyTorch + transformers on the CPU, float32, 2 threads
(BENCH_THREADS overrides it). Run by scripts/bench-llm.sh, which also times llama.cpp and ours
in the same run; installs nothing.

    python bench_llm_torch.py MODEL_DIR GGUF_NAME PROMPT_FILE OUT_JSON [IDS_JSON]

Loads the GGUF with AutoModelForCausalLM.from_pretrained(dir, gguf_file=…, dtype=float32) (the
legacy loader dequantizes every weight to float32: ~540 MB of weights) and measures:

  prefill  one forward of the prompt's 128 tokens with a fresh KV cache and logits_to_keep=1
           (what `generate` does for the prompt: it passes logits_to_keep=1 so only the last
           position's logits are computed) — the time to the last token's logits; median of 7
           runs after 2 warm-up runs. The same forward with all 128 logit rows is reported too.
  decode   128 greedy tokens after that prefill, a manual loop: argmax of the last logits, one
           forward of that single token with past_key_values (DynamicCache); the prefill is not
           timed; no EOS stop (always 128 tokens); median of 3 runs. tokens/s = 128 / seconds.
  peak RSS resource.getrusage(RUSAGE_SELF).ru_maxrss at the end (includes loading, whose
           dequantization is the peak), and VmRSS after loading.

Writes the figures as JSON to OUT_JSON and prints them; IDS_JSON (optional) receives
{"text", "ids"}: the prompt and its token ids, for the other engines. Takes about 2 minutes on
an idle machine (~30 s to load).
"""
import json
import os
import resource
import statistics
import sys
import time

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer


def vm_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    model_dir, gguf_name, prompt_file, out_json = sys.argv[1:5]
    ids_json = sys.argv[5] if len(sys.argv) > 5 else None
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(model_dir, gguf_file=gguf_name)
    model = AutoModelForCausalLM.from_pretrained(model_dir, gguf_file=gguf_name, dtype=torch.float32).eval()
    load_s = time.perf_counter() - t0
    rss_after_load = vm_rss_mb()
    with open(prompt_file, encoding="utf-8") as f:
        text = f.read()
    ids = tok(text, add_special_tokens=False)["input_ids"]
    x = torch.tensor([ids])
    n_new = 128
    if ids_json:
        with open(ids_json, "w") as f:
            json.dump({"text": text, "ids": ids}, f)

    def prefill(keep):
        with torch.inference_mode():
            return model(x, use_cache=True, logits_to_keep=keep)

    def timed(fn, warm, runs):
        for _ in range(warm):
            fn()
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    prefill_s = timed(lambda: prefill(1), 2, 7)
    prefill_all_s = timed(lambda: prefill(0), 1, 5)

    def decode():
        out = prefill(1)
        past = out.past_key_values
        nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        generated = []
        with torch.inference_mode():
            t = time.perf_counter()
            for _ in range(n_new):
                generated.append(int(nxt))
                out = model(nxt, past_key_values=past, use_cache=True)
                past = out.past_key_values
                nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            return time.perf_counter() - t, generated

    runs = [decode() for _ in range(3)]
    decode_s = statistics.median(r[0] for r in runs)
    result = {
        "engine": "transformers",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "threads": torch.get_num_threads(),
        "prompt_tokens": len(ids),
        "new_tokens": n_new,
        "load_seconds": load_s,
        "prefill_seconds": prefill_s,
        "prefill_tokens_per_second": len(ids) / prefill_s,
        "prefill_all_logits_tokens_per_second": len(ids) / prefill_all_s,
        "decode_seconds": decode_s,
        "decode_tokens_per_second": n_new / decode_s,
        "rss_after_load_mb": rss_after_load,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "greedy_first_tokens": runs[0][1][:16],
    }
    with open(out_json, "w") as f:
        json.dump(result, f, indent=1)
    print(f"transformers {transformers.__version__} (torch {torch.__version__}, {result['threads']} threads, "
          f"float32): prefill {len(ids)} tokens {result['prefill_tokens_per_second']:.0f} tokens/s "
          f"(all logits: {result['prefill_all_logits_tokens_per_second']:.0f}), decode "
          f"{result['decode_tokens_per_second']:.1f} tokens/s, peak RSS {result['peak_rss_mb']:.0f} MB "
          f"(after load {rss_after_load:.0f} MB), load {load_s:.0f} s")


if __name__ == "__main__":
    main()
