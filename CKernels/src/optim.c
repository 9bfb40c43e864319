/* optim.c — fused AdamW (see lt_optim.h for the update and its torch correspondence). */
#include "lt_optim.h"
#include "internal.h"
#include <math.h>

/* [p, g, m, v] of one chunk; plain loop, auto-vectorised (no reassociation: each element is
 * an independent chain of float operations in a fixed order, so every ISA and thread count
 * gives the same bits). */
static void adamw_chunk(float *restrict p, const float *restrict g, float *restrict m,
                        float *restrict v, int64_t n, float decay, float one_minus_b1,
                        float beta2, float one_minus_b2, float step_size, float bc2_sqrt, float eps) {
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        float pi = p[i] * decay;
        float mi = m[i] + one_minus_b1 * (gi - m[i]);  /* = b1 m + (1-b1) g, torch's lerp_ */
        float vi = beta2 * v[i] + (one_minus_b2 * gi) * gi;  /* addcmul_'s order */
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - (step_size * mi) / denom;  /* addcdiv_'s order */
    }
}

lt_status lt_adamw_step(float *param, const float *grad, float *m, float *v, int64_t n,
                        int64_t step, const lt_adamw_hparams *hp) {
    LT_CHECK(hp, LT_ERR_NULL_POINTER);
    LT_CHECK(n >= 0 && step >= 1, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(n == 0 || (param && grad && m && v), LT_ERR_NULL_POINTER);
    LT_CHECK(isfinite(hp->lr) && hp->lr >= 0.0, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(hp->beta1 >= 0.0 && hp->beta1 < 1.0, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(hp->beta2 >= 0.0 && hp->beta2 < 1.0, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(isfinite(hp->eps) && hp->eps > 0.0 && (float)hp->eps > 0.0f, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(isfinite(hp->weight_decay) && hp->weight_decay >= 0.0, LT_ERR_INVALID_ARGUMENT);
    if (n == 0) return LT_OK;
    lt_status st = lt__ensure_init();
    if (st != LT_OK) return st;

    /* Scalars as torch computes them: Python floats (double) rounded once to float. */
    double lr = hp->lr, b1 = hp->beta1, b2 = hp->beta2;
    float decay = (float)(1.0 - lr * hp->weight_decay);
    double bc1 = 1.0 - pow(b1, (double)step);
    double bc2 = 1.0 - pow(b2, (double)step);
    float step_size = (float)(lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    float one_minus_b1 = (float)(1.0 - b1), one_minus_b2 = (float)(1.0 - b2);

    int64_t chunks = (n + LT_ADAMW_CHUNK - 1) / LT_ADAMW_CHUNK;
    #pragma omp parallel for schedule(static) if (LT_PARALLEL_IF(12.0 * (double)n))
    for (int64_t c = 0; c < chunks; c++) {
        int64_t lo = c * LT_ADAMW_CHUNK;
        int64_t len = n - lo < LT_ADAMW_CHUNK ? n - lo : LT_ADAMW_CHUNK;
        adamw_chunk(param + lo, grad + lo, m + lo, v + lo, len, decay, one_minus_b1,
                    (float)b2, one_minus_b2, step_size, bc2_sqrt, (float)hp->eps);
    }
    return LT_OK;
}

lt_status lt_all_finite(const float *x, int64_t n, int64_t *first_bad) {
    LT_CHECK(first_bad, LT_ERR_NULL_POINTER);
    LT_CHECK(n >= 0, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(n == 0 || x, LT_ERR_NULL_POINTER);
    *first_bad = -1;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) { *first_bad = i; return LT_OK; }
    }
    return LT_OK;
}
