/* internal.h — helpers shared by the kernel sources (not part of the public API). */
#ifndef LT_INTERNAL_H
#define LT_INTERNAL_H

#include <stdint.h>
#include <stddef.h>
#include "lt_runtime.h"

#define LT_CHECK(cond, err) do { if (!(cond)) return (err); } while (0)

/* Ensures the runtime is initialised (environment read); returns its status. */
static inline lt_status lt__ensure_init(void) { return lt_runtime_init(); }

#endif
