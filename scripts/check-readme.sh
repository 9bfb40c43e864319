#!/usr/bin/env bash
# Checks that the commands README.md documents work as written (issue 15).
#
#   bash scripts/check-readme.sh          the checks CI runs (part of scripts/test.sh, ~3 minutes
#                                         after the test build):
#     1. every `bash scripts/X.sh` and `python3 scripts/X.py` the README names is listed below,
#        either as run here (CHEAP) or as run by hand (MANUAL, with the time it takes), and exists;
#     2. every `lorta …` line of the README's command blocks names a subcommand that exists and
#        only options that subcommand's --help lists;
#     3. the cheap commands run, as the README writes them: `lorta info`, the merge demo, the
#        statistics commands on generated files, `lorta generate --chat` on SmolLM2 (must answer
#        Paris), `lorta info --model`, `lorta perplexity`, the chat-data conversion, the digits
#        comparison with scikit-learn, the statistics benchmark at a small size
#        (`bench-stats.sh 1 20000` instead of 100,000 rows) and the decode benchmark at a small
#        size (`bench-decode.sh 1 16`: one round of 16 tokens).
#   bash scripts/check-readme.sh --manual prints the commands run by hand and their times.
#   bash scripts/check-readme.sh --run-manual [COMMAND...] runs them (default: all, as the README
#                                         writes them, and the README's marked command blocks,
#                                         block:NAME) and records exit codes and times.
#
# The CLI is the debug build of this checkout (LORTA=/path/to/lorta to use another), so CI
# does not build a second configuration; the scripts that build the release CLI themselves are
# given LORTA (digits-ood.sh, bench-stats.sh, bench-decode.sh accept it; everything else they do is
# as written).
# The README's Swift snippets are compiled by scripts/check-embedding.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

