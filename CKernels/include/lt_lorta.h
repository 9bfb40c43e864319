/*
 * lt_lorta.h — LoRTA (low-rank tensor adaptation, CP form) kernels that never build ΔW.
 *
 * One rank-r CP decomposition is shared by every adapted matrix of every layer
 * (docs/math.md §3). Factors, row-major:
 *
 *     A    d_out x r      (one per distinct output size, see "GQA extension" below)
 *     B    r x d_h
 *     C_H  H x r          C_L  L x r          C_M  M x r          s = alpha / r
 *
 * For layer l and matrix type m the input side is split into H head blocks of d_h columns
 * (d_in = H * d_h) and
 *
 *     ΔW_{l,m}[:, h*d_h:(h+1)*d_h] = A · diag(C_H[h] ∘ C_L[l] ∘ C_M[m]) · B.
 *
 * Forward for a batch X (n x d_in, token i, head block x_{i,h}):
 *
 *     P[i,h] = B x_{i,h}                 (n*H x r, row i*H+h)
 *     U[i]   = Σ_h C_H[h] ∘ P[i,h]        (n x r)
 *     c_{l,m} = C_L[l] ∘ C_M[m]           (r)
 *     Y_m   += s (U ∘ c_{l,m}) Aᵀ         (n x d_out)
 *
 * U depends only on X, so the projections that share X (Q, K, V of one layer) share one
 * projection; only c_{l,m} differs.
 *
 * GQA extension (beyond the LoRTA paper, which assumes every adapted matrix is d x d): the
 * matrix types of one adapter may have different output sizes (K and V under grouped-query
 * attention have d_out = H_kv * d_h < d). All other factors stay shared; every distinct output
 * size gets its own A (d_out x r). The kernels take one A pointer (and d_out) per target, so
 * targets with the same output size simply pass the same A. In the paper's case there is one A.
 *
 * Conventions: sizes int64_t; explicit leading dimensions (elements between rows); every entry
 * point validates its arguments and returns an lt_status; nothing aborts, prints or allocates.
 * Kernels that need scratch take a caller-provided workspace (query its size first). OpenMP
 * loops run over rows in fixed chunks and every reduction over rows is done in float64 per
 * fixed chunk and combined in chunk order, so results are bitwise identical for any thread
 * count (BLAS is never called inside a parallel region).
 */
#ifndef LT_LORTA_H
#define LT_LORTA_H

#include <stddef.h>
#include <stdint.h>
#include "lt_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sizes of one LoRTA adapter (the tensor d_out x d_h x H x L x M has rank `rank`). */
typedef struct lt_lorta_dims {
    int64_t rank;      /* r  >= 1 */
    int64_t heads;     /* H  >= 1 */
    int64_t head_dim;  /* d_h >= 1; d_in = H * d_h */
    int64_t layers;    /* L  >= 1 */
    int64_t matrices;  /* M  >= 1 (matrix types; their order is the order of target_modules) */
} lt_lorta_dims;

/* ---- parameter count and reference initialisation --------------------------------------- */

/* Number of trained scalars: r * (Σ_t a_rows[t] + d_h + H + L + M), where a_rows lists the
 * output size of each distinct A (n_a >= 1; one entry in the paper's case, d_out).
 * Writes it to *count. */
lt_status lt_lorta_parameter_count(const lt_lorta_dims *dims, int64_t n_a, const int64_t *a_rows,
                                   int64_t *count);

/* Reference initialisation (as the PEFT-based reference implementation):
 *   A[t] (a_rows[t] x r): kaiming-uniform with a = √5, bound = lt_kaiming_uniform_bound(d_in),
 *        d_in = H * d_h, drawn with lt_rng_uniform(seed, offset) where A[t] uses the counters
 *        after those of A[0..t-1] (so the A's never share random numbers);
 *   B = 0;
 *   C_H, C_L, C_M = c_value everywhere (the reference recipe uses ones: c_value = 1).
 * With B = 0 the initial ΔW is exactly zero; the gradients of B are not. */
