/*
 * nn_layernorm.c — LayerNorm forward and backward (API and shapes in lt_nn.h).
 *
 *   forward   mean_i = Σ_j x_ij / d,  var_i = Σ_j (x_ij − mean_i)² / d,  rstd_i = 1/√(var_i + eps)
 *             x̂_ij = (x_ij − mean_i) rstd_i,  y_ij = x̂_ij γ_j + β_j
 *   backward  g_ij = dy_ij γ_j
 *             dx_i = rstd_i (g_i − mean_j g_ij − x̂_i mean_j(g_ij x̂_ij))
 *             dγ_j = Σ_i dy_ij x̂_ij,   dβ_j = Σ_i dy_ij
 *
 * Statistics choice: two passes per row with double accumulators (the mean first, then the
 * sum of squared deviations from it). With d = 384 a row is 1.5 KB and stays in L1, so the
 * second pass is nearly free, and the centred form has no cancellation even when |mean| ≫ std
 * (the one-pass E[x²] − E[x]² form loses every digit there). The row sums of the backward are
 * in double as well. Rows are independent: OpenMP over rows with a fixed chunk. The parameter
 * gradients reduce over rows, so they run in a second loop over column blocks (each block sums
 * all rows in order, in double) — the bits do not depend on the thread count.
 */
#include "lt_nn.h"
#include "nn_internal.h"

#include <math.h>

lt_status lt_layernorm_forward(int64_t n, int64_t d, float eps,
                               const float *X, int64_t ldx,
                               const float *gamma, const float *beta,
                               float *Y, int64_t ldy,
                               float *mean, float *rstd) {
    LT_CHECK(X && gamma && beta && Y, LT_ERR_NULL_POINTER);
    LT_CHECK(n >= 0 && d >= 1 && lt__ld_ok(ldx, d) && lt__ld_ok(ldy, d), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(isfinite(eps) && eps > 0.0f, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(X != Y || ldx == ldy, LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    const double inv_d = 1.0 / (double)d;
    #pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK)
    for (int64_t i = 0; i < n; i++) {
        const float *x = X + i * ldx;
        float *y = Y + i * ldy;
        double s = 0.0;
        for (int64_t j = 0; j < d; j++) s += (double)x[j];
        double mu = s * inv_d;
        double ss = 0.0;
        for (int64_t j = 0; j < d; j++) { double c = (double)x[j] - mu; ss += c * c; }
        double rs = 1.0 / sqrt(ss * inv_d + (double)eps);
        float muf = (float)mu, rsf = (float)rs;
        LT_ELEMENTWISE
        for (int64_t j = 0; j < d; j++) y[j] = ((x[j] - muf) * rsf) * gamma[j] + beta[j];
        if (mean) mean[i] = muf;
        if (rstd) rstd[i] = rsf;
    }
    return LT_OK;
}

lt_status lt_layernorm_backward(int64_t n, int64_t d,
                                const float *dY, int64_t lddy,
                                const float *X, int64_t ldx,
                                const float *gamma,
                                const float *mean, const float *rstd,
                                float *dX, int64_t lddx,
                                float *dgamma, float *dbeta, int accumulate) {
    LT_CHECK(dY && X && gamma && mean && rstd && dX, LT_ERR_NULL_POINTER);
    LT_CHECK(n >= 0 && d >= 1 && lt__ld_ok(lddy, d) && lt__ld_ok(ldx, d) && lt__ld_ok(lddx, d),
             LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(dY != dX || lddy == lddx, LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();

    /* Parameter gradients first: they read dY, which dX may overwrite (in-place). */
    if (dgamma || dbeta) {
        int64_t blocks = (d + NN_COL_BLOCK - 1) / NN_COL_BLOCK;
        #pragma omp parallel for schedule(static, 1)
        for (int64_t blk = 0; blk < blocks; blk++) {
            int64_t j0 = blk * NN_COL_BLOCK;
            int64_t w = d - j0 < NN_COL_BLOCK ? d - j0 : NN_COL_BLOCK;
            double ag[NN_COL_BLOCK], ab[NN_COL_BLOCK];
            for (int64_t j = 0; j < w; j++) {
                ag[j] = accumulate && dgamma ? (double)dgamma[j0 + j] : 0.0;
                ab[j] = accumulate && dbeta ? (double)dbeta[j0 + j] : 0.0;
            }
            for (int64_t i = 0; i < n; i++) {
                const float *g = dY + i * lddy + j0;
                const float *x = X + i * ldx + j0;
                float mu = mean[i], rs = rstd[i];
                for (int64_t j = 0; j < w; j++) {
                    ag[j] += (double)g[j] * (double)((x[j] - mu) * rs);
                    ab[j] += (double)g[j];
                }
            }
            for (int64_t j = 0; j < w; j++) {
                if (dgamma) dgamma[j0 + j] = (float)ag[j];
                if (dbeta) dbeta[j0 + j] = (float)ab[j];
            }
        }
    }

    const double inv_d = 1.0 / (double)d;
    #pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK)
    for (int64_t i = 0; i < n; i++) {
        const float *g = dY + i * lddy;
        const float *x = X + i * ldx;
        float *dx = dX + i * lddx;
        float mu = mean[i], rs = rstd[i];
        double sg = 0.0, sgx = 0.0;
        for (int64_t j = 0; j < d; j++) {
            double gj = (double)g[j] * (double)gamma[j];
            sg += gj;
            sgx += gj * (double)((x[j] - mu) * rs);
        }
        float mg = (float)(sg * inv_d), mgx = (float)(sgx * inv_d);
        LT_ELEMENTWISE
        for (int64_t j = 0; j < d; j++) {
            float xh = (x[j] - mu) * rs;
            dx[j] = rs * ((g[j] * gamma[j] - mg) - xh * mgx);
        }
    }
    return LT_OK;
}
