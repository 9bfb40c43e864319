/* simd_avx2.c — AVX2 + FMA variants of the micro-kernels (see simd.h). */
#if defined(__x86_64__)
#include "simd.h"
#include <immintrin.h>

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
