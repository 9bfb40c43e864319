/*
 * lorta.c — LoRTA forward (projection + head reduction, expansion) and backward, side by side
 * (see lt_lorta.h and docs/math.md §3 for the math). ΔW is never built.
 *
 * Determinism: every OpenMP loop runs over rows (or fixed chunks of LT_ROWS_PER_CHUNK rows);
 * a row is always computed by the same code whichever thread runs it, and reductions over rows
 * go through per-chunk float64 partials combined serially in chunk order. BLAS (sgemm) is only
 * called outside parallel regions.
 */
#include "lt_lorta.h"
#include "internal.h"
#include "lorta_internal.h"
#include "simd.h"

#include <cblas.h>
#include <string.h>

/* ======================================================================================
 * Projection + head reduction
 *   X (n x H*d_h, ld ldx), B (r x d_h), C_H (H x r)  ->  U (n x r), optionally P (n*H x r)
 *   P[i*H+h] = B x_{i,h};  U[i] = Σ_h C_H[h] ∘ P[i*H+h]
 * ====================================================================================== */
lt_status lt_lorta_project_forward(const lt_lorta_dims *dims, int64_t n, const float *X, int64_t ldx,
                                   const float *B, const float *C_H, float *U, float *P) {
    LT_CHECK(dims, LT_ERR_NULL_POINTER);
    lt_status st = lt__lorta_check_dims(dims);
    if (st != LT_OK) return st;
    const int64_t r = dims->rank, H = dims->heads, dh = dims->head_dim, din = H * dh;
    LT_CHECK(n >= 0, LT_ERR_INVALID_ARGUMENT);
    if (n == 0) return LT_OK;
    LT_CHECK(X && B && C_H && U, LT_ERR_NULL_POINTER);
    LT_CHECK(ldx >= din, LT_ERR_INVALID_ARGUMENT);
    st = lt__ensure_init();
    if (st != LT_OK) return st;
    if (dh * r <= LT_LORTA_BT_MAX) {
        /* Small B (the usual case: d_h ≤ 128, r ≤ 32): hold Bᵀ (d_h x r) and compute each
         * p_h = Σ_j x[h·d_h + j] Bᵀ[j,:] — vector lanes run over r, so there are no horizontal
         * reductions (dot_many would need r of them per head). All heads of a row go to one
         * axpy_block (the heads are its rows, x_i seen as H x d_h): it runs several heads'
         * chains side by side (one chain per head was latency-bound: 4–5× slower at d_h = 32,
         * r = 8), and each element is still one fma chain over j in order from zero, added to
         * the zeroed p — the bits of axpy_many per head. */
        float Bt[LT_LORTA_BT_MAX] __attribute__((aligned(64)));
        for (int64_t k = 0; k < r; k++)
            for (int64_t j = 0; j < dh; j++) Bt[j * r + k] = B[k * dh + j];
        const lt_axpy_block_fn axpy = lt__axpy_block();
        const int64_t group = LT_LORTA_BT_MAX / r;          /* heads whose p's fit in pbuf */
        #pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK) if(LT_PARALLEL_IF(2.0 * n * din * r))
        for (int64_t i = 0; i < n; i++) {
            float pbuf[LT_LORTA_BT_MAX];
            float *u = U + i * r;
            for (int64_t k = 0; k < r; k++) u[k] = 0.0f;
            for (int64_t h0 = 0; h0 < H; h0 += group) {
                const int64_t hn = H - h0 < group ? H - h0 : group;
                float *p = P ? P + (i * H + h0) * r : pbuf;
                for (int64_t q = 0; q < hn * r; q++) p[q] = 0.0f;
                axpy(hn, dh, r, X + i * ldx + h0 * dh, dh, Bt, r, p, r);
                for (int64_t h = 0; h < hn; h++) {
                    const float *ch = C_H + (h0 + h) * r, *ph = p + h * r;
                    for (int64_t k = 0; k < r; k++) u[k] += ch[k] * ph[k];
                }
            }
        }
        return LT_OK;
    }
    const lt_dot_many_fn dot = lt__dot_many();

    #pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK)
    for (int64_t i = 0; i < n; i++) {
        float pbuf[LT_LORTA_KBLOCK];
        float *u = U + i * r;
        for (int64_t k = 0; k < r; k++) u[k] = 0.0f;
        for (int64_t h = 0; h < H; h++) {
            const float *x = X + i * ldx + h * dh;
            const float *ch = C_H + h * r;
            for (int64_t k0 = 0; k0 < r; k0 += LT_LORTA_KBLOCK) {
                const int64_t kb = r - k0 < LT_LORTA_KBLOCK ? r - k0 : LT_LORTA_KBLOCK;
                float *p = P ? P + (i * H + h) * r + k0 : pbuf;
                dot(x, B + k0 * dh, dh, kb, dh, p);
                for (int64_t k = 0; k < kb; k++) u[k0 + k] += ch[k0 + k] * p[k];
            }
        }
    }
    return LT_OK;
}

