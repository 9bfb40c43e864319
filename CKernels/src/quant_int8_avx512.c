/*
 * quant_int8_avx512.c — AVX-512 VNNI kernel of lt_quant_matmul_int8: one vpdpbusd multiplies a
 * pair of weight blocks (64 codes, unsigned: Q4 codes as stored, Q8_0 codes offset by 128) with
 * the pair's 64 rounded activations, the lane corrections (quant_int8_internal.h) starting the
 * integer sums; for Q4_K / Q6_K a pair is 64 values of a super-block (Q6_K codes unsigned, the
 * −32 in the corrections). Lane arithmetic and order as documented there (the same bits as the portable and
 * AVX2 variants). Tiles of 4 W rows × up to 2 activation rows share each weight decode and each
 * activation load.
 */
#if defined(__x86_64__)
#pragma STDC FP_CONTRACT OFF
#include "quant_int8_internal.h"
#include "quant_internal.h"
#include <immintrin.h>

#define VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")))
#define INL static inline __attribute__((always_inline))

/* d (and m) of the 16 blocks b0 … b0 + 15 (zeros past nb): one masked gather of each block's
 * first 32 bits. */
VNNI INL void block_scalars(const uint8_t *row, int64_t bytes, int64_t b0, int64_t nb, __m512 *d, __m512 *m) {
    const int64_t left = nb - b0;
    const __mmask16 k = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32((int)bytes));
    const __m512i v = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), k, idx, row + bytes * b0, 1);
    *d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v));
    *m = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(v, 16)));
}

/* The 64 codes of blocks b, b + 1 (has_b = 0: a missing second block, codes 0 after the offset)
 * as VNNI's unsigned operand. */
VNNI INL __m512i pair_codes(int32_t type, const uint8_t *row, int64_t bytes, int64_t b, int has_b) {
    if (type == LT_GGML_Q8_0) {
        const __m256i a = _mm256_loadu_si256((const __m256i *)(row + bytes * b + 2));
        const __m256i c = has_b ? _mm256_loadu_si256((const __m256i *)(row + bytes * (b + 1) + 2))
                                : _mm256_set1_epi8((char)0x80);
        return _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(a), c, 1), _mm512_set1_epi8((char)0x80));
    }
    const int64_t off = lt__q8_code_offset(type);
    const __m128i a = _mm_loadu_si128((const __m128i *)(row + bytes * b + off));
    const __m128i c = has_b ? _mm_loadu_si128((const __m128i *)(row + bytes * (b + 1) + off)) : _mm_setzero_si128();
    const __m256i t = _mm256_inserti128_si256(_mm256_castsi128_si256(a), c, 1);
    const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(t), _mm256_srli_epi16(t, 4), 1);
    return _mm512_and_si512(z, _mm512_set1_epi8(0x0F));
}

/* The 64 unsigned codes of pair k (values 64k … 64k + 63) of a K super-block blk. Q4_K: the
 * low then the high nibbles of qs[32k …]; Q6_K (half h = k/2, shift 4·(k mod 2)): the nibbles
 * of ql[64h …] with bits 4–5 from qh[32h …] (shifted by 4·(k mod 2) for the first 32 values,
 * 4·(k mod 2) + 2 for the next 32). */
VNNI INL __m512i pair_codes_k(int32_t type, const uint8_t *blk, int k) {
    const __m512i nib = _mm512_set1_epi8(0x0F);
    if (type == LT_GGML_Q4_K) {
        const __m256i t = _mm256_loadu_si256((const __m256i *)(blk + 16 + 32 * k));
        return _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(t), _mm256_srli_epi16(t, 4), 1), nib);
    }
    const int h = k >> 1, sh = 4 * (k & 1);
    const __m512i ql = _mm512_loadu_si512(blk + 64 * h);
    const __m256i q = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * h));
    const __m512i qh = _mm512_inserti64x4(_mm512_castsi256_si512(q), q, 1);
    const __m512i cnt = _mm512_mask_blend_epi32((__mmask16)0xFF00, _mm512_set1_epi16((short)sh), _mm512_set1_epi16((short)(sh + 2)));
    const __m512i hb = _mm512_and_si512(_mm512_slli_epi16(_mm512_srlv_epi16(qh, cnt), 4), _mm512_set1_epi8(0x30));
    return _mm512_or_si512(_mm512_and_si512(_mm512_srl_epi16(ql, _mm_cvtsi32_si128(sh)), nib), hb);
}

