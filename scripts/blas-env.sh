# Source this file: sets OPENBLAS_CORETYPE to the OpenBLAS core that best matches this CPU,
# unless the user already set it. Distribution OpenBLAS builds misdetect new CPUs and fall back
# to SSE3 kernels; OpenBLAS reads the variable only when it is loaded, so it must be set before
# the process starts. (The `lorta` CLI does the same by re-executing itself once.)
if [ -z "${OPENBLAS_CORETYPE:-}" ] && [ -r /proc/cpuinfo ]; then
  _lt_flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
  _lt_has() { case " $_lt_flags " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
  if _lt_has avx512f && _lt_has avx512bw && _lt_has avx512vl && _lt_has avx512dq && _lt_has avx512cd; then
    if _lt_has avx512_bf16; then export OPENBLAS_CORETYPE=Cooperlake; else export OPENBLAS_CORETYPE=SkylakeX; fi
  elif _lt_has avx2 && _lt_has fma; then
    export OPENBLAS_CORETYPE=Haswell
  fi
  unset -f _lt_has; unset _lt_flags
fi