/* ======================================================================================
 * Expansion for the targets sharing one input
 *   U (n x r), A_t (d_t x r), c_t = C_L[l] ∘ C_M[m_t]   ->   Y_t (n x d_t) += s (U ∘ c_t) A_tᵀ
 * ====================================================================================== */

/* Validates the per-target arrays shared by expand and backward. */
static lt_status check_targets(const lt_lorta_dims *dims, int64_t layer, int64_t T,
                               const int64_t *matrix, const int64_t *d_out, const float *const *A) {
    LT_CHECK(T >= 1, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(matrix && d_out && A, LT_ERR_NULL_POINTER);
    LT_CHECK(layer >= 0 && layer < dims->layers, LT_ERR_INVALID_ARGUMENT);
    for (int64_t t = 0; t < T; t++) {
        LT_CHECK(A[t], LT_ERR_NULL_POINTER);
        LT_CHECK(matrix[t] >= 0 && matrix[t] < dims->matrices, LT_ERR_INVALID_ARGUMENT);
        LT_CHECK(d_out[t] >= 1 && d_out[t] <= LT_LORTA_MAX_DIM, LT_ERR_INVALID_ARGUMENT);
        for (int64_t u = 0; u < t; u++) {
            LT_CHECK(matrix[u] != matrix[t], LT_ERR_INVALID_ARGUMENT);       /* each type once */
            if (A[u] == A[t]) LT_CHECK(d_out[u] == d_out[t], LT_ERR_INVALID_ARGUMENT);
        }
    }
    return LT_OK;
}

/* Bytes of the Aᵀ copies (upper bound: one per target), 64-byte aligned. */
static size_t at_bytes(int64_t r, int64_t T, const int64_t *d_out) {
    size_t b = 0;
    for (int64_t t = 0; t < T; t++) b += lt__align64((size_t)(r * d_out[t]) * sizeof(float));
    return b;
}

/* Transposes every distinct A_t (d_t x r) into AT (r x d_t); AT[t] points into ws.
 * Targets that pass the same A share one copy. Returns the bytes used. */
static size_t transpose_As(int64_t r, int64_t T, const int64_t *d_out, const float *const *A,
                           char *ws, const float **AT) {
    size_t used = 0;
    for (int64_t t = 0; t < T; t++) {
        AT[t] = NULL;
        for (int64_t u = 0; u < t; u++)
            if (A[u] == A[t]) { AT[t] = AT[u]; break; }
        if (AT[t]) continue;
        float *dst = (float *)(ws + used);
        const int64_t d = d_out[t];
        const float *a = A[t];
        for (int64_t o = 0; o < d; o++)
            for (int64_t k = 0; k < r; k++) dst[k * d + o] = a[o * r + k];
        AT[t] = dst;
        used += lt__align64((size_t)(r * d) * sizeof(float));
    }
    return used;
}

size_t lt_lorta_expand_workspace_size(const lt_lorta_dims *dims, int64_t n_targets, const int64_t *d_out) {
    if (!dims || !d_out || n_targets < 1 || n_targets > LT_LORTA_MAX_TARGETS) return 0;
    if (lt__lorta_check_dims(dims) != LT_OK) return 0;
    for (int64_t t = 0; t < n_targets; t++)
        if (d_out[t] < 1 || d_out[t] > LT_LORTA_MAX_DIM) return 0;
    return at_bytes(dims->rank, n_targets, d_out)
         + lt__align64((size_t)(n_targets * dims->rank) * sizeof(float));
}

/* The checks the expansion and its terms share: sizes, targets, scale, C_L and C_M. */
static lt_status expand_check(const lt_lorta_dims *dims, int64_t n, const float *C_L, const float *C_M, float scale,
                              int64_t layer, int64_t n_targets, const int64_t *matrix, const int64_t *d_out,
                              const float *const *A) {
    LT_CHECK(dims, LT_ERR_NULL_POINTER);
    lt_status st = lt__lorta_check_dims(dims);
    if (st != LT_OK) return st;
    LT_CHECK(n >= 0 && n_targets <= LT_LORTA_MAX_TARGETS, LT_ERR_INVALID_ARGUMENT);
    st = check_targets(dims, layer, n_targets, matrix, d_out, A);
    if (st != LT_OK) return st;
    LT_CHECK(lt__finite(scale), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(C_L && C_M, LT_ERR_NULL_POINTER);
    return LT_OK;
}

lt_status lt_lorta_expand_forward(const lt_lorta_dims *dims, int64_t n, const float *U,
                                  const float *C_L, const float *C_M, float scale, int64_t layer,
                                  int64_t n_targets, const int64_t *matrix, const int64_t *d_out,
                                  const float *const *A, float *const *Y, const int64_t *ldy,
                                  void *workspace, size_t workspace_size) {
    lt_status st = expand_check(dims, n, C_L, C_M, scale, layer, n_targets, matrix, d_out, A);
    if (st != LT_OK) return st;
    LT_CHECK(Y && ldy, LT_ERR_NULL_POINTER);
    for (int64_t t = 0; t < n_targets; t++) {
        LT_CHECK(Y[t] || n == 0, LT_ERR_NULL_POINTER);
        LT_CHECK(ldy[t] >= d_out[t], LT_ERR_INVALID_ARGUMENT);
    }
    if (n == 0) return LT_OK;
    LT_CHECK(U, LT_ERR_NULL_POINTER);
    LT_CHECK(workspace, LT_ERR_NULL_POINTER);
    LT_CHECK(workspace_size >= lt_lorta_expand_workspace_size(dims, n_targets, d_out), LT_ERR_INVALID_ARGUMENT);
    st = lt__ensure_init();
    if (st != LT_OK) return st;

    const int64_t r = dims->rank, T = n_targets;
    const float *AT[LT_LORTA_MAX_TARGETS];
    char *ws = (char *)workspace;
    size_t used = transpose_As(r, T, d_out, A, ws, AT);
    float *c = (float *)(ws + used);                       /* T x r: c_t = C_L[l] ∘ C_M[m_t] */
    for (int64_t t = 0; t < T; t++)
        for (int64_t k = 0; k < r; k++) c[t * r + k] = C_L[layer * r + k] * C_M[matrix[t] * r + k];
    /* Per chunk of LT_ROWS_PER_CHUNK rows, target and block of ranks: the rows' coefficients
     * s·(u_i ∘ c_t), then one axpy_block over the chunk's rows (each row of Aᵀ is loaded once for
     * several rows; every element is the chain over k that axpy_many gives it). */
    const lt_axpy_block_fn axpy = lt__axpy_block();
    double flops = 0;
    for (int64_t t = 0; t < T; t++) flops += 2.0 * n * r * d_out[t];
    const int64_t chunks = (n + LT_ROWS_PER_CHUNK - 1) / LT_ROWS_PER_CHUNK;

    #pragma omp parallel for schedule(static, 1) if(LT_PARALLEL_IF(flops))
    for (int64_t q = 0; q < chunks; q++) {
        float coef[LT_ROWS_PER_CHUNK * LT_LORTA_KBLOCK];
        const int64_t i0 = q * LT_ROWS_PER_CHUNK;
        const int64_t rows = n - i0 < LT_ROWS_PER_CHUNK ? n - i0 : LT_ROWS_PER_CHUNK;
        LT__NOTE_CHUNK(i0);
        for (int64_t t = 0; t < T; t++) {
            const int64_t d = d_out[t];
            for (int64_t k0 = 0; k0 < r; k0 += LT_LORTA_KBLOCK) {
                const int64_t kb = r - k0 < LT_LORTA_KBLOCK ? r - k0 : LT_LORTA_KBLOCK;
                for (int64_t i = 0; i < rows; i++) {
                    const float *u = U + (i0 + i) * r;
                    for (int64_t k = 0; k < kb; k++) coef[i * kb + k] = scale * (u[k0 + k] * c[t * r + k0 + k]);
                }
                axpy(rows, kb, d, coef, kb, AT[t] + k0 * d, d, Y[t] + i0 * ldy[t], ldy[t]);
            }
        }
    }
    return LT_OK;
}

/* The expansion as low-rank terms (lt_nn.h): coef_t = s·(U ∘ c_t) and AT_t = A_tᵀ, the values
 * lt_lorta_expand_forward forms (its coefficient blocks are the columns k0 ..< k0 + 64 of coef_t). */
lt_status lt_lorta_expand_terms(const lt_lorta_dims *dims, int64_t n, const float *U,
                                const float *C_L, const float *C_M, float scale, int64_t layer,
                                int64_t n_targets, const int64_t *matrix, const int64_t *d_out,
                                const float *const *A, float *const *coef, float *const *AT) {
    lt_status st = expand_check(dims, n, C_L, C_M, scale, layer, n_targets, matrix, d_out, A);
    if (st != LT_OK) return st;
    LT_CHECK(n <= LT_LORTA_MAX_DIM, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(coef && AT, LT_ERR_NULL_POINTER);
    for (int64_t t = 0; t < n_targets; t++) LT_CHECK(AT[t] && (coef[t] || n == 0), LT_ERR_NULL_POINTER);
    LT_CHECK(U || n == 0, LT_ERR_NULL_POINTER);
    st = lt__ensure_init();
    if (st != LT_OK) return st;
    const int64_t r = dims->rank;
    for (int64_t t = 0; t < n_targets; t++) {
        const int64_t d = d_out[t];
        for (int64_t o = 0; o < d; o++)
            for (int64_t k = 0; k < r; k++) AT[t][k * d + o] = A[t][o * r + k];
        float c[LT_LORTA_KBLOCK];
        for (int64_t k0 = 0; k0 < r; k0 += LT_LORTA_KBLOCK) {
            const int64_t kb = r - k0 < LT_LORTA_KBLOCK ? r - k0 : LT_LORTA_KBLOCK;
            for (int64_t k = 0; k < kb; k++) c[k] = C_L[layer * r + k0 + k] * C_M[matrix[t] * r + k0 + k];
            float *ct = coef[t];
            #pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK) if(LT_PARALLEL_IF(2.0 * n * kb))
            for (int64_t i = 0; i < n; i++)
                for (int64_t k = 0; k < kb; k++) ct[i * r + k0 + k] = scale * (U[i * r + k0 + k] * c[k]);
        }
    }
    return LT_OK;
}

/* ======================================================================================
 * Backward of projection + expansion for one layer (see lt_lorta.h for the formulas).
 * Workspace layout (each part 64-byte aligned):
 *   AT      Σ_t r x d_t   floats   transposed A's
 *   c       T x r         floats   c_t
 *   V       T x n x r     floats   V_t = U ∘ c_t (right operand of dA_t's sgemm)
 *   G       n x T x r     floats   G_t[i] = dY_t[i] A_t
 *   dU      n x r         floats
 *   E       n*H x r       floats   E[i*H+h] = dU[i] ∘ C_H[h]
 *   pg      nch x T x r   doubles  per-chunk Σ_i G_t[i] ∘ U[i]
 *   ph      nch x H x r   doubles  per-chunk Σ_i dU[i] ∘ P[i,h]
 * ====================================================================================== */

typedef struct {
    size_t at, c, V, G, dU, E, pg, ph, total;
} bw_layout;

static bw_layout backward_layout(const lt_lorta_dims *dims, int64_t n, int64_t T, const int64_t *d_out) {
    const int64_t r = dims->rank, H = dims->heads;
    const int64_t nch = (n + LT_ROWS_PER_CHUNK - 1) / LT_ROWS_PER_CHUNK;
    bw_layout L;
    size_t off = 0;
    L.at = off; off += at_bytes(r, T, d_out);
    L.c = off;  off += lt__align64((size_t)(T * r) * sizeof(float));
    L.V = off;  off += lt__align64((size_t)(T * n * r) * sizeof(float));
    L.G = off;  off += lt__align64((size_t)(n * T * r) * sizeof(float));
    L.dU = off; off += lt__align64((size_t)(n * r) * sizeof(float));
    L.E = off;  off += lt__align64((size_t)(n * H * r) * sizeof(float));
    L.pg = off; off += lt__align64((size_t)(nch * T * r) * sizeof(double));
    L.ph = off; off += lt__align64((size_t)(nch * H * r) * sizeof(double));
    L.total = off;
    return L;
}

size_t lt_lorta_backward_workspace_size(const lt_lorta_dims *dims, int64_t n, int64_t n_targets,
                                        const int64_t *d_out) {
    if (!dims || !d_out || n < 0 || n > LT_LORTA_MAX_DIM || n_targets < 1 || n_targets > LT_LORTA_MAX_TARGETS)
        return 0;
    if (lt__lorta_check_dims(dims) != LT_OK) return 0;
    for (int64_t t = 0; t < n_targets; t++)
        if (d_out[t] < 1 || d_out[t] > LT_LORTA_MAX_DIM) return 0;
    return backward_layout(dims, n, n_targets, d_out).total;
}

/* The backward; with E_out (n·H × r) the coefficients E of the input gradient's terms are
 * written there instead of being applied to dX (dX is then NULL). */
static lt_status lorta_backward(const lt_lorta_dims *dims, int64_t n, const float *X, int64_t ldx,
                                const float *U, const float *P,
                                const float *B, const float *C_H, const float *C_L, const float *C_M,
                                float scale, int64_t layer,
                                int64_t n_targets, const int64_t *matrix, const int64_t *d_out,
                                const float *const *A, const float *const *dY, const int64_t *lddy,
                                float *const *dA, float *dB, float *dC_H, float *dC_L, float *dC_M,
                                float *dX, int64_t lddx, float *E_out,
                                void *workspace, size_t workspace_size) {
    LT_CHECK(dims, LT_ERR_NULL_POINTER);
    lt_status st = lt__lorta_check_dims(dims);
    if (st != LT_OK) return st;
    LT_CHECK(n >= 0 && n <= LT_LORTA_MAX_DIM && n_targets <= LT_LORTA_MAX_TARGETS, LT_ERR_INVALID_ARGUMENT);
    st = check_targets(dims, layer, n_targets, matrix, d_out, A);
    if (st != LT_OK) return st;
    LT_CHECK(lt__finite(scale), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(B && C_H && C_L && C_M && dY && lddy && dA && dB && dC_H && dC_L && dC_M, LT_ERR_NULL_POINTER);
    const int64_t r = dims->rank, H = dims->heads, dh = dims->head_dim, din = H * dh, T = n_targets;
    for (int64_t t = 0; t < T; t++) {
        LT_CHECK(dA[t], LT_ERR_NULL_POINTER);
        LT_CHECK(dY[t] || n == 0, LT_ERR_NULL_POINTER);
        LT_CHECK(lddy[t] >= d_out[t] && lddy[t] <= LT_LORTA_MAX_DIM, LT_ERR_INVALID_ARGUMENT);
        for (int64_t u = 0; u < t; u++)           /* shared A <=> shared accumulator */
            LT_CHECK((A[u] == A[t]) == (dA[u] == dA[t]), LT_ERR_INVALID_ARGUMENT);
    }
    if (n == 0) return LT_OK;
    LT_CHECK(X && U && P, LT_ERR_NULL_POINTER);
    LT_CHECK(ldx >= din && ldx <= LT_LORTA_MAX_DIM, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(n * H <= LT_LORTA_MAX_DIM, LT_ERR_INVALID_ARGUMENT);       /* sgemm K of dB */
    LT_CHECK(!dX || lddx >= din, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(workspace, LT_ERR_NULL_POINTER);
    const bw_layout L = backward_layout(dims, n, T, d_out);
    LT_CHECK(workspace_size >= L.total, LT_ERR_INVALID_ARGUMENT);
    st = lt__ensure_init();
    if (st != LT_OK) return st;

    char *ws = (char *)workspace;
    const float *AT[LT_LORTA_MAX_TARGETS];
    transpose_As(r, T, d_out, A, ws + L.at, AT);
    float *c = (float *)(ws + L.c), *V = (float *)(ws + L.V), *G = (float *)(ws + L.G);
    float *dU = (float *)(ws + L.dU), *E = E_out ? E_out : (float *)(ws + L.E);
    double *pg = (double *)(ws + L.pg), *ph = (double *)(ws + L.ph);
    for (int64_t t = 0; t < T; t++)
        for (int64_t k = 0; k < r; k++) c[t * r + k] = C_L[layer * r + k] * C_M[matrix[t] * r + k];
    const int64_t nch = (n + LT_ROWS_PER_CHUNK - 1) / LT_ROWS_PER_CHUNK;
    const lt_dot_many_fn dot = lt__dot_many();
    const lt_axpy_many_fn axpy = lt__axpy_many();

    /* One pass over the rows: G, V, dU, E, dX += E B, and the chunk partials. */
    #pragma omp parallel for schedule(static, 1)
    for (int64_t ch = 0; ch < nch; ch++) {
        double *pgc = pg + ch * T * r, *phc = ph + ch * H * r;
        for (int64_t q = 0; q < T * r; q++) pgc[q] = 0.0;
        for (int64_t q = 0; q < H * r; q++) phc[q] = 0.0;
        const int64_t i_end = (ch + 1) * LT_ROWS_PER_CHUNK < n ? (ch + 1) * LT_ROWS_PER_CHUNK : n;
        for (int64_t i = ch * LT_ROWS_PER_CHUNK; i < i_end; i++) {
            const float *u = U + i * r;
            float *du = dU + i * r;
            for (int64_t k = 0; k < r; k++) du[k] = 0.0f;
            for (int64_t t = 0; t < T; t++) {
                float *g = G + (i * T + t) * r;
                const float *ct = c + t * r;
                dot(dY[t] + i * lddy[t], AT[t], d_out[t], r, d_out[t], g);   /* G_t[i] = dY_t[i] A_t */
                float *v = V + (t * n + i) * r;
                for (int64_t k = 0; k < r; k++) {
                    pgc[t * r + k] += (double)g[k] * (double)u[k];
                    du[k] += g[k] * ct[k];
                    v[k] = u[k] * ct[k];
                }
            }
            for (int64_t k = 0; k < r; k++) du[k] *= scale;
            for (int64_t h = 0; h < H; h++) {
                float *e = E + (i * H + h) * r;
                const float *chh = C_H + h * r, *p = P + (i * H + h) * r;
                for (int64_t k = 0; k < r; k++) {
                    e[k] = du[k] * chh[k];
                    phc[h * r + k] += (double)du[k] * (double)p[k];
                }
                if (dX) axpy(dX + i * lddx + h * dh, e, B, dh, r, dh);      /* dX_{i,h} += E[i,h] B */
            }
        }
    }

    /* Ordered combination of the chunk partials (serial, chunk order). */
    for (int64_t t = 0; t < T; t++) {
        const int64_t m = matrix[t];
        for (int64_t k = 0; k < r; k++) {
            double g = 0.0;
            for (int64_t ch = 0; ch < nch; ch++) g += pg[(ch * T + t) * r + k];
            g *= (double)scale;                                             /* g_t[k] */
            dC_L[layer * r + k] += (float)(g * (double)C_M[m * r + k]);
            dC_M[m * r + k] += (float)(g * (double)C_L[layer * r + k]);
        }
    }
    for (int64_t h = 0; h < H; h++)
        for (int64_t k = 0; k < r; k++) {
            double a = 0.0;
            for (int64_t ch = 0; ch < nch; ch++) a += ph[(ch * H + h) * r + k];
            dC_H[h * r + k] += (float)a;
        }

    /* dA_t += s dY_tᵀ V_t   (d_t x r) = (d_t x n)(n x r) */
    for (int64_t t = 0; t < T; t++)
        lt__sgemm(1, 0, d_out[t], r, n, scale, dY[t], lddy[t], V + t * n * r, r, 1.0f, dA[t], r);

    /* dB += Eᵀ X_view   (r x d_h) = (r x n*H)(n*H x d_h) */
    if (ldx == din) {
        lt__sgemm(1, 0, r, dh, n * H, 1.0f, E, r, X, dh, 1.0f, dB, dh);
    } else {                                    /* strided X: one sgemm per head (K = n) */
        for (int64_t h = 0; h < H; h++)
            lt__sgemm(1, 0, r, dh, n, 1.0f, E + h * r, H * r, X + h * dh, ldx, 1.0f, dB, dh);
    }
    return LT_OK;
}

lt_status lt_lorta_backward(const lt_lorta_dims *dims, int64_t n, const float *X, int64_t ldx,
                            const float *U, const float *P,
                            const float *B, const float *C_H, const float *C_L, const float *C_M,
                            float scale, int64_t layer,
                            int64_t n_targets, const int64_t *matrix, const int64_t *d_out,
                            const float *const *A, const float *const *dY, const int64_t *lddy,
                            float *const *dA, float *dB, float *dC_H, float *dC_L, float *dC_M,
                            float *dX, int64_t lddx,
                            void *workspace, size_t workspace_size) {
    return lorta_backward(dims, n, X, ldx, U, P, B, C_H, C_L, C_M, scale, layer, n_targets, matrix, d_out, A,
                          dY, lddy, dA, dB, dC_H, dC_L, dC_M, dX, lddx, NULL, workspace, workspace_size);
}

lt_status lt_lorta_backward_params(const lt_lorta_dims *dims, int64_t n, const float *X, int64_t ldx,
                                   const float *U, const float *P,
                                   const float *B, const float *C_H, const float *C_L, const float *C_M,
                                   float scale, int64_t layer,
                                   int64_t n_targets, const int64_t *matrix, const int64_t *d_out,
                                   const float *const *A, const float *const *dY, const int64_t *lddy,
                                   float *const *dA, float *dB, float *dC_H, float *dC_L, float *dC_M,
                                   float *E, void *workspace, size_t workspace_size) {
    LT_CHECK(E || n == 0, LT_ERR_NULL_POINTER);
    return lorta_backward(dims, n, X, ldx, U, P, B, C_H, C_L, C_M, scale, layer, n_targets, matrix, d_out, A,
                          dY, lddy, dA, dB, dC_H, dC_L, dC_M, NULL, 0, n > 0 ? E : NULL, workspace, workspace_size);
}
