/* distances.c — squared Euclidean distances from float32 rows to float64 points (k-means,
 * k-means++ seeding, TwoNN). */
#include "lt_stats.h"
#include "internal.h"
#include "simd.h"

lt_status lt_squared_distances(int64_t d, const float *x, int64_t rows, int64_t ldx,
                               const double *p, int64_t k, int64_t ldp, double *out, int64_t ldo) {
    LT_CHECK(d >= 1 && rows >= 0 && k >= 0, LT_ERR_INVALID_ARGUMENT);
    if (rows == 0 || k == 0) return LT_OK;
    LT_CHECK(x && p && out, LT_ERR_NULL_POINTER);
    LT_CHECK(ldx >= d && ldp >= d && ldo >= k, LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    const int par = rows * k * d >= 65536;
#pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK) if (par)
    for (int64_t i = 0; i < rows; i++) {
        const float *xr = x + i * ldx;
        for (int64_t c = 0; c < k; c++) {
            const double *pc = p + c * ldp;
            double acc = 0.0;
            for (int64_t j = 0; j < d; j++) {
                const double t = (double)xr[j] - pc[j];
                acc += t * t;
            }
            out[i * ldo + c] = acc;
        }
    }
    return LT_OK;
}
