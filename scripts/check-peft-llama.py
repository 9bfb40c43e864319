#!/usr/bin/env python3
"""PEFT interop check on the tiny Llama fixture (Tests/LoRTATests/Fixtures/llama/tiny/tiny_untied_hf).

Usage: python scripts/check-peft-llama.py OUT_DIR
  OUT_DIR holds what AdapterFilesTests wrote with LORTA_WRITE_PEFT_FIXTURE=OUT_DIR:
    adapter/    a LoRA adapter (all seven projections) saved by OUR code (LoRAAdapter.save(to:host:))
    ours.json   {"tokens": [...], "logits": [[...]]}: our adapted logits at every position

1. ours → PEFT: loads adapter/ with PeftModel.from_pretrained on AutoModelForCausalLM(tiny_untied_hf)
   and compares PEFT's logits with ours (max |diff| ≤ 1e-4 · max |logit|). Also checks that PEFT
   loaded every tensor (no missing or unexpected LoRA keys) and that merge_and_unload agrees.
2. PEFT → ours, re-checked: the committed PEFT-side fixture (Tests/LoRTATests/Fixtures/peft-llama,
   made by scripts/fixtures/make_peft_llama_fixtures.py) still gives its recorded logits with this
   PEFT (AdapterFilesTests.peftSavedAdapterGivesPEFTLogits compares our loader with them).
Exit status 1 when a difference exceeds the tolerance.
"""
import json
import os
import sys

import numpy as np
import peft
import torch
import transformers
from peft import PeftModel
from transformers import AutoModelForCausalLM

if len(sys.argv) != 2:
    sys.exit(__doc__)
out = sys.argv[1]
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
model_dir = os.path.join(root, "Tests", "LoRTATests", "Fixtures", "llama", "tiny", "tiny_untied_hf")
fixture = os.path.join(root, "Tests", "LoRTATests", "Fixtures", "peft-llama")
TOL = 1e-4
print(f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}")


def base():
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()


def logits(model, tokens):
    with torch.no_grad():
        return model(input_ids=torch.tensor([tokens])).logits[0].numpy().astype(np.float64)


def report(label, a, b):
    diff, scale = float(np.abs(a - b).max()), float(np.abs(b).max())
    ok = diff <= TOL * scale
    print(f"{label}: max |diff| = {diff:.3e}, max |logit| = {scale:.4f}, relative {diff / scale:.3e} "
          f"({'ok' if ok else 'FAIL'}, tolerance {TOL:g})")
    return ok


ok = True
with open(os.path.join(out, "ours.json")) as f:
    ours = json.load(f)
tokens, ours_logits = ours["tokens"], np.array(ours["logits"], dtype=np.float64)
base_logits = logits(base(), tokens)
model = PeftModel.from_pretrained(base(), os.path.join(out, "adapter")).eval()
# Every saved tensor must have been loaded into a LoRA module (PEFT warns, not fails, otherwise).
from safetensors.numpy import load_file
saved = load_file(os.path.join(out, "adapter", "adapter_model.safetensors"))
state = {k.replace(".default", ""): v for k, v in model.state_dict().items() if "lora_" in k}
missing = sorted(set(state) ^ set(saved))
if missing:
    print("tensor names differ between our file and PEFT's model:", missing[:5])
    ok = False
peft_logits = logits(model, tokens)
ok &= report("ours → PEFT (PeftModel.from_pretrained on our adapter dir vs our adapted logits)", peft_logits, ours_logits)
ok &= report("ours → PEFT (merge_and_unload vs our adapted logits)", logits(model.merge_and_unload(), tokens), ours_logits)
print(f"  (the adapter changes the logits by up to {float(np.abs(ours_logits - base_logits).max()):.3f})")

with open(os.path.join(fixture, "tokens.json")) as f:
    ftokens = json.load(f)["tokens"]
recorded = np.load(os.path.join(fixture, "logits_peft.npy")).astype(np.float64)
again = logits(PeftModel.from_pretrained(base(), os.path.join(fixture, "adapter")).eval(), ftokens)
ok &= report("PEFT fixture reproduces with this PEFT (fresh vs recorded logits)", again, recorded)
sys.exit(0 if ok else 1)
