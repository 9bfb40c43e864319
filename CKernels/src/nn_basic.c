/*
 * nn_basic.c — embeddings, linear layers, GELU, masked mean pooling and softmax cross-entropy
 * (API, shapes and conventions in lt_nn.h). Forward beside backward for each.
 */
#pragma STDC FP_CONTRACT OFF
#include "lt_nn.h"
#include "nn_internal.h"
#include "gemm_internal.h"

#include <math.h>

/* ================================ embeddings ================================================ */

/* Y[b·T+t, :] = word[ids[b·T+t], :] + pos[t, :] (+ type_row)        Y [B·T × d] */
lt_status lt_embeddings_forward(int64_t B, int64_t T, int64_t d, const int32_t *ids,
                                const float *word, int64_t vocab,
                                const float *pos, int64_t max_pos,
                                const float *type_row,
                                float *Y, int64_t ldy) {
    LT_CHECK(ids && word && pos && Y, LT_ERR_NULL_POINTER);
    LT_CHECK(B >= 0 && T >= 0 && d >= 0 && vocab >= 0 && max_pos >= 0, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(T <= max_pos && lt__ld_ok(ldy, d), LT_ERR_INVALID_ARGUMENT);
    int64_t n;
    LT_CHECK(!lt__mul_overflows(B, T, &n), LT_ERR_INVALID_ARGUMENT);
    for (int64_t i = 0; i < n; i++) LT_CHECK(ids[i] >= 0 && ids[i] < vocab, LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    #pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK)
    for (int64_t i = 0; i < n; i++) {
        const float *w = word + (int64_t)ids[i] * d;
        const float *p = pos + (i % (T > 0 ? T : 1)) * d;
        float *y = Y + i * ldy;
        if (type_row) for (int64_t j = 0; j < d; j++) y[j] = (w[j] + p[j]) + type_row[j];
        else for (int64_t j = 0; j < d; j++) y[j] = w[j] + p[j];
    }
    return LT_OK;
}

/* ================================ linear ===================================================== */

/* The epilogue of lt_linear_forward on one finished tile (rows × cols at (i, j)) of P = X Wᵀ:
 * y = P + (r + b), the sum the unfused path forms (bias and residual first, then the GEMM's
 * beta = 1 step). */
typedef struct {
    const float *bias;
    const float *R;
    int64_t ldr;
} linear_tile_ctx;

static void bias_residual_tile(const void *vctx, int64_t i, int64_t j, int64_t rows, int64_t cols,
                               float *c, int64_t ldc) {
    const linear_tile_ctx *x = vctx;
    const float *b = x->bias ? x->bias + j : NULL;
    for (int64_t q = 0; q < rows; q++) {
        float *y = c + q * ldc;
        const float *r = x->R ? x->R + (i + q) * x->ldr + j : NULL;
        if (r && b) for (int64_t t = 0; t < cols; t++) y[t] = (r[t] + b[t]) + y[t];
        else if (r) for (int64_t t = 0; t < cols; t++) y[t] = r[t] + y[t];
        else for (int64_t t = 0; t < cols; t++) y[t] = b[t] + y[t];
    }
}

/* Argument checks of lt_linear_forward (and of its prepacked variant). */
static lt_status linear_forward_check(int64_t n, int64_t d_in, int64_t d_out, const float *X, int64_t ldx,
                                      const float *W, int64_t ldw, const float *R, int64_t ldr,
                                      const float *Y, int64_t ldy) {
    LT_CHECK(X && W && Y, LT_ERR_NULL_POINTER);
    LT_CHECK(n >= 0 && d_in >= 0 && d_out >= 0, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(lt__ld_ok(ldx, d_in) && lt__ld_ok(ldw, d_in) && lt__ld_ok(ldy, d_out), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(!R || lt__ld_ok(ldr, d_out), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(!R || R != Y || ldr == ldy, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(lt__blas_ok(n) && lt__blas_ok(d_in) && lt__blas_ok(d_out) && lt__blas_ok(ldx) &&
             lt__blas_ok(ldw) && lt__blas_ok(ldy), LT_ERR_INVALID_ARGUMENT);
    return LT_OK;
}

/* Y[n × d_out] = X[n × d_in] Wᵀ (+ bias) (+ R) */
lt_status lt_linear_forward(int64_t n, int64_t d_in, int64_t d_out,
                            const float *X, int64_t ldx, const float *W, int64_t ldw,
                            const float *bias, const float *R, int64_t ldr,
                            float *Y, int64_t ldy) {
    const lt_status st = linear_forward_check(n, d_in, d_out, X, ldx, W, ldw, R, ldr, Y, ldy);
    if (st != LT_OK) return st;
    (void)lt__ensure_init();
    if (n == 0 || d_out == 0) return LT_OK;
    /* Fused: each tile of X Wᵀ gets its bias and residual while it is in cache (one pass over Y).
     * Not when R is Y itself (the GEMM stores over it), nor where the GEMM core declines (the
     * OpenBLAS backend, d_in = 0, narrow outputs): then the two passes below. Same bits either
     * way: y = P + (r + b) with the product P rounded once. */
    if ((bias || R) && R != Y) {
        const linear_tile_ctx ctx = {bias, R, ldr};
        if (lt__gemm_f32_hooked(0, 1, n, d_out, d_in, X, ldx, W, ldw, Y, ldy, bias_residual_tile, &ctx)) return LT_OK;
    }
    float beta = 0.0f;
    if (bias || R) {
        /* Bias and residual first (each row once), then the GEMM accumulates on top. */
        #pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK)
        for (int64_t i = 0; i < n; i++) {
            float *y = Y + i * ldy;
            if (R) {
                const float *r = R + i * ldr;
                if (bias) for (int64_t o = 0; o < d_out; o++) y[o] = r[o] + bias[o];
                else if (r != y) memcpy(y, r, (size_t)d_out * sizeof(float));
            } else {
                memcpy(y, bias, (size_t)d_out * sizeof(float));
            }
        }
        beta = 1.0f;
    }
    lt__sgemm(0, 1, n, d_out, d_in, 1.0f, X, ldx, W, ldw, beta, Y, ldy);
    return LT_OK;
}

/* dX[n × d_in] (=|+=) dY[n × d_out] W[d_out × d_in] */
lt_status lt_linear_backward_input(int64_t n, int64_t d_in, int64_t d_out,
                                   const float *dY, int64_t lddy, const float *W, int64_t ldw,
                                   float *dX, int64_t lddx, int accumulate) {
    LT_CHECK(dY && W && dX, LT_ERR_NULL_POINTER);
    LT_CHECK(n >= 0 && d_in >= 0 && d_out >= 0, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(lt__ld_ok(lddy, d_out) && lt__ld_ok(ldw, d_in) && lt__ld_ok(lddx, d_in), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(lt__blas_ok(n) && lt__blas_ok(d_in) && lt__blas_ok(d_out) && lt__blas_ok(lddy) &&
             lt__blas_ok(ldw) && lt__blas_ok(lddx), LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    lt__sgemm(0, 0, n, d_in, d_out, 1.0f, dY, lddy, W, ldw, accumulate ? 1.0f : 0.0f, dX, lddx);
    return LT_OK;
}

/* dW[d_out × d_in] (=|+=) dYᵀ X;  db[d_out] (=|+=) Σ_i dY[i, :] */
lt_status lt_linear_backward_params(int64_t n, int64_t d_in, int64_t d_out,
                                    const float *dY, int64_t lddy, const float *X, int64_t ldx,
                                    float *dW, float *db, int accumulate) {
    LT_CHECK(dY, LT_ERR_NULL_POINTER);
    LT_CHECK(!dW || X, LT_ERR_NULL_POINTER);
    LT_CHECK(n >= 0 && d_in >= 0 && d_out >= 0, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(lt__ld_ok(lddy, d_out) && (!dW || lt__ld_ok(ldx, d_in)), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(lt__blas_ok(n) && lt__blas_ok(d_in) && lt__blas_ok(d_out) && lt__blas_ok(lddy) &&
             lt__blas_ok(ldx), LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    if (dW) lt__sgemm(1, 0, d_out, d_in, n, 1.0f, dY, lddy, X, ldx, accumulate ? 1.0f : 0.0f, dW, d_in);
    if (db) {
        int64_t blocks = (d_out + NN_COL_BLOCK - 1) / NN_COL_BLOCK;
        #pragma omp parallel for schedule(static, 1)
        for (int64_t blk = 0; blk < blocks; blk++) {
            int64_t o0 = blk * NN_COL_BLOCK;
            int64_t w = d_out - o0 < NN_COL_BLOCK ? d_out - o0 : NN_COL_BLOCK;
            double acc[NN_COL_BLOCK];
            for (int64_t o = 0; o < w; o++) acc[o] = accumulate ? (double)db[o0 + o] : 0.0;
            for (int64_t i = 0; i < n; i++) {
                const float *g = dY + i * lddy + o0;
                for (int64_t o = 0; o < w; o++) acc[o] += (double)g[o];
            }
            for (int64_t o = 0; o < w; o++) db[o0 + o] = (float)acc[o];
        }
    }
    return LT_OK;
}

/* ================================ low-rank adapter term ====================================== */

/* The rank is processed in chunks of NN_LOWRANK_RCHUNK (the chunk's r-vector of a row lives on
 * the stack); the chunking is fixed, so the bits do not depend on anything but the ISA. */
#define NN_LOWRANK_RCHUNK 64

lt_status lt_lowrank_workspace_size(int64_t d_in, int64_t d_out, int64_t r, int64_t *floats) {
    LT_CHECK(floats, LT_ERR_NULL_POINTER);
    LT_CHECK(d_in >= 0 && d_out >= 0 && r >= 1, LT_ERR_INVALID_ARGUMENT);
    int64_t f;
    LT_CHECK(!lt__mul_overflows(r, d_out, &f), LT_ERR_INVALID_ARGUMENT);
    *floats = f;
    return LT_OK;
}

static lt_status lowrank_check(int64_t n, int64_t d_in, int64_t d_out, int64_t r, float s,
                               int64_t ld_in, int64_t ld_out, int accumulate) {
    LT_CHECK(n >= 0 && d_in >= 0 && d_out >= 0 && r >= 1, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(lt__ld_ok(ld_in, d_in) && lt__ld_ok(ld_out, d_out), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(accumulate == 0 || accumulate == 1, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(isfinite(s), LT_ERR_INVALID_ARGUMENT);
    int64_t t;
    LT_CHECK(!lt__mul_overflows(n, ld_in, &t) && !lt__mul_overflows(n, ld_out, &t), LT_ERR_INVALID_ARGUMENT);
    return LT_OK;
}

/* The row loop of both low-rank products: for each row i, t = P v_i (P: r × p, via dot_many over
 * rank chunks) and w_i (=|+=) Σ_k t_k Q[k, :] (Q: r × q, axpy_many). */
static void lowrank_rows(int64_t n, int64_t r, const float *V, int64_t ldv, const float *P, int64_t p,
                         const float *Q, int64_t q, float *W, int64_t ldw, int accumulate) {
    lt_dot_many_fn dot = lt__dot_many();
    lt_axpy_many_fn axpy = lt__axpy_many();
    #pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK) if(LT_PARALLEL_IF(2.0 * n * r * (p + q)))
    for (int64_t i = 0; i < n; i++) {
        float t[NN_LOWRANK_RCHUNK];
        float *w = W + i * ldw;
        if (!accumulate) memset(w, 0, (size_t)q * sizeof(float));
        for (int64_t k0 = 0; k0 < r; k0 += NN_LOWRANK_RCHUNK) {
            int64_t kc = r - k0 < NN_LOWRANK_RCHUNK ? r - k0 : NN_LOWRANK_RCHUNK;
            dot(V + i * ldv, P + k0 * p, p, kc, p, t);
            axpy(w, t, Q + k0 * q, q, kc, q);
        }
    }
}

/* s Bᵀ (r × d_out) from B (d_out × r) into the workspace. */
static float *lowrank_scaled_bt(const float *B, int64_t d_out, int64_t r, float s, float *workspace) {
    for (int64_t o = 0; o < d_out; o++)
        for (int64_t k = 0; k < r; k++) workspace[k * d_out + o] = s * B[o * r + k];
    return workspace;
}

/* Y (=|+=) s (X Aᵀ) Bᵀ: per row t = A x_i, y_i (=|+=) Σ_k t_k (s Bᵀ)[k, :]. */
lt_status lt_lowrank_forward(int64_t n, int64_t d_in, int64_t d_out, int64_t r, float s,
                             const float *X, int64_t ldx, const float *A, const float *B,
                             float *Y, int64_t ldy, int accumulate, float *workspace) {
    LT_CHECK(X && A && B && Y && workspace, LT_ERR_NULL_POINTER);
    lt_status st = lowrank_check(n, d_in, d_out, r, s, ldx, ldy, accumulate);
    if (st != LT_OK) return st;
    (void)lt__ensure_init();
    if (n == 0 || d_out == 0) return LT_OK;
    const float *sBt = lowrank_scaled_bt(B, d_out, r, s, workspace);
    lowrank_rows(n, r, X, ldx, A, d_in, sBt, d_out, Y, ldy, accumulate);
    return LT_OK;
}

/* dX (=|+=) s (dY B) A: per row g = (s Bᵀ) dy_i, dx_i (=|+=) Σ_k g_k A[k, :]. */
lt_status lt_lowrank_backward_input(int64_t n, int64_t d_in, int64_t d_out, int64_t r, float s,
                                    const float *dY, int64_t lddy, const float *A, const float *B,
                                    float *dX, int64_t lddx, int accumulate, float *workspace) {
    LT_CHECK(dY && A && B && dX && workspace, LT_ERR_NULL_POINTER);
    lt_status st = lowrank_check(n, d_out, d_in, r, s, lddy, lddx, accumulate);
    if (st != LT_OK) return st;
    (void)lt__ensure_init();
    if (n == 0 || d_in == 0) return LT_OK;
    const float *sBt = lowrank_scaled_bt(B, d_out, r, s, workspace);
    lowrank_rows(n, r, dY, lddy, sBt, d_out, A, d_in, dX, lddx, accumulate);
    return LT_OK;
}

/* ================================ low-rank terms on output tiles =============================== */

lt_status lt_lowrank_prepare(int64_t n, int64_t d_in, int64_t d_out, int64_t r, float s,
                             const float *X, int64_t ldx, const float *A, const float *B,
                             float *T, float *sBt) {
    LT_CHECK(A && B && sBt && (n == 0 || (X && T)), LT_ERR_NULL_POINTER);
    lt_status st = lowrank_check(n, d_in, d_out, r, s, ldx, d_out, 0);
    if (st != LT_OK) return st;
    int64_t nr;
    LT_CHECK(!lt__mul_overflows(n, r, &nr), LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    lowrank_scaled_bt(B, d_out, r, s, sBt);
    lt_dot_many_fn dot = lt__dot_many();
    #pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK) if(LT_PARALLEL_IF(2.0 * n * r * d_in))
    for (int64_t i = 0; i < n; i++)
        for (int64_t k0 = 0; k0 < r; k0 += NN_LOWRANK_RCHUNK) {
            int64_t kc = r - k0 < NN_LOWRANK_RCHUNK ? r - k0 : NN_LOWRANK_RCHUNK;
            dot(X + i * ldx, A + k0 * d_in, d_in, kc, d_in, T + i * r + k0);
        }
    return LT_OK;
}

lt_status lt__lowrank_terms_check(int64_t n, int64_t cols, const lt_lowrank_term *terms, int64_t n_terms) {
    LT_CHECK(n_terms >= 0, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(terms || n_terms == 0, LT_ERR_NULL_POINTER);
    for (int64_t t = 0; t < n_terms; t++) {
        const lt_lowrank_term *x = terms + t;
        LT_CHECK(x->width >= 0 && x->rank >= 0 && x->col >= 0, LT_ERR_INVALID_ARGUMENT);
        LT_CHECK(x->col <= cols && x->width <= cols - x->col, LT_ERR_INVALID_ARGUMENT);
        LT_CHECK(x->ldcoef >= x->rank && x->ldm >= x->width, LT_ERR_INVALID_ARGUMENT);
        int64_t e;
        LT_CHECK(!lt__mul_overflows(n, x->ldcoef, &e) && !lt__mul_overflows(x->rank, x->ldm, &e),
                 LT_ERR_INVALID_ARGUMENT);
        if (n > 0 && x->width > 0 && x->rank > 0) LT_CHECK(x->coef && x->M, LT_ERR_NULL_POINTER);
    }
    return LT_OK;
}

/* Rows i ..< i + rows, columns j ..< j + cols of Y (at y, ld ldy) get every term's part there. */
static void terms_on_block(const lt_lowrank_term *terms, int64_t n_terms, lt_axpy_block_fn axpy,
                           int64_t i, int64_t j, int64_t rows, int64_t cols, float *y, int64_t ldy) {
    for (int64_t t = 0; t < n_terms; t++) {
        const lt_lowrank_term *x = terms + t;
        const int64_t lo = x->col > j ? x->col : j;
        const int64_t hi = x->col + x->width < j + cols ? x->col + x->width : j + cols;
        if (lo >= hi || x->rank == 0) continue;
        axpy(rows, x->rank, hi - lo, x->coef + i * x->ldcoef, x->ldcoef, x->M + (lo - x->col), x->ldm,
             y + (lo - j), ldy);
    }
}

lt_status lt_lowrank_terms_apply(int64_t n, int64_t cols, const lt_lowrank_term *terms, int64_t n_terms,
                                 float *Y, int64_t ldy) {
    LT_CHECK(n >= 0 && cols >= 0 && lt__ld_ok(ldy, cols), LT_ERR_INVALID_ARGUMENT);
    lt_status st = lt__lowrank_terms_check(n, cols, terms, n_terms);
    if (st != LT_OK) return st;
    if (n == 0 || cols == 0 || n_terms == 0) return LT_OK;
    LT_CHECK(Y, LT_ERR_NULL_POINTER);
    (void)lt__ensure_init();
    lt_axpy_block_fn axpy = lt__axpy_block();
    double flops = 0;
    for (int64_t t = 0; t < n_terms; t++) flops += 2.0 * n * terms[t].rank * terms[t].width;
    const int64_t chunks = (n + LT_ROWS_PER_CHUNK - 1) / LT_ROWS_PER_CHUNK;
    #pragma omp parallel for schedule(static, 1) if(LT_PARALLEL_IF(flops))
    for (int64_t q = 0; q < chunks; q++) {
        const int64_t i0 = q * LT_ROWS_PER_CHUNK;
        const int64_t rows = n - i0 < LT_ROWS_PER_CHUNK ? n - i0 : LT_ROWS_PER_CHUNK;
        LT__NOTE_CHUNK(i0);
        terms_on_block(terms, n_terms, axpy, i0, 0, rows, cols, Y + i0 * ldy, ldy);
    }
    return LT_OK;
}

void lt__lowrank_terms_tile(const void *vctx, int64_t i, int64_t j, int64_t rows, int64_t cols, float *c,
                           int64_t ldc) {
    const lt__lowrank_terms_ctx *x = vctx;
    terms_on_block(x->terms, x->n_terms, x->axpy, i, j, rows, cols, c, ldc);
}

/* The tile hook of the fused linear products: bias and residual (as bias_residual_tile), then the terms. */
typedef struct {
    linear_tile_ctx linear;
    lt__lowrank_terms_ctx terms;
} terms_tile_ctx;

static void terms_tile(const void *vctx, int64_t i, int64_t j, int64_t rows, int64_t cols, float *c, int64_t ldc) {
    const terms_tile_ctx *x = vctx;
    if (x->linear.bias || x->linear.R) bias_residual_tile(&x->linear, i, j, rows, cols, c, ldc);
    lt__lowrank_terms_tile(&x->terms, i, j, rows, cols, c, ldc);
}

/* lt_linear_forward_terms and lt_linear_forward_packed_terms (W_packed NULL: not packed). */
static lt_status linear_forward_terms(int64_t n, int64_t d_in, int64_t d_out,
                                      const float *X, int64_t ldx, const float *W, int64_t ldw,
                                      const float *W_packed, const float *bias, const float *R, int64_t ldr,
                                      const lt_lowrank_term *terms, int64_t n_terms,
                                      float *Y, int64_t ldy) {
    LT_CHECK(X && W && Y, LT_ERR_NULL_POINTER);
    LT_CHECK(n >= 0 && d_out >= 0 && lt__ld_ok(ldy, d_out), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(!R || R != Y, LT_ERR_INVALID_ARGUMENT);
    lt_status st = lt__lowrank_terms_check(n, d_out, terms, n_terms);
    if (st != LT_OK) return st;
    if (n_terms == 0)
        return lt_linear_forward_packed(n, d_in, d_out, X, ldx, W, ldw, W_packed, bias, R, ldr, Y, ldy);
    if (n > 0 && d_out > 0 && d_in > 0 && lt__ld_ok(ldx, d_in) && lt__ld_ok(ldw, d_in) &&
        (!R || lt__ld_ok(ldr, d_out)) && lt__blas_ok(n) && lt__blas_ok(d_in) && lt__blas_ok(d_out) &&
        lt__blas_ok(ldx) && lt__blas_ok(ldw) && lt__blas_ok(ldy)) {
        (void)lt__ensure_init();
        const terms_tile_ctx ctx = {{bias, R, ldr}, {terms, n_terms, lt__axpy_block()}};
        if (W_packed && lt__gemm_f32_prepacked_hooked(0, n, d_out, d_in, X, ldx, W_packed, Y, ldy, terms_tile, &ctx))
            return LT_OK;
        if (lt__gemm_f32_hooked(0, 1, n, d_out, d_in, X, ldx, W, ldw, Y, ldy, terms_tile, &ctx)) return LT_OK;
    }
    st = lt_linear_forward(n, d_in, d_out, X, ldx, W, ldw, bias, R, ldr, Y, ldy);
    if (st != LT_OK) return st;
    return lt_lowrank_terms_apply(n, d_out, terms, n_terms, Y, ldy);
}

lt_status lt_linear_forward_terms(int64_t n, int64_t d_in, int64_t d_out,
                                  const float *X, int64_t ldx, const float *W, int64_t ldw,
                                  const float *bias, const float *R, int64_t ldr,
                                  const lt_lowrank_term *terms, int64_t n_terms,
                                  float *Y, int64_t ldy) {
    return linear_forward_terms(n, d_in, d_out, X, ldx, W, ldw, NULL, bias, R, ldr, terms, n_terms, Y, ldy);
}

lt_status lt_linear_backward_input_terms(int64_t n, int64_t d_in, int64_t d_out,
                                         const float *dY, int64_t lddy, const float *W, int64_t ldw,
                                         const lt_lowrank_term *terms, int64_t n_terms,
                                         float *dX, int64_t lddx, int accumulate) {
    LT_CHECK(dY && W && dX, LT_ERR_NULL_POINTER);
    LT_CHECK(n >= 0 && d_in >= 0 && lt__ld_ok(lddx, d_in), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(accumulate == 0 || accumulate == 1, LT_ERR_INVALID_ARGUMENT);
    lt_status st = lt__lowrank_terms_check(n, d_in, terms, n_terms);
    if (st != LT_OK) return st;
    if (n_terms > 0 && n > 0 && d_in > 0 && d_out > 0 && lt__ld_ok(lddy, d_out) && lt__ld_ok(ldw, d_in) &&
        lt__blas_ok(n) && lt__blas_ok(d_in) && lt__blas_ok(d_out) && lt__blas_ok(lddy) && lt__blas_ok(ldw) &&
        lt__blas_ok(lddx)) {
        (void)lt__ensure_init();
        const terms_tile_ctx ctx = {{NULL, NULL, 0}, {terms, n_terms, lt__axpy_block()}};
        if (lt__gemm_f32_hooked_beta(0, 0, n, d_in, d_out, dY, lddy, W, ldw, accumulate ? 1.0f : 0.0f, dX, lddx,
                                     terms_tile, &ctx))
            return LT_OK;
    }
    st = lt_linear_backward_input(n, d_in, d_out, dY, lddy, W, ldw, dX, lddx, accumulate);
    if (st != LT_OK) return st;
    return lt_lowrank_terms_apply(n, d_in, terms, n_terms, dX, lddx);
}

/* ================================ GELU (erf) ================================================= */

/* erf(x) for float as a rational function of x (numerator odd, degree 13; denominator even,
 * degree 8) on x clamped to [-4, 4] (beyond it erf is ±1 in float) — the approximation Eigen
 * and XLA use for float32 erf. Pure arithmetic, so the loops below vectorise (glibc's erff is a
 * scalar call and took a quarter of the MiniLM forward). Accuracy is checked by the kernel tests
 * against float64 erf. */
static inline float lt__erf(float a) {
    float x = a < -4.0f ? -4.0f : (a > 4.0f ? 4.0f : a);
    float x2 = x * x;
    float p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
    p = x2 * p + -2.10102402082508e-06f;
    p = x2 * p + -5.69250639462346e-05f;
    p = x2 * p + -7.34990630326855e-04f;
    p = x2 * p + -2.95459980854025e-03f;
    p = x2 * p + -1.60960333262415e-02f;
    p = x * p;
    float q = x2 * -1.45660718464996e-05f + -2.13374055278905e-04f;
    q = x2 * q + -1.68282697438203e-03f;
    q = x2 * q + -7.37332916720468e-03f;
    q = x2 * q + -1.42647390514189e-02f;
    return p / q;
}

/* e^x for x ≤ 0 (clamped at −87, where e^x is near float's smallest normal): x = n ln2 + r
 * with |r| ≤ ln2/2 (Cody–Waite, two-part ln2), e^r by its degree-6 Taylor polynomial
 * (relative error < 2e-7), 2^n put into the exponent bits. Pure arithmetic, so the GELU
 * backward loop vectorises (glibc's expf is a scalar call). */
static inline float lt__exp_nonpositive(float x) {
    x = x < -87.0f ? -87.0f : (x > 0.0f ? 0.0f : x);
    const float shifter = 12582912.0f;                       /* 1.5 · 2^23: round to nearest */
    float n = (x * 1.44269504088896341f + shifter) - shifter;
    float r = x - n * 0.693359375f;                          /* ln2 high part (exact in float) */
    r = r - n * -2.12194440e-4f;                             /* ln2 low part */
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union { int32_t i; float f; } scale;
    scale.i = ((int32_t)n + 127) << 23;
    return p * scale.f;
}

/* One row of GELU forward (g unused) / backward, written once and compiled three times: the
 * portable baseline, AVX2+FMA and AVX-512 (target attributes, never -march), chosen by the
 * active ISA (LORTA_ISA). The loops are plain arithmetic, so each variant auto-vectorises at
 * its own width. */
typedef void (*gelu_row_fn)(const float *x, const float *g, float *out, int64_t d);

#define LT_GELU_ROWS(suffix, attr)                                                            \
    attr static void gelu_forward_row_##suffix(const float *x, const float *g, float *y,       \
                                               int64_t d) {                                   \
        (void)g;                                                                              \
        LT_ELEMENTWISE                                                                        \
        for (int64_t j = 0; j < d; j++)                                                       \
            y[j] = 0.5f * x[j] * (1.0f + lt__erf(x[j] * 0.70710678118654752440f));             \
    }                                                                                         \
    attr static void gelu_backward_row_##suffix(const float *x, const float *g, float *dx,     \
                                                int64_t d) {                                  \
        LT_ELEMENTWISE                                                                        \
        for (int64_t j = 0; j < d; j++) {                                                     \
            float xv = x[j];                                                                  \
            float cdf = 0.5f * (1.0f + lt__erf(xv * 0.70710678118654752440f));                 \
            float pdf = 0.39894228040143267794f * lt__exp_nonpositive(-0.5f * xv * xv);       \
            dx[j] = g[j] * (cdf + xv * pdf);                                                  \
        }                                                                                     \
    }

LT_GELU_ROWS(scalar, )
#if defined(__x86_64__)
LT_GELU_ROWS(avx2, __attribute__((target("avx2,fma"))))
LT_GELU_ROWS(avx512, __attribute__((target("avx512f,fma"))))
#endif

static gelu_row_fn gelu_forward_row_for(lt_isa isa) {
#if defined(__x86_64__)
    if (isa == LT_ISA_AVX512) return gelu_forward_row_avx512;
    if (isa == LT_ISA_AVX2) return gelu_forward_row_avx2;
#endif
    (void)isa;
    return gelu_forward_row_scalar;
}

static gelu_row_fn gelu_backward_row_for(lt_isa isa) {
#if defined(__x86_64__)
    if (isa == LT_ISA_AVX512) return gelu_backward_row_avx512;
    if (isa == LT_ISA_AVX2) return gelu_backward_row_avx2;
#endif
    (void)isa;
    return gelu_backward_row_scalar;
}

/* Y = 0.5 X (1 + erf(X/√2))                                    X, Y [n × d] */
lt_status lt_gelu_forward(int64_t n, int64_t d, const float *X, int64_t ldx, float *Y, int64_t ldy) {
    LT_CHECK(X && Y, LT_ERR_NULL_POINTER);
    LT_CHECK(n >= 0 && d >= 0 && lt__ld_ok(ldx, d) && lt__ld_ok(ldy, d), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(X != Y || ldx == ldy, LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    const gelu_row_fn row = gelu_forward_row_for(lt_isa_active());
    #pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK)
    for (int64_t i = 0; i < n; i++) row(X + i * ldx, NULL, Y + i * ldy, d);
    return LT_OK;
}

/* dX = dY (Φ(X) + X φ(X))                                      X, dY, dX [n × d] */
lt_status lt_gelu_backward(int64_t n, int64_t d, const float *X, int64_t ldx,
                           const float *dY, int64_t lddy, float *dX, int64_t lddx) {
    LT_CHECK(X && dY && dX, LT_ERR_NULL_POINTER);
    LT_CHECK(n >= 0 && d >= 0 && lt__ld_ok(ldx, d) && lt__ld_ok(lddy, d) && lt__ld_ok(lddx, d),
             LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(dY != dX || lddy == lddx, LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    const gelu_row_fn row = gelu_backward_row_for(lt_isa_active());
    #pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK)
    for (int64_t i = 0; i < n; i++) row(X + i * ldx, dY + i * lddy, dX + i * lddx, d);
    return LT_OK;
}

/* ================================ linear + GELU, fused ======================================= */

/* Forward epilogue on one finished tile of P = X Wᵀ (in Z): z = b + P, then g = gelu(z) by the
 * active ISA's row kernel — the bits of lt_linear_forward followed by lt_gelu_forward. */
typedef struct {
    const float *bias;
    float *G;
    int64_t ldg;
    gelu_row_fn row;
} gelu_tile_ctx;

static void bias_gelu_tile(const void *vctx, int64_t i, int64_t j, int64_t rows, int64_t cols,
                           float *c, int64_t ldc) {
    const gelu_tile_ctx *x = vctx;
    for (int64_t q = 0; q < rows; q++) {
        float *z = c + q * ldc;
        if (x->bias) {
            const float *b = x->bias + j;
            for (int64_t t = 0; t < cols; t++) z[t] = b[t] + z[t];
        }
        x->row(z, NULL, x->G + (i + q) * x->ldg + j, cols);
    }
}

/* Argument checks of lt_linear_gelu_forward (and of its prepacked variant). */
static lt_status linear_gelu_check(int64_t n, int64_t d_in, int64_t d_out, const float *X, int64_t ldx,
                                   const float *W, int64_t ldw, const float *Z, int64_t ldz,
                                   const float *G, int64_t ldg) {
    LT_CHECK(X && W && Z && G, LT_ERR_NULL_POINTER);
    LT_CHECK(n >= 0 && d_in >= 0 && d_out >= 0, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(lt__ld_ok(ldx, d_in) && lt__ld_ok(ldw, d_in) && lt__ld_ok(ldz, d_out) && lt__ld_ok(ldg, d_out),
             LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(G != Z || ldg == ldz, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(lt__blas_ok(n) && lt__blas_ok(d_in) && lt__blas_ok(d_out) && lt__blas_ok(ldx) &&
             lt__blas_ok(ldw) && lt__blas_ok(ldz), LT_ERR_INVALID_ARGUMENT);
    return LT_OK;
}

/* Z[n × d_out] = X[n × d_in] Wᵀ (+ bias),  G = gelu(Z)            (G may be Z) */
lt_status lt_linear_gelu_forward(int64_t n, int64_t d_in, int64_t d_out,
                                 const float *X, int64_t ldx, const float *W, int64_t ldw,
                                 const float *bias, float *Z, int64_t ldz, float *G, int64_t ldg) {
    const lt_status st0 = linear_gelu_check(n, d_in, d_out, X, ldx, W, ldw, Z, ldz, G, ldg);
    if (st0 != LT_OK) return st0;
    (void)lt__ensure_init();
    if (n == 0 || d_out == 0) return LT_OK;
    const gelu_tile_ctx ctx = {bias, G, ldg, gelu_forward_row_for(lt_isa_active())};
    if (lt__gemm_f32_hooked(0, 1, n, d_out, d_in, X, ldx, W, ldw, Z, ldz, bias_gelu_tile, &ctx)) return LT_OK;
    /* Where the GEMM core declines (OpenBLAS backend, d_in = 0, narrow outputs): two passes. */
    lt_status st = lt_linear_forward(n, d_in, d_out, X, ldx, W, ldw, bias, NULL, 0, Z, ldz);
    if (st != LT_OK) return st;
    return lt_gelu_forward(n, d_out, Z, ldz, G, ldg);
}

/* ---- the same three forward products with W prepacked (lt_sgemm_pack_b(1, d_in, d_out, W, …)) ---
 * The product X Wᵀ reads W's panels from W_packed (lt__gemm_f32_prepacked_hooked, lt_sgemm's
 * bits) and the same tile hooks as the unpacked functions add the epilogue. Where the prepacked
 * core declines (W_packed NULL, the OpenBLAS backend, d_in = 0, a buffer made for another ISA
 * or shape) or the epilogue cannot be a hook (R == Y), the unpacked function runs with W: the
 * same bits either way. */

lt_status lt_linear_forward_packed(int64_t n, int64_t d_in, int64_t d_out,
                                   const float *X, int64_t ldx, const float *W, int64_t ldw,
                                   const float *W_packed, const float *bias, const float *R, int64_t ldr,
                                   float *Y, int64_t ldy) {
    const lt_status st = linear_forward_check(n, d_in, d_out, X, ldx, W, ldw, R, ldr, Y, ldy);
    if (st != LT_OK) return st;
    if (W_packed && n > 0 && d_out > 0 && (!R || R != Y)) {
        const linear_tile_ctx ctx = {bias, R, ldr};
        if (lt__gemm_f32_prepacked_hooked(0, n, d_out, d_in, X, ldx, W_packed, Y, ldy,
                                          (bias || R) ? bias_residual_tile : NULL, &ctx))
            return LT_OK;
    }
    return lt_linear_forward(n, d_in, d_out, X, ldx, W, ldw, bias, R, ldr, Y, ldy);
}

lt_status lt_linear_forward_packed_terms(int64_t n, int64_t d_in, int64_t d_out,
                                         const float *X, int64_t ldx, const float *W, int64_t ldw,
                                         const float *W_packed, const float *bias, const float *R, int64_t ldr,
                                         const lt_lowrank_term *terms, int64_t n_terms,
                                         float *Y, int64_t ldy) {
    return linear_forward_terms(n, d_in, d_out, X, ldx, W, ldw, W_packed, bias, R, ldr, terms, n_terms, Y, ldy);
}

lt_status lt_linear_gelu_forward_packed(int64_t n, int64_t d_in, int64_t d_out,
                                        const float *X, int64_t ldx, const float *W, int64_t ldw,
                                        const float *W_packed, const float *bias,
                                        float *Z, int64_t ldz, float *G, int64_t ldg) {
    const lt_status st = linear_gelu_check(n, d_in, d_out, X, ldx, W, ldw, Z, ldz, G, ldg);
    if (st != LT_OK) return st;
    (void)lt__ensure_init();
    if (W_packed && n > 0 && d_out > 0) {
        const gelu_tile_ctx ctx = {bias, G, ldg, gelu_forward_row_for(lt_isa_active())};
        if (lt__gemm_f32_prepacked_hooked(0, n, d_out, d_in, X, ldx, W_packed, Z, ldz, bias_gelu_tile, &ctx))
            return LT_OK;
    }
    return lt_linear_gelu_forward(n, d_in, d_out, X, ldx, W, ldw, bias, Z, ldz, G, ldg);
}

/* Backward epilogue on one finished tile of dY W (in dX): dx = dg · gelu'(z), z the forward's
 * pre-activation — the bits of lt_linear_backward_input followed by lt_gelu_backward in place. */
typedef struct {
    const float *Z;
    int64_t ldz;
    gelu_row_fn row;
} gelu_backward_tile_ctx;

static void gelu_backward_tile(const void *vctx, int64_t i, int64_t j, int64_t rows, int64_t cols,
                               float *c, int64_t ldc) {
    const gelu_backward_tile_ctx *x = vctx;
    for (int64_t q = 0; q < rows; q++) {
        float *g = c + q * ldc;
        x->row(x->Z + (i + q) * x->ldz + j, g, g, cols);
    }
}

/* dX[n × d_in] = gelu'(Z) ⊙ (dY[n × d_out] W[d_out × d_in])        Z [n × d_in] */
lt_status lt_linear_gelu_backward_input(int64_t n, int64_t d_in, int64_t d_out,
                                        const float *dY, int64_t lddy, const float *W, int64_t ldw,
                                        const float *Z, int64_t ldz, float *dX, int64_t lddx) {
    LT_CHECK(dY && W && Z && dX, LT_ERR_NULL_POINTER);
    LT_CHECK(n >= 0 && d_in >= 0 && d_out >= 0, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(lt__ld_ok(lddy, d_out) && lt__ld_ok(ldw, d_in) && lt__ld_ok(ldz, d_in) && lt__ld_ok(lddx, d_in),
             LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(lt__blas_ok(n) && lt__blas_ok(d_in) && lt__blas_ok(d_out) && lt__blas_ok(lddy) &&
             lt__blas_ok(ldw) && lt__blas_ok(lddx), LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    if (n == 0 || d_in == 0) return LT_OK;
    const gelu_backward_tile_ctx ctx = {Z, ldz, gelu_backward_row_for(lt_isa_active())};
    if (lt__gemm_f32_hooked(0, 0, n, d_in, d_out, dY, lddy, W, ldw, dX, lddx, gelu_backward_tile, &ctx)) return LT_OK;
    lt_status st = lt_linear_backward_input(n, d_in, d_out, dY, lddy, W, ldw, dX, lddx, 0);
    if (st != LT_OK) return st;
    return lt_gelu_backward(n, d_in, Z, ldz, dX, lddx, dX, lddx);
}

/* ================================ masked mean pooling ======================================== */

static double pool_count(const int32_t *m, int64_t T) {
    int64_t c = 0;
    for (int64_t t = 0; t < T; t++) c += m[t] != 0;
    return c > 0 ? (double)c : 1e-9;   /* torch.clamp(sum, min=1e-9) */
}

/* Y[b, :] = Σ_t m_bt X[b·T+t, :] / max(Σ_t m_bt, 1e-9)          X [B·T × d], Y [B × d] */
lt_status lt_mean_pool_forward(int64_t B, int64_t T, int64_t d, const float *X, int64_t ldx,
                               const int32_t *mask, float *Y, int64_t ldy) {
    LT_CHECK(X && mask && Y, LT_ERR_NULL_POINTER);
    LT_CHECK(B >= 0 && T >= 0 && d >= 0 && lt__ld_ok(ldx, d) && lt__ld_ok(ldy, d), LT_ERR_INVALID_ARGUMENT);
    int64_t n;
    LT_CHECK(!lt__mul_overflows(B, T, &n), LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    #pragma omp parallel for schedule(static, 1)
    for (int64_t b = 0; b < B; b++) {
        const int32_t *m = mask + b * T;
        double inv = 1.0 / pool_count(m, T);
        for (int64_t j0 = 0; j0 < d; j0 += NN_COL_BLOCK) {
            int64_t w = d - j0 < NN_COL_BLOCK ? d - j0 : NN_COL_BLOCK;
            double acc[NN_COL_BLOCK];
            for (int64_t j = 0; j < w; j++) acc[j] = 0.0;
            for (int64_t t = 0; t < T; t++) {
                if (!m[t]) continue;
                const float *x = X + (b * T + t) * ldx + j0;
                for (int64_t j = 0; j < w; j++) acc[j] += (double)x[j];
            }
            float *y = Y + b * ldy + j0;
            for (int64_t j = 0; j < w; j++) y[j] = (float)(acc[j] * inv);
        }
    }
    return LT_OK;
}

/* dX[b·T+t, :] = m_bt dY[b, :] / max(Σ_t m_bt, 1e-9) */
lt_status lt_mean_pool_backward(int64_t B, int64_t T, int64_t d, const float *dY, int64_t lddy,
                                const int32_t *mask, float *dX, int64_t lddx) {
    LT_CHECK(dY && mask && dX, LT_ERR_NULL_POINTER);
    LT_CHECK(B >= 0 && T >= 0 && d >= 0 && lt__ld_ok(lddy, d) && lt__ld_ok(lddx, d), LT_ERR_INVALID_ARGUMENT);
    int64_t n;
    LT_CHECK(!lt__mul_overflows(B, T, &n), LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    #pragma omp parallel for schedule(static, 1)
    for (int64_t b = 0; b < B; b++) {
        const int32_t *m = mask + b * T;
        float inv = (float)(1.0 / pool_count(m, T));
        const float *g = dY + b * lddy;
        for (int64_t t = 0; t < T; t++) {
            float *dx = dX + (b * T + t) * lddx;
            if (m[t]) for (int64_t j = 0; j < d; j++) dx[j] = g[j] * inv;
            else memset(dx, 0, (size_t)d * sizeof(float));
        }
    }
    return LT_OK;
}

/* ================================ softmax cross-entropy ====================================== */

static lt_status check_labels(int64_t n, int64_t c, const int32_t *labels) {
    for (int64_t i = 0; i < n; i++) LT_CHECK(labels[i] >= 0 && labels[i] < c, LT_ERR_INVALID_ARGUMENT);
    return LT_OK;
}

/* Row kernels, written once and compiled per ISA (the softmax pattern of nn_causal_attention.c):
 *   ce_lse(z, c):  log Σ_k e^{z_k − max} + max in double. The max over CE_LANES fixed lanes
 *     (exact in any order; a NaN in z gives a NaN loss through the sum), e^x = lt__exp_d (plain
 *     arithmetic, so the loop vectorises), the sum reassociable into vector partial sums — an
 *     order fixed by the compiled code and c, the same in every call and on every thread.
 *   ce_grad(z, c, lse, g, y, dz):  dz_k = (e^{z_k − lse} − [k = y]) · g, rounded once (dz may
 *     alias z exactly: the language-model head computes the gradient in place).
 * The vocabulary of a language model makes these the long loops (49,152 per row for SmolLM2). */
#define CE_LANES 16
typedef double (*ce_lse_fn)(const float *z, int64_t c);
typedef void (*ce_grad_fn)(const float *z, int64_t c, double lse, double g, int32_t y, float *dz);

#define LT_CE_ROW(suffix, attr)                                                               \
    attr static double ce_sum_##suffix(const float *z, int64_t c, double mx) {               \
        _Pragma("clang fp reassociate(on)")                                                   \
        double s = 0.0;                                                                       \
        _Pragma("clang loop vectorize(assume_safety) interleave_count(2)")                  \
        for (int64_t k = 0; k < c; k++) s += lt__exp_d((double)z[k] - mx);                   \
        return s;                                                                             \
    }                                                                                         \
    attr static double ce_lse_##suffix(const float *z, int64_t c) {                           \
        float m[CE_LANES];                                                                    \
        for (int l = 0; l < CE_LANES; l++) m[l] = z[0];                                       \
        int64_t k = 0;                                                                        \
        for (; k + CE_LANES <= c; k += CE_LANES)                                              \
            for (int l = 0; l < CE_LANES; l++) m[l] = z[k + l] > m[l] ? z[k + l] : m[l];      \
        for (int l = 0; k < c; k++, l++) m[l] = z[k] > m[l] ? z[k] : m[l];                    \
        for (int w = CE_LANES / 2; w >= 1; w /= 2)                                            \
            for (int l = 0; l < w; l++) m[l] = m[l + w] > m[l] ? m[l + w] : m[l];             \
        const double mx = (double)m[0];                                                       \
        return mx + log(ce_sum_##suffix(z, c, mx));                                           \
    }                                                                                         \
    attr static void ce_grad_##suffix(const float *z, int64_t c, double lse, double g,        \
                                      int32_t y, float *dz) {                                 \
        const double zy = (double)z[y];             /* read first: dz may alias z exactly */ \
        _Pragma("clang loop vectorize(assume_safety) interleave_count(1)")                  \
        for (int64_t k = 0; k < c; k++) dz[k] = (float)(lt__exp_d((double)z[k] - lse) * g);  \
        dz[y] = (float)((lt__exp_d(zy - lse) - 1.0) * g);                                     \
    }

LT_CE_ROW(scalar, )
#if defined(__x86_64__)
LT_CE_ROW(avx2, __attribute__((target("avx2,fma"))))
LT_CE_ROW(avx512, __attribute__((target("avx512f,fma"))))
#endif

static void ce_kernels(ce_lse_fn *lse, ce_grad_fn *grad) {
    *lse = ce_lse_scalar;
    *grad = ce_grad_scalar;
#if defined(__x86_64__)
    const lt_isa isa = lt_isa_active();
    if (isa == LT_ISA_AVX512) { *lse = ce_lse_avx512; *grad = ce_grad_avx512; }
    else if (isa == LT_ISA_AVX2) { *lse = ce_lse_avx2; *grad = ce_grad_avx2; }
#endif
}

/* Rows per parallel chunk of the forward: each row's term is computed by whichever thread, then
 * the chunk's terms are added in row order (the total does not depend on the thread count). */
#define CE_CHUNK 64

/* loss = (1/n) Σ_i (logsumexp(z_i) − z_i[y_i])                 Z [n × c], labels [n] */
lt_status lt_cross_entropy_forward(int64_t n, int64_t c, const float *Z, int64_t ldz,
                                   const int32_t *labels, float *loss, float *row_loss) {
    LT_CHECK(Z && labels && loss, LT_ERR_NULL_POINTER);
    LT_CHECK(n >= 1 && c >= 1 && lt__ld_ok(ldz, c), LT_ERR_INVALID_ARGUMENT);
    lt_status st = check_labels(n, c, labels);
    if (st != LT_OK) return st;
    (void)lt__ensure_init();
    ce_lse_fn lse;
    ce_grad_fn grad;
    ce_kernels(&lse, &grad);
    double total = 0.0, li[CE_CHUNK];
    for (int64_t i0 = 0; i0 < n; i0 += CE_CHUNK) {
        const int64_t m = n - i0 < CE_CHUNK ? n - i0 : CE_CHUNK;
        #pragma omp parallel for schedule(static) if(LT_PARALLEL_IF(20.0 * (double)m * (double)c))
        for (int64_t i = 0; i < m; i++) {
            const float *z = Z + (i0 + i) * ldz;
            li[i] = lse(z, c) - (double)z[labels[i0 + i]];
        }
        for (int64_t i = 0; i < m; i++) {                   /* in row order */
            if (row_loss) row_loss[i0 + i] = (float)li[i];
            total += li[i];
        }
    }
    *loss = (float)(total / (double)n);
    return LT_OK;
}

/* dZ_i = (softmax(z_i) − onehot(y_i)) · dloss / n                 Z, dZ [n × c] */
lt_status lt_cross_entropy_backward(int64_t n, int64_t c, const float *Z, int64_t ldz,
                                    const int32_t *labels, float dloss, float *dZ, int64_t lddz) {
    LT_CHECK(Z && labels && dZ, LT_ERR_NULL_POINTER);
    LT_CHECK(n >= 1 && c >= 1 && lt__ld_ok(ldz, c) && lt__ld_ok(lddz, c), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(isfinite(dloss), LT_ERR_INVALID_ARGUMENT);
    lt_status st = check_labels(n, c, labels);
    if (st != LT_OK) return st;
    (void)lt__ensure_init();
    ce_lse_fn lse;
    ce_grad_fn grad;
    ce_kernels(&lse, &grad);
    const double g = (double)dloss / (double)n;
    #pragma omp parallel for schedule(static) if(LT_PARALLEL_IF(40.0 * (double)n * (double)c))
    for (int64_t i = 0; i < n; i++) {
        const float *z = Z + i * ldz;
        grad(z, c, lse(z, c), g, labels[i], dZ + i * lddz);   /* z is read fully before dz is written */
    }
    return LT_OK;
}
