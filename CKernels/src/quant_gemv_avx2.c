/*
 * quant_gemv_avx2.c — AVX2 + FMA decode-sized products with stored matrices (n <= 8 rows of
 * activations): fused kernels that turn 32 stored values at a time into four 8-lane vectors of
 * exactly the dequantized weights (e.g. Q4_1 d·q + m; the products in the block formulas are
 * exact in float32, quant_internal.h, so fma(d, q, m) gives the reference's bits) and
 * multiply-add them with the activations (contract in quant_matmul_internal.h; here vectors 0
 * and 2 of a unit feed one 8-lane chain, 1 and 3 the other, and the result is the fixed-tree
 * sum of the two).
 */
#if defined(__x86_64__)
#pragma STDC FP_CONTRACT OFF
#include "quant_matmul_internal.h"
#include "quant_internal.h"
#include <immintrin.h>

#define A2 __attribute__((target("avx2,fma,f16c")))
#define INL static inline __attribute__((always_inline))

A2 INL float h2f(const uint8_t *p) { return _cvtsh_ss(lt__load_u16(p)); }
/* 8 bytes → 8 int32 lanes (zero-extended). */
A2 INL __m256i bytes8(const uint8_t *p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)); }
A2 INL __m256 cvt(__m256i v) { return _mm256_cvtepi32_ps(v); }

/* ---- decoders ----------------------------------------------------------------------------------
 * prep_T(row, u0, nu, sc): the two per-unit scalars (d and m, the sub-block's d·sc and dmin·mn,
 *   or Q6_K's two group scales) of units u0 ..< u0 + nu into sc[0 ..< 2·nu], once per chunk;
 * dec_T(row, u, sc, v): unit u (values 32u ..< 32u + 32) → v[0..3] (8 values each). */

#define NO_PREP(T) INL void prep_##T(const uint8_t *row, int64_t u0, int64_t nu, float *sc) { \
        (void)row; (void)u0; (void)nu; (void)sc; }
NO_PREP(f32)
NO_PREP(f16)
NO_PREP(bf16)

/* d (and m, or junk) of 32-value blocks: both float16 values widened by one conversion. */
A2 INL void prep_dm(const uint8_t *row, int64_t bytes, int64_t u0, int64_t nu, float *sc) {
    for (int64_t u = 0; u < nu; u++)
        _mm_storel_pi((__m64 *)(void *)(sc + 2 * u),
                      _mm_cvtph_ps(_mm_cvtsi32_si128((int)lt__load_u32(row + bytes * (u0 + u)))));
}
A2 INL void prep_q4_0(const uint8_t *row, int64_t u0, int64_t nu, float *sc) { prep_dm(row, 18, u0, nu, sc); }
A2 INL void prep_q4_1(const uint8_t *row, int64_t u0, int64_t nu, float *sc) { prep_dm(row, 20, u0, nu, sc); }
A2 INL void prep_q5_0(const uint8_t *row, int64_t u0, int64_t nu, float *sc) { prep_dm(row, 22, u0, nu, sc); }
A2 INL void prep_q5_1(const uint8_t *row, int64_t u0, int64_t nu, float *sc) { prep_dm(row, 24, u0, nu, sc); }
A2 INL void prep_q8_0(const uint8_t *row, int64_t u0, int64_t nu, float *sc) { prep_dm(row, 34, u0, nu, sc); }

/* Q4_K / Q5_K: the eight 6-bit scales and mins of a block at once (32-bit masks as in ggml's
 * dot kernels), then [d·sc, dmin·mn] pairs. u0 and nu are whole blocks. */
