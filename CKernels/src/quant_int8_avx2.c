/*
 * quant_int8_avx2.c — AVX2 kernel of lt_quant_matmul_int8 (also the AVX-512 one on CPUs without
 * VNNI): a pair of weight blocks is two 256-bit halves of codes; vpmaddubsw + vpmaddwd form the
 * exact int32 lane sums (Q8_0 through |w| and sign(x, w), whose pair sums stay below 2^15; the
 * Q4 codes as stored plus the lane corrections). Lane arithmetic and order as documented in
 * quant_int8_internal.h, lanes 0–7 in one register and 8–15 in another: the same bits as the
 * portable and VNNI variants. Tiles of 4 W rows × up to 2 activation rows.
 */
#if defined(__x86_64__)
#pragma STDC FP_CONTRACT OFF
#include "quant_int8_internal.h"
#include "quant_internal.h"
#include <immintrin.h>

#define A2 __attribute__((target("avx2,fma,f16c")))
#define INL static inline __attribute__((always_inline))

/* d (and m) of 8 blocks b0 … b0 + 7 (zeros past nb): a masked gather of each block's first 32
 * bits, then the 16-bit halves picked and widened. */
A2 INL void block_scalars8(const uint8_t *row, int64_t bytes, int64_t b0, int64_t nb, __m256 *d, __m256 *m) {
    const int64_t left = nb - b0;
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(left < 8 ? (left > 0 ? left : 0) : 8)), lane);
    const __m256i idx = _mm256_mullo_epi32(lane, _mm256_set1_epi32((int)bytes));
    const __m256i v = _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), (const int *)(const void *)(row + bytes * b0),
                                                  idx, mask, 1);
    const __m256i lo = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1,
                                        0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m256i hi = _mm256_setr_epi8(2, 3, 6, 7, 10, 11, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1,
                                        2, 3, 6, 7, 10, 11, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1);
    *d = _mm256_cvtph_ps(_mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_shuffle_epi8(v, lo), 0x08)));
    *m = _mm256_cvtph_ps(_mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_shuffle_epi8(v, hi), 0x08)));
}

/* Exact int32 lane sums of a pair (lanes 0–7 → *L0, 8–15 → *L1) for one activation row. */
A2 INL void pair_lanes(int32_t type, __m256i c0, __m256i c1, const int8_t *xq, const int32_t *corr,
                       __m256i *L0, __m256i *L1) {
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i x0 = _mm256_loadu_si256((const __m256i *)xq), x1 = _mm256_loadu_si256((const __m256i *)(xq + 32));
    if (type == LT_GGML_Q8_0) {
        *L0 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(c0), _mm256_sign_epi8(x0, c0)), ones);
        *L1 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(c1), _mm256_sign_epi8(x1, c1)), ones);
        return;
    }
    *L0 = _mm256_madd_epi16(_mm256_maddubs_epi16(c0, x0), ones);
    *L1 = _mm256_madd_epi16(_mm256_maddubs_epi16(c1, x1), ones);
    if (type == LT_GGML_Q4_0) {
        *L0 = _mm256_add_epi32(*L0, _mm256_loadu_si256((const __m256i *)corr));
        *L1 = _mm256_add_epi32(*L1, _mm256_loadu_si256((const __m256i *)(corr + 8)));
    }
}

/* The codes of blocks b, b + 1 as two registers matching the activation layout: Q8_0 signed
 * bytes of a and of b; Q4_x the low nibbles of a and b, then their high nibbles. */
A2 INL void pair_codes(int32_t type, const uint8_t *row, int64_t bytes, int64_t b, int has_b, __m256i *c0, __m256i *c1) {
    if (type == LT_GGML_Q8_0) {
        *c0 = _mm256_loadu_si256((const __m256i *)(row + bytes * b + 2));
        *c1 = has_b ? _mm256_loadu_si256((const __m256i *)(row + bytes * (b + 1) + 2)) : _mm256_setzero_si256();
        return;
    }
    const int64_t off = lt__q8_code_offset(type);
    const __m128i a = _mm_loadu_si128((const __m128i *)(row + bytes * b + off));
    const __m128i c = has_b ? _mm_loadu_si128((const __m128i *)(row + bytes * (b + 1) + off)) : _mm_setzero_si128();
    const __m256i t = _mm256_inserti128_si256(_mm256_castsi128_si256(a), c, 1), nib = _mm256_set1_epi8(0x0F);
    *c0 = _mm256_and_si256(t, nib);
    *c1 = _mm256_and_si256(_mm256_srli_epi16(t, 4), nib);
}

