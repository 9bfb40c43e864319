/*
 * quant_gemv_avx512.c — AVX-512 decode-sized products with stored matrices (n <= 8 rows of
 * activations): fused kernels that turn 32 stored values at a time into two 16-lane vectors
 * of exactly the dequantized weights and multiply-add them with the activations
 * (contract and summation order in quant_matmul_internal.h).
 *
 * Decoders (one per type, `dec_*`): the 4- and 5-bit formats build a 16- or 32-entry table
 * of the block's possible values (e.g. Q4_1: d·q + m for q = 0…15) and look the codes up with
 * vpermps / vpermt2ps; Q8_0 and Q6_K convert the codes and multiply by the scale; F16 and
 * BF16 widen; F32 loads. Every product in the block formulas is exact in float32 (see
 * quant_internal.h), so fma(d, q, m) equals the reference's d·q + m bit for bit.
 */
#if defined(__x86_64__)
#pragma STDC FP_CONTRACT OFF
#include "quant_matmul_internal.h"
#include "quant_internal.h"
#include <immintrin.h>

#define A512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))
#define INL static inline __attribute__((always_inline))

A512 INL float h2f(const uint8_t *p) { return _cvtsh_ss(lt__load_u16(p)); }
A512 INL __m512 iota16(void) {
    return _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}
A512 INL __m512i bytes16(const uint8_t *p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p)); }

/* ---- decoders ----------------------------------------------------------------------------------
 * prep_T(row, u0, nu, sc): the per-unit scalars of units u0 ..< u0 + nu (two floats per unit:
 *   d and m, or the sub-block's scale and min, …) into sc[0 ..< 2·nu] — done once per chunk of
 *   units so that the main loop only broadcasts them from memory (no float16 conversions and
 *   no shuffles there);
 * dec_T(row, u, sc, lo, hi): unit u (values 32u ..< 32u + 32) → lo (first 16 values), hi, with
 *   sc the unit's two scalars. */

#define NO_PREP(T) INL void prep_##T(const uint8_t *row, int64_t u0, int64_t nu, float *sc) { \
        (void)row; (void)u0; (void)nu; (void)sc; }
NO_PREP(f32)
NO_PREP(f16)
NO_PREP(bf16)

/* d (and m) of 32-value blocks of `bytes` bytes: the first 32 bits of 16 blocks at a time
 * (one gather; masked at the end, so nothing past the last block is read), widened by one
 * conversion into the [d, m] pairs. For Q8_0 and the other blocks without m the second
 * value is junk and never used. */
A512 INL void prep_dm(const uint8_t *row, int64_t bytes, int64_t u0, int64_t nu, float *sc) {
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32((int)bytes));
    for (int64_t u = 0; u < nu; u += 16) {
        const int64_t left = nu - u;
        const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        const __m512i v = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, idx, row + bytes * (u0 + u), 1);
        _mm512_storeu_ps(sc + 2 * u, _mm512_cvtph_ps(_mm512_castsi512_si256(v)));
        _mm512_storeu_ps(sc + 2 * u + 16, _mm512_cvtph_ps(_mm512_extracti64x4_epi64(v, 1)));
    }
}
A512 INL void prep_q4_0(const uint8_t *row, int64_t u0, int64_t nu, float *sc) { prep_dm(row, 18, u0, nu, sc); }
A512 INL void prep_q4_1(const uint8_t *row, int64_t u0, int64_t nu, float *sc) { prep_dm(row, 20, u0, nu, sc); }
A512 INL void prep_q5_0(const uint8_t *row, int64_t u0, int64_t nu, float *sc) { prep_dm(row, 22, u0, nu, sc); }
A512 INL void prep_q5_1(const uint8_t *row, int64_t u0, int64_t nu, float *sc) { prep_dm(row, 24, u0, nu, sc); }
A512 INL void prep_q8_0(const uint8_t *row, int64_t u0, int64_t nu, float *sc) { prep_dm(row, 34, u0, nu, sc); }

/* Q4_K / Q5_K: per block, the eight 6-bit scales and mins (ggml's get_scale_min_k4, done for
 * all eight at once with 32-bit masks as in ggml's dot kernels), then d·sc and dmin·mn (the
 * reference's products) as [d·sc, dmin·mn] pairs. u0 and nu are whole blocks (8 units). */
