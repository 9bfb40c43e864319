/* simd_avx2.c — AVX2 + FMA variants of the micro-kernels (see simd.h). */
#if defined(__x86_64__)
#include "simd.h"
#include <immintrin.h>
#include <math.h>

#define LT_AVX2 __attribute__((target("avx2,fma")))

LT_AVX2 static inline float hsum256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    __m128 sh = _mm_movehdup_ps(lo);
    __m128 s = _mm_add_ps(lo, sh);
    sh = _mm_movehl_ps(sh, s);
    s = _mm_add_ss(s, sh);
    return _mm_cvtss_f32(s);
}

LT_AVX2 void lt__dot_many_avx2(const float *x, const float *M, int64_t ldm, int64_t r, int64_t d, float *out) {
    int64_t k = 0;
    for (; k + 4 <= r; k += 4) {           /* 4 rows of M share each load of x */
        const float *m0 = M + k * ldm, *m1 = m0 + ldm, *m2 = m1 + ldm, *m3 = m2 + ldm;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        int64_t j = 0;
        for (; j + 8 <= d; j += 8) {
            __m256 xv = _mm256_loadu_ps(x + j);
            a0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(m0 + j), a0);
            a1 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(m1 + j), a1);
            a2 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(m2 + j), a2);
            a3 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(m3 + j), a3);
        }
        float s0 = hsum256(a0), s1 = hsum256(a1), s2 = hsum256(a2), s3 = hsum256(a3);
        for (; j < d; j++) { s0 += x[j] * m0[j]; s1 += x[j] * m1[j]; s2 += x[j] * m2[j]; s3 += x[j] * m3[j]; }
        out[k] = s0; out[k + 1] = s1; out[k + 2] = s2; out[k + 3] = s3;
    }
    for (; k < r; k++) {
        const float *m = M + k * ldm;
        __m256 a = _mm256_setzero_ps();
        int64_t j = 0;
        for (; j + 8 <= d; j += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(m + j), a);
        float s = hsum256(a);
        for (; j < d; j++) s += x[j] * m[j];
        out[k] = s;
    }
}

LT_AVX2 void lt__axpy_many_avx2(float *y, const float *coef, const float *M, int64_t ldm, int64_t r, int64_t d) {
    int64_t j = 0;
    for (; j + 16 <= d; j += 16) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        for (int64_t k = 0; k < r; k++) {
            __m256 c = _mm256_broadcast_ss(coef + k);
            const float *m = M + k * ldm + j;
            a0 = _mm256_fmadd_ps(c, _mm256_loadu_ps(m), a0);
            a1 = _mm256_fmadd_ps(c, _mm256_loadu_ps(m + 8), a1);
        }
        _mm256_storeu_ps(y + j, _mm256_add_ps(_mm256_loadu_ps(y + j), a0));
        _mm256_storeu_ps(y + j + 8, _mm256_add_ps(_mm256_loadu_ps(y + j + 8), a1));
    }
    for (; j + 8 <= d; j += 8) {
        __m256 a = _mm256_setzero_ps();
        for (int64_t k = 0; k < r; k++)
            a = _mm256_fmadd_ps(_mm256_broadcast_ss(coef + k), _mm256_loadu_ps(M + k * ldm + j), a);
        _mm256_storeu_ps(y + j, _mm256_add_ps(_mm256_loadu_ps(y + j), a));
    }
    for (; j < d; j++) {
        float acc = 0.0f;
        for (int64_t k = 0; k < r; k++) acc += coef[k] * M[k * ldm + j];
        y[j] += acc;
    }
}
#endif

#if defined(__x86_64__)
/* ---- dot_block ------------------------------------------------------------------------------
 * 2 rows × 4 keys per register tile (8 accumulators; 16 registers in all), a last odd row alone
 * with the same per-entry arithmetic; a key tail repeats the last key pointer and drops the
 * extra results. Reduction of one accumulator v (8 lanes, fixed for every entry): inside each
 * 128-bit half, s = (v0 + v2) + (v1 + v3); then s_lo + s_hi. */

