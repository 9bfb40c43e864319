/*
 * lt_lora.h — LoRA (low-rank adaptation) of a frozen Linear layer: forward, backward, merge,
 * unmerge, PEFT-style init and scale.
 *
 * Notation (row-major; ld = leading dimension = elements between consecutive rows):
 *   X  n × d_in   (ld ldx >= d_in)      input batch, one token per row
 *   W  d_out × d_in (ld ldw >= d_in)    frozen base weight
 *   b  d_out                            optional bias
 *   A  r × d_in   (contiguous)          lora_A
 *   B  d_out × r  (contiguous)          lora_B
 *   s  scale (alpha / r, or alpha / sqrt(r) for rsLoRA; see lt_lora_scale)
 *   Y  n × d_out  (ld ldy >= d_out)     Y = X Wᵀ (+ b) + s (X Aᵀ) Bᵀ
 *
 * Every entry point validates its arguments and returns an lt_status (LT_ERR_NULL_POINTER for
 * a missing required pointer, LT_ERR_INVALID_ARGUMENT for a negative size, r < 1, an ld below
 * the row length or a non-finite scale); nothing aborts, prints or allocates. Workspace sizes
 * are counted in floats. Output buffers must not overlap inputs. Results are bitwise identical
 * for any thread count (rows are processed in fixed chunks; BLAS is never called from inside an
 * OpenMP region). The SIMD variant is the active ISA (lt_isa_active()).
 */
#ifndef LT_LORA_H
#define LT_LORA_H

#include <stdint.h>
#include "lt_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* s = alpha / r (use_rslora == 0) or alpha / sqrt(r) (rank-stabilized LoRA, use_rslora != 0).
 * LT_ERR_INVALID_ARGUMENT when r < 1 or alpha is not finite. */
lt_status lt_lora_scale(float alpha, int64_t r, int use_rslora, float *scale);

/* PEFT init: A[r × d_in] ~ U(-1/sqrt(d_in), 1/sqrt(d_in)) (kaiming_uniform, a = sqrt(5)) from
 * lt_rng_uniform(seed, offset 0); B[d_out × r] = 0. Same seed, same bits. */
lt_status lt_lora_init(uint64_t seed, int64_t r, int64_t d_in, int64_t d_out, float *A, float *B);

/* ---- forward -----------------------------------------------------------------------------
 * Y[n × d_out] = X[n × d_in] Wᵀ (+ bias) + s · T Bᵀ,   T[n × r] = X Aᵀ
 * Two ways, chosen by the shape alone (so the same call always takes the same one):
 *   - folded, when d_in·d_out < n·(d_in + d_out) (building the merged weight is cheaper than
 *     the low-rank term; a square d × d layer from n > d/2 rows on): the workspace receives
 *     W + s B A, computed row by row exactly as lt_lora_merge does, and Y = X (W + s B A)ᵀ + b
 *     is lt_linear_forward on it — bit for bit;
 *   - otherwise: t = A x_i per row (dot_many), then the base GEMM adds b + s T Bᵀ to each tile
 *     of X Wᵀ while it is hot (the library's GEMM; with LORTA_GEMM=openblas the term is
 *     written into Y first and cblas_sgemm accumulates on top) — the bits of lt_linear_forward
 *     without bias followed by lt_lowrank_forward with accumulate.
 * The previous contents of Y are ignored.
 * bias: nullable. T: nullable; when given (n × r, contiguous) it receives X Aᵀ for backward.
 * workspace: lt_lora_forward_workspace_size floats: d_out·d_in when folded, else r·d_out for
 * s·Bᵀ plus n·r used for T. */
lt_status lt_lora_forward_workspace_size(int64_t n, int64_t d_in, int64_t d_out, int64_t r,
                                         int64_t *floats);
lt_status lt_lora_forward(int64_t n, int64_t d_in, int64_t d_out, int64_t r, float s,
                          const float *X, int64_t ldx,
                          const float *W, int64_t ldw,
                          const float *bias,
                          const float *A, const float *B,
                          float *Y, int64_t ldy,
                          float *T,
                          float *workspace);

