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


#endif
