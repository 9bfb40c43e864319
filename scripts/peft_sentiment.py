#!/usr/bin/env python3
"""Quality reference for causal-LM fine-tuning: LoRA on SmolLM2-135M-Instruct (PyTorch + PEFT,
float32, CPU) for the movie-review sentiment chat task, with zero-shot and fine-tuned accuracy.
Run by scripts/peft-sentiment.sh (which makes the JSONL files and picks the venv); installs nothing.

    python peft_sentiment.py MODEL_DIR GGUF_NAME TRAIN.jsonl EVAL.jsonl [--json OUT.json] [--save ADAPTER_DIR]
                             [--steps N] [--lr LR] [--eval-limit N] [--skip-zero-shot]

TRAIN/EVAL are the files scripts/make-sentiment-chat.py writes (one {"messages": [user,
assistant]} per line). --steps/--lr/--eval-limit exist only for trial runs; the reference is the
fixed recipe below (the defaults).

Recipe (fixed; printed at start and stored in the JSON):
  model       AutoModelForCausalLM.from_pretrained(dir, gguf_file=name, dtype=torch.float32) — the
              Q4_1 GGUF dequantized to float32; tokenizer AutoTokenizer.from_pretrained the same way.
              torch.set_num_threads(2).
  adapter     PEFT LoRA r=8, lora_alpha=16 (scale 2), lora_dropout=0, bias "none",
              target_modules q_proj,k_proj,v_proj,o_proj (all 30 blocks) → 921,600 trainable
              parameters; PEFT's init (A kaiming-uniform a=√5, B=0) after torch.manual_seed(0).
  examples    tokenizer.apply_chat_template([user], add_generation_prompt=True) — SmolLM2's ChatML
              template inserts its default system message ("You are a helpful AI assistant named
              SmolLM, trained by Hugging Face"); the prompt ends with "<|im_start|>assistant\\n".
              The sequence is prompt ids + ids of (answer + "<|im_end|>") (no "\\n" after it);
              "positive"/"negative" are one token each, so every example has 2 target tokens.
              Examples longer than 128 tokens (whole sequence) are dropped (count reported).
  loss        cross entropy of the next-token logits, only at the target tokens (the answer and
              the closing <|im_end|>), averaged over all target tokens of the batch
              (labels −100 elsewhere, shift by one, reduction "mean"). The logits are computed
              only at the scored positions (hidden states of the decoder → lm_head): the same
              loss and gradients as the full logits, without the 49,152-wide projection elsewhere.
  batches     8 sequences; order = torch.randperm(n_kept, generator seeded with 0), consecutive
              slices of 8 (step s uses positions 8s … 8s+7 of the permutation; 200 steps use
              1,600 distinct examples, less than one epoch); right padding to
              the longest sequence of the batch with the pad id (2 = <|im_end|>), attention mask 0
              on the padding (causal attention: padding never affects real tokens).
  optimizer   torch.optim.AdamW(betas=(0.9, 0.999), eps=1e-8, weight_decay=0), constant lr 1e-3,
              no warm-up, no gradient clipping, 200 steps (1,600 sequences, < 1 epoch of 8,454).
  evaluation  greedy decoding (model.generate, do_sample=False, max_new_tokens=4, stop at
              <|im_end|>), one review at a time (no padding), on EVAL (the reference uses
              test.tsv --limit 200 --balanced: 100 negative + 100 positive). The answer is the
              decoded new tokens (special tokens skipped); prediction = its first whitespace-
              separated word, lowercased, with every non-alphanumeric character removed;
              correct when it equals "positive"/"negative" of the label. Zero-shot = the base
              model before the adapter is added. Also reported (not the reference metric): the
              two-way choice accuracy — whether the first answer position's logit of the token
              "positive" exceeds that of "negative" exactly when the label is positive; it
              separates "knows the sentiment" from "answers in the requested format" (the base
              model mostly starts with "The sentiment of this …").

Prints the recipe, the dropped count, the loss every 10 steps, both accuracies with the answer
distribution, the LoRA parameter count and the training time; --json writes it all (with the
loss of every step); --save writes the PEFT adapter (adapter_config.json +
adapter_model.safetensors, Hugging Face row order and names).
"""
import argparse
import json
import os
import platform
import resource
import sys
import time
import warnings

import torch

# peft 0.21 calls transformers' deprecated is_gradient_checkpointing (harmless FutureWarning)
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")

RECIPE = {
    "threads": 2,
    "dtype": "float32",
    "lora_r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.0,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "optimizer": "AdamW",
    "betas": [0.9, 0.999],
    "eps": 1e-8,
    "weight_decay": 0.0,
    "lr": 1e-3,
    "lr_schedule": "constant",
    "steps": 200,
    "batch_size": 8,
    "seed": 0,
    "max_tokens": 128,
    "padding": "right, to the longest sequence of the batch",
    "loss": "mean cross entropy over the batch's target tokens (answer + <|im_end|>)",
    "eval": "greedy, max_new_tokens=4, first word lowercased without punctuation == label word",
}


