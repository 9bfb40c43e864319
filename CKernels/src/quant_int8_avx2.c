/*
 * quant_int8_avx2.c — AVX2 kernels of lt_quant_matmul_int8 (also those of AVX-512 on CPUs
 * without AVX512_VNNI), in two variants compiled from the one body below (this file includes
 * itself once per variant):
 *   lt__q8tiles_avx2     vpmaddubsw + vpmaddwd form the exact int32 lane sums (Q8_0 through |w|
 *                        and sign(x, w), whose pair sums stay below 2^15; the other codes as
 *                        stored, unsigned, plus the lane corrections);
 *   lt__q8tiles_avxvnni  AVX-VNNI's VEX-encoded vpdpbusd on the same operands (one instruction
 *                        for the 4 products of a lane; CPUs with avx_vnni).
 * The integer sums are exact either way, and the lane arithmetic and order are as documented
 * in quant_int8_internal.h (lanes 0–7 in one register and 8–15 in another): the same bits as
 * the portable and AVX-512 VNNI variants. Tiles of 4 W rows × up to 2 activation rows.
 */
#if defined(__x86_64__)
#ifndef LT_Q8_AVX2_PASS
#pragma STDC FP_CONTRACT OFF
#include "quant_int8_internal.h"
#include "quant_internal.h"
#include <immintrin.h>

#define INL static inline __attribute__((always_inline))

#define LT_Q8_AVX2_PASS 1
#define A2 __attribute__((target("avx2,fma,f16c")))
#define N(x) x##_avx2
#define USE_VNNI 0
#include "quant_int8_avx2.c"
#undef A2
#undef N
#undef USE_VNNI

#undef LT_Q8_AVX2_PASS
#define LT_Q8_AVX2_PASS 2
#define A2 __attribute__((target("avx2,fma,f16c,avxvnni")))
#define N(x) x##_avxvnni
#define USE_VNNI 1
#include "quant_int8_avx2.c"
#undef A2
#undef N
#undef USE_VNNI

#else /* the body, once per variant: A2 (target attribute), N (name suffix), USE_VNNI */

/* Exact int32 sums of the 4 products u·s of each lane (u unsigned, s signed bytes, every pair
 * sum of vpmaddubsw within int16), added to init. */
