# Sourced by every script that runs Python with more than the standard library: the one way
# for them to get their Python tools. Makes or reuses virtual environments with pinned versions
# (printing what it installs to stderr) and sets the interpreter variable of each:
#
#   science_venv    SCIENCE_PY from SCIENCE_VENV (default /tmp/lorta-science-venv): numpy, scipy,
#                   scikit-learn (~100 MB; under a minute to install). Used by the reference
#                   scripts (digits-ood.sh, bench-stats.sh) and the fixture generators that need
#                   only numpy.
#   torch_venv      TORCH_PY from TORCH_VENV (default /tmp/lorta-torch-venv): torch, transformers,
#                   peft, gguf, numpy, safetensors, tokenizers from PyPI (several GB the first time:
#                   torch's default wheel pulls CUDA libraries; a few minutes to download and
#                   install). Only the comparison scripts use it.
#   llamacpp_venv   LLAMACPP_PY from LLAMACPP_VENV (default /tmp/lorta-llamacpp-venv):
#                   llama-cpp-python 0.3.36,
#                   built from source by pip (its sdist vendors llama.cpp; pip fetches cmake and
#                   ninja into the build environment). CPU only, OpenMP, no BLAS. The build costs
#                   ~20 CPU-minutes of compiler time measured once (19 min user time); on a fresh
#                   clone on 4 December 2026 it took 4.5 minutes of wall time (2 cores, other jobs
#                   niced), and 45–51 minutes once while three Swift builds shared the machine.
#                   Its own venv, so the torch one never rebuilds it.
#
# Scripts whose Python uses the standard library only (json, random, …) run the system
# `python3` (Debian's python3 and python3-venv, installed by scripts/install-deps.sh).
#
# Why not GGML_NATIVE: this VM's CPU lists amx_tile/amx_int8/amx_bf16 in /proc/cpuinfo, so
# -march=native compiles ggml's AMX path, which repacks the Q4_1/Q8_0 weights into AMX tiles and
# then crashes (SIGSEGV in the first llama_decode; with use_extra_bufts=false it runs). The
# build therefore turns on the x86 extensions /proc/cpuinfo lists one by one, AMX never.
#
# An existing venv is reused when the pinned versions import (and, for llama.cpp, when it was
# built with the same CMake arguments: the file lorta-cmake-args in the venv records them);
# otherwise the pins are installed into it.

SCIENCE_PINS=(numpy==2.4.6 scipy==1.17.1 scikit-learn==1.9.1)
TORCH_PINS=(torch==2.15.0 transformers==5.24.0 gguf==0.19.0 numpy==2.4.6 safetensors==0.8.0 tokenizers==0.23.3 peft==0.21.0)
LLAMACPP_PINS=(llama-cpp-python==0.3.36 numpy==2.4.6)

# CMake arguments for llama.cpp: no -march=native; each x86 extension this CPU lists, AMX off.
llamacpp_cmake_args() {
  local flags args="-DGGML_NATIVE=OFF -DGGML_OPENMP=ON -DGGML_BLAS=OFF -DGGML_CUDA=OFF -DGGML_VULKAN=OFF"
  args+=" -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
  flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
  local pair
  for pair in sse4_2:SSE42 avx:AVX avx_vnni:AVX_VNNI avx2:AVX2 bmi2:BMI2 fma:FMA f16c:F16C \
              avx512f:AVX512 avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16; do
    if [[ "$flags" == *" ${pair%%:*} "* ]]; then args+=" -DGGML_${pair#*:}=ON"; else args+=" -DGGML_${pair#*:}=OFF"; fi
  done
  echo "$args"
}

# pins_ok PYTHON PIN... : every "name==version" is installed with that version
pins_ok() {
  local py="$1"; shift
  "$py" - "$@" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if all(version(p.split("==")[0]) == p.split("==")[1] for p in sys.argv[1:]) else 1)
PY
}

# make_venv DIR PIN... : creates DIR (a venv) when missing and installs the pins into it unless
# they are all there already.
make_venv() {
  local dir="$1"; shift
  if ! pins_ok "$dir/bin/python" "$@"; then
    echo "python-env: setting up $dir ($*) ..." >&2
    if [[ ! -x "$dir/bin/python" ]]; then
      # Debian's python3 lacks the venv module until python3-venv is installed.
      /usr/bin/python3 -c 'import ensurepip' 2>/dev/null ||
        bash "$(dirname "${BASH_SOURCE[0]}")/install-deps.sh" >&2
      /usr/bin/python3 -m venv "$dir"
    fi
    "$dir/bin/pip" install -q --disable-pip-version-check "$@"
    echo "python-env: $dir ready" >&2
  fi
}

science_venv() {
  SCIENCE_VENV="${SCIENCE_VENV:-/tmp/lorta-science-venv}"
  make_venv "$SCIENCE_VENV" "${SCIENCE_PINS[@]}"
  SCIENCE_PY="$SCIENCE_VENV/bin/python"
}

torch_venv() {
  TORCH_VENV="${TORCH_VENV:-/tmp/lorta-torch-venv}"
  make_venv "$TORCH_VENV" "${TORCH_PINS[@]}"
  TORCH_PY="$TORCH_VENV/bin/python"
}

llamacpp_venv() {
  LLAMACPP_VENV="${LLAMACPP_VENV:-/tmp/lorta-llamacpp-venv}"
  local cmake_args stamp
  cmake_args="$(llamacpp_cmake_args)"
  stamp="$LLAMACPP_VENV/lorta-cmake-args"
  if ! pins_ok "$LLAMACPP_VENV/bin/python" "${LLAMACPP_PINS[@]}" || [[ "$(cat "$stamp" 2>/dev/null)" != "$cmake_args" ]]; then
    echo "building llama-cpp-python from source into $LLAMACPP_VENV (~5 minutes on 2 idle cores) with CMAKE_ARGS=$cmake_args" >&2
    [[ -x "$LLAMACPP_VENV/bin/python" ]] || /usr/bin/python3 -m venv "$LLAMACPP_VENV"
    local t0=$SECONDS
    CMAKE_ARGS="$cmake_args" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" \
      "$LLAMACPP_VENV/bin/pip" install -q --no-cache-dir --force-reinstall --no-deps llama-cpp-python==0.3.36
    "$LLAMACPP_VENV/bin/pip" install -q "${LLAMACPP_PINS[@]}"
    echo "$cmake_args" >"$stamp"
    echo "llama-cpp-python built and installed in $((SECONDS - t0)) s" >&2
  fi
  LLAMACPP_PY="$LLAMACPP_VENV/bin/python"
}
