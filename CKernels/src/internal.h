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
 * right after a BLAS call OpenBLAS's own workers still spin on the other cores, and waking
 * an OpenMP team to share a fraction of a millisecond of work then costs more than it saves
 * (measured: LoRTA d=384 forward overhead +30% parallel vs +11% serial on 2 cores). The result
 * bits do not change: every row is computed by the same code either way. */
#define LT_PARALLEL_MIN_FLOPS 16.0e6
#define LT_PARALLEL_IF(flops) ((double)(flops) >= LT_PARALLEL_MIN_FLOPS)

#endif
