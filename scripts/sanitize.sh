#!/usr/bin/env bash
# Builds and runs the test suites with AddressSanitizer (Swift code and C kernels) and
# UndefinedBehaviorSanitizer (C kernels: swiftc has no UBSan on Linux), in
# its own scratch directory (.build-sanitize) so the normal build is left alone.
#
#   scripts/sanitize.sh [swift test options]      e.g. scripts/sanitize.sh --filter SafeTensorsTests
#
# Every argument goes to `swift test` (--filter, --skip, …). The run fails on an ASan report (the
# test process aborts), on any UBSan "runtime error:" line, or on a failing test. Full output:
# .build-sanitize/sanitize.log. See docs/architecture.md, "Fuzzing and sanitizers".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-assets.sh   # some suites read the fetched models and data, as in scripts/test.sh
source scripts/blas-env.sh

scratch=.build-sanitize
# SwiftPM's --sanitize address passes -sanitize=address to swiftc and -fsanitize=address to
# clang, so the Swift code and the C kernels are instrumented and linked with ASan's runtime.
# swiftc has no -sanitize=undefined on Linux ("unsupported option"): UBSan covers the C kernels
# only (-Xcc reaches the C compiles; ASan's runtime carries UBSan's handlers). Swift itself traps
# on overflow, bad indices and bad unwraps without a sanitizer.
sanitizers=(--sanitize address)
# Frame pointers for readable stacks of the -O3 kernels.
flags=(-Xcc -fsanitize=undefined -Xcc -fno-omit-frame-pointer)

# Leak checking is off: LeakSanitizer misses references held by Swift globals and reports them
# as leaks. Reports print a stack (symbolized by the toolchain's llvm-symbolizer); UBSan reports
# go on so that one run lists them all (the log is checked below).
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:print_summary=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:report_error_type=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export ASAN_SYMBOLIZER_PATH=${ASAN_SYMBOLIZER_PATH:-$(dirname "$(command -v swift)")/llvm-symbolizer}
# Swift's own crash reporter would race the sanitizers for the same signals.
export SWIFT_BACKTRACE=enable=no

mkdir -p "$scratch"
log=$scratch/sanitize.log
start=$(date +%s)
echo "sanitize: building with ${sanitizers[*]} (scratch path $scratch)"
swift build --build-tests --scratch-path "$scratch" "${sanitizers[@]}" "${flags[@]}" 2>&1 | tee "$log.build" \
  | sed '/[Cc]annot export local symbol/d'
built=$(date +%s)
echo "sanitize: build took $((built - start)) s"

status=0
swift test --skip-build --no-parallel --scratch-path "$scratch" "${sanitizers[@]}" "${flags[@]}" "$@" >"$log" 2>&1 || status=$?
end=$(date +%s)
grep -E 'Test run with|Executed [0-9]+ tests?' "$log" | tail -2 || true

findings=$( (grep -E 'runtime error:|^==[0-9]+==ERROR: AddressSanitizer|^SUMMARY: (Address|UndefinedBehavior)Sanitizer' "$log" || true) | sort | uniq -c)
echo "sanitize: tests took $((end - built)) s (total $((end - start)) s); log: $log"
if [ -n "$findings" ]; then
  echo "sanitize: sanitizer findings:"
  echo "$findings" | sed 's/^/  /'
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "sanitize: swift test failed (exit $status); see $log" >&2
  tail -30 "$log" >&2
  exit "$status"
fi
echo "sanitize: clean"
