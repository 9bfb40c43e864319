/* simd_avx512.c — AVX-512 F variants of the micro-kernels (see simd.h). */
#if defined(__x86_64__)
#include "simd.h"
#include <immintrin.h>

#define LT_AVX512 __attribute__((target("avx512f,fma")))

LT_AVX512 void lt__dot_many_avx512(const float *x, const float *M, int64_t ldm, int64_t r, int64_t d, float *out) {
    int64_t k = 0;
    for (; k + 4 <= r; k += 4) {           /* 4 rows of M share each load of x */
        const float *m0 = M + k * ldm, *m1 = m0 + ldm, *m2 = m1 + ldm, *m3 = m2 + ldm;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        int64_t j = 0;
        for (; j + 16 <= d; j += 16) {
            __m512 xv = _mm512_loadu_ps(x + j);
            a0 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(m0 + j), a0);
            a1 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(m1 + j), a1);
            a2 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(m2 + j), a2);
            a3 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(m3 + j), a3);
        }
        if (j < d) {                        /* masked tail */
            __mmask16 mk = (__mmask16)((1u << (d - j)) - 1u);
            __m512 xv = _mm512_maskz_loadu_ps(mk, x + j);
            a0 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(mk, m0 + j), a0);
            a1 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(mk, m1 + j), a1);
            a2 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(mk, m2 + j), a2);
            a3 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(mk, m3 + j), a3);
        }
        out[k] = _mm512_reduce_add_ps(a0); out[k + 1] = _mm512_reduce_add_ps(a1);
        out[k + 2] = _mm512_reduce_add_ps(a2); out[k + 3] = _mm512_reduce_add_ps(a3);
    }
    for (; k < r; k++) {
        const float *m = M + k * ldm;
        __m512 a = _mm512_setzero_ps();
        int64_t j = 0;
        for (; j + 16 <= d; j += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(x + j), _mm512_loadu_ps(m + j), a);
        if (j < d) {
            __mmask16 mk = (__mmask16)((1u << (d - j)) - 1u);
            a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, x + j), _mm512_maskz_loadu_ps(mk, m + j), a);
        }
        out[k] = _mm512_reduce_add_ps(a);
    }
}

LT_AVX512 void lt__axpy_many_avx512(float *y, const float *coef, const float *M, int64_t ldm, int64_t r, int64_t d) {
    int64_t j = 0;
    for (; j + 32 <= d; j += 32) {
        __m512 a0 = _mm512_setzero_ps(), a1 = a0;
        for (int64_t k = 0; k < r; k++) {
            __m512 c = _mm512_set1_ps(coef[k]);
            const float *m = M + k * ldm + j;
            a0 = _mm512_fmadd_ps(c, _mm512_loadu_ps(m), a0);
            a1 = _mm512_fmadd_ps(c, _mm512_loadu_ps(m + 16), a1);
        }
        _mm512_storeu_ps(y + j, _mm512_add_ps(_mm512_loadu_ps(y + j), a0));
        _mm512_storeu_ps(y + j + 16, _mm512_add_ps(_mm512_loadu_ps(y + j + 16), a1));
    }
    for (; j < d; j += 16) {
        int64_t left = d - j;
        __mmask16 mk = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        __m512 a = _mm512_setzero_ps();
        for (int64_t k = 0; k < r; k++)
            a = _mm512_fmadd_ps(_mm512_set1_ps(coef[k]), _mm512_maskz_loadu_ps(mk, M + k * ldm + j), a);
        _mm512_mask_storeu_ps(y + j, mk, _mm512_add_ps(_mm512_maskz_loadu_ps(mk, y + j), a));
    }
}
#endif

#if defined(__x86_64__)
/* ---- dot_block ------------------------------------------------------------------------------
 * 4 rows × 4 keys per register tile (16 accumulators, 8 loads per 16 FMAs; 3 left-over rows
 * repeat the last one), 1 or 2 left-over rows in 1 row × 4 keys tiles; a key tail repeats the
 * last key pointer and drops the extra results.
 * Reduction of one accumulator v (16 lanes, the same in both tiles, so an entry's bits do not
 * depend on its tile): inside each 128-bit lane L, s_L = (v0 + v2) + (v1 + v3); then
 * (s_L0 + s_L1) + (s_L2 + s_L3). */