lt_status lt_lorta_init(const lt_lorta_dims *dims, int64_t n_a, const int64_t *a_rows,
                        float *const *A, float *B, float *C_H, float *C_L, float *C_M,
                        uint64_t seed, float c_value);

/* ---- forward: projection + head reduction (reads X once) --------------------------------
 * X   n x (H*d_h), leading dimension ldx >= H*d_h
 * B   r x d_h (contiguous)        C_H  H x r (contiguous)
 * U   n x r (contiguous, overwritten)
 * P   n*H x r (contiguous, overwritten; row i*H+h = B x_{i,h}) or NULL when not needed
 *     (the backward needs it: pass it during training).
 * Per row i: for each head h, p = B x_{i,h} (dot_many), U[i] += C_H[h] ∘ p (heads in order). */
lt_status lt_lorta_project_forward(const lt_lorta_dims *dims, int64_t n, const float *X, int64_t ldx,
                                   const float *B, const float *C_H, float *U, float *P);

/* ---- forward: expansion into every output that shares X ----------------------------------
 * n_targets outputs of one layer `layer`, target t being matrix type matrix[t] (0 <= matrix[t]
 * < M, each at most once):
 *   U      n x r (from lt_lorta_project_forward)
 *   A[t]   d_out[t] x r (contiguous; targets with equal d_out pass the same A)
 *   Y[t]   n x d_out[t], leading dimension ldy[t] >= d_out[t]; accumulated:
 *          Y[t] += scale * (U ∘ c_{layer,matrix[t]}) A[t]ᵀ
 * C_L L x r, C_M M x r. Aᵀ is transposed once per call into the workspace
 * (lt_lorta_expand_workspace_size bytes, 64-byte alignment recommended; targets passing the
 * same A pointer share one transposed copy). One pass over each
 * output row (axpy_many with Aᵀ). */
size_t lt_lorta_expand_workspace_size(const lt_lorta_dims *dims, int64_t n_targets, const int64_t *d_out);
lt_status lt_lorta_expand_forward(const lt_lorta_dims *dims, int64_t n, const float *U,
                                  const float *C_L, const float *C_M, float scale, int64_t layer,
                                  int64_t n_targets, const int64_t *matrix, const int64_t *d_out,
                                  const float *const *A, float *const *Y, const int64_t *ldy,
                                  void *workspace, size_t workspace_size);

/* The expansion as low-rank terms for a frozen product to add on its output tiles
 * (lt_lowrank_term, lt_nn.h): coef[t] (n x r, contiguous) = scale * (U ∘ c_{layer,matrix[t]}),
 * AT[t] (r x d_out[t], contiguous) = A[t]ᵀ. The terms
 *   {col_t, d_out[t], kb, coef[t] + k0, r, AT[t] + k0 * d_out[t], d_out[t]}
 * for k0 = 0, 64, 128, … (kb = min(64, r - k0)), target after target, add exactly what
 * lt_lorta_expand_forward adds, bit for bit. Same argument checks as lt_lorta_expand_forward. */
lt_status lt_lorta_expand_terms(const lt_lorta_dims *dims, int64_t n, const float *U,
                                const float *C_L, const float *C_M, float scale, int64_t layer,
                                int64_t n_targets, const int64_t *matrix, const int64_t *d_out,
                                const float *const *A, float *const *coef, float *const *AT);

