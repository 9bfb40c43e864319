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

/* An ISA's micro-kernels: tile_R_G computes R W rows (row, row + rb, …) against G rounded
 * activation rows (x[0 ..< G]) into res[g·R + r], with the lane arithmetic above. The driver
 * (q8gemv_tiled, quant_int8.c) is shared: 4 rows × 2 activation rows at a time, the
 * remainders with the smaller tiles. */
typedef void (*lt__q8tile_fn)(int32_t type, const uint8_t *row, int64_t rb, int64_t nb,
                              const lt__q8row *x, float *res);
typedef struct lt__q8tiles {
    lt__q8tile_fn t4x2, t4x1, t1x2, t1x1;
} lt__q8tiles;

#if defined(__x86_64__)
extern const lt__q8tiles lt__q8tiles_avx2;   /* quant_int8_avx2.c (AVX2, and AVX-512 without VNNI) */
extern const lt__q8tiles lt__q8tiles_vnni;   /* quant_int8_avx512.c (AVX-512 VNNI) */
#endif

/* Bytes of a block and offset of its codes. */
static inline int64_t lt__q8_block_bytes(int32_t type) {
    return type == LT_GGML_Q8_0 ? 34 : (type == LT_GGML_Q4_1 ? 20 : 18);
}
static inline int64_t lt__q8_code_offset(int32_t type) { return type == LT_GGML_Q4_1 ? 4 : 2; }

#endif /* LT_QUANT_INT8_INTERNAL_H */