/* Per 128-bit lane L: [s_L(v0), s_L(v1), s_L(v2), s_L(v3)]. */
LT_AVX512 static inline __m512 lane_sums4_avx512(__m512 v0, __m512 v1, __m512 v2, __m512 v3) {
    __m512 t01 = _mm512_add_ps(_mm512_unpacklo_ps(v0, v1), _mm512_unpackhi_ps(v0, v1));
    __m512 t23 = _mm512_add_ps(_mm512_unpacklo_ps(v2, v3), _mm512_unpackhi_ps(v2, v3));
    __m512d lo = _mm512_unpacklo_pd(_mm512_castps_pd(t01), _mm512_castps_pd(t23));
    __m512d hi = _mm512_unpackhi_pd(_mm512_castps_pd(t01), _mm512_castps_pd(t23));
    return _mm512_add_ps(_mm512_castpd_ps(lo), _mm512_castpd_ps(hi));
}

/* 128-bit lane i of the result = (u_i.L0 + u_i.L1) + (u_i.L2 + u_i.L3). */
LT_AVX512 static inline __m512 cross_lanes4_avx512(__m512 u0, __m512 u1, __m512 u2, __m512 u3) {
    __m512 w01 = _mm512_add_ps(_mm512_shuffle_f32x4(u0, u1, _MM_SHUFFLE(2, 0, 2, 0)),
                               _mm512_shuffle_f32x4(u0, u1, _MM_SHUFFLE(3, 1, 3, 1)));
    __m512 w23 = _mm512_add_ps(_mm512_shuffle_f32x4(u2, u3, _MM_SHUFFLE(2, 0, 2, 0)),
                               _mm512_shuffle_f32x4(u2, u3, _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(w01, w23, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(w01, w23, _MM_SHUFFLE(3, 1, 3, 1)));
}

/* One row × 4 keys: the same lane sums and cross-lane tree as one lane of the 4 × 4 tile. */
LT_AVX512 static inline __m128 dot_row4_avx512(const float *x, const float *m0, const float *m1,
                                               const float *m2, const float *m3, int64_t dv,
                                               __mmask16 tail) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t j = 0;
    for (; j < dv; j += 16) {
        __m512 q = _mm512_loadu_ps(x + j);
        a0 = _mm512_fmadd_ps(q, _mm512_loadu_ps(m0 + j), a0);
        a1 = _mm512_fmadd_ps(q, _mm512_loadu_ps(m1 + j), a1);
        a2 = _mm512_fmadd_ps(q, _mm512_loadu_ps(m2 + j), a2);
        a3 = _mm512_fmadd_ps(q, _mm512_loadu_ps(m3 + j), a3);
    }
    if (tail) {
        __m512 q = _mm512_maskz_loadu_ps(tail, x + j);
        a0 = _mm512_fmadd_ps(q, _mm512_maskz_loadu_ps(tail, m0 + j), a0);
        a1 = _mm512_fmadd_ps(q, _mm512_maskz_loadu_ps(tail, m1 + j), a1);
        a2 = _mm512_fmadd_ps(q, _mm512_maskz_loadu_ps(tail, m2 + j), a2);
        a3 = _mm512_fmadd_ps(q, _mm512_maskz_loadu_ps(tail, m3 + j), a3);
    }
    __m512 u = lane_sums4_avx512(a0, a1, a2, a3);
    /* (L0 + L1) in lane 0 and (L2 + L3) in lane 2, then their sum: the tree of cross_lanes4 */
    __m512 w = _mm512_add_ps(_mm512_shuffle_f32x4(u, u, _MM_SHUFFLE(2, 3, 0, 1)), u);
    w = _mm512_add_ps(w, _mm512_shuffle_f32x4(w, w, _MM_SHUFFLE(1, 0, 3, 2)));
    return _mm512_castps512_ps128(w);
}

LT_AVX512 void lt__dot_block_avx512(int64_t m, int64_t r, int64_t d, const float *X, int64_t ldx,
                                    const float *M, int64_t ldm, float *out, int64_t ldo) {
    if (m <= 0 || r <= 0) return;
    const int64_t dv = d & ~(int64_t)15;
    const __mmask16 tail = (__mmask16)((1u << (d & 15)) - 1u);
    /* rows in 4 × 4 tiles; 3 left-over rows too (the 4th repeats the 3rd, its results dropped),
     * 1 or 2 left-over rows in 1 × 4 tiles */
    const int64_t m4 = (m & 3) == 3 ? m + 1 : m & ~(int64_t)3;
    for (int64_t k0 = 0; k0 < r; k0 += 4) {
        const int64_t kn = r - k0 < 4 ? r - k0 : 4;
        const float *m0 = M + k0 * ldm;
        const float *m1 = M + (k0 + (kn > 1 ? 1 : 0)) * ldm;
        const float *m2 = M + (k0 + (kn > 2 ? 2 : kn - 1)) * ldm;
        const float *m3 = M + (k0 + kn - 1) * ldm;
        for (int64_t i0 = 0; i0 < m4; i0 += 4) {
            const int64_t in = m - i0 < 4 ? m - i0 : 4;
            const float *x0 = X + i0 * ldx, *x1 = x0 + ldx, *x2 = x1 + ldx;
            const float *x3 = in == 4 ? x2 + ldx : x2;
            __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;
            __m512 a10 = a00, a11 = a00, a12 = a00, a13 = a00;
            __m512 a20 = a00, a21 = a00, a22 = a00, a23 = a00;
            __m512 a30 = a00, a31 = a00, a32 = a00, a33 = a00;
#define LT_DOT_TILE_STEP(LOAD)                                                                \
            {                                                                                 \
                __m512 q0 = LOAD(x0), q1 = LOAD(x1), q2 = LOAD(x2), q3 = LOAD(x3);            \
                __m512 k = LOAD(m0);                                                          \
                a00 = _mm512_fmadd_ps(q0, k, a00); a10 = _mm512_fmadd_ps(q1, k, a10);         \
                a20 = _mm512_fmadd_ps(q2, k, a20); a30 = _mm512_fmadd_ps(q3, k, a30);         \
                k = LOAD(m1);                                                                 \
                a01 = _mm512_fmadd_ps(q0, k, a01); a11 = _mm512_fmadd_ps(q1, k, a11);         \
                a21 = _mm512_fmadd_ps(q2, k, a21); a31 = _mm512_fmadd_ps(q3, k, a31);         \
                k = LOAD(m2);                                                                 \
                a02 = _mm512_fmadd_ps(q0, k, a02); a12 = _mm512_fmadd_ps(q1, k, a12);         \
                a22 = _mm512_fmadd_ps(q2, k, a22); a32 = _mm512_fmadd_ps(q3, k, a32);         \
                k = LOAD(m3);                                                                 \
                a03 = _mm512_fmadd_ps(q0, k, a03); a13 = _mm512_fmadd_ps(q1, k, a13);         \
                a23 = _mm512_fmadd_ps(q2, k, a23); a33 = _mm512_fmadd_ps(q3, k, a33);         \
            }
            int64_t j = 0;
            for (; j < dv; j += 16) {
#define LT_LOAD_FULL(p) _mm512_loadu_ps((p) + j)
                LT_DOT_TILE_STEP(LT_LOAD_FULL)
#undef LT_LOAD_FULL
            }
            if (tail) {
#define LT_LOAD_TAIL(p) _mm512_maskz_loadu_ps(tail, (p) + j)
                LT_DOT_TILE_STEP(LT_LOAD_TAIL)
#undef LT_LOAD_TAIL
            }
#undef LT_DOT_TILE_STEP
            __m512 f = cross_lanes4_avx512(lane_sums4_avx512(a00, a01, a02, a03),
                                           lane_sums4_avx512(a10, a11, a12, a13),
                                           lane_sums4_avx512(a20, a21, a22, a23),
                                           lane_sums4_avx512(a30, a31, a32, a33));
            float *o = out + i0 * ldo + k0;
            if (kn == 4) {
                _mm_storeu_ps(o, _mm512_castps512_ps128(f));
                _mm_storeu_ps(o + ldo, _mm512_extractf32x4_ps(f, 1));
                _mm_storeu_ps(o + 2 * ldo, _mm512_extractf32x4_ps(f, 2));
                if (in == 4) _mm_storeu_ps(o + 3 * ldo, _mm512_extractf32x4_ps(f, 3));
            } else {
                float buf[16];
                _mm512_storeu_ps(buf, f);
                for (int64_t i = 0; i < in; i++)
                    for (int64_t k = 0; k < kn; k++) o[i * ldo + k] = buf[4 * i + k];
            }
        }
        for (int64_t i = m4; i < m; i++) {        /* 1 or 2 left-over rows one at a time */
            __m128 f = dot_row4_avx512(X + i * ldx, m0, m1, m2, m3, dv, tail);
            float *o = out + i * ldo + k0;
            if (kn == 4) {
                _mm_storeu_ps(o, f);
            } else {
                float buf[4];
                _mm_storeu_ps(buf, f);
                for (int64_t k = 0; k < kn; k++) o[k] = buf[k];
            }
        }
    }
}

/* ---- axpy_block -----------------------------------------------------------------------------
 * R (<= 4) rows × 64 columns per register tile (16 accumulators; per key 4 loads, R broadcasts,
 * 4R FMAs), then 16 columns at a time with a masked tail. */
LT_AVX512 static inline __attribute__((always_inline)) void
axpy_rows_avx512(const int R, int64_t r, int64_t d, const float *Cf, int64_t ldc, const float *M,
                 int64_t ldm, float *Y, int64_t ldy) {
    int64_t j = 0;
    for (; j + 64 <= d; j += 64) {
        __m512 acc[4][4];
        for (int i = 0; i < R; i++)
            for (int v = 0; v < 4; v++) acc[i][v] = _mm512_setzero_ps();
        for (int64_t k = 0; k < r; k++) {
            const float *mk = M + k * ldm + j;
            __m512 v0 = _mm512_loadu_ps(mk), v1 = _mm512_loadu_ps(mk + 16);
            __m512 v2 = _mm512_loadu_ps(mk + 32), v3 = _mm512_loadu_ps(mk + 48);
            for (int i = 0; i < R; i++) {
                __m512 c = _mm512_set1_ps(Cf[i * ldc + k]);
                acc[i][0] = _mm512_fmadd_ps(c, v0, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ps(c, v1, acc[i][1]);
                acc[i][2] = _mm512_fmadd_ps(c, v2, acc[i][2]);
                acc[i][3] = _mm512_fmadd_ps(c, v3, acc[i][3]);
            }
        }
        for (int i = 0; i < R; i++) {
            float *y = Y + i * ldy + j;
            for (int v = 0; v < 4; v++)
                _mm512_storeu_ps(y + 16 * v, _mm512_add_ps(_mm512_loadu_ps(y + 16 * v), acc[i][v]));
        }
    }
    for (; j < d; j += 16) {
        const __mmask16 mk = d - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (d - j)) - 1u);
        __m512 acc[4];
        for (int i = 0; i < R; i++) acc[i] = _mm512_setzero_ps();
        for (int64_t k = 0; k < r; k++) {
            __m512 v = _mm512_maskz_loadu_ps(mk, M + k * ldm + j);
            for (int i = 0; i < R; i++) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(Cf[i * ldc + k]), v, acc[i]);
        }
        for (int i = 0; i < R; i++) {
            float *y = Y + i * ldy + j;
            _mm512_mask_storeu_ps(y, mk, _mm512_add_ps(_mm512_maskz_loadu_ps(mk, y), acc[i]));
        }
    }
}

