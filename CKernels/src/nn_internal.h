/* nn_internal.h — helpers shared by the nn_*.c kernels (not part of the public API). */
#ifndef LT_NN_INTERNAL_H
#define LT_NN_INTERNAL_H

#include <stdint.h>
#include <string.h>
#include <cblas.h>
#include "internal.h"
#include "simd.h"   /* LT_ROWS_PER_CHUNK */

/* Columns per task when a kernel reduces over rows (parameter gradients, pooling): each task
 * owns a block of columns and sums over all rows in order, so no float is summed across
 * threads. The double accumulators of one block live on the stack. */
#define NN_COL_BLOCK 64

/* Put before an element-wise loop whose output may alias an input exactly (in-place GELU,
 * LayerNorm, …): iteration j reads only element j of each input before writing element j of
 * the output, so vector iterations are safe. Without it the compiler guards the vector loop
 * with an overlap check, which fails for in-place calls and falls back to the scalar loop. */
#if defined(__clang__)
#define LT_ELEMENTWISE _Pragma("clang loop vectorize(assume_safety)")
#else
#define LT_ELEMENTWISE _Pragma("omp simd")
#endif


#endif