/* ---- backward (W frozen) -----------------------------------------------------------------
 * Given dY[n × d_out] (ld lddy):
 *   T  = X Aᵀ                 [n × r]    (recomputed when T is NULL)
 *   G  = dY B                 [n × r]    (per row, dot_many with s·Bᵀ: holds s·G)
 *   dB = s dYᵀ T              [d_out × r]  (GEMM)
 *   dA = s Gᵀ X               [r × d_in]   (GEMM)
 *   dX = dY W + s G A         [n × d_in]   (GEMM, then axpy_many per row) — dX nullable;
 *                                          when d_out < n and W is given, folded instead:
 *                                          dX = dY (W + s B A), the merged weight built in the
 *                                          workspace as lt_lora_merge builds it, then one GEMM
 * accumulate = 0 overwrites dA and dB; 1 adds to them. dX (when given) is overwritten — except
 * when W is NULL (a frozen path computed elsewhere, e.g. from quantized blocks): then only the
 * adapter's term is added, dX += s G A.
 * workspace: lt_lora_backward_workspace_size floats (r·d_out + 2·n·r, plus d_out·d_in when
 * d_out < n). */
lt_status lt_lora_backward_workspace_size(int64_t n, int64_t d_in, int64_t d_out, int64_t r,
                                          int64_t *floats);
lt_status lt_lora_backward(int64_t n, int64_t d_in, int64_t d_out, int64_t r, float s,
                           const float *X, int64_t ldx,
                           const float *W, int64_t ldw,
                           const float *A, const float *B,
                           const float *dY, int64_t lddy,
                           const float *T,
                           float *dA, float *dB,
                           float *dX, int64_t lddx,
                           int accumulate,
                           float *workspace);
/* The parameter gradients of lt_lora_backward (dA, dB, same arithmetic and workspace) and, in
 * place of dX, the coefficients of its input-gradient term: sG[n × r] = s·(dY B), so that
 * dX += sG · A is the lt_lowrank_term {0, d_in, r, sG, r, A, d_in} (lt_nn.h) — the frozen
 * product's input gradient can then add it on its tiles (lt_linear_backward_input_terms); applied
 * after it, it gives lt_lora_backward's dX (W = NULL) bit for bit on the AVX2 and AVX-512 paths. */
lt_status lt_lora_backward_params(int64_t n, int64_t d_in, int64_t d_out, int64_t r, float s,
                                  const float *X, int64_t ldx,
                                  const float *A, const float *B,
                                  const float *dY, int64_t lddy,
                                  const float *T,
                                  float *dA, float *dB,
                                  float *sG,
                                  int accumulate,
                                  float *workspace);

/* ---- merge / unmerge ----------------------------------------------------------------------
 * W[d_out × d_in] += s B A   (per row o of W: axpy_many with coef = s·B[o, :]); unmerge
 * subtracts the same rounded product, so merge then unmerge restores W up to one rounding of
 * each element (|error| <= ulp(max(|W|, |W + s B A|))). */
lt_status lt_lora_merge(int64_t d_out, int64_t d_in, int64_t r, float s,
                        const float *A, const float *B, float *W, int64_t ldw);
lt_status lt_lora_unmerge(int64_t d_out, int64_t d_in, int64_t r, float s,
                          const float *A, const float *B, float *W, int64_t ldw);

/* ---- frozen path only ----------------------------------------------------------------------
 * Y[n × d_out] = X[n × d_in] Wᵀ (+ bias): the forward of a merged LoRA layer. bias nullable. */
lt_status lt_lora_base_forward(int64_t n, int64_t d_in, int64_t d_out,
                               const float *X, int64_t ldx,
                               const float *W, int64_t ldw,
                               const float *bias,
                               float *Y, int64_t ldy);

/* ---- micro-kernel entry points (for tests and benchmarks) ---------------------------------
 * Run one variant of the SIMD micro-kernels of simd.h regardless of the active ISA.
 *   dot_many:  out[k] = Σ_j x[j] · M[k·ldm + j]        x: d, M: r × d (ld ldm >= d), out: r
 *   axpy_many: y[j] += Σ_k coef[k] · M[k·ldm + j]      y: d, M: r × d (ld ldm >= d), coef: r
 * LT_ERR_UNSUPPORTED_ISA when `isa` cannot run on this CPU. r = 0 or d = 0 are allowed. */
lt_status lt_kernel_dot_many(int isa, const float *x, const float *M, int64_t ldm, int64_t r,
                             int64_t d, float *out);
lt_status lt_kernel_axpy_many(int isa, float *y, const float *coef, const float *M, int64_t ldm,
                              int64_t r, int64_t d);

#ifdef __cplusplus
}
#endif
#endif /* LT_LORA_H */
