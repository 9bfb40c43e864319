#!/usr/bin/env python3
"""Turns a movie-review TSV (`label<TAB>text`, label 1 = positive, 0 = negative) into the chat
instruction task the causal-LM fine-tuning uses: one JSON object per line (JSONL), exactly

  {"messages":[{"role":"user","content":"Is the sentiment of this movie review positive or negative? Answer with one word.\\n\\nReview: <text>"},{"role":"assistant","content":"positive"}]}

(the answer is "negative" for label 0). Python 3 standard library only; the output depends only
on the input and the options (no randomness).

    python3 scripts/make-sentiment-chat.py INPUT.tsv OUTPUT.jsonl [--limit N] [--balanced]

  --limit N     keep the first N lines of INPUT (in file order).
  --balanced    with --limit N (N even): keep the first N/2 negative and the first N/2 positive
                lines, in file order (the output interleaves them as the input does). Without
                --limit: keep the first min(#neg, #pos) lines of each label.

Why --balanced matters: assets/movies/test.tsv keeps the order of the source file, whose low IDs
are mostly positive — its first 200 lines are 189 positive / 11 negative (first 100: 96/4),
while the whole file is 1,063 / 1,051. The evaluation subset of the causal-LM reference
(scripts/peft_sentiment.py) is therefore `test.tsv --limit 200 --balanced`: the first 100
negative and the first 100 positive reviews of test.tsv (majority-class accuracy 50%).

JSON encoding: keys in the order shown, separators "," and ":" (no spaces), non-ASCII text kept
as UTF-8 (ensure_ascii=False), "\\n" escapes in the user message; one object per line, "\\n"
line endings, UTF-8. The text column is copied verbatim (only the line ending removed).

Errors (exit status 1, message on stderr naming the file and line): a line without a tab, a
label other than 0 or 1, an empty text, --balanced with an odd --limit or with too few lines of
a label. The output is written to a temporary file in the output's folder and renamed into place,
so a failed run never leaves a partial OUTPUT.
"""
import argparse
import json
import os
import sys
import tempfile

PROMPT = "Is the sentiment of this movie review positive or negative? Answer with one word.\n\nReview: "
ANSWERS = {0: "negative", 1: "positive"}


def fail(message):
    print(f"make-sentiment-chat: {message}", file=sys.stderr)
    sys.exit(1)


def read_tsv(path):
    """[(label, text)] in file order; stops at nothing, checks every line."""
    rows = []
    try:
        f = open(path, encoding="utf-8", newline="")
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror}")
    with f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r")
            if line == "":
                fail(f"{path}:{number}: empty line (expected label<TAB>text)")
            if "\t" not in line:
                fail(f"{path}:{number}: no tab (expected label<TAB>text): {line[:60]!r}")
            label, text = line.split("\t", 1)
            if label not in ("0", "1"):
                fail(f"{path}:{number}: label must be 0 or 1, got {label[:20]!r}")
            if text.strip() == "":
                fail(f"{path}:{number}: empty text")
            rows.append((int(label), text))
    return rows


def select(rows, limit, balanced, path):
    if not balanced:
        return rows if limit is None else rows[:limit]
    counts = {0: sum(1 for r in rows if r[0] == 0), 1: sum(1 for r in rows if r[0] == 1)}
    if limit is None:
        per_label = min(counts.values())
    else:
        if limit % 2:
            fail(f"--balanced needs an even --limit, got {limit}")
        per_label = limit // 2
        for label, n in counts.items():
            if n < per_label:
                fail(f"{path}: --balanced --limit {limit} needs {per_label} lines of label {label}, the file has {n}")
    taken = {0: 0, 1: 0}
    out = []
    for label, text in rows:
        if taken[label] < per_label:
            taken[label] += 1
            out.append((label, text))
    return out


def main():
    parser = argparse.ArgumentParser(description="movie-review TSV -> chat JSONL (sentiment instruction task)")
    parser.add_argument("input", help="TSV with lines label<TAB>text")
    parser.add_argument("output", help="JSONL to write")
    parser.add_argument("--limit", type=int, help="keep the first N lines (with --balanced: N/2 of each label)")
    parser.add_argument("--balanced", action="store_true", help="as many negative as positive lines, first ones in file order")
    args = parser.parse_args()
    if args.limit is not None and args.limit <= 0:
        fail(f"--limit must be positive, got {args.limit}")
    rows = select(read_tsv(args.input), args.limit, args.balanced, args.input)

    lines = []
    for label, text in rows:
        obj = {"messages": [{"role": "user", "content": PROMPT + text},
                            {"role": "assistant", "content": ANSWERS[label]}]}
        lines.append(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")

    folder = os.path.dirname(os.path.abspath(args.output))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".make-sentiment-chat.", suffix=".tmp", dir=folder)
    except OSError as e:
        fail(f"cannot write into {folder}: {e.strerror}")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(lines)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, args.output)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    n_pos = sum(1 for r in rows if r[0] == 1)
    print(f"wrote {args.output}: {len(rows)} examples ({n_pos} positive, {len(rows) - n_pos} negative)", file=sys.stderr)


if __name__ == "__main__":
    main()
