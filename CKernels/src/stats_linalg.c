/* stats_linalg.c — Cholesky, inverse, symmetric eigen-decomposition (LAPACKE) and the blocked
 * squared-Mahalanobis scorer used by the detectors. */
#include "lt_stats.h"
#include "internal.h"
#include "simd.h"
#include "stats_internal.h"
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <string.h>

#define LT_STATS_PAR_MIN 32768

/* OpenBLAS's LAPACK (dpotrf, dpotri, dsyevd) changes its blocking with the thread count, so
 * its bits would depend on it. These O(d³) factorizations run once per fit: run them with one
 * BLAS thread and restore the library's setting afterwards. (Another thread calling BLAS at the
 * same moment only runs single-threaded for that while; our kernels' bits never depend on it.) */
static void lapack_serial_begin(void) { lt__blas_serial_begin(); }
static void lapack_serial_end(void) { lt__blas_serial_end(); }

lt_status lt_cholesky(int64_t d, double *a, int64_t lda, int64_t *failed_order) {
    LT_CHECK(a, LT_ERR_NULL_POINTER);
    LT_CHECK(d >= 1 && lda >= d && d <= INT32_MAX, LT_ERR_INVALID_ARGUMENT);
    if (failed_order) *failed_order = 0;
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = 0; j <= i; j++)
            if (!isfinite(a[i * lda + j])) return LT_ERR_INVALID_ARGUMENT;
    (void)lt__ensure_init();
    lapack_serial_begin();
    lapack_int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)d, a, (lapack_int)lda);
    lapack_serial_end();
    if (info < 0) return LT_ERR_INVALID_ARGUMENT;
    if (info > 0) {
        if (failed_order) *failed_order = (int64_t)info;
        return LT_ERR_NUMERICAL;
    }
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = i + 1; j < d; j++) a[i * lda + j] = 0.0;
    return LT_OK;
}

lt_status lt_cholesky_inverse(int64_t d, const double *L, int64_t ldl, double *inv, int64_t ldi) {
    LT_CHECK(L && inv, LT_ERR_NULL_POINTER);
    LT_CHECK(d >= 1 && ldl >= d && ldi >= d && d <= INT32_MAX, LT_ERR_INVALID_ARGUMENT);
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = 0; j < d; j++) inv[i * ldi + j] = j <= i ? L[i * ldl + j] : 0.0;
    (void)lt__ensure_init();
    lapack_serial_begin();
    lapack_int info = LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'L', (lapack_int)d, inv, (lapack_int)ldi);
    lapack_serial_end();
    if (info < 0) return LT_ERR_INVALID_ARGUMENT;
    if (info > 0) return LT_ERR_NUMERICAL;
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = i + 1; j < d; j++) inv[i * ldi + j] = inv[j * ldi + i];
    return LT_OK;
}

lt_status lt_sym_eigen(int64_t d, double *a, int64_t lda, double *w, int want_vectors) {
    LT_CHECK(a && w, LT_ERR_NULL_POINTER);
    LT_CHECK(d >= 1 && lda >= d && d <= INT32_MAX, LT_ERR_INVALID_ARGUMENT);
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = 0; j <= i; j++)
            if (!isfinite(a[i * lda + j])) return LT_ERR_INVALID_ARGUMENT;
    (void)lt__ensure_init();
    lapack_serial_begin();
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, want_vectors ? 'V' : 'N', 'L',
                                     (lapack_int)d, a, (lapack_int)lda, w);
    lapack_serial_end();
    if (info < 0) return LT_ERR_INVALID_ARGUMENT;
    if (info > 0) return LT_ERR_NUMERICAL;
    return LT_OK;
}

static void symmetrize_from_lower(int64_t d, double *S, int64_t lds) {
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = i + 1; j < d; j++) S[i * lds + j] = S[j * lds + i];
}