# Run here (the arguments the check uses; the README's own words are checked by step 1).
CHEAP=(
  "scripts/digits-ood.sh"
  "scripts/bench-stats.sh"
  "scripts/bench-decode.sh"     # 1 round of 16 tokens
  "scripts/make-sentiment-chat.py"
  "scripts/test.sh"            # this check is part of it
  "scripts/check-docs.sh"      # run by scripts/test.sh
  "scripts/sanitize.sh"        # run by scripts/test.sh (the SmolLM2 suites skipped there)
  "scripts/fuzz.sh"            # run by scripts/test.sh (smoke: 2 s per harness)
  "scripts/check-readme.sh"    # this check, run by scripts/test.sh
  "scripts/check-embedding.sh" # run by scripts/test.sh
  "scripts/test-mpi.sh"        # run by scripts/test.sh
  "scripts/install-deps.sh"    # run by scripts/test.sh
)
# Run by hand: command, then the time it takes on this machine kind (2 cores), as each script's
# header and the README record it — see --manual.
MANUAL=(
  "scripts/run.sh|main job (deps, assets, release build, SmolLM2 LoRTA fine-tune, merge, ask): 12 min on a fresh clone (docs/readme-commands.md)"
  "scripts/run-minilm.sh|encoder job: 6 min on a fresh clone after run.sh's build (docs/readme-commands.md)"
  "scripts/quality.sh|MiniLM accuracy table, 5 rows of 300 steps: 27 min on a shared 2-core machine (docs/readme-commands.md)"
  "scripts/backdoor.sh|~5.5 min per MiniLM row (both: 10:47 on a fresh clone, docs/readme-commands.md), ~10 min per SmolLM2 row"
  "scripts/monitor.sh|MiniLM rows: 4:20 for both on a fresh clone (docs/readme-commands.md); ~10–15 min per SmolLM2 row (runs backdoor.sh when its adapter is missing)"
  "scripts/circuits.sh|MiniLM row: 8:24 on a fresh clone (docs/readme-commands.md); ~20 min per SmolLM2 row (runs monitor.sh when its monitor is missing)"
  "scripts/bench.sh|kernel benchmarks, all modes: 3:27 on a fresh clone (docs/readme-commands.md)"
  "scripts/bench-mpi.sh|MiniLM LoRTA steps, 1 process × 2 threads vs 2 MPI ranks, and allgather costs: 55 s on a fresh clone after run.sh's build"
  "scripts/bench-torch-step.sh|PyTorch + PEFT MiniLM step vs ours: 4:24 on a fresh clone, creating the torch venv (docs/readme-commands.md)"
  "scripts/bench-eval.sh|lorta eval throughput vs PyTorch + PEFT (MiniLM, test set), 3 alternating rounds: 3:58 on a fresh clone with the release build (docs/readme-commands.md)"
  "scripts/bench-peft-step.sh|SmolLM2 PEFT steps (3 variants), then ours: 3:13 on a fresh clone (docs/readme-commands.md)"
  "scripts/bench-llm.sh|prefill/decode vs transformers and llama.cpp (LORTA=.build/release/lorta: + ours): 5:18 on a fresh clone, building llama.cpp (docs/readme-commands.md)"
  "scripts/check-llama-hf.sh|SmolLM2 logits vs transformers: ~3 min once the torch venv exists"
  "scripts/check-peft-llama.sh|PEFT LoRA on SmolLM2 vs ours: a few minutes (+ torch venv)"
  "scripts/check-llama-export.sh|merged GGUF/HF export read back by transformers/gguf: a few minutes (+ torch venv)"
  "scripts/peft-sentiment.sh|PyTorch + PEFT reference of the causal task: 14:05 on a fresh clone (docs/readme-commands.md)"
  "scripts/causal-quality.sh|SmolLM2 accuracy table: 9:42 on a fresh clone (docs/readme-commands.md)"
  "scripts/openblas-bits.sh|OpenBLAS sgemm, 1 vs 2 threads, bits per K for 3 cores: ~40 s"
)
# README command blocks run by hand as written: the README marks each with a line
# `<!-- readme-block: NAME -->` just before its ```bash fence; `--run-manual block:NAME` runs the
# block's text with bash (-e, from the repository root, the release `lorta` first on PATH).
# Name, then the time it takes.
BLOCKS=(
  "minilm|lorta train / eval / merge on MiniLM (300 steps): ~6 min after the release build"
  "peft-ours|ours on the files peft-sentiment.sh writes (200 SmolLM2 steps, 200 greedy answers): ~15 min idle"
  "mpi|lorta-mpi train (50 steps), eval --observe, monitor-fit with 2 ranks: ~3 min after the release build"
)

if [[ "${1:-}" == "--manual" ]]; then
  echo "README commands run by hand (times as the scripts and the README record them, 2-core machine):"
  for m in "${MANUAL[@]}"; do printf '  bash %-32s %s\n' "${m%%|*}" "${m#*|}"; done
  for b in "${BLOCKS[@]}"; do printf '  %-37s %s\n' "README block ${b%%|*}" "${b#*|}"; done
  exit 0
fi

# readme_block NAME: prints the text of the README's bash block marked NAME (status 1 if none).
readme_block() {
  /usr/bin/python3 - "$1" <<'PY'
import re, sys
text = open("README.md", encoding="utf-8").read()
m = re.search(r"<!-- readme-block: " + re.escape(sys.argv[1]) + r" -->\n```bash\n(.*?)```", text, re.S)
if not m:
    sys.exit(1)
sys.stdout.write(m.group(1))
PY
}