A2 INL void prep_k45(const uint8_t *row, int64_t bytes, int64_t u0, int64_t nu, float *sc) {
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
        const __m256 ds = _mm256_mul_ps(_mm256_set1_ps(_mm_cvtss_f32(dm)),
                                        cvt(_mm256_cvtepu8_epi32(_mm_set_epi32(0, 0, (int)t[1], (int)t[0]))));
        const __m256 ns = _mm256_mul_ps(_mm256_set1_ps(_mm_cvtss_f32(_mm_movehdup_ps(dm))),
                                        cvt(_mm256_cvtepu8_epi32(_mm_set_epi32(0, 0, (int)t[3], (int)t[2]))));
        const __m256 lo = _mm256_unpacklo_ps(ds, ns), hi = _mm256_unpackhi_ps(ds, ns);
        _mm256_storeu_ps(sc + 2 * u, _mm256_permute2f128_ps(lo, hi, 0x20));
        _mm256_storeu_ps(sc + 2 * u + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
    }
}
A2 INL void prep_q4_k(const uint8_t *row, int64_t u0, int64_t nu, float *sc) { prep_k45(row, 144, u0, nu, sc); }
A2 INL void prep_q5_k(const uint8_t *row, int64_t u0, int64_t nu, float *sc) { prep_k45(row, 176, u0, nu, sc); }

/* Q6_K: d·sc of the sixteen 16-value groups of a block, in order (= the units' pairs). */
A2 INL void prep_q6_k(const uint8_t *row, int64_t u0, int64_t nu, float *sc) {
    for (int64_t u = 0; u < nu; u += 8) {
        const uint8_t *blk = row + 210 * ((u0 + u) >> 3);
        const __m256 d = _mm256_set1_ps(h2f(blk + 208));
        const __m128i s = _mm_loadu_si128((const __m128i *)(blk + 192));
        _mm256_storeu_ps(sc + 2 * u, _mm256_mul_ps(d, cvt(_mm256_cvtepi8_epi32(s))));
        _mm256_storeu_ps(sc + 2 * u + 8, _mm256_mul_ps(d, cvt(_mm256_cvtepi8_epi32(_mm_srli_si128(s, 8)))));
    }
}

A2 INL void dec_f32(const uint8_t *row, int64_t u, const float *sc, __m256 *v) {
    (void)sc;
    const float *p = (const float *)(const void *)row + 32 * u;
    for (int c = 0; c < 4; c++) v[c] = _mm256_loadu_ps(p + 8 * c);
}

A2 INL void dec_f16(const uint8_t *row, int64_t u, const float *sc, __m256 *v) {
    (void)sc;
    const uint8_t *p = row + 64 * u;
    for (int c = 0; c < 4; c++) v[c] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 16 * c)));
}

A2 INL void dec_bf16(const uint8_t *row, int64_t u, const float *sc, __m256 *v) {
    (void)sc;
    const uint8_t *p = row + 64 * u;
    for (int c = 0; c < 4; c++)
        v[c] = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p + 16 * c))), 16));
}

/* 16 code bytes → the 32 4-bit codes as int32: c[0], c[1] low nibbles of bytes 0–7, 8–15;
 * c[2], c[3] high nibbles. */
A2 INL void nibbles(const uint8_t *qs, __m256i *c) {
    const __m256i b0 = bytes8(qs), b1 = bytes8(qs + 8), m = _mm256_set1_epi32(0x0F);
    c[0] = _mm256_and_si256(b0, m);
    c[1] = _mm256_and_si256(b1, m);
    c[2] = _mm256_srli_epi32(b0, 4);
    c[3] = _mm256_srli_epi32(b1, 4);
}

A2 INL void dec_q4_0(const uint8_t *row, int64_t u, const float *sc, __m256 *v) {
    const __m256 d = _mm256_set1_ps(sc[0]);
    __m256i c[4];
    nibbles(row + 18 * u + 2, c);
    const __m256i eight = _mm256_set1_epi32(8);
    for (int k = 0; k < 4; k++) v[k] = _mm256_mul_ps(d, cvt(_mm256_sub_epi32(c[k], eight)));
}

A2 INL void dec_q4_1(const uint8_t *row, int64_t u, const float *sc, __m256 *v) {
    const __m256 d = _mm256_set1_ps(sc[0]), m = _mm256_set1_ps(sc[1]);
    __m256i c[4];
    nibbles(row + 20 * u + 4, c);
    for (int k = 0; k < 4; k++) v[k] = _mm256_fmadd_ps(d, cvt(c[k]), m);
}

