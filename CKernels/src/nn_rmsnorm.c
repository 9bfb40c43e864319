/*
 * nn_rmsnorm.c — RMSNorm forward and backward, Hugging Face LlamaRMSNorm (API in lt_nn.h).
 *
 *   forward   rstd_i = 1/√(Σ_j x_ij² / d + eps),  x̂_ij = x_ij · rstd_i,  y_ij = γ_j · x̂_ij
 *   backward  g_ij = dy_ij γ_j
 *             dx_i = rstd_i (g_i − x̂_i · mean_j(g_ij x̂_ij))
 *             dγ_j = Σ_i dy_ij x̂_ij
 *
 * transformers computes `weight * (x * torch.rsqrt(x.pow(2).mean(-1) + eps))` in float32; here
 * the sum of squares and rstd are evaluated in double and rstd rounded to float once, then
 * y = γ · (x · rstd) in float, in that order. Rows are independent: OpenMP over rows with a
 * fixed chunk. The row sums use NN_RMS_LANES fixed partial sums in double (they vectorise; the
 * order is fixed, so the bits depend on neither the thread count nor the ISA). dγ reduces over
 * rows: a second loop over column blocks, each summing all rows in order in double.
 */
#pragma STDC FP_CONTRACT OFF
#include "lt_nn.h"
#include "nn_internal.h"

#include <math.h>

#define NN_RMS_LANES 8

static inline double lanes_total(const double *a) {
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* Σ_j x_j² in double. */
static double row_squares(const float *x, int64_t d) {
    double a[NN_RMS_LANES] = {0};
    int64_t j = 0;
    for (; j + NN_RMS_LANES <= d; j += NN_RMS_LANES)
        for (int k = 0; k < NN_RMS_LANES; k++) { double v = (double)x[j + k]; a[k] += v * v; }
    for (int k = 0; j < d; j++, k++) { double v = (double)x[j]; a[k] += v * v; }
    return lanes_total(a);
}

/* Σ_j g_j γ_j x̂_j in double (x̂_j = x_j · rs in float, as the dX loop uses it). */
static double row_gxhat(const float *g, const float *gamma, const float *x, float rs, int64_t d) {
    double a[NN_RMS_LANES] = {0};
    int64_t j = 0;
    for (; j + NN_RMS_LANES <= d; j += NN_RMS_LANES)
        for (int k = 0; k < NN_RMS_LANES; k++)
            a[k] += (double)g[j + k] * (double)gamma[j + k] * (double)(x[j + k] * rs);
    for (int k = 0; j < d; j++, k++) a[k] += (double)g[j] * (double)gamma[j] * (double)(x[j] * rs);
    return lanes_total(a);
}

/* Y [n × d] = γ ∘ (X · rstd)        X, Y [n × d]; γ [d]; rstd [n] nullable */
lt_status lt_rmsnorm_forward(int64_t n, int64_t d, float eps,
                             const float *X, int64_t ldx, const float *gamma,
                             float *Y, int64_t ldy, float *rstd) {
    LT_CHECK(X && gamma && Y, LT_ERR_NULL_POINTER);
    LT_CHECK(n >= 0 && d >= 1 && lt__ld_ok(ldx, d) && lt__ld_ok(ldy, d), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(isfinite(eps) && eps > 0.0f, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(X != Y || ldx == ldy, LT_ERR_INVALID_ARGUMENT);
    int64_t t;
    LT_CHECK(!lt__mul_overflows(n, ldx, &t) && !lt__mul_overflows(n, ldy, &t), LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    const double inv_d = 1.0 / (double)d;
    #pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK) if(LT_PARALLEL_IF(4.0 * (double)n * (double)d))
    for (int64_t i = 0; i < n; i++) {
        const float *x = X + i * ldx;
        float *y = Y + i * ldy;
        float rs = (float)(1.0 / sqrt(row_squares(x, d) * inv_d + (double)eps));
        LT_ELEMENTWISE
        for (int64_t j = 0; j < d; j++) y[j] = gamma[j] * (x[j] * rs);
        if (rstd) rstd[i] = rs;
    }
    return LT_OK;
}

/* dX = rstd (dY∘γ − x̂ mean(dY∘γ∘x̂)),  dγ (=|+=) Σ_i dY_i ∘ x̂_i */
lt_status lt_rmsnorm_backward(int64_t n, int64_t d,
                              const float *dY, int64_t lddy,
                              const float *X, int64_t ldx, const float *gamma,
                              const float *rstd,
                              float *dX, int64_t lddx, float *dgamma, int accumulate) {
    LT_CHECK(dY && X && gamma && rstd && dX, LT_ERR_NULL_POINTER);
    LT_CHECK(n >= 0 && d >= 1 && lt__ld_ok(lddy, d) && lt__ld_ok(ldx, d) && lt__ld_ok(lddx, d),
             LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(accumulate == 0 || accumulate == 1, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(dY != dX || lddy == lddx, LT_ERR_INVALID_ARGUMENT);
    int64_t t;
    LT_CHECK(!lt__mul_overflows(n, lddy, &t) && !lt__mul_overflows(n, ldx, &t) &&
             !lt__mul_overflows(n, lddx, &t), LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    const double flops = 6.0 * (double)n * (double)d;

    /* dγ first: it reads dY, which dX may overwrite (in place). */
    if (dgamma) {
        int64_t blocks = (d + NN_COL_BLOCK - 1) / NN_COL_BLOCK;
        #pragma omp parallel for schedule(static, 1) if(LT_PARALLEL_IF(flops))
        for (int64_t blk = 0; blk < blocks; blk++) {
            int64_t j0 = blk * NN_COL_BLOCK;
            int64_t w = d - j0 < NN_COL_BLOCK ? d - j0 : NN_COL_BLOCK;
            double ag[NN_COL_BLOCK];
            for (int64_t j = 0; j < w; j++) ag[j] = accumulate ? (double)dgamma[j0 + j] : 0.0;
            for (int64_t i = 0; i < n; i++) {
                const float *g = dY + i * lddy + j0;
                const float *x = X + i * ldx + j0;
                float rs = rstd[i];
                for (int64_t j = 0; j < w; j++) ag[j] += (double)g[j] * (double)(x[j] * rs);
            }
            for (int64_t j = 0; j < w; j++) dgamma[j0 + j] = (float)ag[j];
        }
    }

    const double inv_d = 1.0 / (double)d;
    #pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK) if(LT_PARALLEL_IF(flops))
    for (int64_t i = 0; i < n; i++) {
        const float *g = dY + i * lddy;
        const float *x = X + i * ldx;
        float *dx = dX + i * lddx;
        float rs = rstd[i];
        float m = (float)(row_gxhat(g, gamma, x, rs, d) * inv_d);
        LT_ELEMENTWISE
        for (int64_t j = 0; j < d; j++) dx[j] = rs * (g[j] * gamma[j] - (x[j] * rs) * m);
    }
    return LT_OK;
}
