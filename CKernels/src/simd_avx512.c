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
