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

#endif
