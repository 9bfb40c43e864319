/*
 * lt_nn.h — neural-network kernels of the transformer models: for the BERT encoder embeddings,
 * linear layers with bias and residual, LayerNorm, GELU, multi-head self-attention with a
 * padding mask, masked mean pooling and softmax cross-entropy; for Llama-family decoders
 * RMSNorm, rotary position embedding, the SwiGLU gate and causal grouped-query attention with
 * a key/value cache. Each forward sits beside its backward (llm.c style).
 *
 * Conventions (as the rest of the library, see lt_lora.h):
 *   - row-major; `ld*` = leading dimension (elements between consecutive rows, >= row length);
 *   - sizes are int64_t; every entry point validates its arguments and returns an lt_status
 *     (LT_ERR_NULL_POINTER for a missing required pointer, LT_ERR_INVALID_ARGUMENT for a bad
 *     size, stride, id or label); nothing aborts, prints or allocates; the kernels that need
 *     scratch memory take a caller workspace sized by a `*_workspace_size` query (floats);
 *   - output buffers must not overlap inputs unless a function says so;
 *   - results are bitwise identical for any thread count: OpenMP loops run over rows (or
 *     (sequence, head) pairs, or column blocks) with a fixed schedule, every output element is
 *     computed by the same code in the same order whichever thread runs it, and there are no
 *     atomics or cross-thread float reductions. The GEMM (lt_gemm_f32) is never called inside
 *     an OpenMP region and splits a product over output blocks, never over the summed
 *     dimension (so does OpenBLAS, selected by LORTA_GEMM=openblas, on the cores the README's
 *     "Determinism" names).
 *   - long sums use double accumulators: LayerNorm statistics (two-pass mean then variance,
 *     in double), LayerNorm parameter gradients, softmax normalisers, pooling sums, the
 *     cross-entropy loss, RMSNorm statistics. Dot products of length d_h (attention) use the
 *     float SIMD micro-kernels of simd.h (vector-lane partial sums), so the attention results
 *     depend (within rounding) on the active ISA, never on the thread count.
 *
 * Notation: n rows (tokens); B sequences of T tokens (n = B·T, sequence b owns rows b·T…b·T+T−1);
 * d model width; H heads of width d_h (d = H·d_h, head h owns columns h·d_h…(h+1)·d_h−1).
 */
#ifndef LT_NN_H
#define LT_NN_H

#include <stdint.h>
#include "lt_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- embeddings ------------------------------------------------------------------------------
 * forward:  Y[b·T + t, :] = word[ids[b·T+t], :] + pos[t, :] + type[tt, :]
 *   ids    [B·T] int32, each in 0 ..< vocab           (LT_ERR_INVALID_ARGUMENT otherwise)
 *   word   [vocab × d]   pos [max_pos × d] (T <= max_pos)   type_row [d] (one token-type row,
 *          BERT token_type_id 0 for single sentences; nullable = no token-type term)
 *   Y      [B·T × d] (ld ldy)
 * Summation order per element: (word + pos) + type, as transformers does. The embeddings are
 * frozen here, so there is no backward (their gradient would be a scatter-add into `word`). */
lt_status lt_embeddings_forward(int64_t B, int64_t T, int64_t d, const int32_t *ids,
                                const float *word, int64_t vocab,
                                const float *pos, int64_t max_pos,
                                const float *type_row,
                                float *Y, int64_t ldy);

/* ---- linear layer (frozen weight) ------------------------------------------------------------
 * forward:  Y[n × d_out] = X[n × d_in] Wᵀ (+ bias[d_out]) (+ R[n × d_out])
 *   W [d_out × d_in] (ld ldw); bias and R nullable. R may alias Y exactly (R == Y, ldr == ldy:
 *   Y += X Wᵀ + bias). Bias and residual are added to each tile of the GEMM's output while it is
 *   in cache (y = P + (r + b)); where the GEMM core declines (LORTA_GEMM=openblas, narrow outputs,
 *   R == Y) they are written first and one GEMM (lt_gemm_f32) adds on top with beta = 1 — the
 *   same bits.
 * backward (input gradient only; W frozen):
 *   dX[n × d_in] (=|+=) dY[n × d_out] W          accumulate = 0 overwrites dX, 1 adds to it.
 * backward of the parameters (for a trainable layer such as a classification head):
 *   dW[d_out × d_in] (=|+=) dYᵀ X,  db[d_out] (=|+=) Σ_i dY[i, :] (double accumulators,
 *   OpenMP over output columns); dW and db nullable. */
