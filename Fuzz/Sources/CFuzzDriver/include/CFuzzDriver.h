#ifndef LORTA_CFUZZDRIVER_H
#define LORTA_CFUZZDRIVER_H

#include <stddef.h>
#include <stdint.h>

/// libFuzzer's entry point for a program that has its own `main` (compiler-rt FuzzerDriver.cpp;
/// linked by `swiftc -sanitize=fuzzer`). Parses libFuzzer's options in argv and calls `callback`
/// once per input; returns the process status.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
