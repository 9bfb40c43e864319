#!/usr/bin/env bash
# Data-parallel training and sharded statistics under MPI (issue 14), on the real
# all-MiniLM-L6-v2 and the movie-review sentences (scripts/fetch-assets.sh), on this machine
# (loopback):
#   1. `lorta train` (1 process, 2 threads) vs `mpirun -np 2 lorta-mpi train` (1 thread each),
#      same --batch-size 8 and --micro-batch-size 4, LoRTA and LoRA (and micro-batches of 3, 3, 2
#      shared 1 + 2; and the causal LM on the tiny Llama fixture): every tensor of the adapter,
#      the head and the checkpoint must be bitwise equal;
#   2. resume with another number of processes: 2 ranks for 2 steps, then 1 process to step 4,
#      and 1 process for 2 steps, then 2 ranks to step 4, both equal to 4 steps straight;
#   3. `lorta eval --observe` (1 process) vs `mpirun -np 2 lorta-mpi eval --observe` (each rank
#      its shard, statistics merged in rank order): same counts, statistics within 1e-12 relative;
#      the same for the causal LM (loss sums added); `lorta monitor fit` vs `mpirun -np 2
#      lorta-mpi monitor-fit`, MiniLM and the tiny Llama: the same monitor files;
#   4. a rank that fails mid-run (LORTA_MPI_FAIL=1:3) ends the job with a message from rank 0
#      and a complete OUT whose checkpoint is the last completed step (step 2, identical to a
#      2-step run); ranks that disagree (another --seed on rank 1) stop before the first step.
# Needs Open MPI (scripts/install-deps.sh). Takes well under a minute after the build.
# Usage: bash scripts/test-mpi.sh   (after `swift build`; builds lorta and lorta-mpi if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/blas-env.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Loopback only, whatever the container's network looks like.
export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
swift build --product lorta >/dev/null
swift build --product lorta-mpi >/dev/null
bin="$(swift build --show-bin-path)"
model=assets/all-MiniLM-L6-v2
[ -f "$model/model.safetensors" ] || { echo "test-mpi: $model missing (bash scripts/fetch-assets.sh)" >&2; exit 1; }
work="$(mktemp -d /tmp/lorta-mpi-test.XXXXXX)"
trap 'rm -rf "$work"' EXIT
head -n 400 assets/movies/train.tsv > "$work/train.tsv"
head -n 95 assets/movies/test.tsv > "$work/eval.tsv"   # 6 batches of 16 (the last 15): shards of 48 and 47
mpi=(mpirun --allow-run-as-root --oversubscribe -np 2)
common=(--model "$model" --train "$work/train.tsv" --rank 4 --alpha 8 --batch-size 8 --micro-batch-size 4
        --max-length 32 --seed 5 --lr 0.01 --quiet)
start=$(date +%s)
lap() { echo "test-mpi: [$(( $(date +%s) - start )) s]"; }
fail() { echo "test-mpi: FAILED: $*" >&2; exit 1; }

# The outputs that must be identical: every tensor of the adapter, the head and the checkpoint
# (trainable tensors, AdamW moments), bit for bit, and the checkpoint's trainer.json except its
# random checkpoint_id (the files' metadata carries that id too, so whole files differ) and,
# with a 4th argument, the planned total of steps.
same_outputs() {
  python3 - "$1" "$2" "$3" "${4:-}" <<'PY' || fail "$3"
import json, os, struct, sys
a, b, what, ignore_total = sys.argv[1:]
def tensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in header.items() if k != "__metadata__"}
files = [f for f in ("adapter_model.safetensors", "classifier.safetensors") if os.path.exists(os.path.join(a, f))]
for root, _, names in os.walk(os.path.join(a, "checkpoint")):
    files += [os.path.relpath(os.path.join(root, n), a) for n in names]
