/*
 * lora.c — LoRA on a frozen Linear layer (API and shapes in lt_lora.h).
 *
 * Math (row-major; X n×d_in, W d_out×d_in, A r×d_in, B d_out×r, scale s):
 *
 *   forward    T  = X Aᵀ                       n×r
 *              Y  = X Wᵀ (+ b) + s T Bᵀ        n×d_out
 *   backward   G  = dY B                       n×r
 *              dB = s dYᵀ T                    d_out×r
 *              dA = s Gᵀ X                     r×d_in
 *              dX = dY W + s G A               n×d_in
 *   merge      W += s B A        unmerge  W -= s B A
 *
 * (dL/dY = dY; Y depends on A and B only through s T Bᵀ = s X Aᵀ Bᵀ, hence dB = s dYᵀ (X Aᵀ),
 * dA = s (dY B)ᵀ X, and the input gradient gets the extra s (dY B) A.)
 *
 * Folding: when the merged weight W + s B A is cheaper to build than the low-rank term over the
 * batch (see forward_folds / backward_folds below), the forward and the input gradient run on a
 * folded copy of W instead — one plain GEMM each.
 *
 * How it runs: the dense products over the batch (X Wᵀ, dY W, dYᵀ T, Gᵀ X) go to lt__sgemm (the
 * library's GEMM, lt_gemm_f32, or OpenBLAS with LORTA_GEMM=openblas), always outside OpenMP
 * regions. The rank-r work is memory-bound and fused per row with the
 * SIMD micro-kernels of simd.h, so each row of X/dY and Y/dX is read once for the adapter.
 * The forward (r < LT_LORA_GEMM_RANK) computes T = X Aᵀ per row, then runs the base GEMM on the
 * library's core with a tile hook that adds b + s T Bᵀ to each finished tile while it is in
 * cache (one pass over Y). With the OpenBLAS backend it writes b + s T Bᵀ into Y first and lets
 * the GEMM accumulate X Wᵀ on top (beta = 1) — the same bits. That order measured 7–9% over
 * the bare GEMM instead of 11–14% for "GEMM, then add the adapter" (n=512…4096, d=768, r=8,
 * one thread, AVX-512). In the backward the same order for
 * dX (s G A first, then dY W with beta = 1) measured 3–4% slower than dY W first, so dX keeps
 * the GEMM-then-axpy order. Kernels used:
 * dot_many for the skinny projections (t = A x_i, g = (sB)ᵀ dy_i) and axpy_many for the rank-r
 * row updates (y_i += Σ_k t_k (sBᵀ)[k,:], dx_i += Σ_k g_k A[k,:], W[o,:] += Σ_k s B[o,k] A[k,:]).
 * The scale is folded once per call into a transposed copy s·Bᵀ (r×d_out) in the workspace.
 * Rows are split into fixed chunks (schedule(static, LT_ROWS_PER_CHUNK)) and each row is
 * computed by the same code whatever thread runs it, so our loops do not depend on the thread
 * count, and neither does the library's GEMM (never split along K). With LORTA_GEMM=openblas
 * the GEMMs are OpenBLAS's: 0.3.21 with its SkylakeX / Cooperlake cores gives the single-thread
 * bits when the summed dimension is at most 384, but its threaded driver may cut a longer one
 * into other blocks than the serial driver (e.g. K = 449), and its Haswell core differs
 * between 1 and 2 threads even for short ones (measured; see the README).
 */
#include "lt_lora.h"
#include "lt_nn.h"   /* before cblas.h, whose complex.h defines I */
#include "lt_rng.h"
#include "internal.h"
#include "gemm_internal.h"
#include "simd.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* ---- validation helpers ---- */