A2 INL __m256i N(dot4)(__m256i init, __m256i u, __m256i s) {
#if USE_VNNI
    return _mm256_dpbusd_avx_epi32(init, u, s);
#else
    return _mm256_add_epi32(init, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

/* d (and m) of 8 blocks b0 … b0 + 7 (zeros past nb): a masked gather of each block's first 32
 * bits, then the 16-bit halves picked and widened. */
A2 INL void N(block_scalars8)(const uint8_t *row, int64_t bytes, int64_t b0, int64_t nb, __m256 *d, __m256 *m) {
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

/* Exact int32 lane sums of a pair (lanes 0–7 → *L0, 8–15 → *L1) for one activation row:
 * Q8_0 through |c| and sign(x, c); the other types' unsigned codes as they are, plus the lane
 * corrections for Q4_0 and Q6_K. */
A2 INL void N(pair_lanes)(int32_t type, __m256i c0, __m256i c1, const int8_t *xq, const int32_t *corr,
                          __m256i *L0, __m256i *L1) {
    const __m256i x0 = _mm256_loadu_si256((const __m256i *)xq), x1 = _mm256_loadu_si256((const __m256i *)(xq + 32));
    if (type == LT_GGML_Q8_0) {
        *L0 = N(dot4)(_mm256_setzero_si256(), _mm256_abs_epi8(c0), _mm256_sign_epi8(x0, c0));
        *L1 = N(dot4)(_mm256_setzero_si256(), _mm256_abs_epi8(c1), _mm256_sign_epi8(x1, c1));
        return;
    }
    const int corrected = type == LT_GGML_Q4_0 || type == LT_GGML_Q6_K;
    const __m256i i0 = corrected ? _mm256_loadu_si256((const __m256i *)corr) : _mm256_setzero_si256();
    const __m256i i1 = corrected ? _mm256_loadu_si256((const __m256i *)(corr + 8)) : _mm256_setzero_si256();
    *L0 = N(dot4)(i0, c0, x0);
    *L1 = N(dot4)(i1, c1, x1);
}

/* The codes of blocks b, b + 1 as two registers matching the activation layout: Q8_0 signed
 * bytes of a and of b; Q4_x the low nibbles of a and b, then their high nibbles. */
A2 INL void N(pair_codes)(int32_t type, const uint8_t *row, int64_t bytes, int64_t b, int has_b, __m256i *c0, __m256i *c1) {
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

/* The unsigned codes of pair k (values 64k … 64k + 63) of a K super-block blk: values
 * 64k … 64k + 31 → *c0, the next 32 → *c1. Q4_K: the low and high nibbles of qs[32k …];
 * Q6_K (half h = k/2, shift 4·(k mod 2)): the nibbles of ql[64h …] and ql[64h + 32 …] with
 * bits 4–5 from qh[32h …] shifted by 4·(k mod 2) and 4·(k mod 2) + 2. */
A2 INL void N(pair_codes_k)(int32_t type, const uint8_t *blk, int k, __m256i *c0, __m256i *c1) {
    const __m256i nib = _mm256_set1_epi8(0x0F);
    if (type == LT_GGML_Q4_K) {
        const __m256i t = _mm256_loadu_si256((const __m256i *)(blk + 16 + 32 * k));
        *c0 = _mm256_and_si256(t, nib);
        *c1 = _mm256_and_si256(_mm256_srli_epi16(t, 4), nib);
        return;
    }
    const int h = k >> 1, sh = 4 * (k & 1);
    const __m128i s0 = _mm_cvtsi32_si128(sh), s1 = _mm_cvtsi32_si128(sh + 2);
    const __m256i l0 = _mm256_loadu_si256((const __m256i *)(blk + 64 * h));
    const __m256i l1 = _mm256_loadu_si256((const __m256i *)(blk + 64 * h + 32));
    const __m256i qh = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * h)), two = _mm256_set1_epi8(0x30);
    const __m256i h0 = _mm256_and_si256(_mm256_slli_epi16(_mm256_srl_epi16(qh, s0), 4), two);
    const __m256i h1 = _mm256_and_si256(_mm256_slli_epi16(_mm256_srl_epi16(qh, s1), 4), two);
    *c0 = _mm256_or_si256(_mm256_and_si256(_mm256_srl_epi16(l0, s0), nib), h0);
    *c1 = _mm256_or_si256(_mm256_and_si256(_mm256_srl_epi16(l1, s0), nib), h1);
}

A2 INL float N(tree16)(__m256 a0, __m256 a1) {
    const __m256 v8 = _mm256_add_ps(a0, a1);
    const __m128 v4 = _mm_add_ps(_mm256_castps256_ps128(v8), _mm256_extractf128_ps(v8, 1));
    const __m128 v2 = _mm_add_ps(v4, _mm_movehl_ps(v4, v4));
    return _mm_cvtss_f32(_mm_add_ss(v2, _mm_movehdup_ps(v2)));
}

/* Q8_0, Q4_0, Q4_1: R W rows × G activation rows → res[g·R + r]. */
A2 INL void N(tile)(int32_t type, const uint8_t *row, int64_t rb, int64_t nb, const lt__q8row *x,
                    const int R, const int G, float *res) {
    const int64_t bytes = lt__q8_block_bytes(type);
    __m256 acc0[4][2], acc1[4][2];
    for (int r = 0; r < R; r++)
        for (int g = 0; g < G; g++) acc0[r][g] = acc1[r][g] = _mm256_setzero_ps();
    for (int64_t b0 = 0; b0 < nb; b0 += 16) {
        float s[4][2][16] __attribute__((aligned(32)));
        for (int r = 0; r < R; r++) {
            __m256 d0, m0, d1, m1;
            N(block_scalars8)(row + r * rb, bytes, b0, nb, &d0, &m0);
            N(block_scalars8)(row + r * rb, bytes, b0 + 8, nb, &d1, &m1);
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
                N(pair_codes)(type, row + r * rb, bytes, b, b + 1 < nb, &c0, &c1);
                for (int g = 0; g < G; g++) {
                    __m256i L0, L1;
                    N(pair_lanes)(type, c0, c1, x[g].q + 64 * p, x[g].corr + 16 * p, &L0, &L1);
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
        for (int g = 0; g < G; g++) res[g * R + r] = N(tree16)(acc0[r][g], acc1[r][g]);
}

/* Q4_K, Q6_K: R W rows × G activation rows → res[g·R + r]; per super-block the scales v
 * (16 floats: Q4_K v[0 … 7], Q6_K v[0 … 15]) and the Q4_K minimums, then its 4 pairs. */
A2 INL void N(tile_k)(int32_t type, const uint8_t *row, int64_t rb, int64_t nb, const lt__q8row *x,
                      const int R, const int G, float *res) {
    const int64_t bytes = lt__q8_super_bytes(type);
    __m256 acc0[4][2], acc1[4][2];
    for (int r = 0; r < R; r++)
        for (int g = 0; g < G; g++) acc0[r][g] = acc1[r][g] = _mm256_setzero_ps();
    for (int64_t B = 0; B < nb / 8; B++) {
        const int64_t b0 = 8 * B, p0 = 4 * B;
        float v[4][2][16] __attribute__((aligned(32)));
        for (int r = 0; r < R; r++) {
            const uint8_t *blk = row + r * rb + bytes * B;
            if (type == LT_GGML_Q4_K) {
                uint8_t sm[16];
                lt__q4k_scales(blk + 4, sm);
                const __m128i t = _mm_loadu_si128((const __m128i *)sm);
                const __m256 d = _mm256_set1_ps(lt__f16_to_f32(lt__load_u16(blk)));
                const __m256 dmin = _mm256_set1_ps(lt__f16_to_f32(lt__load_u16(blk + 2)));
                const __m256 dsc = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(t)));
                const __m256 dmn = _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(t, 8))));
                for (int g = 0; g < G; g++) {
                    _mm256_store_ps(v[r][g], _mm256_mul_ps(dsc, _mm256_loadu_ps(x[g].d + b0)));
                    acc0[r][g] = _mm256_fnmadd_ps(dmn, _mm256_loadu_ps(x[g].s + b0), acc0[r][g]);
                }
            } else {
                const __m128i t = _mm_loadu_si128((const __m128i *)(blk + 192));
                const __m256 d = _mm256_set1_ps(lt__f16_to_f32(lt__load_u16(blk + 208)));
                const __m256 ds0 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(t)));
                const __m256 ds1 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(t, 8))));
                for (int g = 0; g < G; g++) {
                    const __m256 dx = _mm256_loadu_ps(x[g].d + b0);
                    const __m256 lo = _mm256_permutevar8x32_ps(dx, _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3));
                    const __m256 hi = _mm256_permutevar8x32_ps(dx, _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7));
                    _mm256_store_ps(v[r][g], _mm256_mul_ps(ds0, lo));
                    _mm256_store_ps(v[r][g] + 8, _mm256_mul_ps(ds1, hi));
                }
            }
        }
        for (int k = 0; k < 4; k++) {
            for (int r = 0; r < R; r++) {
                __m256i c0, c1;
                N(pair_codes_k)(type, row + r * rb + bytes * B, k, &c0, &c1);
                for (int g = 0; g < G; g++) {
                    __m256i L0, L1;
                    N(pair_lanes)(type, c0, c1, x[g].q + 64 * (p0 + k), x[g].corr + 16 * (p0 + k), &L0, &L1);
                    __m256 s0, s1;
                    if (type == LT_GGML_Q4_K) {
                        s0 = _mm256_set1_ps(v[r][g][2 * k]);
                        s1 = _mm256_set1_ps(v[r][g][2 * k + 1]);
                    } else {
                        s0 = _mm256_blend_ps(_mm256_set1_ps(v[r][g][4 * k]), _mm256_set1_ps(v[r][g][4 * k + 1]), 0xF0);
                        s1 = _mm256_blend_ps(_mm256_set1_ps(v[r][g][4 * k + 2]), _mm256_set1_ps(v[r][g][4 * k + 3]), 0xF0);
                    }
                    acc0[r][g] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(L0), s0, acc0[r][g]);
                    acc1[r][g] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(L1), s1, acc1[r][g]);
                }
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int g = 0; g < G; g++) res[g * R + r] = N(tree16)(acc0[r][g], acc1[r][g]);
}

#define TILE_NAME(R, G) N(tile_##R##_##G)
#define TILE(R, G)                                                                                   \
    A2 __attribute__((noinline)) static void TILE_NAME(R, G)(int32_t type, const uint8_t *row,     \
                                                             int64_t rb, int64_t nb,               \
                                                             const lt__q8row *x, float *res) {      \
        if (type == LT_GGML_Q4_K) N(tile_k)(LT_GGML_Q4_K, row, rb, nb, x, R, G, res);               \
        else if (type == LT_GGML_Q6_K) N(tile_k)(LT_GGML_Q6_K, row, rb, nb, x, R, G, res);          \
        else N(tile)(type, row, rb, nb, x, R, G, res);                                              \
    }
TILE(4, 2)
TILE(4, 1)
TILE(1, 2)
TILE(1, 1)
#undef TILE
#undef TILE_NAME

const lt__q8tiles N(lt__q8tiles) = {N(tile_4_2), N(tile_4_1), N(tile_1_2), N(tile_1_1)};

#endif /* LT_Q8_AVX2_PASS */
#endif
