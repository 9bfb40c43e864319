/*
 * quant_int8_internal.h — decode-sized products with int8 activations (lt_quant_matmul_int8,
 * lt_quant.h): the rounded activations and the per-ISA kernels. Not part of the public API.
 *
 * Weights (ggml blocks; layouts as in quant_dequant_kernels.h):
 *   blocks of 32: Q8_0 w = d·q (q int8); Q4_0 w = d·(q − 8); Q4_1 w = d·q + m (q 4-bit);
 *   super-blocks of 256: Q4_K w = d·sc_j·q − dmin·m_j (8 sub-blocks j of 32, q 4-bit, sc_j and
 *   m_j 6-bit as ggml's get_scale_min_k4); Q6_K w = d·sc_t·(q − 32) (16 sub-blocks t of 16,
 *   q 6-bit, sc_t int8).
 * An activation row is rounded per block of 32: dx = max|x|/127, qx = round(x/dx)
 * (−127 … 127), kept with dx and sx = dx·Σqx (the Q4_1 / Q4_K minimum term).
 *
 * Layout of the rounded row: blocks in pairs of 64 bytes, in the order the pair's weight codes
 * sit in a 512-bit register, so that one VNNI instruction multiplies two blocks:
 *   Q8_0, Q4_K, Q6_K: [a0 … a31, b0 … b31]            (the values in their natural order: for
 *         the K types pair k of a super-block is its values 64k … 64k + 63)
 *   Q4_0, Q4_1: [a0 … a15, b0 … b15, a16 … a31, b16 … b31]  (the low nibbles of the 16 code
 *         bytes of blocks a and b, then their high nibbles)
 * An odd last block is paired with zeros (never for the K types: 8 blocks per super-block).
 * corr[16·p + l] = −c · (sum of the 4 bytes of lane l of pair p), c = 128 for Q8_0 (VNNI
 * multiplies the codes offset to q + 128), 8 for Q4_0 (codes q instead of q − 8) and 32 for
 * Q6_K (codes q instead of q − 32); zero for Q4_1 and Q4_K.
 *
 * The arithmetic, identical in every variant (so the variants agree bit for bit): per output
 * (W row o, activation row i), 16 float lanes acc[l] = 0; lane l of a pair holds its bytes
 * 4l … 4l + 3, and L below is always the exact int32 sum of the 4 products code·qx of lane l
 * with the signed weight codes (q for Q8_0, Q4_1, Q4_K; q − 8 for Q4_0; q − 32 for Q6_K).
 * Q8_0, Q4_0, Q4_1: for each chunk of 16 blocks b0 … b0+15 (masked past the end: d, m, dx, sx
 * read as 0):
 *     s[j] = d_{b0+j} · dx_{b0+j};           Q4_1: acc[j] = fma(m_{b0+j}, sx_{b0+j}, acc[j])
 *     for each pair k of the chunk (blocks b0 + 2k, b0 + 2k + 1), lane l:
 *         acc[l] = fma((float)L, s[2k + half(l)], acc[l])
 *     (half(l): Q8_0 l ≥ 8; Q4_x (l mod 8) ≥ 4 — which block of the pair the lane belongs to)
 * Q4_K, Q6_K: for each super-block (blocks b0 = 8B … 8B + 7, pairs k = 0 … 3):
 *     Q4_K: v[j] = (d·sc_j) · dx_{b0+j}  (j = 0 … 7; d·sc_j is exact)
 *           acc[j] = fma(−(dmin·m_j), sx_{b0+j}, acc[j])  (j = 0 … 7; dmin·m_j is exact)
 *           for each pair k, lane l: acc[l] = fma((float)L, v[2k + (l ≥ 8)], acc[l])
 *     Q6_K: v[t] = (d·sc_t) · dx_{b0 + t/2}  (t = 0 … 15; d·sc_t is exact)
 *           for each pair k, lane l: acc[l] = fma((float)L, v[4k + l/4], acc[l])
 * then, for every type, the fixed tree v8[l] = acc[l] + acc[l+8], v4[l] = v8[l] + v8[l+4],
 * v2[l] = v4[l] + v4[l+2], r = v2[0] + v2[1]; Y = r (or Y + r). |L| <= 4·128·127, so (float)L
 * is exact. (fma(−a, b, c) is the same number as a fused −(a·b) + c: vfnmadd.)
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
 * activation rows (x[0 ..< G]) into res[g·R + r], with the lane arithmetic above; nb is the
 * number of blocks of 32 in a row (8 per super-block for the K types). The driver
 * (q8gemv_tiled, quant_int8.c) is shared: 4 rows × 2 activation rows at a time, the
 * remainders with the smaller tiles. */
typedef void (*lt__q8tile_fn)(int32_t type, const uint8_t *row, int64_t rb, int64_t nb,
                              const lt__q8row *x, float *res);
typedef struct lt__q8tiles {
    lt__q8tile_fn t4x2, t4x1, t1x2, t1x1;
} lt__q8tiles;

#if defined(__x86_64__)
extern const lt__q8tiles lt__q8tiles_avx2;     /* quant_int8_avx2.c: vpmaddubsw + vpmaddwd (AVX2,
                                                  and AVX-512 without VNNI) */
extern const lt__q8tiles lt__q8tiles_avxvnni;  /* quant_int8_avx2.c: AVX-VNNI vpdpbusd (ymm) */
extern const lt__q8tiles lt__q8tiles_vnni;     /* quant_int8_avx512.c (AVX-512 VNNI) */
#endif

static inline int lt__q8_is_k(int32_t type) { return type == LT_GGML_Q4_K || type == LT_GGML_Q6_K; }

/* Bytes of a block and offset of its codes (blocks of 32 only). */
static inline int64_t lt__q8_block_bytes(int32_t type) {
    return type == LT_GGML_Q8_0 ? 34 : (type == LT_GGML_Q4_1 ? 20 : 18);
}
static inline int64_t lt__q8_code_offset(int32_t type) { return type == LT_GGML_Q4_1 ? 4 : 2; }
/* Bytes of a super-block (K types). */
static inline int64_t lt__q8_super_bytes(int32_t type) { return type == LT_GGML_Q4_K ? 144 : 210; }
/* Bytes of a row of nb blocks of 32 (nb a multiple of 8 for the K types). */
static inline int64_t lt__q8_row_bytes(int32_t type, int64_t nb) {
    return lt__q8_is_k(type) ? nb / 8 * lt__q8_super_bytes(type) : nb * lt__q8_block_bytes(type);
}

/* The 6-bit scales and minimums of a Q4_K super-block (its 12 scale bytes at q):
 * out[j] = sc_j, out[8 + j] = m_j (j = 0 … 7), exactly ggml's get_scale_min_k4. */
static inline void lt__q4k_scales(const uint8_t *q, uint8_t out[16]) {
    for (int j = 0; j < 4; j++) {
        out[j] = q[j] & 63;
        out[8 + j] = q[j + 4] & 63;
        out[4 + j] = (uint8_t)((q[j + 8] & 0x0F) | ((q[j] >> 6) << 4));
        out[12 + j] = (uint8_t)((q[j + 8] >> 4) | ((q[j + 4] >> 6) << 4));
    }
}

#endif /* LT_QUANT_INT8_INTERNAL_H */
