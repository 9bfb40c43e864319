/* gemm_avx512.c — AVX-512 micro-kernel (8 × 48 tile) and 16-row transpose of the packed GEMM
 * core (gemm_internal.h). Compiled with target attributes, never -march. */
#if defined(__x86_64__)
#pragma STDC FP_CONTRACT OFF
#include "gemm_internal.h"
#include <immintrin.h>

#define LT_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,fma")))

/* 8 rows of A × 48 columns of B: 24 accumulators, 3 loads of B and 8 broadcasts of A per k. */
LT_AVX512 void lt__gemm_ukernel_avx512(int64_t kc, const float *ap, const float *bp,
                                       float *c, int64_t ldc, int load_c) {
    __m512 c00, c01, c02, c10, c11, c12, c20, c21, c22, c30, c31, c32;
    __m512 c40, c41, c42, c50, c51, c52, c60, c61, c62, c70, c71, c72;
    if (load_c) {
#define LDC(r) c##r##0 = _mm512_loadu_ps(c + r * ldc); c##r##1 = _mm512_loadu_ps(c + r * ldc + 16); \
               c##r##2 = _mm512_loadu_ps(c + r * ldc + 32);
        LDC(0) LDC(1) LDC(2) LDC(3) LDC(4) LDC(5) LDC(6) LDC(7)
#undef LDC
    } else {
        c00 = c01 = c02 = c10 = c11 = c12 = c20 = c21 = c22 = c30 = c31 = c32 = _mm512_setzero_ps();
        c40 = c41 = c42 = c50 = c51 = c52 = c60 = c61 = c62 = c70 = c71 = c72 = _mm512_setzero_ps();
    }
#define STEP(k)                                                                                  \
    do {                                                                                         \
        const __m512 b0 = _mm512_loadu_ps(bp + (k) * 48);                                        \
        const __m512 b1 = _mm512_loadu_ps(bp + (k) * 48 + 16);                                   \
        const __m512 b2 = _mm512_loadu_ps(bp + (k) * 48 + 32);                                   \
        __m512 av;                                                                               \
        av = _mm512_set1_ps(ap[(k) * 8 + 0]); c00 = _mm512_fmadd_ps(av, b0, c00);                          \
        c01 = _mm512_fmadd_ps(av, b1, c01); c02 = _mm512_fmadd_ps(av, b2, c02);                  \
        av = _mm512_set1_ps(ap[(k) * 8 + 1]); c10 = _mm512_fmadd_ps(av, b0, c10);                          \
        c11 = _mm512_fmadd_ps(av, b1, c11); c12 = _mm512_fmadd_ps(av, b2, c12);                  \
        av = _mm512_set1_ps(ap[(k) * 8 + 2]); c20 = _mm512_fmadd_ps(av, b0, c20);                          \
        c21 = _mm512_fmadd_ps(av, b1, c21); c22 = _mm512_fmadd_ps(av, b2, c22);                  \
        av = _mm512_set1_ps(ap[(k) * 8 + 3]); c30 = _mm512_fmadd_ps(av, b0, c30);                          \
        c31 = _mm512_fmadd_ps(av, b1, c31); c32 = _mm512_fmadd_ps(av, b2, c32);                  \
        av = _mm512_set1_ps(ap[(k) * 8 + 4]); c40 = _mm512_fmadd_ps(av, b0, c40);                          \
        c41 = _mm512_fmadd_ps(av, b1, c41); c42 = _mm512_fmadd_ps(av, b2, c42);                  \
        av = _mm512_set1_ps(ap[(k) * 8 + 5]); c50 = _mm512_fmadd_ps(av, b0, c50);                          \
        c51 = _mm512_fmadd_ps(av, b1, c51); c52 = _mm512_fmadd_ps(av, b2, c52);                  \
        av = _mm512_set1_ps(ap[(k) * 8 + 6]); c60 = _mm512_fmadd_ps(av, b0, c60);                          \
        c61 = _mm512_fmadd_ps(av, b1, c61); c62 = _mm512_fmadd_ps(av, b2, c62);                  \
        av = _mm512_set1_ps(ap[(k) * 8 + 7]); c70 = _mm512_fmadd_ps(av, b0, c70);                          \
        c71 = _mm512_fmadd_ps(av, b1, c71); c72 = _mm512_fmadd_ps(av, b2, c72);                  \
    } while (0)
    int64_t k = 0;
    for (; k + 4 <= kc; k += 4) {
        _mm_prefetch((const char *)(bp + (k + 8) * 48), _MM_HINT_T0);
        _mm_prefetch((const char *)(bp + (k + 8) * 48 + 32), _MM_HINT_T0);
        _mm_prefetch((const char *)(bp + (k + 9) * 48), _MM_HINT_T0);
        _mm_prefetch((const char *)(bp + (k + 9) * 48 + 32), _MM_HINT_T0);
        _mm_prefetch((const char *)(bp + (k + 10) * 48 + 16), _MM_HINT_T0);
        _mm_prefetch((const char *)(bp + (k + 11) * 48), _MM_HINT_T0);
        _mm_prefetch((const char *)(bp + (k + 11) * 48 + 32), _MM_HINT_T0);
        _mm_prefetch((const char *)(ap + (k + 16) * 8), _MM_HINT_T0);
        STEP(k); STEP(k + 1); STEP(k + 2); STEP(k + 3);
    }
    for (; k < kc; k++) STEP(k);
#undef STEP
#define STC(r) _mm512_storeu_ps(c + r * ldc, c##r##0); _mm512_storeu_ps(c + r * ldc + 16, c##r##1); \
               _mm512_storeu_ps(c + r * ldc + 32, c##r##2);
    STC(0) STC(1) STC(2) STC(3) STC(4) STC(5) STC(6) STC(7)
#undef STC
}

/* 16 × 16 block transpose in registers (rows r of src → columns of dst). */
LT_AVX512 static inline void transpose_16x16(const float *src, int64_t lds, float *dst, int64_t ldd) {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * lds);
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    /* r[4q + s] now holds, in each 128-bit lane L, elements (rows 4q..4q+3, column 4L + s). */
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);        /* lanes 0,2 of each */
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);    /* lanes 1,3 of each */
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
        r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xDD);
    }
    for (int i = 0; i < 16; i++) _mm512_storeu_ps(dst + i * ldd, r[i]);
}

LT_AVX512 void lt__transpose16_avx512(const float *src, int64_t lds, int64_t kc, float *dst, int64_t ldd) {
    int64_t k = 0;
    for (; k + 16 <= kc; k += 16) transpose_16x16(src + k, lds, dst + k * ldd, ldd);
    for (; k < kc; k++)
        for (int r = 0; r < 16; r++) dst[k * ldd + r] = src[r * lds + k];
}
#endif
