/* nn_internal.h — helpers shared by the nn_*.c kernels (not part of the public API). */
#ifndef LT_NN_INTERNAL_H
#define LT_NN_INTERNAL_H

#include <stdint.h>
#include <string.h>
#include <cblas.h>
#include "internal.h"
#include "simd.h"   /* LT_ROWS_PER_CHUNK */

/* A leading dimension must cover the row (and be >= 1 so that empty rows stay addressable). */
static inline int nn_ld_ok(int64_t ld, int64_t len) { return ld >= (len > 1 ? len : 1); }

/* a * b without overflow (a, b >= 0): 0 and *out set, or 1 on overflow. */
static inline int nn_mul_overflows(int64_t a, int64_t b, int64_t *out) {
    if (a != 0 && b > INT64_MAX / a) return 1;
    *out = a * b;
    return 0;
}

/* BLAS takes 32-bit sizes in the usual LP64 build. */
static inline int nn_blas_ok(int64_t v) { return v <= (int64_t)INT32_MAX; }

/* Columns per task when a kernel reduces over rows (parameter gradients, pooling): each task
 * owns a block of columns and sums over all rows in order, so no float is summed across
 * threads. The double accumulators of one block live on the stack. */
#define NN_COL_BLOCK 64


#endif