lt_status lt_linear_forward(int64_t n, int64_t d_in, int64_t d_out,
                            const float *X, int64_t ldx,
                            const float *W, int64_t ldw,
                            const float *bias,
                            const float *R, int64_t ldr,
                            float *Y, int64_t ldy);
lt_status lt_linear_backward_input(int64_t n, int64_t d_in, int64_t d_out,
                                   const float *dY, int64_t lddy,
                                   const float *W, int64_t ldw,
                                   float *dX, int64_t lddx, int accumulate);
lt_status lt_linear_backward_params(int64_t n, int64_t d_in, int64_t d_out,
                                    const float *dY, int64_t lddy,
                                    const float *X, int64_t ldx,
                                    float *dW, float *db, int accumulate);

/* ---- low-rank adapter term alone (LoRA's ΔW = s·B A without the frozen GEMM) -------------------
 * For adapters added on top of a fused frozen GEMM (Q|K|V as one n × 3d product): the frozen
 * part runs as one lt_linear_forward / lt_linear_backward_input over all projections, and these
 * add each adapter's term to its column slice.
 * forward:          Y[n × d_out] (=|+=) s · (X Aᵀ) Bᵀ      X [n × d_in] (ld ldx)
 * backward (input): dX[n × d_in] (=|+=) s · (dY B) A       dY [n × d_out] (ld lddy)
 *   A [r × d_in], B [d_out × r] contiguous (lt_lora.h layout); accumulate = 0 overwrites,
 *   1 adds. Per row and chunk of 64 ranks: the chunk's r-vector by dot_many (x_i against the
 *   rows of A, or dy_i against the rows of s·Bᵀ), then one axpy_many; OpenMP over rows (fixed
 *   chunks), so the bits do not depend on the thread count. r >= 1; outputs must not overlap
 *   the inputs. O(n·r·(d_in + d_out)).
 * workspace: lt_lowrank_workspace_size floats (r · d_out: s·Bᵀ). */
lt_status lt_lowrank_workspace_size(int64_t d_in, int64_t d_out, int64_t r, int64_t *floats);
lt_status lt_lowrank_forward(int64_t n, int64_t d_in, int64_t d_out, int64_t r, float s,
                             const float *X, int64_t ldx,
                             const float *A, const float *B,
                             float *Y, int64_t ldy, int accumulate, float *workspace);
lt_status lt_lowrank_backward_input(int64_t n, int64_t d_in, int64_t d_out, int64_t r, float s,
                                    const float *dY, int64_t lddy,
                                    const float *A, const float *B,
                                    float *dX, int64_t lddx, int accumulate, float *workspace);

/* ---- low-rank terms on a product's output tiles ---------------------------------------------
 * A term adds a rank-`rank` product to the columns col ..< col + width of an output Y:
 *     Y[i, col + j] = Y[i, col + j] + a_ij,   a_ij = Σ_{k < rank} coef[i·ldcoef + k] · M[k·ldm + j]
 * with a_ij one chain of fused multiply-adds in k order from 0 (separately rounded products on
 * the portable ISA) and one rounded add: per row exactly what one call of the axpy micro-kernel
 * gives. Terms are applied in the order given, so an adapter's update is a list of terms:
 *   LoRA forward:   coef = T = X Aᵀ (n × r), M = s·Bᵀ (r × d_out), one term per chunk of
 *                   LT_LOWRANK_RCHUNK ranks (lt_lowrank_forward's chunks; lt_lowrank_prepare);
 *   LoRA dX:        coef = s·G = s·dY B (n × r), M = A (r × d_in), one term (lt_lora_backward_params);
 *   LoRTA forward:  coef = s·(U ∘ c_t), M = A_tᵀ per chunk of 64 ranks (lt_lorta_expand_terms);
 *   LoRTA dX:       coef = E[:, h] (rows i·H + h), M = B (r × d_h), one term per head
 *                   (lt_lorta_backward with E_out).
 * Terms may overlap one another (they are added in order); coef and M must not overlap Y.
 *
 * lt_lowrank_terms_apply:  applies the terms to Y [n × cols] (ld ldy), every term inside
 *   0 ..< cols. OpenMP over fixed chunks of rows (bits independent of the thread count).
 * lt_linear_forward_terms: Y = X Wᵀ (+ bias) (+ R), then the terms — as lt_linear_forward then
 *   lt_lowrank_terms_apply, bit for bit, but on our GEMM core the bias, residual and terms are
 *   added to each tile while it is in cache: one pass over Y. R must not be Y.
 * lt_linear_backward_input_terms: dX (=|+=) dY W, then the terms (columns of dX) — as
 *   lt_linear_backward_input then lt_lowrank_terms_apply, bit for bit, fused the same way.
 * Argument errors: n_terms < 0, a term with width/rank < 0, ldcoef < rank, ldm < width, or
 * columns outside the output → LT_ERR_INVALID_ARGUMENT; NULL coef/M of a non-empty term →
 * LT_ERR_NULL_POINTER. Nothing is written unless the call returns LT_OK. */