def load_jsonl(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            obj = json.loads(line)
            msgs = obj["messages"]
            if len(msgs) != 2 or msgs[0]["role"] != "user" or msgs[1]["role"] != "assistant":
                sys.exit(f"{path}:{number}: expected [user, assistant] messages")
            rows.append((msgs[0]["content"], msgs[1]["content"]))
    return rows


def answer_word(text):
    words = text.split()
    return "".join(c for c in words[0].lower() if c.isalnum()) if words else ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("gguf_name")
    ap.add_argument("train")
    ap.add_argument("eval")
    ap.add_argument("--json")
    ap.add_argument("--save")
    ap.add_argument("--steps", type=int, default=RECIPE["steps"], help="trial runs only")
    ap.add_argument("--lr", type=float, default=RECIPE["lr"], help="trial runs only")
    ap.add_argument("--eval-limit", type=int, help="trial runs only: the first N/2 eval examples of each answer")
    ap.add_argument("--skip-zero-shot", action="store_true", help="trial runs only")
    args = ap.parse_args()
    recipe = dict(RECIPE, steps=args.steps, lr=args.lr)
    trial = args.steps != RECIPE["steps"] or args.lr != RECIPE["lr"] or args.eval_limit or args.skip_zero_shot

    torch.set_num_threads(recipe["threads"])
    import peft
    import transformers
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    transformers.utils.logging.disable_progress_bar()

    print("recipe" + (" (TRIAL: differs from the fixed recipe)" if trial else "") + ":")
    for k, v in recipe.items():
        print(f"  {k:<15} {v}")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, "
          f"{torch.get_num_threads()} threads; load average {' '.join(open('/proc/loadavg').read().split()[:3])}",
          flush=True)

    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(args.model_dir, gguf_file=args.gguf_name)
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, gguf_file=args.gguf_name, dtype=torch.float32)
    model.eval()
    load_s = time.perf_counter() - t0
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else im_end

    def prompt_ids(user):
        text = tok.apply_chat_template([{"role": "user", "content": user}], add_generation_prompt=True, tokenize=False)
        assert text.endswith("<|im_start|>assistant\n"), repr(text[-40:])
        return tok(text, add_special_tokens=False)["input_ids"]

    # ---- training examples
    train_rows = load_jsonl(args.train)
    examples, dropped = [], 0
    checked = False
    for user, answer in train_rows:
        p = prompt_ids(user)
        a = tok(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
        if not checked:  # the split tokenization equals the template's own for the whole chat
            full = tok.apply_chat_template([{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
                                           tokenize=False)
            assert tok(full, add_special_tokens=False)["input_ids"][: len(p) + len(a)] == p + a
            checked = True
        if len(p) + len(a) > recipe["max_tokens"]:
            dropped += 1
            continue
        examples.append((p, a))
    lengths = [len(p) + len(a) for p, a in examples]
    print(f"train: {len(train_rows)} examples, {dropped} dropped (> {recipe['max_tokens']} tokens), "
          f"{len(examples)} kept; tokens per example min {min(lengths)} mean {sum(lengths) / len(lengths):.1f} "
          f"max {max(lengths)}; target tokens per example {sorted({len(a) for _, a in examples})}", flush=True)

    # ---- evaluation
    eval_rows = load_jsonl(args.eval)
    if args.eval_limit:  # trial runs: the first N/2 of each answer (the file lists positives first)
        half = {"positive": 0, "negative": 0}
        kept = []
        for row in eval_rows:
            if half.get(row[1], 0) < args.eval_limit // 2:
                half[row[1]] += 1
                kept.append(row)
        eval_rows = kept
    eval_prompts = [prompt_ids(u) for u, _ in eval_rows]
    choice_ids = {w: tok(w, add_special_tokens=False)["input_ids"][0] for w in ("positive", "negative")}
    gen_config = GenerationConfig(do_sample=False, max_new_tokens=4, eos_token_id=im_end, pad_token_id=pad_id,
                                  return_dict_in_generate=True, output_logits=True)

    def evaluate(m, label):
        m.eval()
        t = time.perf_counter()
        correct, choice_correct, answers, dist = 0, 0, [], {}
        with torch.inference_mode():
            for ids, (_, want) in zip(eval_prompts, eval_rows):
                x = torch.tensor([ids])
                out = m.generate(input_ids=x, attention_mask=torch.ones_like(x), generation_config=gen_config)
                text = tok.decode(out.sequences[0, len(ids):], skip_special_tokens=True)
                word = answer_word(text)
                correct += word == want
                first = out.logits[0][0]
                choice_correct += (want == "positive") == bool(first[choice_ids["positive"]] > first[choice_ids["negative"]])
                answers.append(text)
                key = word if word in ("positive", "negative") else "other"
                dist[key] = dist.get(key, 0) + 1
        acc = correct / len(eval_rows)
        secs = time.perf_counter() - t
        choice = choice_correct / len(eval_rows)
        print(f"{label}: accuracy {acc:.3f} ({correct}/{len(eval_rows)}), answers {dict(sorted(dist.items()))}; "
              f"two-way choice accuracy {choice:.3f}; {secs:.0f} s", flush=True)
        others = [a for a in answers if answer_word(a) not in ("positive", "negative")]
        if others:
            print(f"  other answers (first 5): {others[:5]!r}")
        return {"accuracy": acc, "correct": correct, "n": len(eval_rows), "answers": dist, "seconds": secs,
                "choice_accuracy": choice,
                "first_answers": answers[:10]}

    n_pos = sum(1 for _, w in eval_rows if w == "positive")
    print(f"eval: {len(eval_rows)} examples ({n_pos} positive, {len(eval_rows) - n_pos} negative)", flush=True)
    zero = None if args.skip_zero_shot else evaluate(model, "zero-shot (base model)")

    # ---- LoRA
    torch.manual_seed(recipe["seed"])
    config = LoraConfig(r=recipe["lora_r"], lora_alpha=recipe["lora_alpha"], lora_dropout=recipe["lora_dropout"],
                        target_modules=recipe["target_modules"], bias="none", task_type="CAUSAL_LM")
    pmodel = get_peft_model(model, config)
    params = [p for p in pmodel.parameters() if p.requires_grad]
    n_params = sum(p.numel() for p in params)
    print(f"LoRA trainable parameters: {n_params:,}", flush=True)
    opt = torch.optim.AdamW(params, lr=recipe["lr"], betas=tuple(recipe["betas"]), eps=recipe["eps"],
                            weight_decay=recipe["weight_decay"])

    if recipe["steps"] * recipe["batch_size"] > len(examples):
        sys.exit(f"{recipe['steps']} steps of {recipe['batch_size']} need more than the {len(examples)} examples")
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(recipe["seed"])).tolist()

    def batch_indices(step):
        bs = recipe["batch_size"]
        return order[step * bs: (step + 1) * bs]

    def make_batch(idx):
        seqs = [examples[i][0] + examples[i][1] for i in idx]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        labels = torch.full((len(seqs), width), -100, dtype=torch.long)
        for r, i in enumerate(idx):
            p, a = examples[i]
            n = len(p) + len(a)
            ids[r, :n] = torch.tensor(p + a)
            mask[r, :n] = 1
            labels[r, len(p):n] = torch.tensor(a)
        return ids, mask, labels

    decoder = pmodel.get_base_model().model      # LlamaModel (LoRA layers injected in place)
    lm_head = pmodel.get_base_model().lm_head    # tied to the token embedding
    pmodel.train()
    losses, widths = [], []
    t_train = time.perf_counter()
    for step in range(recipe["steps"]):
        ids, mask, labels = make_batch(batch_indices(step))
        widths.append(ids.shape[1])
        # Logits only where they are scored: position t predicts token t+1, so the rows before a
        # target token. The same loss as full logits + shift + ignore_index=-100, without the
        # 49,152-wide output projection (and its backward) at the unscored positions.
        hidden = decoder(input_ids=ids, attention_mask=mask).last_hidden_state
        scored = labels[:, 1:] != -100
        logits = lm_head(hidden[:, :-1][scored])
        loss = torch.nn.functional.cross_entropy(logits, labels[:, 1:][scored], reduction="mean")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % 10 == 0 or step == recipe["steps"] - 1:
            recent = losses[-10:]
            print(f"  step {step + 1:4d}  loss {losses[-1]:.4f}  (mean of last {len(recent)}: "
                  f"{sum(recent) / len(recent):.4f})  {time.perf_counter() - t_train:.0f} s", flush=True)
    train_s = time.perf_counter() - t_train
    print(f"training: {recipe['steps']} steps in {train_s:.0f} s ({train_s / recipe['steps']:.2f} s/step, "
          f"mean batch width {sum(widths) / len(widths):.1f} tokens)", flush=True)

    tuned = evaluate(pmodel, "after LoRA training")
    if args.save:
        pmodel.save_pretrained(args.save, save_embedding_layers=False)  # no embedding adapted; avoids a Hub lookup
        print(f"adapter saved to {args.save}")

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    summary = {
        "trial": bool(trial),
        "recipe": recipe,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
                     "python": platform.python_version()},
        "model": os.path.join(args.model_dir, args.gguf_name),
        "train_file": args.train, "eval_file": args.eval,
        "train_examples": len(train_rows), "train_dropped": dropped, "train_kept": len(examples),
        "eval_examples": len(eval_rows), "eval_positive": n_pos,
        "lora_parameters": n_params,
        "load_seconds": load_s,
        "train_seconds": train_s, "seconds_per_step": train_s / recipe["steps"],
        "mean_batch_width": sum(widths) / len(widths),
        "zero_shot": zero, "fine_tuned": tuned,
        "losses": losses,
        "peak_rss_mb": peak,
        "load_average_end": open("/proc/loadavg").read().split()[:3],
    }
    zs = f"{zero['accuracy']:.3f}" if zero else "-"
    print(f"\nsummary: zero-shot {zs} -> fine-tuned {tuned['accuracy']:.3f} on {len(eval_rows)} reviews; "
          f"LoRA {n_params:,} parameters; training {train_s:.0f} s; peak RSS {peak:.0f} MB")
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(summary, f, indent=1)
        os.replace(tmp, args.json)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