/* Bit (j + shift) of qh for the 8 lanes j = 0…7, as 0 or 16. */
A2 INL __m256i high_bits(uint32_t qh, int shift) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i b = _mm256_srlv_epi32(_mm256_set1_epi32((int)(qh >> shift)), lanes);
    return _mm256_slli_epi32(_mm256_and_si256(b, _mm256_set1_epi32(1)), 4);
}

A2 INL void dec_q5_0(const uint8_t *row, int64_t u, const float *sc, __m256 *v) {
    const uint8_t *blk = row + 22 * u;
    const __m256 d = _mm256_set1_ps(sc[0]);
    const uint32_t qh = lt__load_u32(blk + 2);
    __m256i c[4];
    nibbles(blk + 6, c);
    const __m256i sixteen = _mm256_set1_epi32(16);
    for (int k = 0; k < 4; k++)
        v[k] = _mm256_mul_ps(d, cvt(_mm256_sub_epi32(_mm256_or_si256(c[k], high_bits(qh, 8 * k)), sixteen)));
}

A2 INL void dec_q5_1(const uint8_t *row, int64_t u, const float *sc, __m256 *v) {
    const uint8_t *blk = row + 24 * u;
    const __m256 d = _mm256_set1_ps(sc[0]), m = _mm256_set1_ps(sc[1]);
    const uint32_t qh = lt__load_u32(blk + 4);
    __m256i c[4];
    nibbles(blk + 8, c);
    for (int k = 0; k < 4; k++)
        v[k] = _mm256_fmadd_ps(d, cvt(_mm256_or_si256(c[k], high_bits(qh, 8 * k))), m);
}

A2 INL void dec_q8_0(const uint8_t *row, int64_t u, const float *sc, __m256 *v) {
    const uint8_t *blk = row + 34 * u;
    const __m256 d = _mm256_set1_ps(sc[0]);
    for (int k = 0; k < 4; k++)
        v[k] = _mm256_mul_ps(cvt(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(blk + 2 + 8 * k)))), d);
}

A2 INL void dec_q4_k(const uint8_t *row, int64_t u, const float *sc, __m256 *v) {
    const int s = (int)(u & 7);
    const __m256 d0 = _mm256_set1_ps(sc[0]), n0 = _mm256_set1_ps(sc[1]);
    const uint8_t *q = row + 144 * (u >> 3) + 16 + 32 * (s >> 1);
    const __m256i m = _mm256_set1_epi32(0x0F);
    for (int k = 0; k < 4; k++) {
        __m256i b = bytes8(q + 8 * k);
        b = (s & 1) ? _mm256_srli_epi32(b, 4) : _mm256_and_si256(b, m);
        v[k] = _mm256_fmsub_ps(d0, cvt(b), n0);
    }
}

A2 INL void dec_q5_k(const uint8_t *row, int64_t u, const float *sc, __m256 *v) {
    const uint8_t *blk = row + 176 * (u >> 3);
    const int s = (int)(u & 7);
    const __m256 d0 = _mm256_set1_ps(sc[0]), n0 = _mm256_set1_ps(sc[1]);
    const uint8_t *qh = blk + 16, *q = blk + 48 + 32 * (s >> 1);
    const __m256i m = _mm256_set1_epi32(0x0F), one = _mm256_set1_epi32(1);
    for (int k = 0; k < 4; k++) {
        __m256i b = bytes8(q + 8 * k);
        b = (s & 1) ? _mm256_srli_epi32(b, 4) : _mm256_and_si256(b, m);
        const __m256i hb = _mm256_and_si256(_mm256_srli_epi32(bytes8(qh + 8 * k), s), one);
        b = _mm256_or_si256(b, _mm256_slli_epi32(hb, 4));
        v[k] = _mm256_fmsub_ps(d0, cvt(b), n0);
    }
}