lt_status lt_sym_whiten(int64_t d, const double *L, int64_t ldl, double *S, int64_t lds) {
    LT_CHECK(L && S, LT_ERR_NULL_POINTER);
    LT_CHECK(d >= 1 && ldl >= d && lds >= d && d <= INT32_MAX, LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    lt__blas_serial_begin();
    /* S ← L⁻¹ S, then S ← S L⁻ᵀ */
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, (int)d, (int)d,
                1.0, L, (int)ldl, S, (int)lds);
    cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, (int)d, (int)d,
                1.0, L, (int)ldl, S, (int)lds);
    lt__blas_serial_end();
    symmetrize_from_lower(d, S, lds);
    return LT_OK;
}

lt_status lt_sym_unwhiten(int64_t d, const double *L, int64_t ldl, double *S, int64_t lds) {
    LT_CHECK(L && S, LT_ERR_NULL_POINTER);
    LT_CHECK(d >= 1 && ldl >= d && lds >= d && d <= INT32_MAX, LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    lt__blas_serial_begin();
    /* S ← L S, then S ← S Lᵀ */
    cblas_dtrmm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, (int)d, (int)d,
                1.0, L, (int)ldl, S, (int)lds);
    cblas_dtrmm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, (int)d, (int)d,
                1.0, L, (int)ldl, S, (int)lds);
    lt__blas_serial_end();
    symmetrize_from_lower(d, S, lds);
    return LT_OK;
}

lt_status lt_mahalanobis_workspace_size(int64_t dim, int64_t rows, int64_t *doubles) {
    LT_CHECK(doubles, LT_ERR_NULL_POINTER);
    LT_CHECK(dim >= 1 && rows >= 0, LT_ERR_INVALID_ARGUMENT);
    int64_t b = rows < LT_STATS_BLOCK_ROWS ? rows : LT_STATS_BLOCK_ROWS;
    *doubles = b * dim;
    return LT_OK;
}

lt_status lt_mahalanobis_scores(int64_t d, const double *mean, const double *L, int64_t ldl,
                                const float *x, int64_t rows, int64_t ldx, double *out,
                                double *work, int64_t work_size) {
    LT_CHECK(d >= 1 && rows >= 0 && d <= INT32_MAX, LT_ERR_INVALID_ARGUMENT);
    if (rows == 0) return LT_OK;
    LT_CHECK(mean && L && x && out && work, LT_ERR_NULL_POINTER);
    LT_CHECK(ldl >= d && ldx >= d, LT_ERR_INVALID_ARGUMENT);
    int64_t need = 0;
    lt_status st = lt_mahalanobis_workspace_size(d, rows, &need);
    if (st != LT_OK) return st;
    LT_CHECK(work_size >= need, LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    const int64_t B = rows < LT_STATS_BLOCK_ROWS ? rows : LT_STATS_BLOCK_ROWS;
    for (int64_t r0 = 0; r0 < rows; r0 += B) {
        const int64_t b = (rows - r0) < B ? (rows - r0) : B;
        const int par = b * d >= LT_STATS_PAR_MIN;
#pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK) if (par)
        for (int64_t i = 0; i < b; i++) {
            const float *xr = x + (r0 + i) * ldx;
            double *y = work + i * d;
            for (int64_t j = 0; j < d; j++) y[j] = (double)xr[j] - mean[j];
        }
        /* Z = Y L⁻ᵀ: row i of Z is (L⁻¹ y_i)ᵀ (one BLAS thread: see stats.c) */
        lt__blas_serial_begin();
        cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, (int)b, (int)d,
                    1.0, L, (int)ldl, work, (int)d);
        lt__blas_serial_end();
#pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK) if (par)
        for (int64_t i = 0; i < b; i++) {
            const double *z = work + i * d;
            double acc = 0.0;
            for (int64_t j = 0; j < d; j++) acc += z[j] * z[j];
            out[r0 + i] = acc;
        }
    }
    return LT_OK;
}