#define LT_LOWRANK_RCHUNK 64
typedef struct lt_lowrank_term {
    int64_t col, width, rank;
    const float *coef;
    int64_t ldcoef;
    const float *M;
    int64_t ldm;
} lt_lowrank_term;

lt_status lt_lowrank_terms_apply(int64_t n, int64_t cols, const lt_lowrank_term *terms, int64_t n_terms,
                                 float *Y, int64_t ldy);
lt_status lt_linear_forward_terms(int64_t n, int64_t d_in, int64_t d_out,
                                  const float *X, int64_t ldx,
                                  const float *W, int64_t ldw,
                                  const float *bias,
                                  const float *R, int64_t ldr,
                                  const lt_lowrank_term *terms, int64_t n_terms,
                                  float *Y, int64_t ldy);
lt_status lt_linear_backward_input_terms(int64_t n, int64_t d_in, int64_t d_out,
                                         const float *dY, int64_t lddy,
                                         const float *W, int64_t ldw,
                                         const lt_lowrank_term *terms, int64_t n_terms,
                                         float *dX, int64_t lddx, int accumulate);

/* LoRA's forward term factors: T[n × r] = X Aᵀ (dot products per chunk of LT_LOWRANK_RCHUNK
 * ranks, as lt_lowrank_forward), sBt[r × d_out] = s·Bᵀ. With the terms
 * {col, d_out, min(64, r − k0), T + k0, r, sBt + k0·d_out, d_out} for k0 = 0, 64, … the update
 * is lt_lowrank_forward's, bit for bit. A [r × d_in], B [d_out × r] contiguous. */
lt_status lt_lowrank_prepare(int64_t n, int64_t d_in, int64_t d_out, int64_t r, float s,
                             const float *X, int64_t ldx, const float *A, const float *B,
                             float *T, float *sBt);

/* ---- the frozen forward products with a prepacked weight (frozen weights packed once) ---------
 * lt_linear_forward_packed, lt_linear_forward_packed_terms and lt_linear_gelu_forward_packed are
 * lt_linear_forward, lt_linear_forward_terms and lt_linear_gelu_forward (below) with one more
 * argument, W_packed: W [d_out × d_in] packed by lt_sgemm_pack_b(1, d_in, d_out, W, ldw, …)
 * (lt_gemm.h: op(B) = Wᵀ, k = d_in, n = d_out). The product X Wᵀ then reads W's panels in place
 * (no packing of W per call) and the same tile epilogues add bias, residual, terms or GELU.
 * Results: bit for bit those of the unpacked function (the prepacked core gives lt_sgemm's
 * bits). W stays required: where the prepacked core declines — W_packed NULL, the OpenBLAS
 * backend, d_in = 0, a buffer made under another ISA than the active one or for another shape,
 * and R == Y for lt_linear_forward_packed — the unpacked function runs on W (same bits).
 * W_packed must hold Wᵀ for this W (only its k, n and ISA are checked) and must not overlap
 * the outputs. Argument errors as the unpacked functions. */
