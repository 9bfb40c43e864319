/* internal.h — helpers shared by the kernel sources (not part of the public API). */
#ifndef LT_INTERNAL_H
#define LT_INTERNAL_H

#include <stdint.h>
#include <stddef.h>
#include "lt_runtime.h"

#define LT_CHECK(cond, err) do { if (!(cond)) return (err); } while (0)

/* Ensures the runtime is initialised (environment read) and that the calling thread's OpenMP
 * settings (thread count, zero block time) match the global ones: OpenMP keeps them per
 * thread, and Swift may call kernels from any thread. Returns the initialisation status. */
lt_status lt__ensure_init(void);

/* Work below this many flops runs its OpenMP loop on the calling thread only (`if` clause):
 * waking a team costs more than it saves for tiny loops. The result bits do not change: every
 * row is computed by the same code either way. Measured at n = 512, d = 384 (LoRA r = 8 and
 * LoRTA r = 8 forwards, ~6–13 MFLOP, 2 cores, three interleaved A/B runs): a 16 MFLOP threshold
 * (those loops serial) was no better than always parallel, and LoRA was slower (+24% vs +15%
 * over the base GEMM), so only really small loops stay serial. Override at build time with
 * -DLT_PARALLEL_MIN_FLOPS=… for experiments. */
#ifndef LT_PARALLEL_MIN_FLOPS
#define LT_PARALLEL_MIN_FLOPS 1.0e6
#endif
#define LT_PARALLEL_IF(flops) ((double)(flops) >= LT_PARALLEL_MIN_FLOPS)

#endif