count = 0
for f in sorted(files):
    pa, pb = os.path.join(a, f), os.path.join(b, f)
    if f.endswith(".safetensors"):
        ta, tb = tensors(pa), tensors(pb)
        if ta.keys() != tb.keys():
            sys.exit("%s: %s holds other tensors" % (what, f))
        for k in ta:
            if ta[k] != tb[k]:
                sys.exit("%s: tensor %s of %s differs" % (what, k, f))
            count += 1
    elif f.endswith(".json"):
        ja, jb = json.load(open(pa)), json.load(open(pb))
        ja.pop("checkpoint_id", None); jb.pop("checkpoint_id", None)
        if ignore_total:  # a run stopped before its total: the planned total differs
            ja.get("configuration", {}).pop("steps", None); jb.get("configuration", {}).pop("steps", None)
        if ja != jb:
            sys.exit("%s: %s differs" % (what, f))
print("test-mpi: %s: %d tensors bitwise equal in %d files" % (what, count, len(files)))
PY
}

for adapter in lorta lora; do
  "$bin/lorta" train "${common[@]}" --adapter "$adapter" --steps 4 --threads 2 --out "$work/$adapter-1"
  "${mpi[@]}" "$bin/lorta-mpi" train "${common[@]}" --adapter "$adapter" --steps 4 --threads 1 --out "$work/$adapter-2"
  same_outputs "$work/$adapter-1" "$work/$adapter-2" "$adapter, 4 steps: 1 process × 2 threads vs 2 ranks × 1 thread"
done
# Micro-batches that do not split evenly: batch 8 in micro-batches of 3 (3, 3, 2): rank 0
# computes one, rank 1 two; still the single-process bits.
"$bin/lorta" train "${common[@]}" --adapter lorta --steps 3 --micro-batch-size 3 --threads 2 --out "$work/odd-1"
"${mpi[@]}" "$bin/lorta-mpi" train "${common[@]}" --adapter lorta --steps 3 --micro-batch-size 3 --threads 1 --out "$work/odd-2"
same_outputs "$work/odd-1" "$work/odd-2" "lorta, micro-batches 3+3+2 over 2 ranks"
# The causal LM (tiny random Llama fixture, Q8_0 GGUF with its tokenizer; loss on responses).
python3 - "$work/chat.jsonl" <<'PY'
import json, sys
words, answers = ["red", "green", "blue", "gold"], ["one", "two", "three", "four"]
with open(sys.argv[1], "w") as f:
    for i in range(16):
        f.write(json.dumps({"prompt": "%s item %d is number" % (words[i % 4], i * 7 % 13), "response": " " + answers[i % 4]}) + "\n")
PY
lm=(--model Tests/LoRTATests/Fixtures/llama/tiny/tiny_untied.q8_0.gguf --train "$work/chat.jsonl" --adapter lorta --rank 4
    --batch-size 4 --micro-batch-size 2 --steps 3 --lr 0.01 --quiet)
"$bin/lorta" train "${lm[@]}" --threads 2 --out "$work/lm-1"
"${mpi[@]}" "$bin/lorta-mpi" train "${lm[@]}" --threads 1 --out "$work/lm-2"
same_outputs "$work/lm-1" "$work/lm-2" "causal LM (tiny Llama), LoRTA: 1 process vs 2 ranks"
lap

# Resume with another number of processes.
"${mpi[@]}" "$bin/lorta-mpi" train "${common[@]}" --adapter lorta --steps 2 --threads 1 --out "$work/r2"
"$bin/lorta" train "${common[@]}" --adapter lorta --steps 4 --threads 2 --resume "$work/r2/checkpoint" --out "$work/r2"
same_outputs "$work/lorta-1" "$work/r2" "resume: 2 steps on 2 ranks + 2 on 1 process vs 4 straight"
"$bin/lorta" train "${common[@]}" --adapter lorta --steps 2 --threads 2 --out "$work/r1"
cp -r "$work/r1" "$work/step2"
# The comparison can fail: 2 and 4 steps must differ.
if (same_outputs "$work/lorta-1" "$work/step2" "2 vs 4 steps") >/dev/null 2>&1; then fail "2 and 4 steps gave the same outputs"; fi
"${mpi[@]}" "$bin/lorta-mpi" train "${common[@]}" --adapter lorta --steps 4 --threads 1 --resume "$work/r1/checkpoint" --out "$work/r1"
same_outputs "$work/lorta-1" "$work/r1" "resume: 2 steps on 1 process + 2 on 2 ranks vs 4 straight"

