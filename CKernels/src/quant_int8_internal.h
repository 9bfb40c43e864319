/*
 * quant_int8_internal.h — decode-sized products with int8 activations (lt_quant_matmul_int8,
 * lt_quant.h): the rounded activations and the per-ISA kernels. Not part of the public API.
 *
 * Weights (ggml blocks of 32): Q8_0 w = d·q (q int8); Q4_0 w = d·(q − 8); Q4_1 w = d·q + m
 * (q 4-bit). An activation row is rounded per block of 32: dx = max|x|/127, qx = round(x/dx)
 * (−127 … 127), kept with dx and sx = dx·Σqx (Q4_1's m term).
 *
 * Layout of the rounded row: blocks in pairs of 64 bytes, in the order the pair's weight codes
 * sit in a 512-bit register, so that one VNNI instruction multiplies two blocks:
 *   Q8_0: [a0 … a31, b0 … b31]                        (the weights' byte order)
 *   Q4_x: [a0 … a15, b0 … b15, a16 … a31, b16 … b31]  (the low nibbles of the 16 code bytes of
 *         blocks a and b, then their high nibbles)
 * An odd last block is paired with zeros. corr[16·p + l] = −c · (sum of the 4 bytes of lane l
 * of pair p), c = 128 for Q8_0 (VNNI multiplies the codes offset to q + 128) and 8 for Q4_0
 * (codes q instead of q − 8); zero for Q4_1.
 *
 * The arithmetic, identical in every variant (so the variants agree bit for bit): per output
 * (W row o, activation row i), 16 float lanes acc[l] = 0; for each chunk of 16 blocks b0 … b0+15
 * (masked past the end: d, m, dx, sx read as 0):
 *     s[j] = d_{b0+j} · dx_{b0+j};           Q4_1: acc[j] = fma(m_{b0+j}, sx_{b0+j}, acc[j])
 *     for each pair k of the chunk (blocks b0 + 2k, b0 + 2k + 1), lane l:
 *         L = the exact int32 sum of the 4 products code·qx of lane l (the signed weight codes:
 *             q for Q8_0, q − 8 for Q4_0, q for Q4_1)
 *         acc[l] = fma((float)L, s[2k + half(l)], acc[l])
 *     (half(l): Q8_0 l ≥ 8; Q4_x (l mod 8) ≥ 4 — which block of the pair the lane belongs to)
 * then the fixed tree v8[l] = acc[l] + acc[l+8], v4[l] = v8[l] + v8[l+4], v2[l] = v4[l] + v4[l+2],
 * r = v2[0] + v2[1]; Y = r (or Y + r). |L| <= 4·128·127, so (float)L is exact.
 */
#ifndef LT_QUANT_INT8_INTERNAL_H
#define LT_QUANT_INT8_INTERNAL_H

#include <stdint.h>
#include "lt_quant.h"

/* One rounded activation row (arrays sized for whole chunks of 16 blocks, padding zeroed). */
typedef struct lt__q8row {
    const int8_t *q;       /* 64 bytes per pair */
    const int32_t *corr;   /* 16 per pair */
    const float *d;        /* dx per block */
    const float *s;        /* sx = dx · Σqx per block */
} lt__q8row;

/* Y[i, o] (=|+=) row o of W · activation row i, for o0 <= o < o1 and i < n (n <= 8). W rows of
 * row_bytes bytes, nb blocks each (type Q8_0, Q4_0 or Q4_1). */
typedef void (*lt__q8gemv_fn)(int32_t type, const uint8_t *W, int64_t row_bytes, int64_t nb,
                              int64_t o0, int64_t o1, const lt__q8row *x, int64_t n, float *Y,
                              int64_t ldy, int accumulate, const uint8_t *pf, int64_t pf_bytes);

void lt__q8gemv_scalar(int32_t type, const uint8_t *W, int64_t row_bytes, int64_t nb, int64_t o0,
                       int64_t o1, const lt__q8row *x, int64_t n, float *Y, int64_t ldy, int accumulate,
                       const uint8_t *pf, int64_t pf_bytes);
#if defined(__x86_64__)
void lt__q8gemv_avx2(int32_t type, const uint8_t *W, int64_t row_bytes, int64_t nb, int64_t o0,
                     int64_t o1, const lt__q8row *x, int64_t n, float *Y, int64_t ldy, int accumulate,
                       const uint8_t *pf, int64_t pf_bytes);
void lt__q8gemv_vnni(int32_t type, const uint8_t *W, int64_t row_bytes, int64_t nb, int64_t o0,
                     int64_t o1, const lt__q8row *x, int64_t n, float *Y, int64_t ldy, int accumulate,
                       const uint8_t *pf, int64_t pf_bytes);
#endif

/* Bytes of a block and offset of its codes. */
static inline int64_t lt__q8_block_bytes(int32_t type) {
    return type == LT_GGML_Q8_0 ? 34 : (type == LT_GGML_Q4_1 ? 20 : 18);
}
static inline int64_t lt__q8_code_offset(int32_t type) { return type == LT_GGML_Q4_1 ? 4 : 2; }

#endif /* LT_QUANT_INT8_INTERNAL_H */
