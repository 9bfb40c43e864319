/* lorta_internal.h — helpers shared by the LoRTA kernel sources (not public). */
#ifndef LT_LORTA_INTERNAL_H
#define LT_LORTA_INTERNAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include "lt_lorta.h"

/* Rank block of the on-stack per-row scratch (any rank works; larger ranks take several). */
#define LT_LORTA_KBLOCK 64
/* Largest d_h * r for which the projection keeps Bᵀ on the stack (16 KiB). */
#define LT_LORTA_BT_MAX 4096
/* At most this many targets (matrix types) per expand/backward call. */
#define LT_LORTA_MAX_TARGETS 64
/* Every size and leading dimension passed to BLAS must fit in an int. */
#define LT_LORTA_MAX_DIM ((int64_t)INT32_MAX)

static inline size_t lt__align64(size_t b) { return (b + 63) & ~(size_t)63; }
static inline int lt__finite(float v) { return isfinite(v); }

/* All sizes >= 1, and products used as BLAS sizes or offsets stay in range. */
static inline lt_status lt__lorta_check_dims(const lt_lorta_dims *d) {
    if (d->rank < 1 || d->heads < 1 || d->head_dim < 1 || d->layers < 1 || d->matrices < 1)
        return LT_ERR_INVALID_ARGUMENT;
    if (d->rank > LT_LORTA_MAX_DIM || d->heads > LT_LORTA_MAX_DIM || d->head_dim > LT_LORTA_MAX_DIM ||
        d->layers > LT_LORTA_MAX_DIM || d->matrices > LT_LORTA_MAX_DIM)
        return LT_ERR_INVALID_ARGUMENT;
    if (d->heads * d->head_dim > LT_LORTA_MAX_DIM) return LT_ERR_INVALID_ARGUMENT;
    return LT_OK;
}

#endif
