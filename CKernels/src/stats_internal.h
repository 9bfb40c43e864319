/* stats_internal.h — helpers shared by stats.c and stats_linalg.c (not public). */
#ifndef LT_STATS_INTERNAL_H
#define LT_STATS_INTERNAL_H
#include <cblas.h>
#include "lt_runtime.h"

/* OpenBLAS's threaded level-3 and LAPACK routines (dsyrk, dgemm, dpotrf, dsyevd) change how
 * some entries are summed with the thread count, so their bits would depend on it. The stats
 * kernels call BLAS/LAPACK between these two calls, on one BLAS thread, and then restore the
 * library's thread setting. (A BLAS call from another thread in that window just runs
 * single-threaded; no result of this library depends on it.) */
static inline void lt__blas_serial_begin(void) { openblas_set_num_threads(1); }
static inline void lt__blas_serial_end(void) { openblas_set_num_threads(lt_get_num_threads()); }

/* C(upper) += Yᵀ Y for a block Y of b rows × d columns packed in panels of 8 columns
 * (P[p*b*8 + k*8 + c] = Y[k][8p + c], padding columns zero); see stats_syrk.c. Deterministic for
 * any thread count; OpenMP-parallel over row panels when par != 0. */
void lt__stats_syrk_packed(int64_t d, int64_t b, const double *P, double *C, int64_t ldc, int par);
#endif