A2 INL void dec_q6_k(const uint8_t *row, int64_t u, const float *sc, __m256 *v) {
    const uint8_t *blk = row + 210 * (u >> 3);
    const int w = (int)(u & 7), h = w >> 2, j = w & 3;
    const __m256i L = _mm256_loadu_si256((const __m256i *)(blk + 64 * h + 32 * (j & 1)));
    const __m256i H = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * h));
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
    const __m256i nib = (j >> 1) ? _mm256_and_si256(_mm256_srli_epi16(L, 4), m4) : _mm256_and_si256(L, m4);
    const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(H, 2 * j), m2);
    const __m256i q = _mm256_sub_epi8(_mm256_or_si256(nib, _mm256_slli_epi16(hb, 4)), _mm256_set1_epi8(32));
    const __m256 s0 = _mm256_set1_ps(sc[0]), s1 = _mm256_set1_ps(sc[1]);
    const __m128i q0 = _mm256_castsi256_si128(q), q1 = _mm256_extracti128_si256(q, 1);
    v[0] = _mm256_mul_ps(s0, cvt(_mm256_cvtepi8_epi32(q0)));
    v[1] = _mm256_mul_ps(s0, cvt(_mm256_cvtepi8_epi32(_mm_srli_si128(q0, 8))));
    v[2] = _mm256_mul_ps(s1, cvt(_mm256_cvtepi8_epi32(q1)));
    v[3] = _mm256_mul_ps(s1, cvt(_mm256_cvtepi8_epi32(_mm_srli_si128(q1, 8))));
}

/* ---- tiles ----------------------------------------------------------------------------------- */

A2 INL void tail_unit(int32_t type, const uint8_t *row, int64_t k0, int64_t t, __m256 *v) {
    float buf[32] __attribute__((aligned(32)));
    for (int64_t l = 0; l < 32; l++) buf[l] = l < t ? lt__qelem(type, row, k0 + l) : 0.0f;
    for (int c = 0; c < 4; c++) v[c] = _mm256_load_ps(buf + 8 * c);
}
A2 INL void tail_x(const float *x, int64_t k0, int64_t t, __m256 *v) {
    float buf[32] __attribute__((aligned(32)));
    for (int64_t l = 0; l < 32; l++) buf[l] = l < t ? x[k0 + l] : 0.0f;
    for (int c = 0; c < 4; c++) v[c] = _mm256_load_ps(buf + 8 * c);
}

A2 INL float hsum8(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    __m128 sh = _mm_movehdup_ps(lo);
    __m128 s = _mm_add_ps(lo, sh);
    sh = _mm_movehl_ps(sh, s);
    s = _mm_add_ss(s, sh);
    return _mm_cvtss_f32(s);
}

/* Units whose scalars are prepared at a time (the chunking does not change any result). */
#define UNIT_CHUNK 64

