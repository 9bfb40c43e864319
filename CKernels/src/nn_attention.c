/*
 * nn_attention.c — multi-head self-attention core with a key padding mask (API in lt_nn.h).
 *
 * Per sequence b and head h (Q_bh, K_bh, V_bh: T × d_h slices; scale = 1/√d_h):
 *   forward   S = scale · Q Kᵀ (+ mask)   P = softmax_rows(S)   C = P V
 *   backward  dV = Pᵀ dC    dP = dC Vᵀ    dS_ij = P_ij (dP_ij − Σ_k P_ik dP_ik)
 *             dQ = scale · dS K           dK = scale · dSᵀ Q
 *
 * How it runs. The B·H pairs are independent and small (T × T × d_h: 64·64·32 in the main
 * job), so one OpenMP loop runs over pairs (schedule(static, 1)) and each pair is computed by
 * one thread with the SIMD micro-kernels of simd.h: a row of scores is dot_many(q_i, K_bh)
 * (d_h-long dots against T key rows), a row of the context is axpy_many(c_i, p_i, V_bh). BLAS
 * per pair would mean B·H tiny GEMM calls outside OpenMP with their fixed call overhead, and the
 * pair loop would then run on one thread; the pair-parallel loop is simpler and deterministic.
 *
 * Padding: keys are padded at the end in a TokenBatch, but the mask may have holes; only the
 * keys before the last valid one (Tk of them) are computed, the rest of each row of P is 0 and
 * masked keys inside get probability exactly 0 — what transformers' finfo(float32).min
 * additive mask yields, as exp(min − max) underflows to 0. A sequence without any valid key
 * attends uniformly to all T keys, as the finfo.min mask does (all scores become equal); P is
 * then constant, so its backward gives dQ = dK = 0 for that sequence (only dV is nonzero).
 *
 * Column reductions of the backward (dK_j = Σ_i dS_ij q_i, dV_j = Σ_i P_ij dc_i) gather the
 * column of dS (or P) in blocks of ATT_BLOCK rows on the stack and add each block with
 * axpy_many: fixed order, no workspace beyond dS itself.
 */
#include "lt_nn.h"
#include "nn_internal.h"
#include "simd.h"

#include <math.h>

#define ATT_BLOCK 64

/* Number of keys to compute: 1 + index of the last valid key; T when no key is valid (uniform). */
static int64_t active_keys(const int32_t *m, int64_t T, int *any_valid) {
    if (!m) { *any_valid = 1; return T; }
    for (int64_t j = T - 1; j >= 0; j--)
        if (m[j]) { *any_valid = 1; return j + 1; }
    *any_valid = 0;
    return T;
}

/* One row of the softmax, in place over the Tk computed scores: s_j = scale·pr_j, then
 * pr_j = e^{s_j − max} / Σ e^{s − max} over the valid keys (m[j] != 0, or all when m is NULL),
 * masked keys exactly 0. The loops vectorise: the max and the double normaliser use
 * ATT_LANES fixed partial results (element j in lane j mod ATT_LANES, lanes combined in a fixed
 * order; max is exact in any order). e^x stays libm's expf: a polynomial of relative error
 * 2e-7 moved the gradient finite-difference checks (BertAdapterTests) over their bound.
 * Needs at least one valid key. */
#define ATT_LANES 8

static void softmax_row(float *pr, int64_t Tk, float scale, const int32_t *m) {
    LT_ELEMENTWISE
    for (int64_t j = 0; j < Tk; j++) pr[j] *= scale;
    float mxl[ATT_LANES];
    for (int k = 0; k < ATT_LANES; k++) mxl[k] = -INFINITY;
    int64_t j0 = 0;
    if (m) {
        for (; j0 + ATT_LANES <= Tk; j0 += ATT_LANES)
            for (int k = 0; k < ATT_LANES; k++) {
                float v = m[j0 + k] ? pr[j0 + k] : -INFINITY;
                mxl[k] = v > mxl[k] ? v : mxl[k];
            }
        for (int k = 0; j0 < Tk; j0++, k++) {
            float v = m[j0] ? pr[j0] : -INFINITY;
            mxl[k] = v > mxl[k] ? v : mxl[k];
        }
    } else {
        for (; j0 + ATT_LANES <= Tk; j0 += ATT_LANES)
            for (int k = 0; k < ATT_LANES; k++) mxl[k] = pr[j0 + k] > mxl[k] ? pr[j0 + k] : mxl[k];
        for (int k = 0; j0 < Tk; j0++, k++) mxl[k] = pr[j0] > mxl[k] ? pr[j0] : mxl[k];
    }
    float mx = mxl[0];
    for (int k = 1; k < ATT_LANES; k++) mx = mxl[k] > mx ? mxl[k] : mx;
    if (m) {
        for (int64_t j = 0; j < Tk; j++) pr[j] = m[j] ? expf(pr[j] - mx) : 0.0f;
    } else {
        for (int64_t j = 0; j < Tk; j++) pr[j] = expf(pr[j] - mx);
    }
    double acc[ATT_LANES] = {0};
    int64_t j = 0;
    for (; j + ATT_LANES <= Tk; j += ATT_LANES)
        for (int k = 0; k < ATT_LANES; k++) acc[k] += (double)pr[j + k];
    for (int k = 0; j < Tk; j++, k++) acc[k] += (double)pr[j];
    double sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    float inv = (float)(1.0 / sum);
    for (int64_t t = 0; t < Tk; t++) pr[t] *= inv;
}