/* The fixed tree of quant_int8_internal.h. */
VNNI INL float tree16(__m512 acc) {
    const __m256 v8 = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1));
    const __m128 v4 = _mm_add_ps(_mm256_castps256_ps128(v8), _mm256_extractf128_ps(v8, 1));
    const __m128 v2 = _mm_add_ps(v4, _mm_movehl_ps(v4, v4));
    return _mm_cvtss_f32(_mm_add_ss(v2, _mm_movehdup_ps(v2)));
}

/* R W rows (o, o + 1, …) × G activation rows (x[0 ..< G]) → res[g·R + r]. */
VNNI INL void tile(int32_t type, const uint8_t *row, int64_t rb, int64_t nb, const lt__q8row *x,
                   const int R, const int G, float *res) {
    const int64_t bytes = lt__q8_block_bytes(type);
    const __m512i pat = type == LT_GGML_Q8_0
        ? _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)
        : _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1);
    __m512 acc[4][2];
    for (int r = 0; r < R; r++)
        for (int g = 0; g < G; g++) acc[r][g] = _mm512_setzero_ps();
    for (int64_t b0 = 0; b0 < nb; b0 += 16) {
        __m512 s[4][2];
        for (int r = 0; r < R; r++) {
            __m512 d, m;
            block_scalars(row + r * rb, bytes, b0, nb, &d, &m);
            for (int g = 0; g < G; g++) {
                s[r][g] = _mm512_mul_ps(d, _mm512_loadu_ps(x[g].d + b0));
                if (type == LT_GGML_Q4_1) acc[r][g] = _mm512_fmadd_ps(m, _mm512_loadu_ps(x[g].s + b0), acc[r][g]);
            }
        }
        const int64_t b1 = b0 + 16 < nb ? b0 + 16 : nb;
        __m512i idx = pat;
        for (int64_t b = b0; b < b1; b += 2) {
            const int64_t p = b >> 1;
            __m512i xq[2], init[2];
            for (int g = 0; g < G; g++) {
                xq[g] = _mm512_loadu_si512(x[g].q + 64 * p);
                init[g] = type == LT_GGML_Q4_1 ? _mm512_setzero_si512() : _mm512_loadu_si512(x[g].corr + 16 * p);
            }
            for (int r = 0; r < R; r++) {
                const __m512i z = pair_codes(type, row + r * rb, bytes, b, b + 1 < nb);
                for (int g = 0; g < G; g++) {
                    const __m512i L = _mm512_dpbusd_epi32(init[g], z, xq[g]);
                    acc[r][g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(L), _mm512_permutexvar_ps(idx, s[r][g]), acc[r][g]);
                }
            }
            idx = _mm512_add_epi32(idx, _mm512_set1_epi32(2));
        }
    }
    for (int r = 0; r < R; r++)
        for (int g = 0; g < G; g++) res[g * R + r] = tree16(acc[r][g]);
}

/* Q4_K, Q6_K: R W rows × G activation rows → res[g·R + r]; per super-block the lane scales
 * v (Q4_K: lanes 0–7; Q6_K: 16) and the Q4_K minimums (lanes 0–7), then its 4 pairs. */
