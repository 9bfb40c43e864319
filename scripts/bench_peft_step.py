#!/usr/bin/env python3
"""Times one LoRA training step of SmolLM2-135M-Instruct in PyTorch + PEFT on the CPU (float32,
2 threads; BENCH_THREADS overrides it). Run by scripts/bench-peft-step.sh; installs nothing.

    python bench_peft_step.py MODEL_DIR GGUF_NAME [--json OUT.json] [--variants full,last2,last2-gather]

Setup (every variant): AutoModelForCausalLM.from_pretrained(dir, gguf_file=name,
dtype=torch.float32) (the Q4_1 GGUF dequantized to float32), PEFT LoRA r=8, lora_alpha=16,
dropout 0 on q_proj,k_proj,v_proj,o_proj of all 30 blocks (921,600 trainable parameters,
torch.manual_seed(0) before get_peft_model), AdamW (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight
decay 0). Batch: 8 sequences × 128 tokens of random token ids (torch.Generator seeded with 0,
uniform in [0, 49152)), no padding (attention mask all ones). One step = forward + loss +
zero_grad + backward + AdamW step. Timing: median (and min/max) of 5 timed steps after 2 warm-up
steps, wall clock (time.perf_counter).

Variants:
  full          labels = input ids: the standard causal-LM step, model(input_ids, labels=…)
                (transformers shifts by one; mean cross entropy over all 8 × 127 predicted tokens;
                full 8 × 128 × 49,152 logits).
  last2         the same call with labels −100 except the last 2 positions of each sequence (mean
                over the 8 × 2 scored tokens; the model still computes all 8 × 128 logit rows) —
                the shape of the sentiment task (answer token + <|im_end|>).
  last2-gather  the same loss as last2 with logits only at the 16 scored rows (decoder's hidden
                states → lm_head), as scripts/peft_sentiment.py computes it.

Each variant runs in its own child process (so each has its own peak RSS). Peak RSS:
  peak_rss_mb        ru_maxrss of the child at the end (includes loading the GGUF: the legacy
                     loader's dequantization), what the design notes quote;
  train_peak_rss_mb  VmHWM of the training steps alone: the high-water mark is reset
                     (`echo 5 > /proc/self/clear_refs`) after loading, before the warm-up;
  rss_after_load_mb  VmRSS after loading.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")

VARIANTS = ("full", "last2", "last2-gather")
BATCH, SEQ, WARMUP, TIMED = 8, 128, 2, 5


def status_mb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(model_dir, gguf_name, variant, out_json):
    import torch
    import peft
    import transformers
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    transformers.utils.logging.disable_progress_bar()

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(model_dir, gguf_file=gguf_name, dtype=torch.float32)
    load_s = time.perf_counter() - t0
    rss_after_load = status_mb("VmRSS")
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (BATCH, SEQ), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    labels = ids.clone()
    if variant != "full":
        labels[:, :-2] = -100
    decoder = model.get_base_model().model
    lm_head = model.get_base_model().lm_head
    model.train()

    def step():
        if variant == "last2-gather":
            hidden = decoder(input_ids=ids, attention_mask=mask).last_hidden_state
            scored = labels[:, 1:] != -100
            loss = torch.nn.functional.cross_entropy(lm_head(hidden[:, :-1][scored]), labels[:, 1:][scored])
        else:
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    hwm_reset = True
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        hwm_reset = False
    losses = [step() for _ in range(WARMUP)]
    times = []
    for _ in range(TIMED):
        t = time.perf_counter()
        losses.append(step())
        times.append(time.perf_counter() - t)
    result = {
        "variant": variant,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
        "threads": torch.get_num_threads(),
        "batch": BATCH, "seq": SEQ, "warmup": WARMUP, "timed": TIMED,
        "trainable_parameters": sum(p.numel() for p in params),
        "step_seconds_median": statistics.median(times),
        "step_seconds_min": min(times), "step_seconds_max": max(times), "step_seconds": times,
        "losses": losses,
        "load_seconds": load_s,
        "rss_after_load_mb": rss_after_load,
        "train_peak_rss_mb": status_mb("VmHWM") if hwm_reset else None,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    with open(out_json, "w") as f:
        json.dump(result, f, indent=1)


def load():
    cpu = ""
    try:
        with open("/proc/pressure/cpu") as f:
            cpu = " ".join(f.readline().split()[1:4])
    except OSError:
        pass
    with open("/proc/loadavg") as f:
        return f"load average {' '.join(f.read().split()[:3])}, CPU pressure {cpu}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("gguf_name")
    ap.add_argument("--json")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--child", nargs=2, metavar=("VARIANT", "OUT_JSON"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.model_dir, args.gguf_name, *args.child)
        return
    variants = args.variants.split(",")
    for v in variants:
        if v not in VARIANTS:
            sys.exit(f"unknown variant {v!r} (known: {', '.join(VARIANTS)})")
    before = load()
    print(f"before: {before}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for v in variants:
            out = os.path.join(work, v + ".json")
            subprocess.run([sys.executable, os.path.abspath(__file__), args.model_dir, args.gguf_name, "--child", v, out],
                           check=True, stderr=subprocess.DEVNULL if os.environ.get("BENCH_QUIET") else None)
            with open(out) as f:
                r = json.load(f)
            rows.append(r)
            train_peak = f"{r['train_peak_rss_mb']:.0f}" if r["train_peak_rss_mb"] is not None else "-"
            print(f"pytorch {r['versions']['torch']} peft {r['versions']['peft']}, {r['threads']} threads: LoRA r=8 q,k,v,o "
                  f"{BATCH}×{SEQ} tokens, {v:<12} step median {r['step_seconds_median']:.3f} s "
                  f"(min {r['step_seconds_min']:.3f}, max {r['step_seconds_max']:.3f}), "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB (training alone {train_peak} MB, after load "
                  f"{r['rss_after_load_mb']:.0f} MB)", flush=True)
    after = load()
    print(f"after:  {after}")
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump({"load_before": before, "load_after": after, "variants": rows}, f, indent=1)
        os.replace(args.json + ".tmp", args.json)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