A512 INL void prep_k45(const uint8_t *row, int64_t bytes, int64_t u0, int64_t nu, float *sc) {
    const __m512i pairs = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    for (int64_t u = 0; u < nu; u += 8) {
        const uint8_t *blk = row + bytes * ((u0 + u) >> 3);
        uint32_t t[4];
        memcpy(t, blk + 4, 12);
        const uint32_t k1 = 0x3f3f3f3fu, k2 = 0x0f0f0f0fu, k3 = 0x03030303u;
        t[3] = ((t[2] >> 4) & k2) | (((t[1] >> 6) & k3) << 4);
        const uint32_t mins_lo = t[1] & k1;
        t[1] = (t[2] & k2) | (((t[0] >> 6) & k3) << 4);
        t[2] = mins_lo;
        t[0] &= k1;
        const __m128 dm = _mm_cvtph_ps(_mm_cvtsi32_si128((int)lt__load_u32(blk)));
        const __m256 scf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_set_epi32(0, 0, (int)t[1], (int)t[0])));
        const __m256 mnf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_set_epi32(0, 0, (int)t[3], (int)t[2])));
        const __m256 ds = _mm256_mul_ps(_mm256_set1_ps(_mm_cvtss_f32(dm)), scf);
        const __m256 ns = _mm256_mul_ps(_mm256_set1_ps(_mm_cvtss_f32(_mm_movehdup_ps(dm))), mnf);
        _mm512_storeu_ps(sc + 2 * u, _mm512_permutex2var_ps(_mm512_castps256_ps512(ds), pairs, _mm512_castps256_ps512(ns)));
    }
}
A512 INL void prep_q4_k(const uint8_t *row, int64_t u0, int64_t nu, float *sc) { prep_k45(row, 144, u0, nu, sc); }
A512 INL void prep_q5_k(const uint8_t *row, int64_t u0, int64_t nu, float *sc) { prep_k45(row, 176, u0, nu, sc); }

/* Q6_K: d·sc of the sixteen 16-value groups of a block, in order — exactly the [first half,
 * second half] scale pairs of its eight 32-value units. */
A512 INL void prep_q6_k(const uint8_t *row, int64_t u0, int64_t nu, float *sc) {
    for (int64_t u = 0; u < nu; u += 8) {
        const uint8_t *blk = row + 210 * ((u0 + u) >> 3);
        const __m512 s = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 192))));
        _mm512_storeu_ps(sc + 2 * u, _mm512_mul_ps(_mm512_set1_ps(h2f(blk + 208)), s));
    }
}

A512 INL void dec_f32(const uint8_t *row, int64_t u, const float *sc, __m512 *lo, __m512 *hi) {
    (void)sc;
    const float *p = (const float *)(const void *)row + 32 * u;
    *lo = _mm512_loadu_ps(p);
    *hi = _mm512_loadu_ps(p + 16);
}

A512 INL void dec_f16(const uint8_t *row, int64_t u, const float *sc, __m512 *lo, __m512 *hi) {
    (void)sc;
    const uint8_t *p = row + 64 * u;
    *lo = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
    *hi = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + 32)));
}

A512 INL void dec_bf16(const uint8_t *row, int64_t u, const float *sc, __m512 *lo, __m512 *hi) {
    (void)sc;
    const uint8_t *p = row + 64 * u;
    *lo = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
    *hi = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p + 32))), 16));
}

A512 INL void dec_q4_0(const uint8_t *row, int64_t u, const float *sc, __m512 *lo, __m512 *hi) {
    const __m512 lut = _mm512_mul_ps(_mm512_set1_ps(sc[0]), _mm512_sub_ps(iota16(), _mm512_set1_ps(8.0f)));
    const __m512i b = bytes16(row + 18 * u + 2);
    *lo = _mm512_permutexvar_ps(b, lut);                       /* vpermps reads index bits 0–3 */
    *hi = _mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), lut);
}