/* [total(v0), total(v1), total(v2), total(v3)] */
LT_AVX2 static inline __m128 sums4_avx2(__m256 v0, __m256 v1, __m256 v2, __m256 v3) {
    __m256 t01 = _mm256_add_ps(_mm256_unpacklo_ps(v0, v1), _mm256_unpackhi_ps(v0, v1));
    __m256 t23 = _mm256_add_ps(_mm256_unpacklo_ps(v2, v3), _mm256_unpackhi_ps(v2, v3));
    __m256d lo = _mm256_unpacklo_pd(_mm256_castps_pd(t01), _mm256_castps_pd(t23));
    __m256d hi = _mm256_unpackhi_pd(_mm256_castps_pd(t01), _mm256_castps_pd(t23));
    __m256 u = _mm256_add_ps(_mm256_castpd_ps(lo), _mm256_castpd_ps(hi));
    return _mm_add_ps(_mm256_castps256_ps128(u), _mm256_extractf128_ps(u, 1));
}

LT_AVX2 void lt__dot_block_avx2(int64_t m, int64_t r, int64_t d, const float *X, int64_t ldx,
                                const float *M, int64_t ldm, float *out, int64_t ldo) {
    if (m <= 0 || r <= 0) return;
    const int64_t dv = d & ~(int64_t)7;
    const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(d & 7)),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (int64_t k0 = 0; k0 < r; k0 += 4) {
        const int64_t kn = r - k0 < 4 ? r - k0 : 4;
        const float *m0 = M + k0 * ldm;
        const float *m1 = M + (k0 + (kn > 1 ? 1 : 0)) * ldm;
        const float *m2 = M + (k0 + (kn > 2 ? 2 : kn - 1)) * ldm;
        const float *m3 = M + (k0 + kn - 1) * ldm;
        for (int64_t i0 = 0; i0 < m; i0 += 2) {
            const int64_t in = m - i0 < 2 ? m - i0 : 2;
            const float *x0 = X + i0 * ldx, *x1 = X + (i0 + in - 1) * ldx;
            if (in == 1) {                         /* the last row alone: same sums, half the work */
                __m256 b0 = _mm256_setzero_ps(), b1 = b0, b2 = b0, b3 = b0;
                int64_t j = 0;
                for (; j < dv; j += 8) {
                    __m256 q = _mm256_loadu_ps(x0 + j);
                    b0 = _mm256_fmadd_ps(q, _mm256_loadu_ps(m0 + j), b0);
                    b1 = _mm256_fmadd_ps(q, _mm256_loadu_ps(m1 + j), b1);
                    b2 = _mm256_fmadd_ps(q, _mm256_loadu_ps(m2 + j), b2);
                    b3 = _mm256_fmadd_ps(q, _mm256_loadu_ps(m3 + j), b3);
                }
                if (d & 7) {
                    __m256 q = _mm256_maskload_ps(x0 + j, tail);
                    b0 = _mm256_fmadd_ps(q, _mm256_maskload_ps(m0 + j, tail), b0);
                    b1 = _mm256_fmadd_ps(q, _mm256_maskload_ps(m1 + j, tail), b1);
                    b2 = _mm256_fmadd_ps(q, _mm256_maskload_ps(m2 + j, tail), b2);
                    b3 = _mm256_fmadd_ps(q, _mm256_maskload_ps(m3 + j, tail), b3);
                }
                float buf[4];
                _mm_storeu_ps(buf, sums4_avx2(b0, b1, b2, b3));
                for (int64_t k = 0; k < kn; k++) out[i0 * ldo + k0 + k] = buf[k];
                continue;
            }
            __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;
            __m256 a10 = a00, a11 = a00, a12 = a00, a13 = a00;
#define LT_DOT_TILE_STEP(LOAD)                                                                \
            {                                                                                 \
                __m256 q0 = LOAD(x0), q1 = LOAD(x1);                                          \
                __m256 k = LOAD(m0);                                                          \
                a00 = _mm256_fmadd_ps(q0, k, a00); a10 = _mm256_fmadd_ps(q1, k, a10);         \
                k = LOAD(m1);                                                                 \
                a01 = _mm256_fmadd_ps(q0, k, a01); a11 = _mm256_fmadd_ps(q1, k, a11);         \
                k = LOAD(m2);                                                                 \
                a02 = _mm256_fmadd_ps(q0, k, a02); a12 = _mm256_fmadd_ps(q1, k, a12);         \
                k = LOAD(m3);                                                                 \
                a03 = _mm256_fmadd_ps(q0, k, a03); a13 = _mm256_fmadd_ps(q1, k, a13);         \
            }
            int64_t j = 0;
            for (; j < dv; j += 8) {
#define LT_LOAD_FULL(p) _mm256_loadu_ps((p) + j)
                LT_DOT_TILE_STEP(LT_LOAD_FULL)
#undef LT_LOAD_FULL
            }
            if (d & 7) {
#define LT_LOAD_TAIL(p) _mm256_maskload_ps((p) + j, tail)
                LT_DOT_TILE_STEP(LT_LOAD_TAIL)
#undef LT_LOAD_TAIL
            }
#undef LT_DOT_TILE_STEP
            const __m128 s0 = sums4_avx2(a00, a01, a02, a03), s1 = sums4_avx2(a10, a11, a12, a13);
            if (in == 2 && kn == 4) {
                _mm_storeu_ps(out + i0 * ldo + k0, s0);
                _mm_storeu_ps(out + (i0 + 1) * ldo + k0, s1);
            } else {
                float buf[8];
                _mm_storeu_ps(buf, s0);
                _mm_storeu_ps(buf + 4, s1);
                for (int64_t i = 0; i < in; i++) {
                    float *o = out + (i0 + i) * ldo + k0;
                    for (int64_t k = 0; k < kn; k++) o[k] = buf[4 * i + k];
                }
            }
        }
    }
}

