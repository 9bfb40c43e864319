/* gemm_avx2.c — AVX2 + FMA micro-kernel (6 × 16 tile) and 16-row transpose of the packed GEMM
 * core (gemm_internal.h). Same fma chain per element as the AVX-512 kernel: identical bits. */
#if defined(__x86_64__)
#pragma STDC FP_CONTRACT OFF
#include "gemm_internal.h"
#include <immintrin.h>

#define LT_AVX2 __attribute__((target("avx2,fma")))

/* 6 rows of A × 16 columns of B: 12 accumulators, 2 loads of B and 6 broadcasts of A per k. */
LT_AVX2 void lt__gemm_ukernel_avx2(int64_t kc, const float *ap, const float *bp,
                                   float *c, int64_t ldc, int load_c) {
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    if (load_c) {
#define LDC(r) c##r##0 = _mm256_loadu_ps(c + r * ldc); c##r##1 = _mm256_loadu_ps(c + r * ldc + 8);
        LDC(0) LDC(1) LDC(2) LDC(3) LDC(4) LDC(5)
#undef LDC
    } else {
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
    }
    for (int64_t k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_loadu_ps(bp + k * 16), b1 = _mm256_loadu_ps(bp + k * 16 + 8);
        __m256 av;
        av = _mm256_broadcast_ss(ap + k * 6 + 0); c00 = _mm256_fmadd_ps(av, b0, c00); c01 = _mm256_fmadd_ps(av, b1, c01);
        av = _mm256_broadcast_ss(ap + k * 6 + 1); c10 = _mm256_fmadd_ps(av, b0, c10); c11 = _mm256_fmadd_ps(av, b1, c11);
        av = _mm256_broadcast_ss(ap + k * 6 + 2); c20 = _mm256_fmadd_ps(av, b0, c20); c21 = _mm256_fmadd_ps(av, b1, c21);
        av = _mm256_broadcast_ss(ap + k * 6 + 3); c30 = _mm256_fmadd_ps(av, b0, c30); c31 = _mm256_fmadd_ps(av, b1, c31);
        av = _mm256_broadcast_ss(ap + k * 6 + 4); c40 = _mm256_fmadd_ps(av, b0, c40); c41 = _mm256_fmadd_ps(av, b1, c41);
        av = _mm256_broadcast_ss(ap + k * 6 + 5); c50 = _mm256_fmadd_ps(av, b0, c50); c51 = _mm256_fmadd_ps(av, b1, c51);
    }
#define STC(r) _mm256_storeu_ps(c + r * ldc, c##r##0); _mm256_storeu_ps(c + r * ldc + 8, c##r##1);
    STC(0) STC(1) STC(2) STC(3) STC(4) STC(5)
#undef STC
}

/* 8 × 8 block transpose in registers. */
LT_AVX2 static inline void transpose_8x8(const float *src, int64_t lds, float *dst, int64_t ldd) {
    __m256 r[8], t[8];
    for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * lds);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    /* r[4q + s], 128-bit lane L: rows 4q..4q+3 of column 4L + s. */
    for (int s = 0; s < 4; s++) {
        _mm256_storeu_ps(dst + s * ldd, _mm256_permute2f128_ps(r[s], r[4 + s], 0x20));
        _mm256_storeu_ps(dst + (4 + s) * ldd, _mm256_permute2f128_ps(r[s], r[4 + s], 0x31));
    }
}

/* Full 8-row micro-panel of A (the AVX-512 kernel's tile; plain AVX2 moves suffice):
 * dst[k·8 + r] = src[r·lds + k] for r < 8, k < kc. */
LT_AVX2 void lt__gemm_pack_a8_avx2(const float *src, int64_t lds, int64_t kc, float *dst) {
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) transpose_8x8(src + k, lds, dst + k * 8, 8);
    for (; k < kc; k++)
        for (int r = 0; r < 8; r++) dst[k * 8 + r] = src[r * lds + k];
}

LT_AVX2 void lt__transpose16_avx2(const float *src, int64_t lds, int64_t kc, float *dst, int64_t ldd) {
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
        transpose_8x8(src + k, lds, dst + k * ldd, ldd);
        transpose_8x8(src + 8 * lds + k, lds, dst + k * ldd + 8, ldd);
    }
    for (; k < kc; k++)
        for (int r = 0; r < 16; r++) dst[k * ldd + r] = src[r * lds + k];
}
#endif