lt_status lt_linear_forward_packed(int64_t n, int64_t d_in, int64_t d_out,
                                   const float *X, int64_t ldx,
                                   const float *W, int64_t ldw, const float *W_packed,
                                   const float *bias,
                                   const float *R, int64_t ldr,
                                   float *Y, int64_t ldy);
lt_status lt_linear_forward_packed_terms(int64_t n, int64_t d_in, int64_t d_out,
                                         const float *X, int64_t ldx,
                                         const float *W, int64_t ldw, const float *W_packed,
                                         const float *bias,
                                         const float *R, int64_t ldr,
                                         const lt_lowrank_term *terms, int64_t n_terms,
                                         float *Y, int64_t ldy);
lt_status lt_linear_gelu_forward_packed(int64_t n, int64_t d_in, int64_t d_out,
                                        const float *X, int64_t ldx,
                                        const float *W, int64_t ldw, const float *W_packed,
                                        const float *bias,
                                        float *Z, int64_t ldz,
                                        float *G, int64_t ldg);

/* ---- LayerNorm ---------------------------------------------------------------------------------
 * forward:  mean_i = Σ_j x_ij / d;  var_i = Σ_j (x_ij − mean_i)² / d   (biased, as torch)
 *           rstd_i = 1 / sqrt(var_i + eps);  Y_ij = (x_ij − mean_i) · rstd_i · γ_j + β_j
 *   X, Y [n × d] (ld ldx, ldy; Y may alias X exactly: in-place), γ, β [d],
 *   mean, rstd [n] (nullable: saved for the backward when given).
 *   Statistics: two passes over the row in double (mean, then the centred sum of squares), so
 *   there is no cancellation whatever the offset of the row; eps > 0 and finite (1e-12 in BERT).
 * backward: with x̂ = (x − mean)·rstd and g = dY ∘ γ,
 *   dX_i = rstd_i · (g_i − mean_j(g_ij) − x̂_i · mean_j(g_ij x̂_ij))      (overwrites dX)
 *   dγ (=|+=) Σ_i dY_i ∘ x̂_i,  dβ (=|+=) Σ_i dY_i     (nullable; double accumulators)
 *   X [n × d] is the forward input; mean/rstd as saved by the forward. dX may alias dY exactly. */
lt_status lt_layernorm_forward(int64_t n, int64_t d, float eps,
                               const float *X, int64_t ldx,
                               const float *gamma, const float *beta,
                               float *Y, int64_t ldy,
                               float *mean, float *rstd);
lt_status lt_layernorm_backward(int64_t n, int64_t d,
                                const float *dY, int64_t lddy,
                                const float *X, int64_t ldx,
                                const float *gamma,
                                const float *mean, const float *rstd,
                                float *dX, int64_t lddx,
                                float *dgamma, float *dbeta, int accumulate);

/* ---- GELU (exact, erf form: BERT's "gelu") ----------------------------------------------------
 * forward:  Y = 0.5 · X · (1 + erf(X / √2))                     X, Y [n × d]; Y may alias X.
 * backward: dX = dY · (Φ(X) + X · φ(X)),  Φ(x) = 0.5 (1 + erf(x/√2)),  φ(x) = e^{−x²/2}/√(2π)
 *           X is the forward input; dX may alias dY exactly. */
lt_status lt_gelu_forward(int64_t n, int64_t d, const float *X, int64_t ldx, float *Y, int64_t ldy);
lt_status lt_gelu_backward(int64_t n, int64_t d, const float *X, int64_t ldx,
                           const float *dY, int64_t lddy, float *dX, int64_t lddx);

/* ---- linear layer + GELU, fused (BERT's intermediate projection and its backward) -------------
 * forward:  Z[n × d_out] = X[n × d_in] Wᵀ (+ bias),  G = gelu(Z)
 *   W [d_out × d_in] (ld ldw), bias nullable. G may be Z (ldg == ldz): the pre-activation is then
 *   not kept. Otherwise G must not overlap Z.
 * backward (input gradient; W frozen):
 *   dX[n × d_in] = gelu'(Z) ⊙ (dY[n × d_out] W[d_out × d_in])      Z [n × d_in] the forward's Z
 *   — for the layer after the GELU: its W and dY give the gradient of the GELU's input.
 * The bias, GELU and GELU derivative are applied to each tile of the GEMM's output while it is in
 * cache (one pass over the n × d_out outputs instead of three). The results are bit for bit those
 * of the unfused kernels (lt_linear_forward then lt_gelu_forward; lt_linear_backward_input then
 * lt_gelu_backward), which are used where the GEMM core declines the product (LORTA_GEMM=openblas,
 * an empty sum, outputs narrower than a tile). */