/* Narrow Y (d <= 16: one masked vector per row, e.g. LoRTA's per-head projections with r <= 16):
 * 8 rows at a time, so 8 independent chains hide the FMA latency (4 rows left it idle half the
 * time). Each element is the same chain as in axpy_rows_avx512. */
LT_AVX512 static void axpy_narrow8_avx512(int64_t r, int64_t d, const float *Cf, int64_t ldc, const float *M,
                                          int64_t ldm, float *Y, int64_t ldy) {
    const __mmask16 mk = d >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << d) - 1u);
    __m512 acc[8];
    for (int i = 0; i < 8; i++) acc[i] = _mm512_setzero_ps();
    for (int64_t k = 0; k < r; k++) {
        __m512 v = _mm512_maskz_loadu_ps(mk, M + k * ldm);
        for (int i = 0; i < 8; i++) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(Cf[i * ldc + k]), v, acc[i]);
    }
    for (int i = 0; i < 8; i++) {
        float *y = Y + i * ldy;
        _mm512_mask_storeu_ps(y, mk, _mm512_add_ps(_mm512_maskz_loadu_ps(mk, y), acc[i]));
    }
}

LT_AVX512 void lt__axpy_block_avx512(int64_t m, int64_t r, int64_t d, const float *Cf, int64_t ldc,
                                     const float *M, int64_t ldm, float *Y, int64_t ldy) {
    int64_t i = 0;
    if (d <= 16)
        for (; i + 8 <= m; i += 8) axpy_narrow8_avx512(r, d, Cf + i * ldc, ldc, M, ldm, Y + i * ldy, ldy);
    for (; i + 4 <= m; i += 4) axpy_rows_avx512(4, r, d, Cf + i * ldc, ldc, M, ldm, Y + i * ldy, ldy);
    switch (m - i) {   /* the last rows as one tile: each row of M is loaded once for all of them */
    case 3: axpy_rows_avx512(3, r, d, Cf + i * ldc, ldc, M, ldm, Y + i * ldy, ldy); break;
    case 2: axpy_rows_avx512(2, r, d, Cf + i * ldc, ldc, M, ldm, Y + i * ldy, ldy); break;
    case 1: axpy_rows_avx512(1, r, d, Cf + i * ldc, ldc, M, ldm, Y + i * ldy, ldy); break;
    default: break;
    }
}
#endif