lap
# Sharded statistics: per-layer outputs with per-label statistics.
eval_args=(--model "$model" --adapter "$work/lorta-1" --data "$work/eval.tsv" --max-length 32 --batch-size 16
           --observe layers --per-label --json)
"$bin/lorta" eval "${eval_args[@]}" --threads 2 --statistics-out "$work/stats-1" > "$work/eval-1.json"
"${mpi[@]}" "$bin/lorta-mpi" eval "${eval_args[@]}" --threads 1 --statistics-out "$work/stats-2" > "$work/eval-2.json"
# compare_statistics J1 J2 S1 S2 KEYS WHAT: the JSON summaries agree on KEYS exactly and on the loss
# within 1e-12 relative; the statistics files of S1 and S2 agree within 1e-12 relative.
compare_statistics() {
python3 - "$work" "$@" <<'PY'
import json, struct, sys, os
work, j1, j2, s1, s2, keys, what = sys.argv[1:8]
def tensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__": continue
        a, b = t["data_offsets"]
        fmt = {"F64": "d", "I64": "q"}[t["dtype"]]
        out[name] = struct.unpack("<%d%s" % ((b - a) // 8, fmt), data[a:b])
    return header.get("__metadata__", {}), out
e1, e2 = (json.load(open(os.path.join(work, f))) for f in (j1, j2))
for k in keys.split(","):
    assert e1[k] == e2[k], (k, e1[k], e2[k])
assert abs(e1["loss"] - e2["loss"]) <= 1e-12 * abs(e1["loss"]), (e1["loss"], e2["loss"])
files = sorted(os.listdir(os.path.join(work, s1)))
assert files and files == sorted(os.listdir(os.path.join(work, s2))), files
worst = 0.0
for name in files:
    m1, t1 = tensors(os.path.join(work, s1, name))
    m2, t2 = tensors(os.path.join(work, s2, name))
    assert m1["count"] == m2["count"] and m1.get("labels") == m2.get("labels"), (name, m1, m2)
    assert t1.keys() == t2.keys(), name
    for key in t1:
        scale = max(abs(x) for x in t1[key]) or 1.0
        for x, y in zip(t1[key], t2[key]):
            worst = max(worst, abs(x - y) / scale)
assert worst <= 1e-12, worst
print("test-mpi: %s: statistics of %d points (count %s): 2 ranks vs 1 process, max relative difference %.2e (<= 1e-12); %s identical, loss within 1e-12"
      % (what, len(files), m1["count"], worst, keys))
PY
}
compare_statistics eval-1.json eval-2.json stats-1 stats-2 examples,correct,confusion "BERT, per-label"

lap
# Sharded monitor fit: each rank runs the model over its shard of the trusted inputs (48 and 47),
# the rows are gathered in rank order, and the monitor written equals one process's byte for byte.
monitor_args=(--model "$model" --adapter "$work/lorta-1" --trusted "$work/eval.tsv" --points layers,heads
              --max-length 32 --batch-size 16 --folds 3 --pseudo-classes 2 --json)
"$bin/lorta" monitor fit "${monitor_args[@]}" --threads 2 --out "$work/mon-1" > "$work/mon-1.json"
"${mpi[@]}" "$bin/lorta-mpi" monitor-fit "${monitor_args[@]}" --threads 1 --out "$work/mon-2" > "$work/mon-2.json"
files=$(find "$work/mon-1" -type f | wc -l)
[[ $files -ge 3 ]] || fail "monitor fit wrote $files files"
diff -r "$work/mon-1" "$work/mon-2" >/dev/null || fail "monitor fit: 2 ranks wrote another monitor than 1 process"
grep -q '"processes" : 2\|"processes": 2' "$work/mon-2.json" || fail "lorta-mpi monitor-fit did not report 2 processes"
echo "test-mpi: monitor fit, 2 ranks vs 1 process: the $files files identical ($(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["trusted_inputs"], "trusted inputs,", d["sites"], "sites")' "$work/mon-2.json"))"
# The same for the causal LM (tiny Llama with its trained LoRTA; 16 prompts in batches of 3: shards of 9 and 7).
lm_monitor=(--model Tests/LoRTATests/Fixtures/llama/tiny/tiny_untied.q8_0.gguf --adapter "$work/lm-1" --trusted "$work/chat.jsonl"
            --points all --batch-size 3 --folds 2 --json)
"$bin/lorta" monitor fit "${lm_monitor[@]}" --threads 2 --out "$work/lm-mon-1" > /dev/null
"${mpi[@]}" "$bin/lorta-mpi" monitor-fit "${lm_monitor[@]}" --threads 1 --out "$work/lm-mon-2" > /dev/null
diff -r "$work/lm-mon-1" "$work/lm-mon-2" >/dev/null || fail "causal LM monitor fit: 2 ranks wrote another monitor than 1 process"
echo "test-mpi: causal LM monitor fit, 2 ranks vs 1 process: the $(find "$work/lm-mon-1" -type f | wc -l) files identical"
# Sharded causal-LM evaluation: loss sums added and prompt statistics merged in rank order.
lm_eval=(--model Tests/LoRTATests/Fixtures/llama/tiny/tiny_untied.q8_0.gguf --adapter "$work/lm-1" --data "$work/chat.jsonl"
         --batch-size 3 --observe layers,heads --json)
"$bin/lorta" eval "${lm_eval[@]}" --threads 2 --statistics-out "$work/lm-stats-1" > "$work/lm-eval-1.json"
"${mpi[@]}" "$bin/lorta-mpi" eval "${lm_eval[@]}" --threads 1 --statistics-out "$work/lm-stats-2" > "$work/lm-eval-2.json"
compare_statistics lm-eval-1.json lm-eval-2.json lm-stats-1 lm-stats-2 examples,tokens "causal LM"

lap
# A rank that fails at its 3rd step: rank 0 reports it, OUT holds the last completed step (2).
set +e
LORTA_MPI_FAIL=1:3 "${mpi[@]}" "$bin/lorta-mpi" train "${common[@]}" --adapter lorta --steps 4 --threads 1 \
  --checkpoint-every 2 --out "$work/failed" > "$work/failed.out" 2> "$work/failed.err"
status=$?
set -e
[ $status -ne 0 ] || fail "the failing run exited with status 0"
grep -q "error: rank 1 failed: injected failure" "$work/failed.err" || { cat "$work/failed.err" >&2; fail "no message from rank 0"; }
[ "$(grep -c "error: " "$work/failed.err")" = 1 ] || { cat "$work/failed.err" >&2; fail "the error was reported more than once"; }
same_outputs "$work/step2" "$work/failed" "failure at step 3 of rank 1: OUT is the complete step-2 run" ignore-total
echo "test-mpi: failed run: exit status $status, rank 0 said: $(grep 'error: ' "$work/failed.err")"

# Ranks that disagree (rank 1 another seed: another initial adapter) stop before the first step.
set +e
mpirun --allow-run-as-root --oversubscribe -np 1 "$bin/lorta-mpi" train "${common[@]}" --adapter lorta --steps 2 --threads 1 --out "$work/dis" : \
  -np 1 "$bin/lorta-mpi" train "${common[@]}" --adapter lorta --steps 2 --threads 1 --out "$work/dis" --seed 6 > /dev/null 2> "$work/dis.err"
status=$?
set -e
[ $status -ne 0 ] || fail "ranks with different seeds trained"
grep -q "the ranks disagree on the trained tensors" "$work/dis.err" || { cat "$work/dis.err" >&2; fail "no disagreement message"; }
[ ! -e "$work/dis" ] || fail "ranks that disagree wrote OUT"
echo "test-mpi: ranks with different seeds: $(grep 'error: ' "$work/dis.err" | head -1)"
echo "test-mpi: OK ($(( $(date +%s) - start )) s)"
