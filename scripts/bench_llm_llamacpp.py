#!/usr/bin/env python3
"""Times SmolLM2-135M-Instruct (the Q4_1 GGUF) in llama.cpp through llama-cpp-python 0.3.36 on
the CPU, 2 threads (BENCH_THREADS overrides it). Run by scripts/bench-llm.sh, which builds
llama-cpp-python from source in its own virtual environment (scripts/python-env.sh) and also
times transformers and ours in the same run; installs nothing itself.

    python bench_llm_llamacpp.py GGUF_PATH IDS_JSON OUT_JSON

IDS_JSON holds {"ids": [...]}: the prompt's token ids as transformers tokenizes it, so every
engine processes the same 128 tokens (llama.cpp's own tokenization of the text is compared and
reported). Llama(n_ctx=2048, n_threads=2, n_threads_batch=2, n_batch=512, default mmap and
F16 KV cache: llama.cpp as a user runs it), so:

  prefill  llm.reset(); llm.eval(ids): one llama_decode of the 128 tokens, logits of the last
           position only (logits_all=False); median of 7 runs after 2 warm-up runs.
  decode   128 greedy tokens after that prefill: argmax of the last logits (numpy), llm.eval([t])
           — one llama_decode of one token with the KV cache; the prefill is not timed; no EOS
           stop; median of 3 runs. tokens/s = 128 / seconds.
  peak RSS resource.getrusage(RUSAGE_SELF).ru_maxrss at the end (the file is mmapped: its pages
           count once touched).

Writes the figures as JSON to OUT_JSON and prints them. Takes under a minute.
"""
import json
import os
import resource
import statistics
import sys
import time

import numpy as np
import llama_cpp
from llama_cpp import Llama


def main():
    gguf_path, ids_json, out_json = sys.argv[1:4]
    with open(ids_json) as f:
        spec = json.load(f)
    ids = spec["ids"]
    t0 = time.perf_counter()
    threads = int(os.environ.get("BENCH_THREADS", "2"))
    llm = Llama(model_path=gguf_path, n_ctx=2048, n_threads=threads, n_threads_batch=threads, n_batch=512,
                logits_all=False, verbose=False)
    load_s = time.perf_counter() - t0
    own_ids = llm.tokenize(spec["text"].encode("utf-8"), add_bos=False, special=False) if "text" in spec else None
    n_new = 128

    def prefill():
        llm.reset()
        llm.eval(ids)

    def timed(fn, warm, runs):
        for _ in range(warm):
            fn()
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    prefill_s = timed(prefill, 2, 7)

    n_vocab = llm.n_vocab()

    def last_logits():
        # llama-cpp-python 0.3.36 keeps no logits in llm.scores unless logits_all: read
        # llama.cpp's buffer for the last token of the last llama_decode directly
        ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(n_vocab,))

    def decode():
        prefill()
        generated = []
        t = time.perf_counter()
        for _ in range(n_new):
            nxt = int(np.argmax(last_logits()))
            generated.append(nxt)
            llm.eval([nxt])
        return time.perf_counter() - t, generated

    runs = [decode() for _ in range(3)]
    decode_s = statistics.median(r[0] for r in runs)
    result = {
        "engine": "llama.cpp",
        "versions": {"llama_cpp_python": llama_cpp.__version__},
        "threads": threads,
        "prompt_tokens": len(ids),
        "new_tokens": n_new,
        "load_seconds": load_s,
        "prefill_seconds": prefill_s,
        "prefill_tokens_per_second": len(ids) / prefill_s,
        "decode_seconds": decode_s,
        "decode_tokens_per_second": n_new / decode_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "greedy_first_tokens": runs[0][1][:16],
        "tokenization_matches_transformers": (own_ids == ids) if own_ids is not None else None,
    }
    with open(out_json, "w") as f:
        json.dump(result, f, indent=1)
    print(f"llama.cpp (llama-cpp-python {llama_cpp.__version__}, {threads} threads, Q4_1 file): prefill {len(ids)} "
          f"tokens {result['prefill_tokens_per_second']:.0f} tokens/s, decode "
          f"{result['decode_tokens_per_second']:.1f} tokens/s, peak RSS {result['peak_rss_mb']:.0f} MB; "
          f"own tokenization of the prompt equals transformers': {result['tokenization_matches_transformers']}")


if __name__ == "__main__":
    main()
