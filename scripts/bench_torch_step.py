#!/usr/bin/env python3
"""Times one LoRA r=8 training step of all-MiniLM-L6-v2 in PyTorch + PEFT (issue 5's recipe:
batch 32 padded to 64 tokens, dropout 0, mean pooling + linear head, Q,K,V,O of all layers,
AdamW), with 2 threads. Prints the median seconds per step over 7 steps (after 2 warm-up
steps) and the peak RSS of the process. Run by scripts/bench-torch-step.sh, which also times
our step in the same run."""
import resource
import statistics
import sys
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoTokenizer, BertModel

model_dir, data = sys.argv[1], sys.argv[2]
torch.set_num_threads(2)
torch.manual_seed(0)
rows = [line.rstrip("\n").split("\t", 1) for line in open(data, encoding="utf-8")][:32]
labels = torch.tensor([int(r[0]) for r in rows])
tok = AutoTokenizer.from_pretrained(model_dir)
batch = tok([r[1] for r in rows], padding="max_length", truncation=True, max_length=64, return_tensors="pt")
base = BertModel.from_pretrained(model_dir, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                        target_modules=["query", "key", "value", "attention.output.dense"]))
head = torch.nn.Linear(384, 2)
params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
mask = batch["attention_mask"].unsqueeze(-1).float()

def step():
    out = model(**batch).last_hidden_state
    pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    loss = torch.nn.functional.cross_entropy(head(pooled), labels)
    opt.zero_grad()
    loss.backward()
    opt.step()

for _ in range(2):
    step()
times = []
for _ in range(7):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
print(f"pytorch {torch.__version__}: LoRA r=8 step median {statistics.median(times):.3f} s, "
      f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