lt_status lt_linear_gelu_forward(int64_t n, int64_t d_in, int64_t d_out,
                                 const float *X, int64_t ldx,
                                 const float *W, int64_t ldw,
                                 const float *bias,
                                 float *Z, int64_t ldz,
                                 float *G, int64_t ldg);
lt_status lt_linear_gelu_backward_input(int64_t n, int64_t d_in, int64_t d_out,
                                        const float *dY, int64_t lddy,
                                        const float *W, int64_t ldw,
                                        const float *Z, int64_t ldz,
                                        float *dX, int64_t lddx);

/* ---- multi-head self-attention core with a key padding mask -----------------------------------
 * For each sequence b and head h (Q_bh = rows of b, columns of h; same for K, V):
 *   S  = Q_bh K_bhᵀ · scale + M_b                [T × T]   scale = 1/√d_h (pass it explicitly)
 *   M_b[:, j] = 0 where key_mask[b·T + j] != 0; padded keys get probability exactly 0 (as the
 *       transformers mask finfo(float32).min does: exp underflows to 0). A sequence with no
 *       valid key attends uniformly to all T keys (what the finfo.min mask gives).
 *   P  = softmax(S) row-wise (max-subtracted; normaliser summed in double)   saved, [B·H·T·T]
 *   C_bh = P V_bh                                 [T × d_h]  written to C (rows b, columns h)
 *   Q, K, V, C [B·T × d] with their own ld (Q, K, V may be column slices of one fused QKV
 *   buffer, ld = 3d). P layout: P[((b·H + h)·T + i)·T + j]. key_mask [B·T] int32, nullable
 *   (= no padding).
 * backward, given dC [B·T × d], P and key_mask as in the forward:
 *   dV_bh = P_bhᵀ dC_bh;   dP = dC_bh V_bhᵀ;   dS_ij = P_ij (dP_ij − Σ_k P_ik dP_ik)
 *   dQ_bh = scale · dS K_bh;   dK_bh = scale · dSᵀ Q_bh                     (all overwritten)
 *   (for a sequence without any valid key P is the constant 1/T, so dS = 0 and dQ = dK = 0)
 *   dQ, dK, dV [B·T × d] with their own ld (may be slices of one fused dQKV buffer).
 *   workspace: lt_attention_backward_workspace_size floats (B·H·T·T, holds dS).
 * Work is split over the B·H (sequence, head) pairs: OpenMP, schedule(static, 1); each pair is
 * computed with the dot_many / axpy_many micro-kernels by one thread. */
lt_status lt_attention_forward(int64_t B, int64_t T, int64_t H, int64_t d_h, float scale,
                               const float *Q, int64_t ldq,
                               const float *K, int64_t ldk,
                               const float *V, int64_t ldv,
                               const int32_t *key_mask,
                               float *P,
                               float *C, int64_t ldc);
lt_status lt_attention_backward_workspace_size(int64_t B, int64_t T, int64_t H, int64_t *floats);
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
                                float *workspace);

/* ---- masked mean pooling -----------------------------------------------------------------------
 * forward:  Y[b, :] = Σ_t m_bt X[b·T + t, :] / max(Σ_t m_bt, 1e-9)     (sentence-transformers)
 *   X [B·T × d] (ld ldx), mask [B·T] int32 (nonzero = token), Y [B × d] (ld ldy). Sums in double.
 * backward: dX[b·T + t, :] = m_bt · dY[b, :] / max(Σ_t m_bt, 1e-9)      (overwrites dX) */
lt_status lt_mean_pool_forward(int64_t B, int64_t T, int64_t d, const float *X, int64_t ldx,
                               const int32_t *mask, float *Y, int64_t ldy);
lt_status lt_mean_pool_backward(int64_t B, int64_t T, int64_t d, const float *dY, int64_t lddy,
                                const int32_t *mask, float *dX, int64_t lddx);