VNNI INL void tile_k(int32_t type, const uint8_t *row, int64_t rb, int64_t nb, const lt__q8row *x,
                     const int R, const int G, float *res) {
    const int64_t bytes = lt__q8_super_bytes(type);
    __m512 acc[4][2];
    for (int r = 0; r < R; r++)
        for (int g = 0; g < G; g++) acc[r][g] = _mm512_setzero_ps();
    for (int64_t B = 0; B < nb / 8; B++) {
        const int64_t b0 = 8 * B, p0 = 4 * B;
        __m512 v[4][2];
        for (int r = 0; r < R; r++) {
            const uint8_t *blk = row + r * rb + bytes * B;
            if (type == LT_GGML_Q4_K) {
                uint8_t sm[16];
                lt__q4k_scales(blk + 4, sm);
                /* lanes 0–7: d·sc_j; 8–15: dmin·m_j */
                const __m512 dd = _mm512_mask_blend_ps((__mmask16)0xFF00, _mm512_set1_ps(lt__f16_to_f32(lt__load_u16(blk))),
                                                       _mm512_set1_ps(lt__f16_to_f32(lt__load_u16(blk + 2))));
                const __m512 prod = _mm512_mul_ps(dd, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)sm))));
                const __m512 mn = _mm512_shuffle_f32x4(prod, prod, 0x4E);   /* dmin·m_j in lanes 0–7 */
                for (int g = 0; g < G; g++) {
                    v[r][g] = _mm512_mul_ps(prod, _mm512_zextps256_ps512(_mm256_loadu_ps(x[g].d + b0)));
                    acc[r][g] = _mm512_mask3_fnmadd_ps(mn, _mm512_zextps256_ps512(_mm256_loadu_ps(x[g].s + b0)), acc[r][g],
                                                       (__mmask16)0x00FF);
                }
            } else {
                const __m512 ds = _mm512_mul_ps(_mm512_set1_ps(lt__f16_to_f32(lt__load_u16(blk + 208))),
                                                _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 192)))));
                const __m512i dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
                for (int g = 0; g < G; g++)
                    v[r][g] = _mm512_mul_ps(ds, _mm512_permutexvar_ps(dup, _mm512_zextps256_ps512(_mm256_loadu_ps(x[g].d + b0))));
            }
        }
        for (int k = 0; k < 4; k++) {
            const __m512i idx = type == LT_GGML_Q4_K
                ? _mm512_add_epi32(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1), _mm512_set1_epi32(2 * k))
                : _mm512_add_epi32(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3), _mm512_set1_epi32(4 * k));
            __m512i xq[2], init[2];
            for (int g = 0; g < G; g++) {
                xq[g] = _mm512_loadu_si512(x[g].q + 64 * (p0 + k));
                init[g] = type == LT_GGML_Q4_K ? _mm512_setzero_si512() : _mm512_loadu_si512(x[g].corr + 16 * (p0 + k));
            }
            for (int r = 0; r < R; r++) {
                const __m512i z = pair_codes_k(type, row + r * rb + bytes * B, k);
                for (int g = 0; g < G; g++) {
                    const __m512i L = _mm512_dpbusd_epi32(init[g], z, xq[g]);
                    acc[r][g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(L), _mm512_permutexvar_ps(idx, v[r][g]), acc[r][g]);
                }
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int g = 0; g < G; g++) res[g * R + r] = tree16(acc[r][g]);
}

#define TILE(R, G)                                                                                   \
    VNNI __attribute__((noinline)) static void tile_##R##_##G(int32_t type, const uint8_t *row,    \
                                                              int64_t rb, int64_t nb,              \
                                                              const lt__q8row *x, float *res) {     \
        if (type == LT_GGML_Q4_K) tile_k(LT_GGML_Q4_K, row, rb, nb, x, R, G, res);                  \
        else if (type == LT_GGML_Q6_K) tile_k(LT_GGML_Q6_K, row, rb, nb, x, R, G, res);             \
        else tile(type, row, rb, nb, x, R, G, res);                                                 \
    }
TILE(4, 2)
TILE(4, 1)
TILE(1, 2)
TILE(1, 1)

const lt__q8tiles lt__q8tiles_vnni = {tile_4_2, tile_4_1, tile_1_2, tile_1_1};
#endif
