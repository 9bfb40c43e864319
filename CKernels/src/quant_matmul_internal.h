/*
 * quant_matmul_internal.h — the per-ISA kernels behind lt_quant_matmul and
 * lt_quant_matmul_backward_input (quant_matmul.c). Not part of the public API.
 *
 * Decode-sized products (n <= LT_QUANT_GEMV_MAX_ROWS rows of activations):
 *
 *   forward  Y[i, o] (=|+=) Σ_k X[i, k] · w[o, k]       for rows o0 <= o < o1 of W, i < n
 *   backward dX[i, c] (=|+=) Σ_o dY[i, o] · w[o, c]      for columns c0 <= c < c1, i < n
 *
 * where w = the dequantized matrix, value for value the one lt_dequantize gives (the fused
 * decoders compute each weight from the block formulas, e.g. Q4_1 d·q + m; their products are
 * exact, so a contracted fma(d, q, m) has the reference's bits — quant_internal.h).
 *
 * Forward summation order: fixed by the code of each variant. AVX-512: the row is cut into
 * units of 32 values; lanes 0–15 of every unit accumulate into one 16-lane fma chain and lanes
 * 16–31 into another, in unit order, and the result is the fixed-tree sum of the two chains.
 * AVX2: the same with four 8-lane vectors per unit (vectors 0 and 2 in one chain, 1 and 3 in
 * the other). Which rows are processed together, how many activation rows share a decode and
 * which thread runs the rows do not change a bit. The portable variant dequantizes up to 256
 * values at a time into a stack buffer and keeps 8 partial sums (element j into sum j mod 8,
 * product rounded separately).
 *
 * Backward summation order: each dX element is one chain over o = 0 … d_out−1 in order (fma
 * in the SIMD variants, identical bits between them; mul + add in the portable variant).
 */
#ifndef LT_QUANT_MATMUL_INTERNAL_H
#define LT_QUANT_MATMUL_INTERNAL_H

#include <stdint.h>
#include "lt_quant.h"

/* W rows per OpenMP chunk of the decode-sized forward (a multiple of every row group). */
#define LT_QGEMV_ROWS_PER_CHUNK 32

/* Columns of dX one backward task covers (a multiple of every block size but the K types',
 * whose tasks cover 256). */
#define LT_QBWD_COLS 128
#define LT_QBWD_COLS_MAX 256

/* pf, pf_bytes: bytes this thread will probably read next (the chunk after the next ones);
 * the kernel may prefetch them while it computes (a hint: never dereferenced otherwise). */
typedef void (*lt__qgemv_fn)(int32_t type, const uint8_t *W, int64_t row_bytes, int64_t K,
                             int64_t o0, int64_t o1, const float *X, int64_t ldx, int64_t n,
                             float *Y, int64_t ldy, int accumulate, const uint8_t *pf,
                             int64_t pf_bytes);

/* c1 − c0 <= LT_QBWD_COLS_MAX; c0 and c1 − c0 whole blocks (c1 − c0 may end at d_in). */
typedef void (*lt__qgemv_bwd_fn)(int32_t type, const uint8_t *W, int64_t row_bytes, int64_t d_out,
                                 int64_t c0, int64_t c1, const float *dY, int64_t lddy, int64_t n,
                                 float *dX, int64_t lddx, int accumulate);

void lt__qgemv_scalar(int32_t type, const uint8_t *W, int64_t row_bytes, int64_t K, int64_t o0,
                      int64_t o1, const float *X, int64_t ldx, int64_t n, float *Y, int64_t ldy,
                      int accumulate, const uint8_t *pf, int64_t pf_bytes);
void lt__qgemv_bwd_scalar(int32_t type, const uint8_t *W, int64_t row_bytes, int64_t d_out,
                          int64_t c0, int64_t c1, const float *dY, int64_t lddy, int64_t n,
                          float *dX, int64_t lddx, int accumulate);
#if defined(__x86_64__)
void lt__qgemv_avx2(int32_t type, const uint8_t *W, int64_t row_bytes, int64_t K, int64_t o0,
                    int64_t o1, const float *X, int64_t ldx, int64_t n, float *Y, int64_t ldy,
                    int accumulate, const uint8_t *pf, int64_t pf_bytes);
void lt__qgemv_bwd_avx2(int32_t type, const uint8_t *W, int64_t row_bytes, int64_t d_out,
                        int64_t c0, int64_t c1, const float *dY, int64_t lddy, int64_t n,
                        float *dX, int64_t lddx, int accumulate);
void lt__qgemv_avx512(int32_t type, const uint8_t *W, int64_t row_bytes, int64_t K, int64_t o0,
                      int64_t o1, const float *X, int64_t ldx, int64_t n, float *Y, int64_t ldy,
                      int accumulate, const uint8_t *pf, int64_t pf_bytes);
void lt__qgemv_bwd_avx512(int32_t type, const uint8_t *W, int64_t row_bytes, int64_t d_out,
                          int64_t c0, int64_t c1, const float *dY, int64_t lddy, int64_t n,
                          float *dX, int64_t lddx, int accumulate);
#endif

/* Element decoders for the float types (exact; shared by the tails of the SIMD variants). */
float lt__qelem(int32_t type, const uint8_t *row, int64_t k);

#endif /* LT_QUANT_MATMUL_INTERNAL_H */