/* ---- axpy_block -----------------------------------------------------------------------------
 * R (<= 4) rows × 16 columns per register tile (8 accumulators), then 8 columns, then single
 * columns (fmaf: the same fused multiply-add as the vector lanes). */
LT_AVX2 static inline __attribute__((always_inline)) void
axpy_rows_avx2(const int R, int64_t r, int64_t d, const float *Cf, int64_t ldc, const float *M,
               int64_t ldm, float *Y, int64_t ldy) {
    int64_t j = 0;
    for (; j + 16 <= d; j += 16) {
        __m256 acc[4][2];
        for (int i = 0; i < R; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
        for (int64_t k = 0; k < r; k++) {
            const float *mk = M + k * ldm + j;
            __m256 v0 = _mm256_loadu_ps(mk), v1 = _mm256_loadu_ps(mk + 8);
            for (int i = 0; i < R; i++) {
                __m256 c = _mm256_broadcast_ss(Cf + i * ldc + k);
                acc[i][0] = _mm256_fmadd_ps(c, v0, acc[i][0]);
                acc[i][1] = _mm256_fmadd_ps(c, v1, acc[i][1]);
            }
        }
        for (int i = 0; i < R; i++) {
            float *y = Y + i * ldy + j;
            _mm256_storeu_ps(y, _mm256_add_ps(_mm256_loadu_ps(y), acc[i][0]));
            _mm256_storeu_ps(y + 8, _mm256_add_ps(_mm256_loadu_ps(y + 8), acc[i][1]));
        }
    }
    for (; j + 8 <= d; j += 8) {
        __m256 acc[4];
        for (int i = 0; i < R; i++) acc[i] = _mm256_setzero_ps();
        for (int64_t k = 0; k < r; k++) {
            __m256 v = _mm256_loadu_ps(M + k * ldm + j);
            for (int i = 0; i < R; i++) acc[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(Cf + i * ldc + k), v, acc[i]);
        }
        for (int i = 0; i < R; i++) {
            float *y = Y + i * ldy + j;
            _mm256_storeu_ps(y, _mm256_add_ps(_mm256_loadu_ps(y), acc[i]));
        }
    }
    for (; j < d; j++) {
        for (int i = 0; i < R; i++) {
            float acc = 0.0f;
            for (int64_t k = 0; k < r; k++) acc = fmaf(Cf[i * ldc + k], M[k * ldm + j], acc);
            Y[i * ldy + j] += acc;
        }
    }
}

LT_AVX2 void lt__axpy_block_avx2(int64_t m, int64_t r, int64_t d, const float *Cf, int64_t ldc,
                                 const float *M, int64_t ldm, float *Y, int64_t ldy) {
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) axpy_rows_avx2(4, r, d, Cf + i * ldc, ldc, M, ldm, Y + i * ldy, ldy);
    switch (m - i) {   /* the last rows as one tile: each row of M is loaded once for all of them */
    case 3: axpy_rows_avx2(3, r, d, Cf + i * ldc, ldc, M, ldm, Y + i * ldy, ldy); break;
    case 2: axpy_rows_avx2(2, r, d, Cf + i * ldc, ldc, M, ldm, Y + i * ldy, ldy); break;
    case 1: axpy_rows_avx2(1, r, d, Cf + i * ldc, ldc, M, ldm, Y + i * ldy, ldy); break;
    default: break;
    }
}
#endif