/* ---- softmax cross-entropy with integer labels (mean over the batch) ---------------------------
 * forward:  loss = (1/n) Σ_i (logsumexp(z_i) − z_i[y_i])          z [n × c] (ld ldz), y [n]
 *   each y_i in 0 ..< c (LT_ERR_INVALID_ARGUMENT otherwise); n >= 1, c >= 1. Computed in double:
 *   e^x by the vectorisable lt__exp_d (relative error ~1e-15), each row's sum in vector partial
 *   sums (order fixed per ISA), rows split over the team and the row terms added in row order,
 *   so the result does not depend on the thread count.
 *   row_loss [n] nullable: the per-row terms.
 * backward: dZ_i = (softmax(z_i) − onehot(y_i)) · dloss / n        (overwrites dZ [n × c]; dZ
 *   may alias Z exactly, ldz == lddz) */
lt_status lt_cross_entropy_forward(int64_t n, int64_t c, const float *Z, int64_t ldz,
                                   const int32_t *labels, float *loss, float *row_loss);
lt_status lt_cross_entropy_backward(int64_t n, int64_t c, const float *Z, int64_t ldz,
                                    const int32_t *labels, float dloss,
                                    float *dZ, int64_t lddz);

/* ======================== Llama-family decoder kernels ======================================== */

/* ---- RMSNorm (Hugging Face LlamaRMSNorm) -----------------------------------------------------
 * forward:  rstd_i = 1 / sqrt(Σ_j x_ij² / d + eps)      (in double, rounded to float once)
 *           Y_ij   = γ_j · (x_ij · rstd_i)               (float32, the order transformers uses)
 *   X, Y [n × d] (ld ldx, ldy; Y may alias X exactly), γ [d], rstd [n] nullable (saved for the
 *   backward). d >= 1; eps > 0 and finite.
 * backward: with x̂ = x · rstd (float, as the forward) and g = dY ∘ γ,
 *   dX_i = rstd_i · (g_i − x̂_i · mean_j(g_ij x̂_ij))      (overwrites dX; may alias dY exactly;
 *                                                          the row mean in double)
 *   dγ (=|+=) Σ_i dY_i ∘ x̂_i      (nullable; double accumulators; accumulate 0 overwrites, 1 adds)
 * OpenMP over rows (dγ: over column blocks, rows summed in order): thread-count invariant. */
lt_status lt_rmsnorm_forward(int64_t n, int64_t d, float eps,
                             const float *X, int64_t ldx, const float *gamma,
                             float *Y, int64_t ldy, float *rstd);
lt_status lt_rmsnorm_backward(int64_t n, int64_t d,
                              const float *dY, int64_t lddy,
                              const float *X, int64_t ldx, const float *gamma,
                              const float *rstd,
                              float *dX, int64_t lddx, float *dgamma, int accumulate);

/* ---- rotary position embedding (Hugging Face layout, "rotate_half") ---------------------------
 * X [n × H·d_h] (ld ldx) holds H heads of width d_h per row; row i has position pos[i] >= 0.
 * The first d_rot columns of every head (d_rot even, 2 <= d_rot <= d_h) are rotated in pairs
 * (j, j + d_rot/2), j < d_rot/2, by the angle θ = (float)pos · inv_freq[j] (a float32 product,
 * as transformers computes it; the caller computes inv_freq [d_rot/2], e.g.
 * 1 / base^(2j/d_rot) in float32, or a scaled variant):
 *   x'_j          = x_j · cos θ − x_{j+d_rot/2} · sin θ
 *   x'_{j+d_rot/2} = x_{j+d_rot/2} · cos θ + x_j · sin θ
 * cos θ and sin θ are rounded to float32 from a double evaluation (one pair per j, shared by
 * columns j and j + d_rot/2: transformers' cat(freqs, freqs)). The float32 expressions are
 * evaluated in the order above without fused multiply-adds (= x·cos + rotate_half(x)·sin).
 * Columns d_rot … d_h−1 of each head are left as they are. In place.
 * backward: the transposed rotation (angle −θ, the same float cos/sin) applied in place to dX
 * (the gradient of the rotated output on entry, of the input on return); forward then backward
 * restores X up to rounding.
 * Errors: LT_ERR_INVALID_ARGUMENT for a negative pos[i], d_rot odd or outside 2 … d_h, a
 * non-finite inv_freq[j], ld < H·d_h. */