/* ---- backward of project_forward + expand_forward for one layer ---------------------------
 * Inputs: X (n x H*d_h, ld ldx), U (n x r) and P (n*H x r) saved by the forward, the factors,
 * and dY[t] (n x d_out[t], ld lddy[t]) for the targets of the forward call.
 *   G_t     = dY_t A_t                                    (n x r, per row: dot_many with Aᵀ)
 *   dA_t   += s dY_tᵀ (U ∘ c_t)                            (sgemm, K = n)
 *   g_t     = s Σ_i G_t[i] ∘ U[i]                          (float64, chunk-ordered)
 *   dC_L[l] += g_t ∘ C_M[m_t];   dC_M[m_t] += g_t ∘ C_L[l] (targets in the given order)
 *   dU[i]   = s Σ_t G_t[i] ∘ c_t
 *   E[i,h]  = dU[i] ∘ C_H[h]
 *   dC_H[h] += Σ_i dU[i] ∘ P[i,h]                          (float64, chunk-ordered)
 *   dB      += Eᵀ X_view                                   (sgemm over (n*H) x d_h)
 *   dX      += E B  (viewed as n x d_in; dX may already hold the frozen path dY W)
 * dA[t] are the gradient accumulators of A[t] (d_out[t] x r; targets that share an A pass
 * the same dA pointer). dB r x d_h, dC_H H x r, dC_L L x r, dC_M M x r are accumulated.
 * dX (ld lddx) may be NULL (input gradient not wanted).
 * Workspace: lt_lorta_backward_workspace_size bytes (64-byte alignment recommended). */
size_t lt_lorta_backward_workspace_size(const lt_lorta_dims *dims, int64_t n, int64_t n_targets,
                                        const int64_t *d_out);
lt_status lt_lorta_backward(const lt_lorta_dims *dims, int64_t n, const float *X, int64_t ldx,
                            const float *U, const float *P,
                            const float *B, const float *C_H, const float *C_L, const float *C_M,
                            float scale, int64_t layer,
                            int64_t n_targets, const int64_t *matrix, const int64_t *d_out,
                            const float *const *A, const float *const *dY, const int64_t *lddy,
                            float *const *dA, float *dB, float *dC_H, float *dC_L, float *dC_M,
                            float *dX, int64_t lddx,
                            void *workspace, size_t workspace_size);
/* lt_lorta_backward without dX: the parameter gradients, and E (n*H x r, contiguous,
 * E[i*H+h] = dU[i] ∘ C_H[h]) for the caller's input gradient, whose terms are
 *   {h * d_h, d_h, r, E + h * r, H * r, B, d_h}   for h = 0 … H-1
 * (lt_lowrank_term, lt_nn.h): applied in that order after the frozen part they give
 * lt_lorta_backward's dX bit for bit. Same workspace. */
lt_status lt_lorta_backward_params(const lt_lorta_dims *dims, int64_t n, const float *X, int64_t ldx,
                                   const float *U, const float *P,
                                   const float *B, const float *C_H, const float *C_L, const float *C_M,
                                   float scale, int64_t layer,
                                   int64_t n_targets, const int64_t *matrix, const int64_t *d_out,
                                   const float *const *A, const float *const *dY, const int64_t *lddy,
                                   float *const *dA, float *dB, float *dC_H, float *dC_L, float *dC_M,
                                   float *E, void *workspace, size_t workspace_size);

/* ---- merge / unmerge ----------------------------------------------------------------------
 * W (d_out x H*d_h, ld ldw) += factor * A diag(c_{l,m}) KRᵀ, KR row h*d_h+j = C_H[h] ∘ B[:,j],
 * i.e. W[o, h*d_h+j] += Σ_k (factor A[o,k] c[k] C_H[h,k]) B[k,j]: one axpy_many per (o, h),
 * rows of W in parallel. factor = s merges, factor = -s unmerges (the update is computed with
 * the same operations, only negated, so unmerge undoes merge up to one rounding of W). */
lt_status lt_lorta_merge_slice(const lt_lorta_dims *dims, int64_t d_out, const float *A,
                               const float *B, const float *C_H, const float *C_L, const float *C_M,
                               int64_t layer, int64_t matrix, float factor, float *W, int64_t ldw);

/* Every slice: W[l * M + m] (d_out[m] x H*d_h, ld ldw[m]) for l < L, m < M, with A[m] the A of
 * matrix type m. A NULL W[l*M+m] skips that slice (a matrix type absent from some layers). */
lt_status lt_lorta_merge_all(const lt_lorta_dims *dims, const int64_t *d_out, const float *const *A,
                             const float *B, const float *C_H, const float *C_L, const float *C_M,
                             float factor, float *const *W, const int64_t *ldw);

#ifdef __cplusplus
}
#endif
#endif /* LT_LORTA_H */
