#!/usr/bin/env python3
"""Checks files written by swift-lorta with the real Hugging Face libraries (run by hand).

Make the files with the Swift test (it leaves them in DIR when LORTA_EXPORT_CHECK_DIR is set):
    LORTA_EXPORT_CHECK_DIR=/tmp/lorta-check swift test --filter BertFilesTests/miniLMMergedExportRoundTrip
Then:
    /tmp/torchenv/bin/python scripts/check_export.py adapter /tmp/lorta-check [assets/all-MiniLM-L6-v2]
    /tmp/torchenv/bin/python scripts/check_export.py model   /tmp/lorta-check

adapter: PEFT's PeftModel.from_pretrained(AutoModel(base), DIR/adapter-ours) loads OUR LoRA adapter
         (PEFT layout); its mean-pooled embeddings of DIR/tokens.json are compared with ours
         (DIR/adapter-ours-embeddings.npy). Fails on missing/unexpected adapter keys.
model:   transformers' AutoModel.from_pretrained(DIR/export-lora) loads OUR merged export as a plain
         BertModel; its mean-pooled embeddings are compared with ours (DIR/export-lora-embeddings.npy),
         and the loading report must have no missing or unexpected weights.
Prints max |Δ| and the smallest row cosine; exits 1 when max |Δ| > 1e-4 or cosine < 0.99999.

accuracy: end to end on files written by `lorta train` and `lorta merge --model`:
    python scripts/check_export.py accuracy MODEL TRAINED_DIR MERGED_DIR TEST_TSV [MAX_LENGTH]
         test accuracy of (a) PEFT's PeftModel.from_pretrained(AutoModel(MODEL), TRAINED_DIR) (LoRA
         only) and (b) AutoModel.from_pretrained(MERGED_DIR), each with the head
         TRAINED_DIR/classifier.safetensors on the mean-pooled embedding and the Hugging Face
         tokenizer (truncation to MAX_LENGTH, default 64) — to compare with `lorta eval`.
"""
import json
import os
import sys

import numpy as np
import torch
from transformers import AutoModel


def pooled(model, ids, mask):
    with torch.no_grad():
        h = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
    m = mask.unsqueeze(-1).to(h.dtype)
    return ((h * m).sum(1) / m.sum(1)).numpy().astype(np.float32)


def compare(name, theirs, ours):
    diff = float(np.abs(theirs - ours).max())
    cos = float(min(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)) for a, b in zip(theirs.astype(np.float64), ours.astype(np.float64))))
    print(f"{name}: rows {theirs.shape[0]}, max |theirs - ours| = {diff:.3e}, min cosine = {cos:.9f}, max |ours| = {float(np.abs(ours).max()):.3f}")
    return diff <= 1e-4 and cos >= 0.99999


def accuracy_mode(model_dir, trained, merged, tsv, max_length):
    from safetensors.numpy import load_file
    from transformers import AutoTokenizer
    head = load_file(os.path.join(trained, "classifier.safetensors"))
    w, b = torch.tensor(head["weight"]), torch.tensor(head["bias"])
    labels, texts = [], []
    with open(tsv, encoding="utf-8") as f:
        for line in f:
            y, t = line.rstrip("\n").split("\t", 1)
            labels.append(int(y)); texts.append(t)
    tok = AutoTokenizer.from_pretrained(model_dir)
    y = np.array(labels)

    def acc(model):
        correct = 0
        for i in range(0, len(texts), 64):
            enc = tok(texts[i:i + 64], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            p = torch.tensor(pooled(model, enc["input_ids"], enc["attention_mask"]))
            correct += int(((p @ w.T + b).argmax(1).numpy() == y[i:i + 64]).sum())
        return correct / len(texts)

    with open(os.path.join(trained, "adapter_config.json")) as f:
        peft_type = json.load(f).get("peft_type")
    if peft_type == "LORA":
        from peft import PeftModel
        peft_model = PeftModel.from_pretrained(AutoModel.from_pretrained(model_dir), trained).eval()
        print(f"PEFT + our LoRA adapter + our head: accuracy {100 * acc(peft_model):.2f}% on {len(texts)} examples")
    exported = AutoModel.from_pretrained(merged).eval()
    print(f"transformers on our merged export + our head: accuracy {100 * acc(exported):.2f}% on {len(texts)} examples")


def main():
    if len(sys.argv) >= 6 and sys.argv[1] == "accuracy":
        accuracy_mode(*sys.argv[2:6], int(sys.argv[6]) if len(sys.argv) > 6 else 64)
        return
    if len(sys.argv) < 3 or sys.argv[1] not in ("adapter", "model"):
        sys.exit(__doc__)
    mode, d = sys.argv[1], sys.argv[2]
    base_dir = sys.argv[3] if len(sys.argv) > 3 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "assets", "all-MiniLM-L6-v2")
    with open(os.path.join(d, "tokens.json")) as f:
        tok = json.load(f)
    ids, mask = torch.tensor(tok["ids"]), torch.tensor(tok["attention_mask"])
    ok = True
    if mode == "adapter":
        from peft import PeftModel
        import warnings
        base = AutoModel.from_pretrained(base_dir).eval()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = PeftModel.from_pretrained(base, os.path.join(d, "adapter-ours")).eval()
        key_warnings = [str(w.message) for w in caught if "key" in str(w.message).lower()]
        for w in key_warnings:
            print("PEFT warning:", w)
        ok = not key_warnings
        n_lora = sum(1 for n, _ in model.named_parameters() if "lora_" in n)
        print(f"PEFT loaded {n_lora} LoRA tensors; config r={model.peft_config['default'].r}, "
              f"alpha={model.peft_config['default'].lora_alpha}, targets={sorted(model.peft_config['default'].target_modules)}")
        adapted = pooled(model, ids, mask)
        with model.disable_adapter():
            plain = pooled(model, ids, mask)
        print(f"adapter effect in PEFT: max |adapted - base| = {float(np.abs(adapted - plain).max()):.3e}")
        ok &= compare("PEFT on our adapter vs our forward", adapted,
                      np.load(os.path.join(d, "adapter-ours-embeddings.npy")))
    else:
        model, info = AutoModel.from_pretrained(os.path.join(d, "export-lora"), output_loading_info=True)
        model.eval()
        print(f"transformers loaded {type(model).__name__}; missing {info['missing_keys']}, unexpected {info['unexpected_keys']}, mismatched {info['mismatched_keys']}")
        ok = not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
        ok &= compare("transformers on our export vs our forward", pooled(model, ids, mask),
                      np.load(os.path.join(d, "export-lora-embeddings.npy")))
    print("OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