lt_status lt_rope_forward(int64_t n, int64_t H, int64_t d_h, int64_t d_rot,
                          const int32_t *pos, const float *inv_freq, float *X, int64_t ldx);
lt_status lt_rope_backward(int64_t n, int64_t H, int64_t d_h, int64_t d_rot,
                           const int32_t *pos, const float *inv_freq, float *dX, int64_t lddx);

/* ---- SwiGLU gate (Llama MLP: down(silu(gate(x)) ∘ up(x))) -------------------------------------
 * forward:  Y = silu(G) ∘ U,  silu(g) = g · σ(g) = g / (1 + e^{−g})
 *   G, U, Y [n × I] with their own ld (G and U may be the two halves of one fused [n × 2I]
 *   buffer); Y may alias G or U exactly.
 *   σ and silu are evaluated in double (no overflow: e^{−g} with g clamped to ±708), silu(g)
 *   rounded to float once, then multiplied by u in float32 (transformers' act_fn(gate) * up).
 *   Every finite g gives a finite result (silu(1e30) = 1e30, silu(−1e30) = −0).
 * backward: dG = dY ∘ U ∘ σ(g) · (1 + g · (1 − σ(g))),   dU = dY ∘ silu(G)   (overwritten;
 *   dG/dU must not alias G, U or dY, except that dG may alias dY exactly). dG is rounded once
 *   from the double product; dU uses the forward's float silu(g). */
lt_status lt_swiglu_forward(int64_t n, int64_t I, const float *G, int64_t ldg,
                            const float *U, int64_t ldu, float *Y, int64_t ldy);
lt_status lt_swiglu_backward(int64_t n, int64_t I, const float *G, int64_t ldg,
                             const float *U, int64_t ldu, const float *dY, int64_t lddy,
                             float *dG, int64_t lddg, float *dU, int64_t lddu);

/* ---- causal grouped-query attention with a key/value cache -------------------------------------
 * B sequences; each brings T new query tokens at absolute positions past … past+T−1, and its
 * keys/values for positions 0 … past+T−1 are already in the cache (the caller appended the new
 * rows first). H query heads and H_kv key/value heads of width d_h (H a multiple of H_kv):
 * query head h reads key/value head h / (H / H_kv) (transformers' repeat_kv).
 *   Q [B·T × H·d_h] (ld ldq): row b·T + t.
 *   K, V caches: row s of sequence b at K + (b·cache_len + s)·ldk, head g at column g·d_h
 *     (ld >= H_kv·d_h), cache_len >= past + T.
 *   For query t the keys 0 … past+t are visible (causal); S = q·kᵀ · scale (scale passed
 *   explicitly, 1/√d_h for Llama), P = softmax over the visible keys (max-subtracted,
 *   normaliser in double), C = P V written to C [B·T × H·d_h] (ld ldc), heads concatenated.
 *   P nullable: when given (training), P[((b·H + h)·T + t)·S + s] with S = past + T, entries
 *   of invisible keys set to exactly 0.
 *   Only visible keys get a score (the upper triangle is skipped, not masked). P·V for a block
 *   of 16 query rows runs up to the last row's last key, with p = 0 exactly for the keys an
 *   earlier row does not see (adding 0·v changes nothing for finite v; as in a masked matmul,
 *   a non-finite value in V at a position < past + T would reach those rows). Rows of the cache
 *   at past + T and beyond are never read.
 * workspace: lt_causal_attention_workspace_size floats = B·H·T·(past + T) (P's size; required
 *   even when P is given): the scores when P is NULL, and the per-key-block partial sums of
 *   P·V on the key-split path below.
 * Arithmetic: a score is one float dot product of length d_h (lane partial sums, fixed
 *   reduction tree: depends only on the two vectors and the ISA); softmax max-subtracted, e^x
 *   evaluated in double and rounded to float, normaliser in double; C = sum over key blocks of
 *   256 (in block order) of each block's float P·V. Hence a row's result does not depend on
 *   how the tokens are split into calls: prefill of T tokens gives the same bits as T
 *   single-token calls with a growing cache (and the same on either work split below).
 * Work split (chosen from the shapes only): with many query rows, items of (sequence, head,
 *   block of 16 query rows), heaviest first, dealt out cyclically (static schedule); with fewer
 *   than 16 new tokens (decode) or few such items, and at least 512 keys, the keys are split
 *   instead: items of (sequence, kv head, block of 256 keys) compute the scores and P·V
 *   partials of all the group's query heads (each cache row read once per kv head), merged per
 *   row in block order. Each output element is computed by
 *   the same code whichever thread runs its item: bitwise identical for any thread count.
 * backward (training; requires past = 0 — K, V [B·T × H_kv·d_h] with their own ld; P is the
 *   one saved by the forward, or NULL: then the probabilities are recomputed from Q and K by the
 *   forward's own arithmetic — the same bits — so a training forward need not keep B·H·T²
 *   floats per layer):
 *   dV_g = Σ_{h in group g} P_hᵀ dC_h;  dP = dC_h V_gᵀ;  dS = P ∘ (dP − rowsum(P ∘ dP));
 *   dQ_h = scale · dS K_g;  dK_g = Σ_{h in group g} scale · dSᵀ Q_h      (all overwritten;
 *   the sums over a group's query heads run in head order, then over query rows in order,
 *   in chunks of 64 rows each summed in float and added in order).
 *   rowsum in double. dK, dV [B·T × H_kv·d_h] with their own ld; workspace:
 *   lt_causal_attention_backward_workspace_size floats = 2·B·H·T·T (dS, then P when P is NULL;
 *   the second half is unused when P is given). Items: (sequence,
 *   head, block of query rows) for dS and dQ, then (sequence, kv head, block of 16 keys) for
 *   dK and dV; thread-count invariant as the forward.
 * Errors: LT_ERR_INVALID_ARGUMENT for H not a multiple of H_kv, past < 0, cache_len < past + T,
 *   a leading dimension below the row width, a non-finite scale, sizes that overflow. */