static lt_status check_common(int64_t B, int64_t T, int64_t H, int64_t d_h, float scale,
                              int64_t ldq, int64_t ldk, int64_t ldv, int64_t ldc) {
    LT_CHECK(B >= 0 && T >= 0 && H >= 1 && d_h >= 1, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(isfinite(scale), LT_ERR_INVALID_ARGUMENT);
    int64_t d, n, bh, bht, bhtt;
    LT_CHECK(!lt__mul_overflows(H, d_h, &d) && !lt__mul_overflows(B, T, &n), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(!lt__mul_overflows(B, H, &bh) && !lt__mul_overflows(bh, T, &bht) &&
             !lt__mul_overflows(bht, T, &bhtt), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(lt__ld_ok(ldq, d) && lt__ld_ok(ldk, d) && lt__ld_ok(ldv, d) && lt__ld_ok(ldc, d),
             LT_ERR_INVALID_ARGUMENT);
    return LT_OK;
}

lt_status lt_attention_forward(int64_t B, int64_t T, int64_t H, int64_t d_h, float scale,
                               const float *Q, int64_t ldq,
                               const float *K, int64_t ldk,
                               const float *V, int64_t ldv,
                               const int32_t *key_mask,
                               float *P,
                               float *C, int64_t ldc) {
    LT_CHECK(Q && K && V && P && C, LT_ERR_NULL_POINTER);
    lt_status st = check_common(B, T, H, d_h, scale, ldq, ldk, ldv, ldc);
    if (st != LT_OK) return st;
    (void)lt__ensure_init();
    lt_dot_many_fn dot = lt__dot_many();
    lt_axpy_many_fn axpy = lt__axpy_many();
    const int64_t pairs = B * H;

    #pragma omp parallel for schedule(static, 1)
    for (int64_t p = 0; p < pairs; p++) {
        const int64_t b = p / H, h = p % H;
        const int32_t *m = key_mask ? key_mask + b * T : NULL;
        int any;
        const int64_t Tk = active_keys(m, T, &any);
        const float *Kb = K + b * T * ldk + h * d_h;
        const float *Vb = V + b * T * ldv + h * d_h;
        float *Pb = P + p * T * T;
        for (int64_t i = 0; i < T; i++) {
            float *pr = Pb + i * T;
            float *c = C + (b * T + i) * ldc + h * d_h;
            if (!any) {
                /* no valid key: uniform attention (finfo.min mask semantics) */
                float u = (float)(1.0 / (double)T);
                for (int64_t j = 0; j < T; j++) pr[j] = u;
            } else {
                dot(Q + (b * T + i) * ldq + h * d_h, Kb, ldk, Tk, d_h, pr);   /* q_i · k_j */
                softmax_row(pr, Tk, scale, m);
                for (int64_t j = Tk; j < T; j++) pr[j] = 0.0f;
            }
            memset(c, 0, (size_t)d_h * sizeof(float));
            axpy(c, pr, Vb, ldv, Tk, d_h);                                     /* c_i = Σ_j p_ij v_j */
        }
    }
    return LT_OK;
}

lt_status lt_attention_backward_workspace_size(int64_t B, int64_t T, int64_t H, int64_t *floats) {
    LT_CHECK(floats, LT_ERR_NULL_POINTER);
    LT_CHECK(B >= 0 && T >= 0 && H >= 1, LT_ERR_INVALID_ARGUMENT);
    int64_t bh, bht, bhtt;
    LT_CHECK(!lt__mul_overflows(B, H, &bh) && !lt__mul_overflows(bh, T, &bht) &&
             !lt__mul_overflows(bht, T, &bhtt), LT_ERR_INVALID_ARGUMENT);
    *floats = bhtt;
    return LT_OK;
}

/* y (d) = Σ_{i<rows} M[i·ld_col_src + col] · R_i, R_i = rows of Rb (ld ldr), in blocks of
 * ATT_BLOCK (the column of M gathered on the stack). y is overwritten. */
static void column_combination(lt_axpy_many_fn axpy, const float *Mcol, int64_t ldm, int64_t rows,
                               const float *Rb, int64_t ldr, int64_t d, float *y) {
    float coef[ATT_BLOCK];
    memset(y, 0, (size_t)d * sizeof(float));
    for (int64_t i0 = 0; i0 < rows; i0 += ATT_BLOCK) {
        int64_t w = rows - i0 < ATT_BLOCK ? rows - i0 : ATT_BLOCK;
        for (int64_t i = 0; i < w; i++) coef[i] = Mcol[(i0 + i) * ldm];
        axpy(y, coef, Rb + i0 * ldr, ldr, w, d);
    }
}

lt_status lt_attention_backward(int64_t B, int64_t T, int64_t H, int64_t d_h, float scale,
                                const float *Q, int64_t ldq,
                                const float *K, int64_t ldk,
                                const float *V, int64_t ldv,
                                const int32_t *key_mask,
                                const float *P,
                                const float *dC, int64_t lddc,
                                float *dQ, int64_t lddq,
                                float *dK, int64_t lddk,
                                float *dV, int64_t lddv,
                                float *workspace) {
    LT_CHECK(Q && K && V && P && dC && dQ && dK && dV && workspace, LT_ERR_NULL_POINTER);
    lt_status st = check_common(B, T, H, d_h, scale, ldq, ldk, ldv, lddc);
    if (st != LT_OK) return st;
    int64_t d = H * d_h;
    LT_CHECK(lt__ld_ok(lddq, d) && lt__ld_ok(lddk, d) && lt__ld_ok(lddv, d), LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    lt_dot_many_fn dot = lt__dot_many();
    lt_axpy_many_fn axpy = lt__axpy_many();
    const int64_t pairs = B * H;

    #pragma omp parallel for schedule(static, 1)
    for (int64_t p = 0; p < pairs; p++) {
        const int64_t b = p / H, h = p % H;
        /* Columns of P beyond the last valid key are exactly 0 (forward), so only the first Tk
         * keys get nonzero gradients; the others are set to 0 without work. */
        int any;
        const int64_t Tk = active_keys(key_mask ? key_mask + b * T : NULL, T, &any);
        const float *Pb = P + p * T * T;
        float *dS = workspace + p * T * T;
        const float *Qb = Q + b * T * ldq + h * d_h;
        const float *Kb = K + b * T * ldk + h * d_h;
        const float *Vb = V + b * T * ldv + h * d_h;
        const float *dCb = dC + b * T * lddc + h * d_h;

        /* dV_j = Σ_i P_ij dc_i */
        for (int64_t j = 0; j < Tk; j++)
            column_combination(axpy, Pb + j, T, T, dCb, lddc, d_h, dV + (b * T + j) * lddv + h * d_h);

        /* dS_ij = scale · P_ij (dP_ij − Σ_k P_ik dP_ik),  dP_i = V_bh dc_i */
        for (int64_t i = 0; i < T; i++) {
            const float *pr = Pb + i * T;
            float *ds = dS + i * T;
            dot(dCb + i * lddc, Vb, ldv, Tk, d_h, ds);
            double acc[ATT_LANES] = {0};
            int64_t j = 0;
            for (; j + ATT_LANES <= Tk; j += ATT_LANES)
                for (int k = 0; k < ATT_LANES; k++) acc[k] += (double)pr[j + k] * (double)ds[j + k];
            for (int k = 0; j < Tk; j++, k++) acc[k] += (double)pr[j] * (double)ds[j];
            float df = (float)(((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])));
            if (any) for (int64_t t = 0; t < Tk; t++) ds[t] = scale * (pr[t] * (ds[t] - df));
            else memset(ds, 0, (size_t)Tk * sizeof(float));   /* P constant: no gradient to S */
        }

        /* dQ_i = Σ_j dS_ij k_j   (scale already in dS) */
        for (int64_t i = 0; i < T; i++) {
            float *dq = dQ + (b * T + i) * lddq + h * d_h;
            memset(dq, 0, (size_t)d_h * sizeof(float));
            axpy(dq, dS + i * T, Kb, ldk, Tk, d_h);
        }
        /* dK_j = Σ_i dS_ij q_i */
        for (int64_t j = 0; j < Tk; j++)
            column_combination(axpy, dS + j, T, T, Qb, ldq, d_h, dK + (b * T + j) * lddk + h * d_h);
        for (int64_t j = Tk; j < T; j++) {
            memset(dK + (b * T + j) * lddk + h * d_h, 0, (size_t)d_h * sizeof(float));
            memset(dV + (b * T + j) * lddv + h * d_h, 0, (size_t)d_h * sizeof(float));
        }
    }
    return LT_OK;
}
