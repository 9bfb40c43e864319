#!/usr/bin/env python3
"""Evaluation throughput of all-MiniLM-L6-v2 with a LoRA r=8 adapter (q,k,v,o; PEFT, unmerged) and
a linear head over mean pooling, in PyTorch, 2 threads: the forward `lorta eval` runs on the
same labelled file (batches of 64 in file order, each padded to its longest row, at most 64
tokens; tokenization included). Prints examples/s for each of ROUNDS passes over the file and
their median, and the accuracy (of a random head: only the timing matters).
Run by scripts/bench-eval.sh, which times `lorta eval` in the same run.

  bench_eval_torch.py MODEL_DIR DATA.tsv [ROUNDS]"""
import statistics
import sys
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoTokenizer, BertModel

model_dir, data = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
torch.set_num_threads(2)
torch.manual_seed(0)
rows = [line.rstrip("\n").split("\t", 1) for line in open(data, encoding="utf-8") if line.strip()]
labels = torch.tensor([int(r[0]) for r in rows])
texts = [r[1] for r in rows]
tok = AutoTokenizer.from_pretrained(model_dir)
base = BertModel.from_pretrained(model_dir)
model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                        target_modules=["query", "key", "value", "attention.output.dense"]))
model.eval()
head = torch.nn.Linear(384, 2)


def one_pass():
    correct = 0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(texts), 64):
            batch = tok(texts[i:i + 64], padding="longest", truncation=True, max_length=64, return_tensors="pt")
            out = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(out.dtype)
            pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            correct += int((head(pooled).argmax(1) == labels[i:i + 64]).sum())
    return len(texts) / (time.perf_counter() - t0), correct


one_pass()  # warm-up
rates = []
for r in range(rounds):
    rate, correct = one_pass()
    rates.append(rate)
    print(f"pytorch round {r + 1}: {rate:.1f} examples/s", flush=True)
print(f"pytorch {torch.__version__} peft LoRA r=8 eval: median {statistics.median(rates):.1f} examples/s "
      f"over {len(texts)} examples (random head: {correct}/{len(texts)} correct)")