lt_status lt_causal_attention_workspace_size(int64_t B, int64_t T, int64_t past, int64_t H,
                                             int64_t *floats);
lt_status lt_causal_attention_forward(int64_t B, int64_t T, int64_t past,
                                      int64_t H, int64_t H_kv, int64_t d_h, float scale,
                                      const float *Q, int64_t ldq,
                                      const float *K, int64_t ldk,
                                      const float *V, int64_t ldv, int64_t cache_len,
                                      float *P, float *C, int64_t ldc,
                                      float *workspace);
lt_status lt_causal_attention_backward_workspace_size(int64_t B, int64_t T, int64_t H,
                                                      int64_t *floats);
lt_status lt_causal_attention_backward(int64_t B, int64_t T,
                                       int64_t H, int64_t H_kv, int64_t d_h, float scale,
                                       const float *Q, int64_t ldq,
                                       const float *K, int64_t ldk,
                                       const float *V, int64_t ldv,
                                       const float *P,
                                       const float *dC, int64_t lddc,
                                       float *dQ, int64_t lddq,
                                       float *dK, int64_t lddk,
                                       float *dV, int64_t lddv,
                                       float *workspace);

/* ---- micro-kernel entry points (tests and benchmarks) -------------------------------------
 * Run one variant of the attention micro-kernels of simd.h regardless of the active ISA.
 *   dot_block:  out[i·ldo + k] = Σ_j X[i·ldx + j] · M[k·ldm + j]     i < m, k < r, j < d
 *   axpy_block: Y[i·ldy + j] += Σ_k Cf[i·ldc + k] · M[k·ldm + j]     i < m, j < d, k < r
 * LT_ERR_UNSUPPORTED_ISA when `isa` cannot run here; zero sizes are allowed. */
lt_status lt_kernel_dot_block(int isa, int64_t m, int64_t r, int64_t d, const float *X, int64_t ldx,
                              const float *M, int64_t ldm, float *out, int64_t ldo);
lt_status lt_kernel_axpy_block(int isa, int64_t m, int64_t r, int64_t d, const float *Cf, int64_t ldc,
                               const float *M, int64_t ldm, float *Y, int64_t ldy);

#ifdef __cplusplus
}
#endif
#endif /* LT_NN_H */