A512 INL void dec_q4_1(const uint8_t *row, int64_t u, const float *sc, __m512 *lo, __m512 *hi) {
    const __m512 lut = _mm512_fmadd_ps(_mm512_set1_ps(sc[0]), iota16(), _mm512_set1_ps(sc[1]));
    const __m512i b = bytes16(row + 20 * u + 4);
    *lo = _mm512_permutexvar_ps(b, lut);
    *hi = _mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), lut);
}

/* 5-bit codes: nibble | (high bit << 4) indexes a 32-entry table (lut_a: 0–15, lut_b: 16–31). */
A512 INL void dec_q5_0(const uint8_t *row, int64_t u, const float *sc, __m512 *lo, __m512 *hi) {
    const uint8_t *blk = row + 22 * u;
    const __m512 d = _mm512_set1_ps(sc[0]);
    const uint32_t qh = lt__load_u32(blk + 2);
    const __m512 lut_a = _mm512_mul_ps(d, _mm512_sub_ps(iota16(), _mm512_set1_ps(16.0f)));
    const __m512 lut_b = _mm512_mul_ps(d, iota16());
    const __m512i b = bytes16(blk + 6), sixteen = _mm512_set1_epi32(16);
    __m512i il = _mm512_and_si512(b, _mm512_set1_epi32(0x0F)), ih = _mm512_srli_epi32(b, 4);
    il = _mm512_mask_or_epi32(il, (__mmask16)(qh & 0xFFFFu), il, sixteen);
    ih = _mm512_mask_or_epi32(ih, (__mmask16)(qh >> 16), ih, sixteen);
    *lo = _mm512_permutex2var_ps(lut_a, il, lut_b);
    *hi = _mm512_permutex2var_ps(lut_a, ih, lut_b);
}

A512 INL void dec_q5_1(const uint8_t *row, int64_t u, const float *sc, __m512 *lo, __m512 *hi) {
    const uint8_t *blk = row + 24 * u;
    const __m512 d = _mm512_set1_ps(sc[0]), m = _mm512_set1_ps(sc[1]);
    const uint32_t qh = lt__load_u32(blk + 4);
    const __m512 lut_a = _mm512_fmadd_ps(d, iota16(), m);
    const __m512 lut_b = _mm512_fmadd_ps(d, _mm512_add_ps(iota16(), _mm512_set1_ps(16.0f)), m);
    const __m512i b = bytes16(blk + 8), sixteen = _mm512_set1_epi32(16);
    __m512i il = _mm512_and_si512(b, _mm512_set1_epi32(0x0F)), ih = _mm512_srli_epi32(b, 4);
    il = _mm512_mask_or_epi32(il, (__mmask16)(qh & 0xFFFFu), il, sixteen);
    ih = _mm512_mask_or_epi32(ih, (__mmask16)(qh >> 16), ih, sixteen);
    *lo = _mm512_permutex2var_ps(lut_a, il, lut_b);
    *hi = _mm512_permutex2var_ps(lut_a, ih, lut_b);
}

A512 INL void dec_q8_0(const uint8_t *row, int64_t u, const float *sc, __m512 *lo, __m512 *hi) {
    const uint8_t *blk = row + 34 * u;
    const __m512 d = _mm512_set1_ps(sc[0]);
    const __m512i q0 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2)));
    const __m512i q1 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 18)));
    *lo = _mm512_mul_ps(_mm512_cvtepi32_ps(q0), d);
    *hi = _mm512_mul_ps(_mm512_cvtepi32_ps(q1), d);
}

A512 INL void dec_q4_k(const uint8_t *row, int64_t u, const float *sc, __m512 *lo, __m512 *hi) {
    const int s = (int)(u & 7);
    const __m512 lut = _mm512_fmsub_ps(_mm512_set1_ps(sc[0]), iota16(), _mm512_set1_ps(sc[1]));
    const uint8_t *q = row + 144 * (u >> 3) + 16 + 32 * (s >> 1);
    __m512i bl = bytes16(q), bh = bytes16(q + 16);
    if (s & 1) { bl = _mm512_srli_epi32(bl, 4); bh = _mm512_srli_epi32(bh, 4); }
    *lo = _mm512_permutexvar_ps(bl, lut);
    *hi = _mm512_permutexvar_ps(bh, lut);
}