A2 INL float tree16(__m256 a0, __m256 a1) {
    const __m256 v8 = _mm256_add_ps(a0, a1);
    const __m128 v4 = _mm_add_ps(_mm256_castps256_ps128(v8), _mm256_extractf128_ps(v8, 1));
    const __m128 v2 = _mm_add_ps(v4, _mm_movehl_ps(v4, v4));
    return _mm_cvtss_f32(_mm_add_ss(v2, _mm_movehdup_ps(v2)));
}

A2 INL void tile(int32_t type, const uint8_t *row, int64_t rb, int64_t nb, const lt__q8row *x,
                 const int R, const int G, float *res) {
    const int64_t bytes = lt__q8_block_bytes(type);
    __m256 acc0[4][2], acc1[4][2];
    for (int r = 0; r < R; r++)
        for (int g = 0; g < G; g++) acc0[r][g] = acc1[r][g] = _mm256_setzero_ps();
    for (int64_t b0 = 0; b0 < nb; b0 += 16) {
        float s[4][2][16] __attribute__((aligned(32)));
        for (int r = 0; r < R; r++) {
            __m256 d0, m0, d1, m1;
            block_scalars8(row + r * rb, bytes, b0, nb, &d0, &m0);
            block_scalars8(row + r * rb, bytes, b0 + 8, nb, &d1, &m1);
            for (int g = 0; g < G; g++) {
                _mm256_store_ps(s[r][g], _mm256_mul_ps(d0, _mm256_loadu_ps(x[g].d + b0)));
                _mm256_store_ps(s[r][g] + 8, _mm256_mul_ps(d1, _mm256_loadu_ps(x[g].d + b0 + 8)));
                if (type == LT_GGML_Q4_1) {
                    acc0[r][g] = _mm256_fmadd_ps(m0, _mm256_loadu_ps(x[g].s + b0), acc0[r][g]);
                    acc1[r][g] = _mm256_fmadd_ps(m1, _mm256_loadu_ps(x[g].s + b0 + 8), acc1[r][g]);
                }
            }
        }
        const int64_t b1 = b0 + 16 < nb ? b0 + 16 : nb;
        for (int64_t b = b0; b < b1; b += 2) {
            const int64_t p = b >> 1;
            const int k = (int)(b - b0);
            for (int r = 0; r < R; r++) {
                __m256i c0, c1;
                pair_codes(type, row + r * rb, bytes, b, b + 1 < nb, &c0, &c1);
                for (int g = 0; g < G; g++) {
                    __m256i L0, L1;
                    pair_lanes(type, c0, c1, x[g].q + 64 * p, x[g].corr + 16 * p, &L0, &L1);
                    const __m256 sa = _mm256_set1_ps(s[r][g][k]), sb = _mm256_set1_ps(s[r][g][k + 1]);
                    const __m256 s0 = type == LT_GGML_Q8_0 ? sa : _mm256_blend_ps(sa, sb, 0xF0);
                    const __m256 s1 = type == LT_GGML_Q8_0 ? sb : s0;
                    acc0[r][g] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(L0), s0, acc0[r][g]);
                    acc1[r][g] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(L1), s1, acc1[r][g]);
                }
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int g = 0; g < G; g++) res[g * R + r] = tree16(acc0[r][g], acc1[r][g]);
}

#define TILE(R, G)                                                                                   \
    A2 __attribute__((noinline)) static void tile_##R##_##G(int32_t type, const uint8_t *row,      \
                                                            int64_t rb, int64_t nb,                \
                                                            const lt__q8row *x, float *res) {       \
        tile(type, row, rb, nb, x, R, G, res);                                                      \
    }
TILE(4, 2)
TILE(4, 1)
TILE(1, 2)
TILE(1, 1)

const lt__q8tiles lt__q8tiles_avx2 = {tile_4_2, tile_4_1, tile_1_2, tile_1_1};
#endif