# --run-manual [COMMAND...]: runs README commands by hand, one after the other, each as the README
# writes it (COMMAND is a script name, e.g. quality, or a script with arguments, e.g.
# "backdoor causal-lora", after optional VAR=value words, e.g. "LORTA=.build/release/lorta
# bench-llm"; default: every MANUAL script without arguments), and records the exit
# code and wall time of each in runs/readme-manual/results.tsv (log of each: <name>.log there).
# Later commands still run when one fails; the exit status is 1 if any failed.
if [[ "${1:-}" == "--run-manual" ]]; then
  shift
  if [[ $# == 0 ]]; then
    set --
    for m in "${MANUAL[@]}"; do s="${m%%|*}"; s="${s#scripts/}"; set -- "$@" "${s%.sh}"; done
    for b in "${BLOCKS[@]}"; do set -- "$@" "block:${b%%|*}"; done
  fi
  out=runs/readme-manual
  mkdir -p "$out"
  [[ -f "$out/results.tsv" ]] || printf 'commit\tcommand\texit\tseconds\tstarted (UTC)\n' > "$out/results.tsv"
  failed=0
  for c in "$@"; do
    # leading VAR=value words are the command's environment (e.g. "LORTA=.build/release/lorta bench-llm")
    envs=(); rest="$c"
    while [[ "$rest" =~ ^([A-Za-z_][A-Za-z0-9_]*=[^ ]*)\ +(.*)$ ]]; do envs+=("${BASH_REMATCH[1]}"); rest="${BASH_REMATCH[2]}"; done
    read -r name args <<<"$rest"
    log="$out/$(echo "$c" | tr ' /:' '___').log"
    if [[ "$name" == block:* ]]; then
      block="$out/${name#block:}.sh"
      { echo 'set -e'; readme_block "${name#block:}"; } > "$block" ||
        { echo "check-readme: README has no block marked ${name#block:}" >&2; failed=1; continue; }
      shown="README block ${name#block:}"
      # The blocks call `lorta`: the release CLI of this checkout, built first.
      run=(bash -c 'LORTA_QUIET_SETUP=1 source scripts/release-cli.sh && PATH="$(dirname "$LORTA"):$PATH" bash "$0"' "$block")
    else
      [[ -f "scripts/$name.sh" ]] || { echo "check-readme: no scripts/$name.sh" >&2; failed=1; continue; }
      shown="${envs[*]:+${envs[*]} }bash scripts/$name.sh${args:+ $args}"
      # shellcheck disable=SC2206
      run=(bash "scripts/$name.sh" $args)
    fi
    commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"   # per command: a pull may come between
    started="$(date -u +%FT%TZ)"; t0=$(date +%s)
    echo "== $shown   (log: $log)" >&2
    if env "${envs[@]}" "${run[@]}" >"$log" 2>&1; then rc=0; else rc=$?; fi
    secs=$(( $(date +%s) - t0 ))
    printf '%s\t%s\t%s\t%s\t%s\n' "$commit" "$shown" "$rc" "$secs" "$started" >> "$out/results.tsv"
    printf '   exit %s after %d:%02d\n' "$rc" $((secs / 60)) $((secs % 60)) >&2
    [[ $rc == 0 ]] || failed=1
  done
  cat "$out/results.tsv"
  exit $failed
fi

# ---- 1. every script the README names is classified and exists ------------------------------
known=" ${CHEAP[*]} "
for m in "${MANUAL[@]}"; do known+=" ${m%%|*} "; done
fail=0
while read -r s; do
  if [[ ! -f "$s" ]]; then echo "check-readme: README names $s, which does not exist" >&2; fail=1; fi
  if [[ "$known" != *" $s "* ]]; then
    echo "check-readme: README names $s, which scripts/check-readme.sh neither runs nor lists as run by hand" >&2; fail=1
  fi
done < <(grep -oE '(bash|python3) scripts/[A-Za-z0-9_./-]+\.(sh|py)' README.md | awk '{print $2}' | sort -u)
known_blocks=" "
for b in "${BLOCKS[@]}"; do known_blocks+="${b%%|*} "; done
while read -r b; do
  [[ "$known_blocks" == *" $b "* ]] || { echo "check-readme: README block $b is not listed in BLOCKS" >&2; fail=1; }
done < <(grep -oE '<!-- readme-block: [A-Za-z0-9_-]+ -->' README.md | awk '{print $3}')
for b in "${BLOCKS[@]}"; do
  readme_block "${b%%|*}" >/dev/null || { echo "check-readme: BLOCKS lists ${b%%|*}, which no README bash block is marked with" >&2; fail=1; }
done
[[ $fail == 0 ]] || exit 1
echo "check-readme: every script the README names exists and is classified; the marked blocks are listed"

if [[ -z "${LORTA:-}" ]]; then
  # shellcheck disable=SC1091
  source scripts/blas-env.sh
  swift build --product lorta >/dev/null
  LORTA="$(swift build --show-bin-path)/lorta"
fi
export LORTA

# ---- 2. every `lorta …` line uses a subcommand and options that exist ------------------------
# lorta-mpi's lines (`mpirun … lorta-mpi SUBCOMMAND …`) are checked against lorta-mpi's help.
LORTA_MPI="$(dirname "$LORTA")/lorta-mpi"
if [[ ! -x "$LORTA_MPI" ]]; then
  # shellcheck disable=SC1091
  source scripts/blas-env.sh
  swift build --product lorta-mpi >/dev/null
  LORTA_MPI="$(swift build --show-bin-path)/lorta-mpi"
fi
/usr/bin/python3 - "$LORTA" "$LORTA_MPI" <<'PY'
import re, subprocess, sys
binaries = {"lorta": sys.argv[1], "lorta-mpi": sys.argv[2]}
text = open("README.md", encoding="utf-8").read()
blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
# Join continuation lines, drop comments, keep the lines that run lorta.
commands = []
for b in blocks:
    for line in b.replace("\\\n", " ").splitlines():
        line = line.split(" #")[0].strip()
        if line.startswith("lorta "):
            commands.append(line)
        elif line.startswith("mpirun ") and re.search(r"(^|[ /])lorta-mpi ", line):
            commands.append("lorta-mpi " + re.split(r"(?:^|[ /])lorta-mpi ", line, maxsplit=1)[1])
helps, failures = {}, []
for c in commands:
    tool, words = c.split()[0], c.split()[1:]
    lorta = binaries[tool]
    path = []
    for w in words:                      # subcommand words come before the first option
        if w.startswith("-") or w.startswith("[") or not re.fullmatch(r"[a-z-]+", w):
            break
        path.append(w)
    key = " ".join([tool] + path)
    if key not in helps:
        # Each word must be listed among its parent's subcommands (ArgumentParser prints the
        # parent's help for an unknown one), then the leaf's help lists the options.
        ok = bool(path)
        for i in range(len(path)):
            parent = subprocess.run([lorta, *path[:i], "--help"], capture_output=True, text=True).stdout
            listed = parent.split("SUBCOMMANDS:")[1] if "SUBCOMMANDS:" in parent else ""
            if not re.search(r"^\s+" + re.escape(path[i]) + r"(\s|$)", listed, re.M):
                ok = False
                break
        r = subprocess.run([lorta, *path, "--help"], capture_output=True, text=True)
        helps[key] = r.stdout if ok and r.returncode == 0 else None
    h = helps[key]
    if h is None:
        failures.append(f"`{c}`: `{key}` is not a command")
        continue
    for opt in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", c):
        if opt in ("--help", "--version"):
            continue
        if not re.search(r"(?<![\w-])" + re.escape(opt) + r"(?![\w-])", h):
            failures.append(f"`{c}`: `{key}` has no option {opt}")
for f in failures:
    print("check-readme: " + f, file=sys.stderr)
if failures:
    sys.exit(1)
print(f"check-readme: {len(commands)} lorta and lorta-mpi command lines of the README use existing subcommands and options")
PY

# ---- 3. the cheap commands, run ---------------------------------------------------------------
work="$(mktemp -d /tmp/lorta-readme.XXXXXX)"
trap 'rm -rf "$work"' EXIT
SMOL=assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
step() { echo "== $*" >&2; }

step "lorta info"
"$LORTA" info
step "merge demo (scripts/demo.sh: lorta merge, then --unmerge)"
bash scripts/demo.sh "$LORTA" >/dev/null

step "lorta stats fit / merge, lorta detect (generated .npy files)"
# shellcheck disable=SC1091
source scripts/python-env.sh
science_venv
"$SCIENCE_PY" - "$work" <<'PY'
import sys, numpy as np
w = sys.argv[1]
rng = np.random.default_rng(0)
trusted = rng.standard_normal((600, 16)).astype(np.float32)
np.save(f"{w}/trusted.npy", trusted)
np.save(f"{w}/shard1.npy", trusted[:300]); np.save(f"{w}/shard2.npy", trusted[300:])
incoming = rng.standard_normal((200, 16)).astype(np.float32)
incoming[100:] += 1.5                                    # the second half is anomalous
np.save(f"{w}/incoming.npy", incoming)
np.save(f"{w}/is_anomalous.npy", np.r_[np.zeros(100), np.ones(100)].astype(np.float32))
np.save(f"{w}/y.npy", (np.arange(600) % 2).astype(np.float32))
PY
(
  cd "$work"
  "$LORTA" stats fit --data trusted.npy --out site3.safetensors --labels y.npy
  "$LORTA" stats fit --data shard1.npy --out shard1.safetensors
  "$LORTA" stats fit --data shard2.npy --out shard2.safetensors
  "$LORTA" stats merge shard1.safetensors shard2.safetensors --out all.safetensors
  "$LORTA" detect --method que --estimator ledoit-wolf --trusted all.safetensors \
               --data incoming.npy --labels is_anomalous.npy --scores-out scores.npy --json > detect.json
) >/dev/null
/usr/bin/python3 -c "
import json, sys
r = json.load(open(sys.argv[1]))
assert r['auroc'] > 0.9, r
print(f'check-readme: lorta detect on the generated data: AUROC {r[\"auroc\"]:.3f}')" "$work/detect.json"

step "lorta generate --chat, lorta info --model, lorta perplexity (SmolLM2)"
answer="$("$LORTA" generate --model "$SMOL" --chat "What is the capital of France?" 2>/dev/null)"
echo "$answer"
[[ "$answer" == *Paris* ]] || { echo "check-readme: SmolLM2 did not answer Paris" >&2; exit 1; }
"$LORTA" info --model "$SMOL" --json >/dev/null
head -c 2000 README.md > "$work/text.txt"
"$LORTA" perplexity --model "$SMOL" --data "$work/text.txt" --context 128 --json >/dev/null

step "chat data (scripts/make-sentiment-chat.py)"
python3 scripts/make-sentiment-chat.py assets/movies/train.tsv "$work/train.jsonl"
python3 scripts/make-sentiment-chat.py assets/movies/test.tsv "$work/test.jsonl" --limit 100 --balanced
[[ "$(wc -l < "$work/test.jsonl")" == 100 ]]

step "digits comparison with scikit-learn (scripts/digits-ood.sh)"
bash scripts/digits-ood.sh > "$work/digits.txt"
cat "$work/digits.txt"
# The README's digits table must be what the script prints today: its AUROC column is the lorta
# rows of the first (non-constant columns) table in order, its scikit-learn column the sklearn rows.
/usr/bin/python3 - "$work/digits.txt" <<'PY'
import re, sys
out = open(sys.argv[1], encoding="utf-8").read().split("\n== ")[1]          # the first table
ours = re.findall(r"^lorta .*?\s(\d\.\d{4})\s", out, re.M)
theirs = re.findall(r"^sklearn \S+\s+(\d\.\d{4})", out, re.M)
readme = open("README.md", encoding="utf-8").read()
table = readme[readme.index("| detector | AUROC | scikit-learn |"):].split("\n\n")[0].splitlines()[2:]
rows = [[c.strip().strip("*") for c in r.strip("|").split("|")] for r in table]
got_ours = [r[1] for r in rows]
got_theirs = [re.match(r"\d\.\d{4}", r[2]).group(0) for r in rows if r[2]]
if got_ours != ours or got_theirs != theirs:
    sys.exit(f"check-readme: the README's digits table ({got_ours}, {got_theirs}) differs from what "
             f"scripts/digits-ood.sh prints ({ours}, {theirs})")
print(f"check-readme: the README's digits table matches scripts/digits-ood.sh ({len(ours)} rows)")
PY

step "decode arithmetics, small (scripts/bench-decode.sh 1 16)"
bash scripts/bench-decode.sh 1 16

step "statistics benchmark, small (scripts/bench-stats.sh 1 20000)"
bash scripts/bench-stats.sh 1 20000

echo "check-readme: OK"