A512 INL void dec_q5_k(const uint8_t *row, int64_t u, const float *sc, __m512 *lo, __m512 *hi) {
    const uint8_t *blk = row + 176 * (u >> 3);
    const int s = (int)(u & 7);
    const __m512 d0 = _mm512_set1_ps(sc[0]), n0 = _mm512_set1_ps(sc[1]);
    const __m512 lut_a = _mm512_fmsub_ps(d0, iota16(), n0);
    const __m512 lut_b = _mm512_fmsub_ps(d0, _mm512_add_ps(iota16(), _mm512_set1_ps(16.0f)), n0);
    const uint8_t *qh = blk + 16, *q = blk + 48 + 32 * (s >> 1);
    __m512i bl = bytes16(q), bh = bytes16(q + 16);
    if (s & 1) { bl = _mm512_srli_epi32(bl, 4); bh = _mm512_srli_epi32(bh, 4); }
    else { bl = _mm512_and_si512(bl, _mm512_set1_epi32(0x0F)); bh = _mm512_and_si512(bh, _mm512_set1_epi32(0x0F)); }
    const __m512i bit = _mm512_set1_epi32(1 << s), sixteen = _mm512_set1_epi32(16);
    const __mmask16 ml = _mm512_test_epi32_mask(bytes16(qh), bit), mh = _mm512_test_epi32_mask(bytes16(qh + 16), bit);
    bl = _mm512_mask_or_epi32(bl, ml, bl, sixteen);
    bh = _mm512_mask_or_epi32(bh, mh, bh, sixteen);
    *lo = _mm512_permutex2var_ps(lut_a, bl, lut_b);
    *hi = _mm512_permutex2var_ps(lut_a, bh, lut_b);
}

A512 INL void dec_q6_k(const uint8_t *row, int64_t u, const float *sc, __m512 *lo, __m512 *hi) {
    const uint8_t *blk = row + 210 * (u >> 3);
    const int w = (int)(u & 7), h = w >> 2, j = w & 3;
    const __m256i L = _mm256_loadu_si256((const __m256i *)(blk + 64 * h + 32 * (j & 1)));
    const __m256i H = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * h));
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
    const __m256i nib = (j >> 1) ? _mm256_and_si256(_mm256_srli_epi16(L, 4), m4) : _mm256_and_si256(L, m4);
    const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(H, 2 * j), m2);
    const __m256i q = _mm256_sub_epi8(_mm256_or_si256(nib, _mm256_slli_epi16(hb, 4)), _mm256_set1_epi8(32));
    *lo = _mm512_mul_ps(_mm512_set1_ps(sc[0]), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q))));
    *hi = _mm512_mul_ps(_mm512_set1_ps(sc[1]), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1))));
}

/* ---- tiles: R rows of W × G rows of X ------------------------------------------------------ */

/* Units whose scalars are prepared at a time (the chunking does not change any result). */
#define UNIT_CHUNK 64

/* Ragged end of a row of a float type (K % 32 values): zero-padded copies, same chains. */
A512 INL void tail_unit(int32_t type, const uint8_t *row, int64_t k0, int64_t t, __m512 *lo, __m512 *hi) {
    float buf[32] __attribute__((aligned(64)));
    for (int64_t l = 0; l < 32; l++) buf[l] = l < t ? lt__qelem(type, row, k0 + l) : 0.0f;
    *lo = _mm512_load_ps(buf);
    *hi = _mm512_load_ps(buf + 16);
}
A512 INL void tail_x(const float *x, int64_t k0, int64_t t, __m512 *lo, __m512 *hi) {
    const __mmask16 ml = (__mmask16)(t >= 16 ? 0xFFFFu : (1u << t) - 1u);
    const __mmask16 mh = (__mmask16)(t <= 16 ? 0u : (1u << (t - 16)) - 1u);
    *lo = _mm512_maskz_loadu_ps(ml, x + k0);
    *hi = _mm512_maskz_loadu_ps(mh, x + k0 + 16);
}

/* tile: rows w, w + rb, … (R of them) against G activation rows; res[g·R + r]. The rows'
 * scalars are prepared UNIT_CHUNK units at a time, interleaved with the arithmetic (measured:
 * preparing a whole chunk of rows up front was 3–5% slower per token when the weights come
 * from memory, the same in cache). */