static lt_status check_dims(int64_t n, int64_t d_in, int64_t d_out, int64_t r) {
    LT_CHECK(n >= 0 && d_in >= 0 && d_out >= 0, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(r >= 1, LT_ERR_INVALID_ARGUMENT);
    return LT_OK;
}


/* From this rank on, the adapter's skinny products go to sgemm instead of the per-row
 * micro-kernels (measured at n = 512, d = 384: r = 64 forward +177% over the base GEMM with
 * micro-kernels). */
#define LT_LORA_GEMM_RANK 32

/* dst[r × d_out] = s · Bᵀ, B d_out × r contiguous. */
static void scaled_transpose(int64_t d_out, int64_t r, float s, const float *B, float *dst) {
    for (int64_t o = 0; o < d_out; o++)
        for (int64_t k = 0; k < r; k++) dst[k * d_out + o] = s * B[o * r + k];
}

/* ---- scale and init ---- */

lt_status lt_lora_scale(float alpha, int64_t r, int use_rslora, float *scale) {
    LT_CHECK(scale != NULL, LT_ERR_NULL_POINTER);
    LT_CHECK(r >= 1 && isfinite(alpha), LT_ERR_INVALID_ARGUMENT);
    double d = use_rslora ? sqrt((double)r) : (double)r;
    *scale = (float)((double)alpha / d);
    return LT_OK;
}

lt_status lt_lora_init(uint64_t seed, int64_t r, int64_t d_in, int64_t d_out, float *A, float *B) {
    LT_CHECK(A != NULL && B != NULL, LT_ERR_NULL_POINTER);
    LT_CHECK(r >= 1 && d_in >= 0 && d_out >= 0, LT_ERR_INVALID_ARGUMENT);
    int64_t na, nb;
    LT_CHECK(!lt__mul_overflows(r, d_in, &na) && !lt__mul_overflows(d_out, r, &nb), LT_ERR_INVALID_ARGUMENT);
    if (na > 0) {
        float bound = lt_kaiming_uniform_bound(d_in);
        lt_status st = lt_rng_uniform(seed, 0, -bound, bound, A, na);
        if (st != LT_OK) return st;
    }
    if (nb > 0) memset(B, 0, (size_t)nb * sizeof(float));
    return LT_OK;
}

/* ---- merge rows (shared by merge/unmerge and the folded forward/backward) ---- */

/* W[o,:] += sign·s Σ_k B[o,k] A[k,:], ranks in chunks of LT_LORA_RCHUNK so the coefficients
 * live on the stack (no allocation); the chunking is fixed, so results are deterministic. */
#define LT_LORA_RCHUNK 64

static inline void merge_row(int64_t o, int64_t d_in, int64_t r, float ss, const float *A, const float *B,
                             float *w, lt_axpy_many_fn axpy) {
    float coef[LT_LORA_RCHUNK];
    for (int64_t k0 = 0; k0 < r; k0 += LT_LORA_RCHUNK) {
        int64_t kc = r - k0 < LT_LORA_RCHUNK ? r - k0 : LT_LORA_RCHUNK;
        for (int64_t k = 0; k < kc; k++) coef[k] = ss * B[o * r + k0 + k];
        axpy(w, coef, A + k0 * d_in, d_in, kc, d_in);
    }
}

/* ---- folding ----
 * A LoRA layer's output is also X (W + s B A)ᵀ. Building W + s B A costs d_out·d_in·r
 * multiply-adds; the low-rank term costs n·r·(d_in + d_out) (T = X Aᵀ, then T (s Bᵀ)). So the
 * forward folds the update into a copy of W when d_in·d_out < n·(d_in + d_out) — for a square
 * d × d layer from n > d/2 rows on (MiniLM's 384 × 384 projections on a batch of 512 tokens)
 * — and then runs the plain base product. In the backward, s G A (n·r·d_in) is the only term
 * a folded weight saves (G = dY B is needed for dA anyway), so dX = dY (W + s B A) when
 * d_out < n. The folded copy is built row by row with lt_lora_merge's arithmetic, so a folded
 * forward gives exactly the bits of lt_linear_forward on the weight lt_lora_merge returns. */
static int forward_folds(int64_t n, int64_t d_in, int64_t d_out) {
    return (double)d_in * (double)d_out < (double)n * ((double)d_in + (double)d_out);
}
static int backward_folds(int64_t n, int64_t d_out) { return d_out < n; }

/* Wf[d_out × d_in] (contiguous) = W + s B A, by merge_row on a copy of each row. */
static void fold_weight(int64_t d_out, int64_t d_in, int64_t r, float s, const float *W, int64_t ldw,
                        const float *A, const float *B, float *Wf) {
    lt_axpy_many_fn axpy = lt__axpy_many();
    #pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK) if(LT_PARALLEL_IF(2.0 * d_out * d_in * r))
    for (int64_t o = 0; o < d_out; o++) {
        LT__NOTE_CHUNK(o);
        float *w = Wf + o * d_in;
        memcpy(w, W + o * ldw, (size_t)d_in * sizeof(float));
        merge_row(o, d_in, r, s, A, B, w, axpy);
    }
}

/* ---- forward ---- */

/* T[n × r] = X Aᵀ, one dot_many per row (rows in fixed chunks over the team). */
static void project_rows(int64_t n, int64_t d_in, int64_t r, const float *X, int64_t ldx, const float *A,
                         float *T) {
    lt_dot_many_fn dot = lt__dot_many();
    #pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK) if(LT_PARALLEL_IF(2.0 * n * r * d_in))
    for (int64_t i = 0; i < n; i++) {
        LT__NOTE_CHUNK(i);
        dot(X + i * ldx, A, d_in, r, d_in, T + i * r);      /* t = A x_i */
    }
}

/* The fused forward's tile hook: y_ij = (b_j + Σ_k t_ik (s Bᵀ)[k, j]) + (X Wᵀ)_ij for the tile
 * rows i ..< i + rows, columns j ..< j + cols, where c holds X Wᵀ. The adapter term is formed by
 * the same axpy_many as the unfused path (a column's value does not depend on which columns
 * are processed with it) and added to the GEMM's value in the same one rounding, so both paths
 * give the same bits. */
typedef struct {
    const float *T;
    int64_t r;
    const float *sBt;
    int64_t d_out;
    const float *bias;
    lt_axpy_many_fn axpy;
} lora_tile_ctx;

static void lora_tile_hook(const void *vctx, int64_t i, int64_t j, int64_t rows, int64_t cols,
                           float *c, int64_t ldc) {
    const lora_tile_ctx *x = vctx;
    float tmp[64];
    for (int64_t q = 0; q < rows; q++) {
        float *cr = c + q * ldc;
        for (int64_t j0 = 0; j0 < cols; j0 += 64) {
            const int64_t w = cols - j0 < 64 ? cols - j0 : 64;
            if (x->bias) memcpy(tmp, x->bias + j + j0, (size_t)w * sizeof(float));
            else memset(tmp, 0, (size_t)w * sizeof(float));
            x->axpy(tmp, x->T + (i + q) * x->r, x->sBt + j + j0, x->d_out, x->r, w);
            for (int64_t t = 0; t < w; t++) cr[j0 + t] = tmp[t] + cr[j0 + t];
        }
    }
}

lt_status lt_lora_forward_workspace_size(int64_t n, int64_t d_in, int64_t d_out, int64_t r,
                                         int64_t *floats) {
    LT_CHECK(floats != NULL, LT_ERR_NULL_POINTER);
    lt_status st = check_dims(n, d_in, d_out, r);
    if (st != LT_OK) return st;
    int64_t bt, t, wf;
    LT_CHECK(!lt__mul_overflows(r, d_out, &bt) && !lt__mul_overflows(n, r, &t) &&
             !lt__mul_overflows(d_out, d_in, &wf), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(bt <= INT64_MAX - t, LT_ERR_INVALID_ARGUMENT);
    *floats = forward_folds(n, d_in, d_out) ? wf : bt + t;
    return LT_OK;
}

lt_status lt_lora_forward(int64_t n, int64_t d_in, int64_t d_out, int64_t r, float s,
                          const float *X, int64_t ldx, const float *W, int64_t ldw,
                          const float *bias, const float *A, const float *B,
                          float *Y, int64_t ldy, float *T, float *workspace) {
    LT_CHECK(X && W && A && B && Y && workspace, LT_ERR_NULL_POINTER);
    lt_status st = check_dims(n, d_in, d_out, r);
    if (st != LT_OK) return st;
    LT_CHECK(lt__ld_ok(ldx, d_in) && lt__ld_ok(ldw, d_in) && lt__ld_ok(ldy, d_out), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(isfinite(s), LT_ERR_INVALID_ARGUMENT);
    int64_t ws;
    st = lt_lora_forward_workspace_size(n, d_in, d_out, r, &ws);
    if (st != LT_OK) return st;
    LT_CHECK(lt__blas_ok(n) && lt__blas_ok(d_in) && lt__blas_ok(d_out) && lt__blas_ok(ldx) && lt__blas_ok(ldw) &&
             lt__blas_ok(ldy), LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init(); /* a bad environment leaves the defaults in force */
    if (n == 0 || d_out == 0) {
        /* nothing to write except T = X Aᵀ */
        if (T && n > 0) project_rows(n, d_in, r, X, ldx, A, T);
        return LT_OK;
    }

    if (forward_folds(n, d_in, d_out)) {
        /* Folded: Y = X (W + s B A)ᵀ + b; T only when the caller asked for it. */
        float *Wf = workspace;                      /* d_out × d_in */
        fold_weight(d_out, d_in, r, s, W, ldw, A, B, Wf);
        if (T) project_rows(n, d_in, r, X, ldx, A, T);
        return lt_linear_forward(n, d_in, d_out, X, ldx, Wf, d_in, bias, NULL, 0, Y, ldy);
    }

    float *sBt = workspace;                         /* r × d_out */
    float *Tw = T ? T : workspace + r * d_out;      /* n × r */
    scaled_transpose(d_out, r, s, B, sBt);

    /* Adapter first, written (not read-modify-written) into Y: y_i = b + Σ_k t_k (s Bᵀ)[k,:].
     * Then the base GEMM accumulates into it (beta = 1), outside any OpenMP region; the GEMM
     * reads C once in its epilogue, so Y crosses memory one time less than "GEMM, then add". */
    if (r >= LT_LORA_GEMM_RANK) {
        /* Large r: the two skinny products are real GEMMs; BLAS beats per-row kernels. */
        lt__sgemm(0, 1, n, r, d_in, 1.0f, X, ldx, A, d_in, 0.0f, Tw, r);          /* T = X Aᵀ */
        for (int64_t i = 0; i < n; i++) {
            float *y = Y + i * ldy;
            if (bias) memcpy(y, bias, (size_t)d_out * sizeof(float));
            else memset(y, 0, (size_t)d_out * sizeof(float));
        }
        lt__sgemm(0, 0, n, d_out, r, 1.0f, Tw, r, sBt, d_out, 1.0f, Y, ldy);      /* Y += T (s Bᵀ) */
        lt__sgemm(0, 1, n, d_out, d_in, 1.0f, X, ldx, W, ldw, 1.0f, Y, ldy);     /* Y += X Wᵀ */
        return LT_OK;
    }
    lt_axpy_many_fn axpy = lt__axpy_many();
    project_rows(n, d_in, r, X, ldx, A, Tw);
    /* Fused: the base GEMM stores each tile of X Wᵀ and adds the tile's adapter term while it is
     * hot (lora_tile_hook), one pass over Y. */
    const lora_tile_ctx ctx = {Tw, r, sBt, d_out, bias, axpy};
    if (lt__gemm_f32_hooked(0, 1, n, d_out, d_in, X, ldx, W, ldw, Y, ldy, lora_tile_hook, &ctx)) return LT_OK;
    /* Otherwise (OpenBLAS backend, narrow outputs): the adapter term into Y, then the GEMM on top. */
    #pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK) if(LT_PARALLEL_IF(2.0 * n * r * d_out))
    for (int64_t i = 0; i < n; i++) {
        LT__NOTE_CHUNK(i);
        float *y = Y + i * ldy;
        if (bias) memcpy(y, bias, (size_t)d_out * sizeof(float));
        else memset(y, 0, (size_t)d_out * sizeof(float));
        axpy(y, Tw + i * r, sBt, d_out, r, d_out);     /* y_i += Σ_k t_k (s Bᵀ)[k,:] */
    }
    lt__sgemm(0, 1, n, d_out, d_in, 1.0f, X, ldx, W, ldw, 1.0f, Y, ldy);   /* Y += X Wᵀ */
    return LT_OK;
}

/* ---- frozen path ---- */

lt_status lt_lora_base_forward(int64_t n, int64_t d_in, int64_t d_out,
                               const float *X, int64_t ldx, const float *W, int64_t ldw,
                               const float *bias, float *Y, int64_t ldy) {
    LT_CHECK(X && W && Y, LT_ERR_NULL_POINTER);
    LT_CHECK(n >= 0 && d_in >= 0 && d_out >= 0, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(lt__ld_ok(ldx, d_in) && lt__ld_ok(ldw, d_in) && lt__ld_ok(ldy, d_out), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(lt__blas_ok(n) && lt__blas_ok(d_in) && lt__blas_ok(d_out) && lt__blas_ok(ldx) && lt__blas_ok(ldw) &&
             lt__blas_ok(ldy), LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    lt__sgemm(0, 1, n, d_out, d_in, 1.0f, X, ldx, W, ldw, 0.0f, Y, ldy);
    if (bias && d_out > 0) {
        #pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK)
        for (int64_t i = 0; i < n; i++) {
            float *y = Y + i * ldy;
            for (int64_t o = 0; o < d_out; o++) y[o] += bias[o];
        }
    }
    return LT_OK;
}

/* ---- backward ---- */

lt_status lt_lora_backward_workspace_size(int64_t n, int64_t d_in, int64_t d_out, int64_t r,
                                          int64_t *floats) {
    LT_CHECK(floats != NULL, LT_ERR_NULL_POINTER);
    lt_status st = check_dims(n, d_in, d_out, r);
    if (st != LT_OK) return st;
    int64_t bt, t, t2, wf = 0;
    LT_CHECK(!lt__mul_overflows(r, d_out, &bt) && !lt__mul_overflows(n, r, &t) && !lt__mul_overflows(t, 2, &t2),
             LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(bt <= INT64_MAX - t2, LT_ERR_INVALID_ARGUMENT);
    if (backward_folds(n, d_out))
        LT_CHECK(!lt__mul_overflows(d_out, d_in, &wf) && wf <= INT64_MAX - (bt + t2), LT_ERR_INVALID_ARGUMENT);
    *floats = bt + t2 + wf;
    return LT_OK;
}

/* The backward; with sG_out (n × r) the coefficients s·G of the input gradient's term are
 * written there (and dX must be NULL: the caller adds s·G·A, lt_lora_backward_params). */
static lt_status lora_backward(int64_t n, int64_t d_in, int64_t d_out, int64_t r, float s,
                               const float *X, int64_t ldx, const float *W, int64_t ldw,
                               const float *A, const float *B, const float *dY, int64_t lddy,
                               const float *T, float *dA, float *dB, float *dX, int64_t lddx,
                               int accumulate, float *workspace, float *sG_out) {
    LT_CHECK(X && A && B && dY && dA && dB && workspace, LT_ERR_NULL_POINTER);
    lt_status st = check_dims(n, d_in, d_out, r);
    if (st != LT_OK) return st;
    LT_CHECK(lt__ld_ok(ldx, d_in) && (!W || lt__ld_ok(ldw, d_in)) && lt__ld_ok(lddy, d_out), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(!dX || lt__ld_ok(lddx, d_in), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(accumulate == 0 || accumulate == 1, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(isfinite(s), LT_ERR_INVALID_ARGUMENT);
    int64_t ws;
    st = lt_lora_backward_workspace_size(n, d_in, d_out, r, &ws);
    if (st != LT_OK) return st;
    LT_CHECK(lt__blas_ok(n) && lt__blas_ok(d_in) && lt__blas_ok(d_out) && lt__blas_ok(r) && lt__blas_ok(ldx) &&
             (!W || lt__blas_ok(ldw)) && lt__blas_ok(lddy) && (!dX || lt__blas_ok(lddx)), LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();

    float *sBt = workspace;                                   /* r × d_out: s Bᵀ */
    float *Gs = sG_out ? sG_out : workspace + r * d_out;      /* n × r: s G = dY (s B) */
    float *Tw = T ? (float *)0 : workspace + r * d_out + n * r;   /* n × r when T is recomputed */
    const float *Tu = T ? T : Tw;
    scaled_transpose(d_out, r, s, B, sBt);

    const int big_rank = r >= LT_LORA_GEMM_RANK;
    if (big_rank) {
        if (Tw) lt__sgemm(0, 1, n, r, d_in, 1.0f, X, ldx, A, d_in, 0.0f, Tw, r);        /* T = X Aᵀ */
        lt__sgemm(0, 1, n, r, d_out, 1.0f, dY, lddy, sBt, d_out, 0.0f, Gs, r);          /* s G = dY (s B) */
    } else {
        lt_dot_many_fn dot = lt__dot_many();
        #pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK) if(LT_PARALLEL_IF(2.0 * n * r * (d_in + d_out)))
        for (int64_t i = 0; i < n; i++) {
            LT__NOTE_CHUNK(i);
            if (Tw) dot(X + i * ldx, A, d_in, r, d_in, Tw + i * r);   /* t_i = A x_i */
            dot(dY + i * lddy, sBt, d_out, r, d_out, Gs + i * r);      /* s g_i = (s Bᵀ) dy_i */
        }
    }

    float beta = accumulate ? 1.0f : 0.0f;
    lt__sgemm(1, 0, d_out, r, n, s, dY, lddy, Tu, r, beta, dB, r);      /* dB = s dYᵀ T */
    lt__sgemm(1, 0, r, d_in, n, 1.0f, Gs, r, X, ldx, beta, dA, d_in);   /* dA = (s G)ᵀ X */

    if (dX && n > 0 && d_in > 0 && W && backward_folds(n, d_out)) {
        /* Folded: dX = dY (W + s B A). */
        float *Wf = workspace + r * d_out + 2 * n * r;            /* d_out × d_in */
        fold_weight(d_out, d_in, r, s, W, ldw, A, B, Wf);
        lt__sgemm(0, 0, n, d_in, d_out, 1.0f, dY, lddy, Wf, d_in, 0.0f, dX, lddx);
    } else if (dX && n > 0 && d_in > 0) {
        if (W) lt__sgemm(0, 0, n, d_in, d_out, 1.0f, dY, lddy, W, ldw, 0.0f, dX, lddx);  /* dX = dY W */
        if (big_rank) {
            lt__sgemm(0, 0, n, d_in, r, 1.0f, Gs, r, A, d_in, 1.0f, dX, lddx);     /* dX += (s G) A */
        } else {
            lt_axpy_many_fn axpy = lt__axpy_many();
            #pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK) if(LT_PARALLEL_IF(2.0 * n * r * d_in))
            for (int64_t i = 0; i < n; i++) {
                LT__NOTE_CHUNK(i);
                axpy(dX + i * lddx, Gs + i * r, A, d_in, r, d_in);      /* dx_i += Σ_k s g_ik A[k,:] */
            }
        }
    }
    return LT_OK;
}

lt_status lt_lora_backward(int64_t n, int64_t d_in, int64_t d_out, int64_t r, float s,
                           const float *X, int64_t ldx, const float *W, int64_t ldw,
                           const float *A, const float *B, const float *dY, int64_t lddy,
                           const float *T, float *dA, float *dB, float *dX, int64_t lddx,
                           int accumulate, float *workspace) {
    return lora_backward(n, d_in, d_out, r, s, X, ldx, W, ldw, A, B, dY, lddy, T, dA, dB, dX, lddx,
                         accumulate, workspace, NULL);
}

lt_status lt_lora_backward_params(int64_t n, int64_t d_in, int64_t d_out, int64_t r, float s,
                                  const float *X, int64_t ldx, const float *A, const float *B,
                                  const float *dY, int64_t lddy, const float *T, float *dA, float *dB,
                                  float *sG, int accumulate, float *workspace) {
    LT_CHECK(sG || n == 0, LT_ERR_NULL_POINTER);
    return lora_backward(n, d_in, d_out, r, s, X, ldx, NULL, 0, A, B, dY, lddy, T, dA, dB, NULL, 0,
                         accumulate, workspace, n > 0 ? sG : NULL);
}

/* ---- merge / unmerge ---- */

/* W[o,:] += sign·s Σ_k B[o,k] A[k,:] row by row (merge_row above). */
static lt_status merge_signed(int64_t d_out, int64_t d_in, int64_t r, float s, const float *A,
                              const float *B, float *W, int64_t ldw, float sign) {
    LT_CHECK(A && B && W, LT_ERR_NULL_POINTER);
    LT_CHECK(d_out >= 0 && d_in >= 0 && r >= 1, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(lt__ld_ok(ldw, d_in), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(isfinite(s), LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    if (d_in == 0) return LT_OK;
    lt_axpy_many_fn axpy = lt__axpy_many();
    const float ss = sign * s;
    #pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK)
    for (int64_t o = 0; o < d_out; o++) {
        LT__NOTE_CHUNK(o);
        merge_row(o, d_in, r, ss, A, B, W + o * ldw, axpy);
    }
    return LT_OK;
}

lt_status lt_lora_merge(int64_t d_out, int64_t d_in, int64_t r, float s,
                        const float *A, const float *B, float *W, int64_t ldw) {
    return merge_signed(d_out, d_in, r, s, A, B, W, ldw, 1.0f);
}

lt_status lt_lora_unmerge(int64_t d_out, int64_t d_in, int64_t r, float s,
                          const float *A, const float *B, float *W, int64_t ldw) {
    return merge_signed(d_out, d_in, r, s, A, B, W, ldw, -1.0f);
}

/* ---- micro-kernel entry points ---- */

static lt_status kernel_args(int isa, int64_t ldm, int64_t r, int64_t d) {
    LT_CHECK(isa == LT_ISA_SCALAR || isa == LT_ISA_AVX2 || isa == LT_ISA_AVX512,
             LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(r >= 0 && d >= 0 && ldm >= d, LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    LT_CHECK(lt_isa_supported(isa), LT_ERR_UNSUPPORTED_ISA);
    return LT_OK;
}

lt_status lt_kernel_dot_many(int isa, const float *x, const float *M, int64_t ldm, int64_t r,
                             int64_t d, float *out) {
    LT_CHECK(x && M && out, LT_ERR_NULL_POINTER);
    lt_status st = kernel_args(isa, ldm, r, d);
    if (st != LT_OK) return st;
    lt_dot_many_fn f = lt__dot_many_scalar;
#if defined(__x86_64__)
    if (isa == LT_ISA_AVX2) f = lt__dot_many_avx2;
    if (isa == LT_ISA_AVX512) f = lt__dot_many_avx512;
#endif
    f(x, M, ldm, r, d, out);
    return LT_OK;
}

lt_status lt_kernel_axpy_many(int isa, float *y, const float *coef, const float *M, int64_t ldm,
                              int64_t r, int64_t d) {
    LT_CHECK(y && coef && M, LT_ERR_NULL_POINTER);
    lt_status st = kernel_args(isa, ldm, r, d);
    if (st != LT_OK) return st;
    lt_axpy_many_fn f = lt__axpy_many_scalar;
#if defined(__x86_64__)
    if (isa == LT_ISA_AVX2) f = lt__axpy_many_avx2;
    if (isa == LT_ISA_AVX512) f = lt__axpy_many_avx512;
#endif
    f(y, coef, M, ldm, r, d);
    return LT_OK;
}