#define DEF_TILE(T, R, G)                                                                        \
    A2 __attribute__((noinline)) static void tile_##T##_##R##_##G(int32_t type, const uint8_t *w, \
            int64_t rb, int64_t K, const float *x, int64_t ldx, float *res) {                    \
        const int64_t units = K / 32, t = K % 32;                                                \
        __m256 a0[R][G], a1[R][G];                                                               \
        for (int r = 0; r < R; r++)                                                              \
            for (int g = 0; g < G; g++) a0[r][g] = a1[r][g] = _mm256_setzero_ps();               \
        float sc[R][2 * UNIT_CHUNK] __attribute__((aligned(32)));                                \
        for (int64_t u0 = 0; u0 < units; u0 += UNIT_CHUNK) {                                     \
            const int64_t nu = units - u0 < UNIT_CHUNK ? units - u0 : UNIT_CHUNK;                \
            for (int r = 0; r < R; r++) prep_##T(w + r * rb, u0, nu, sc[r]);                     \
            for (int64_t u = u0; u < u0 + nu; u++) {                                             \
                __m256 xv[G][4];                                                                 \
                for (int g = 0; g < G; g++)                                                      \
                    for (int c = 0; c < 4; c++) xv[g][c] = _mm256_loadu_ps(x + g * ldx + 32 * u + 8 * c); \
                for (int r = 0; r < R; r++) {                                                    \
                    __m256 v[4];                                                                 \
                    dec_##T(w + r * rb, u, sc[r] + 2 * (u - u0), v);                             \
                    for (int g = 0; g < G; g++) {                                                \
                        a0[r][g] = _mm256_fmadd_ps(v[0], xv[g][0], a0[r][g]);                    \
                        a1[r][g] = _mm256_fmadd_ps(v[1], xv[g][1], a1[r][g]);                    \
                        a0[r][g] = _mm256_fmadd_ps(v[2], xv[g][2], a0[r][g]);                    \
                        a1[r][g] = _mm256_fmadd_ps(v[3], xv[g][3], a1[r][g]);                    \
                    }                                                                            \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
        if (t) {                                                                                 \
            __m256 xv[G][4];                                                                     \
            for (int g = 0; g < G; g++) tail_x(x + g * ldx, 32 * units, t, xv[g]);               \
            for (int r = 0; r < R; r++) {                                                        \
                __m256 v[4];                                                                     \
                tail_unit(type, w + r * rb, 32 * units, t, v);                                   \
                for (int g = 0; g < G; g++) {                                                    \
                    a0[r][g] = _mm256_fmadd_ps(v[0], xv[g][0], a0[r][g]);                        \
                    a1[r][g] = _mm256_fmadd_ps(v[1], xv[g][1], a1[r][g]);                        \
                    a0[r][g] = _mm256_fmadd_ps(v[2], xv[g][2], a0[r][g]);                        \
                    a1[r][g] = _mm256_fmadd_ps(v[3], xv[g][3], a1[r][g]);                        \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
        for (int r = 0; r < R; r++)                                                              \
            for (int g = 0; g < G; g++) res[g * R + r] = hsum8(_mm256_add_ps(a0[r][g], a1[r][g])); \
    }

static inline void put(float *y, float v, int accumulate) { *y = accumulate ? *y + v : v; }

#define DEF_TYPE(T)                                                                              \
    DEF_TILE(T, 2, 1) DEF_TILE(T, 1, 1) DEF_TILE(T, 1, 2)                                        \
    A2 static void rows_##T(int32_t type, const uint8_t *W, int64_t rb, int64_t K, int64_t o0,     \
                         int64_t o1, const float *X, int64_t ldx, int64_t n, float *Y,           \
                         int64_t ldy, int accumulate) {                                          \
        float res[4];                                                                            \
        int64_t o = o0;                                                                          \
        if (n == 1) {                                                                            \
            for (; o + 2 <= o1; o += 2) {                                                        \
                tile_##T##_2_1(type, W + o * rb, rb, K, X, ldx, res);                            \
                put(Y + o, res[0], accumulate);                                                  \
                put(Y + o + 1, res[1], accumulate);                                              \
            }                                                                                    \
        }                                                                                        \
        for (; o < o1; o++) {                                                                    \
            int64_t i = 0;                                                                       \
            for (; i + 2 <= n; i += 2) {                                                         \
                tile_##T##_1_2(type, W + o * rb, rb, K, X + i * ldx, ldx, res);                  \
                put(Y + i * ldy + o, res[0], accumulate);                                        \
                put(Y + (i + 1) * ldy + o, res[1], accumulate);                                  \
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

A2 void lt__qgemv_avx2(int32_t type, const uint8_t *W, int64_t rb, int64_t K, int64_t o0, int64_t o1,
                    const float *X, int64_t ldx, int64_t n, float *Y, int64_t ldy, int accumulate,
                         const uint8_t *pf, int64_t pf_bytes) {
    (void)pf; (void)pf_bytes;
    switch (type) {
    case LT_GGML_F32: rows_f32(type, W, rb, K, o0, o1, X, ldx, n, Y, ldy, accumulate); break;
    case LT_GGML_F16: rows_f16(type, W, rb, K, o0, o1, X, ldx, n, Y, ldy, accumulate); break;
    case LT_GGML_BF16: rows_bf16(type, W, rb, K, o0, o1, X, ldx, n, Y, ldy, accumulate); break;
    case LT_GGML_Q4_0: rows_q4_0(type, W, rb, K, o0, o1, X, ldx, n, Y, ldy, accumulate); break;
    case LT_GGML_Q4_1: rows_q4_1(type, W, rb, K, o0, o1, X, ldx, n, Y, ldy, accumulate); break;
    case LT_GGML_Q5_0: rows_q5_0(type, W, rb, K, o0, o1, X, ldx, n, Y, ldy, accumulate); break;
    case LT_GGML_Q5_1: rows_q5_1(type, W, rb, K, o0, o1, X, ldx, n, Y, ldy, accumulate); break;
    case LT_GGML_Q8_0: rows_q8_0(type, W, rb, K, o0, o1, X, ldx, n, Y, ldy, accumulate); break;
    case LT_GGML_Q4_K: rows_q4_k(type, W, rb, K, o0, o1, X, ldx, n, Y, ldy, accumulate); break;
    case LT_GGML_Q5_K: rows_q5_k(type, W, rb, K, o0, o1, X, ldx, n, Y, ldy, accumulate); break;
    case LT_GGML_Q6_K: rows_q6_k(type, W, rb, K, o0, o1, X, ldx, n, Y, ldy, accumulate); break;
    default: break;
    }
}

/* ---- backward -------------------------------------------------------------------------------- */

A2 void lt__qgemv_bwd_avx2(int32_t type, const uint8_t *W, int64_t rb, int64_t d_out, int64_t c0,
                        int64_t c1, const float *dY, int64_t lddy, int64_t n, float *dX,
                        int64_t lddx, int accumulate) {
    int64_t be = 1, bb = 4;
    lt__quant_geometry(type, &be, &bb);
    const lt__dequant_fn dq = lt__dequant_for_isa(type, LT_ISA_AVX2);
    const int64_t width = c1 - c0, nb = width / be, src = (c0 / be) * bb;
    float acc[LT_QUANT_GEMV_MAX_ROWS][LT_QBWD_COLS_MAX] __attribute__((aligned(32)));
    float wb[4][LT_QBWD_COLS_MAX] __attribute__((aligned(32)));
    for (int64_t i = 0; i < n; i++) memset(acc[i], 0, (size_t)width * sizeof(float));
    const int64_t full = width / 8 * 8;
    for (int64_t o = 0; o < d_out; o += 4) {
        const int rows = d_out - o < 4 ? (int)(d_out - o) : 4;
        for (int r = 0; r < rows; r++) dq(W + (o + r) * rb + src, nb, wb[r]);
        for (int64_t i = 0; i < n; i++) {
            const float *g = dY + i * lddy + o;
            float *a = acc[i];
            if (rows == 4) {
                const __m256 g0 = _mm256_set1_ps(g[0]), g1 = _mm256_set1_ps(g[1]);
                const __m256 g2 = _mm256_set1_ps(g[2]), g3 = _mm256_set1_ps(g[3]);
                for (int64_t j = 0; j < full; j += 8) {
                    __m256 v = _mm256_load_ps(a + j);
                    v = _mm256_fmadd_ps(g0, _mm256_load_ps(wb[0] + j), v);
                    v = _mm256_fmadd_ps(g1, _mm256_load_ps(wb[1] + j), v);
                    v = _mm256_fmadd_ps(g2, _mm256_load_ps(wb[2] + j), v);
                    v = _mm256_fmadd_ps(g3, _mm256_load_ps(wb[3] + j), v);
                    _mm256_store_ps(a + j, v);
                }
            } else {
                for (int r = 0; r < rows; r++) {
                    const __m256 gr = _mm256_set1_ps(g[r]);
                    for (int64_t j = 0; j < full; j += 8)
                        _mm256_store_ps(a + j, _mm256_fmadd_ps(gr, _mm256_load_ps(wb[r] + j), _mm256_load_ps(a + j)));
                }
            }
            for (int64_t j = full; j < width; j++)        /* scalar fma: same chain as the vectors */
                for (int r = 0; r < rows; r++) a[j] = __builtin_fmaf(g[r], wb[r][j], a[j]);
        }
    }
    for (int64_t i = 0; i < n; i++) {
        float *d = dX + i * lddx + c0;
        if (accumulate) for (int64_t j = 0; j < width; j++) d[j] += acc[i][j];
        else memcpy(d, acc[i], (size_t)width * sizeof(float));
    }
}
#endif