#define DEF_TILE(T, R, G)                                                                        \
    A512 __attribute__((noinline)) static void tile_##T##_##R##_##G(                             \
            int32_t type, const uint8_t *w, int64_t rb, int64_t K, const float *x, int64_t ldx,  \
            float *res) {                                                                        \
        const int64_t units = K / 32, t = K % 32;                                                \
        __m512 al[R][G], ah[R][G];                                                               \
        for (int r = 0; r < R; r++)                                                              \
            for (int g = 0; g < G; g++) al[r][g] = ah[r][g] = _mm512_setzero_ps();               \
        float sc[R][2 * UNIT_CHUNK] __attribute__((aligned(64)));                                \
        for (int64_t u0 = 0; u0 < units; u0 += UNIT_CHUNK) {                                     \
            const int64_t nu = units - u0 < UNIT_CHUNK ? units - u0 : UNIT_CHUNK;                \
            for (int r = 0; r < R; r++) prep_##T(w + r * rb, u0, nu, sc[r]);                     \
            for (int64_t u = u0; u < u0 + nu; u++) {                                             \
                __m512 xl[G], xh[G];                                                             \
                for (int g = 0; g < G; g++) {                                                    \
                    xl[g] = _mm512_loadu_ps(x + g * ldx + 32 * u);                               \
                    xh[g] = _mm512_loadu_ps(x + g * ldx + 32 * u + 16);                          \
                }                                                                                \
                for (int r = 0; r < R; r++) {                                                    \
                    __m512 lo, hi;                                                               \
                    dec_##T(w + r * rb, u, sc[r] + 2 * (u - u0), &lo, &hi);                      \
                    for (int g = 0; g < G; g++) {                                                \
                        al[r][g] = _mm512_fmadd_ps(lo, xl[g], al[r][g]);                         \
                        ah[r][g] = _mm512_fmadd_ps(hi, xh[g], ah[r][g]);                         \
                    }                                                                            \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
        if (t) {                                                                                 \
            __m512 xl[G], xh[G];                                                                 \
            for (int g = 0; g < G; g++) tail_x(x + g * ldx, 32 * units, t, &xl[g], &xh[g]);      \
            for (int r = 0; r < R; r++) {                                                        \
                __m512 lo, hi;                                                                   \
                tail_unit(type, w + r * rb, 32 * units, t, &lo, &hi);                            \
                for (int g = 0; g < G; g++) {                                                    \
                    al[r][g] = _mm512_fmadd_ps(lo, xl[g], al[r][g]);                             \
                    ah[r][g] = _mm512_fmadd_ps(hi, xh[g], ah[r][g]);                             \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
        for (int r = 0; r < R; r++)                                                              \
            for (int g = 0; g < G; g++)                                                          \
                res[g * R + r] = _mm512_reduce_add_ps(_mm512_add_ps(al[r][g], ah[r][g]));        \
    }

static inline void put(float *y, float v, int accumulate) { *y = accumulate ? *y + v : v; }

/* Rows o0 ..< o1 of W against the n rows of X: 4 rows at a time for one activation row
 * (decoding), 1 row × up to 4 activation rows otherwise. pf / pf_bytes (the thread's probable
 * next chunk) are prefetched to L2, spread over the rows of this call. */
#define PREFETCH_STEP(bytes)                                                                     \
    for (const int64_t end_ = pf_off + (bytes); pf_off < end_ && pf_off < pf_bytes; pf_off += 64) \
        _mm_prefetch((const char *)pf + pf_off, _MM_HINT_T1)
#define DEF_TYPE(T)                                                                              \
    DEF_TILE(T, 4, 1) DEF_TILE(T, 1, 1) DEF_TILE(T, 1, 2) DEF_TILE(T, 1, 4)                      \
    A512 static void rows_##T(int32_t type, const uint8_t *W, int64_t rb, int64_t K, int64_t o0,\
                              int64_t o1, const float *X, int64_t ldx, int64_t n, float *Y,      \
                              int64_t ldy, int accumulate, const uint8_t *pf, int64_t pf_bytes) {\
        float res[16];                                                                           \
        const int64_t pf_step = (pf_bytes / (o1 - o0) + 64) & ~(int64_t)63;                      \
        int64_t pf_off = 0;                                                                      \
        int64_t o = o0;                                                                          \
        if (n == 1) {                                                                            \
            for (; o + 4 <= o1; o += 4) {                                                        \
                PREFETCH_STEP(4 * pf_step);                                                      \
                tile_##T##_4_1(type, W + o * rb, rb, K, X, ldx, res);                            \
                for (int r = 0; r < 4; r++) put(Y + o + r, res[r], accumulate);                  \
            }                                                                                    \
        }                                                                                        \
        for (; o < o1; o++) {                                                                    \
            PREFETCH_STEP(pf_step);                                                              \
            int64_t i = 0;                                                                       \
            for (; i + 4 <= n; i += 4) {                                                         \
                tile_##T##_1_4(type, W + o * rb, rb, K, X + i * ldx, ldx, res);                  \
                for (int g = 0; g < 4; g++) put(Y + (i + g) * ldy + o, res[g], accumulate);      \
            }                                                                                    \
            if (i + 2 <= n) {                                                                    \
                tile_##T##_1_2(type, W + o * rb, rb, K, X + i * ldx, ldx, res);                  \
                for (int g = 0; g < 2; g++) put(Y + (i + g) * ldy + o, res[g], accumulate);      \
                i += 2;                                                                          \
            }                                                                                    \
            if (i < n) {                                                                         \
                tile_##T##_1_1(type, W + o * rb, rb, K, X + i * ldx, ldx, res);                  \
                put(Y + i * ldy + o, res[0], accumulate);                                        \
            }                                                                                    \
        }                                                                                        \
    }

DEF_TYPE(f32)
DEF_TYPE(f16)
DEF_TYPE(bf16)
DEF_TYPE(q4_0)
DEF_TYPE(q4_1)
DEF_TYPE(q5_0)
DEF_TYPE(q5_1)
DEF_TYPE(q8_0)
DEF_TYPE(q4_k)
DEF_TYPE(q5_k)
DEF_TYPE(q6_k)

A512 void lt__qgemv_avx512(int32_t type, const uint8_t *W, int64_t rb, int64_t K, int64_t o0, int64_t o1,
                      const float *X, int64_t ldx, int64_t n, float *Y, int64_t ldy, int accumulate,
                           const uint8_t *pf, int64_t pf_bytes) {
    switch (type) {
    case LT_GGML_F32: rows_f32(type, W, rb, K, o0, o1, X, ldx, n, Y, ldy, accumulate, pf, pf_bytes); break;
    case LT_GGML_F16: rows_f16(type, W, rb, K, o0, o1, X, ldx, n, Y, ldy, accumulate, pf, pf_bytes); break;
    case LT_GGML_BF16: rows_bf16(type, W, rb, K, o0, o1, X, ldx, n, Y, ldy, accumulate, pf, pf_bytes); break;
    case LT_GGML_Q4_0: rows_q4_0(type, W, rb, K, o0, o1, X, ldx, n, Y, ldy, accumulate, pf, pf_bytes); break;
    case LT_GGML_Q4_1: rows_q4_1(type, W, rb, K, o0, o1, X, ldx, n, Y, ldy, accumulate, pf, pf_bytes); break;
    case LT_GGML_Q5_0: rows_q5_0(type, W, rb, K, o0, o1, X, ldx, n, Y, ldy, accumulate, pf, pf_bytes); break;
    case LT_GGML_Q5_1: rows_q5_1(type, W, rb, K, o0, o1, X, ldx, n, Y, ldy, accumulate, pf, pf_bytes); break;
    case LT_GGML_Q8_0: rows_q8_0(type, W, rb, K, o0, o1, X, ldx, n, Y, ldy, accumulate, pf, pf_bytes); break;
    case LT_GGML_Q4_K: rows_q4_k(type, W, rb, K, o0, o1, X, ldx, n, Y, ldy, accumulate, pf, pf_bytes); break;
    case LT_GGML_Q5_K: rows_q5_k(type, W, rb, K, o0, o1, X, ldx, n, Y, ldy, accumulate, pf, pf_bytes); break;
    case LT_GGML_Q6_K: rows_q6_k(type, W, rb, K, o0, o1, X, ldx, n, Y, ldy, accumulate, pf, pf_bytes); break;
    default: break;
    }
}

/* ---- backward: dX[:, c0 ..< c1] (=|+=) dY · W[:, c0 ..< c1] ------------------------------------ */

A512 void lt__qgemv_bwd_avx512(int32_t type, const uint8_t *W, int64_t rb, int64_t d_out, int64_t c0,
                          int64_t c1, const float *dY, int64_t lddy, int64_t n, float *dX,
                          int64_t lddx, int accumulate) {
    int64_t be = 1, bb = 4;
    lt__quant_geometry(type, &be, &bb);
    const lt__dequant_fn dq = lt__dequant_for_isa(type, LT_ISA_AVX512);
    const int64_t width = c1 - c0, nb = width / be, src = (c0 / be) * bb;
    float acc[LT_QUANT_GEMV_MAX_ROWS][LT_QBWD_COLS_MAX] __attribute__((aligned(64)));
    float wb[4][LT_QBWD_COLS_MAX] __attribute__((aligned(64)));
    for (int64_t i = 0; i < n; i++) memset(acc[i], 0, (size_t)width * sizeof(float));
    const int64_t full = width / 16 * 16;
    const __mmask16 mt = (__mmask16)((1u << (width - full)) - 1u);
    for (int64_t o = 0; o < d_out; o += 4) {
        const int rows = d_out - o < 4 ? (int)(d_out - o) : 4;
        for (int r = 0; r < rows; r++) dq(W + (o + r) * rb + src, nb, wb[r]);
        for (int64_t i = 0; i < n; i++) {
            const float *g = dY + i * lddy + o;
            float *a = acc[i];
            if (rows == 4) {
                const __m512 g0 = _mm512_set1_ps(g[0]), g1 = _mm512_set1_ps(g[1]);
                const __m512 g2 = _mm512_set1_ps(g[2]), g3 = _mm512_set1_ps(g[3]);
                for (int64_t j = 0; j < full; j += 16) {
                    __m512 v = _mm512_load_ps(a + j);
                    v = _mm512_fmadd_ps(g0, _mm512_load_ps(wb[0] + j), v);
                    v = _mm512_fmadd_ps(g1, _mm512_load_ps(wb[1] + j), v);
                    v = _mm512_fmadd_ps(g2, _mm512_load_ps(wb[2] + j), v);
                    v = _mm512_fmadd_ps(g3, _mm512_load_ps(wb[3] + j), v);
                    _mm512_store_ps(a + j, v);
                }
                if (mt) {
                    __m512 v = _mm512_maskz_load_ps(mt, a + full);
                    v = _mm512_fmadd_ps(g0, _mm512_maskz_load_ps(mt, wb[0] + full), v);
                    v = _mm512_fmadd_ps(g1, _mm512_maskz_load_ps(mt, wb[1] + full), v);
                    v = _mm512_fmadd_ps(g2, _mm512_maskz_load_ps(mt, wb[2] + full), v);
                    v = _mm512_fmadd_ps(g3, _mm512_maskz_load_ps(mt, wb[3] + full), v);
                    _mm512_mask_store_ps(a + full, mt, v);
                }
            } else {
                for (int r = 0; r < rows; r++) {
                    const __m512 gr = _mm512_set1_ps(g[r]);
                    for (int64_t j = 0; j < full; j += 16)
                        _mm512_store_ps(a + j, _mm512_fmadd_ps(gr, _mm512_load_ps(wb[r] + j), _mm512_load_ps(a + j)));
                    if (mt)
                        _mm512_mask_store_ps(a + full, mt, _mm512_fmadd_ps(gr, _mm512_maskz_load_ps(mt, wb[r] + full),
                                                                            _mm512_maskz_load_ps(mt, a + full)));
                }
            }
        }
    }
    for (int64_t i = 0; i < n; i++) {
        float *d = dX + i * lddx + c0;
        if (accumulate) for (int64_t j = 0; j < width; j++) d[j] += acc[i][j];
        else memcpy(d, acc[i], (size_t)width * sizeof(float));
    }
}
#endif
