/* stats_syrk.c — deterministic, thread-parallel C(upper) += Yᵀ Y on a packed float64 block.
 *
 * Layout of the packed block (written by the centring pass in stats.c):
 *   P[p*b*8 + k*8 + c] = Y[k][8p + c]      p < np = ceil(d/8) panels of 8 columns, k < b rows;
 *   columns past d are zero.
 * C (d × d, ld ldc) gets every upper-triangle entry (j >= i) of Yᵀ Y added; entries below the
 * diagonal inside diagonal tiles are also touched (the caller mirrors the upper triangle).
 *
 * Every tile of 8 rows × 24 columns of C is computed by one task, summing over k in order, so
 * the bits never depend on the thread count (tiles are independent; the cyclic schedule only balances the triangle).
 * Micro-kernels: scalar, AVX2+FMA (4×8 sub-tiles), AVX-512 (8×24), chosen by lt_isa_active().
 * Shapes: b rows (k), tile rows i0..i0+8, columns j0..j0+24.
 */
#include "stats_internal.h"
#include "internal.h"
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define NR 24  /* tile columns: three panels of 8 */
typedef void (*tile_fn)(int64_t b, const double *pi, const double *pj0, const double *pj1,
                        const double *pj2, double acc[8][NR]);

/* acc[r][8q + c] = Σ_k pi[k*8 + r] * pj_q[k*8 + c]   (q < 3, r < 8, c < 8) */
static void tile_scalar(int64_t b, const double *pi, const double *pj0, const double *pj1,
                        const double *pj2, double acc[8][NR]) {
    for (int r = 0; r < 8; r++)
        for (int c = 0; c < NR; c++) acc[r][c] = 0.0;
    for (int64_t k = 0; k < b; k++) {
        const double *a = pi + k * 8, *x0 = pj0 + k * 8, *x1 = pj1 + k * 8, *x2 = pj2 + k * 8;
        for (int r = 0; r < 8; r++) {
            const double ar = a[r];
            for (int c = 0; c < 8; c++) acc[r][c] += ar * x0[c];
            for (int c = 0; c < 8; c++) acc[r][8 + c] += ar * x1[c];
            for (int c = 0; c < 8; c++) acc[r][16 + c] += ar * x2[c];
        }
    }
}

#if defined(__x86_64__)
#define LT_AVX2 __attribute__((target("avx2,fma")))
#define LT_AVX512 __attribute__((target("avx512f")))

LT_AVX2 static void tile_avx2(int64_t b, const double *pi, const double *pj0, const double *pj1,
                              const double *pj2, double acc[8][NR]) {
    /* six 4 × 8 sub-tiles: (row half h, column panel q); 8 accumulators each */
    for (int h = 0; h < 2; h++) {
        for (int q = 0; q < 3; q++) {
            const double *pj = q == 0 ? pj0 : (q == 1 ? pj1 : pj2);
            __m256d c00 = _mm256_setzero_pd(), c01 = c00, c10 = c00, c11 = c00;
            __m256d c20 = c00, c21 = c00, c30 = c00, c31 = c00;
            for (int64_t k = 0; k < b; k++) {
                const double *a = pi + k * 8 + 4 * h;
                const __m256d x0 = _mm256_loadu_pd(pj + k * 8), x1 = _mm256_loadu_pd(pj + k * 8 + 4);
                __m256d a0 = _mm256_broadcast_sd(a), a1 = _mm256_broadcast_sd(a + 1);
                c00 = _mm256_fmadd_pd(a0, x0, c00); c01 = _mm256_fmadd_pd(a0, x1, c01);
                c10 = _mm256_fmadd_pd(a1, x0, c10); c11 = _mm256_fmadd_pd(a1, x1, c11);
                __m256d a2 = _mm256_broadcast_sd(a + 2), a3 = _mm256_broadcast_sd(a + 3);
                c20 = _mm256_fmadd_pd(a2, x0, c20); c21 = _mm256_fmadd_pd(a2, x1, c21);
                c30 = _mm256_fmadd_pd(a3, x0, c30); c31 = _mm256_fmadd_pd(a3, x1, c31);
            }
            double *o0 = acc[4 * h] + 8 * q, *o1 = acc[4 * h + 1] + 8 * q;
            double *o2 = acc[4 * h + 2] + 8 * q, *o3 = acc[4 * h + 3] + 8 * q;
            _mm256_storeu_pd(o0, c00); _mm256_storeu_pd(o0 + 4, c01);
            _mm256_storeu_pd(o1, c10); _mm256_storeu_pd(o1 + 4, c11);
            _mm256_storeu_pd(o2, c20); _mm256_storeu_pd(o2 + 4, c21);
            _mm256_storeu_pd(o3, c30); _mm256_storeu_pd(o3 + 4, c31);
        }
    }
}

LT_AVX512 static void tile_avx512(int64_t b, const double *pi, const double *pj0, const double *pj1,
                                  const double *pj2, double acc[8][NR]) {
    __m512d c[8][3]; /* 24 accumulators + 3 loads + 1 broadcast of 32 registers */
    for (int r = 0; r < 8; r++) c[r][0] = c[r][1] = c[r][2] = _mm512_setzero_pd();
    for (int64_t k = 0; k < b; k++) {
        const __m512d x0 = _mm512_loadu_pd(pj0 + k * 8), x1 = _mm512_loadu_pd(pj1 + k * 8);
        const __m512d x2 = _mm512_loadu_pd(pj2 + k * 8);
        const double *a = pi + k * 8;
        for (int r = 0; r < 8; r++) {
            const __m512d ar = _mm512_set1_pd(a[r]);
            c[r][0] = _mm512_fmadd_pd(ar, x0, c[r][0]);
            c[r][1] = _mm512_fmadd_pd(ar, x1, c[r][1]);
            c[r][2] = _mm512_fmadd_pd(ar, x2, c[r][2]);
        }
    }
    for (int r = 0; r < 8; r++) {
        _mm512_storeu_pd(acc[r], c[r][0]); _mm512_storeu_pd(acc[r] + 8, c[r][1]);
        _mm512_storeu_pd(acc[r] + 16, c[r][2]);
    }
}
#endif

static tile_fn active_tile(void) {
#if defined(__x86_64__)
    switch (lt_isa_active()) {
    case LT_ISA_AVX512: return tile_avx512;
    case LT_ISA_AVX2: return tile_avx2;
    default: break;
    }
#endif
    return tile_scalar;
}

/* k is processed in chunks of LT_SYRK_KC rows so that a row panel (KC × 8 doubles) stays in L1
 * while the column panels stream from L2; chunks are added to C in order (deterministic). */
#define LT_SYRK_KC 128

void lt__stats_syrk_packed(int64_t d, int64_t b, const double *P, double *C, int64_t ldc, int par) {
    const int64_t np = (d + 7) / 8;
    const tile_fn tile = active_tile();
    /* For each chunk of KC rows (in order; its panels, KC × d doubles, stay in L2): task t =
     * row panel of 8, whose tiles run over column panels p >= t in steps of 3. */
    for (int64_t k0 = 0; k0 < b; k0 += LT_SYRK_KC) {
        const int64_t kc = (b - k0) < LT_SYRK_KC ? (b - k0) : LT_SYRK_KC;
#pragma omp parallel for schedule(static, 1) if (par)
        for (int64_t t = 0; t < np; t++) {
            double acc[8][NR];
            const int64_t i0 = t * 8, mr = (d - i0) < 8 ? (d - i0) : 8;
            const double *pi = P + t * b * 8 + k0 * 8;
            for (int64_t p = t; p < np; p += 3) {
                const double *pj0 = P + p * b * 8 + k0 * 8;
                /* past the last panel the rest of the tile is never stored: reuse pj0 */
                const double *pj1 = (p + 1 < np) ? P + (p + 1) * b * 8 + k0 * 8 : pj0;
                const double *pj2 = (p + 2 < np) ? P + (p + 2) * b * 8 + k0 * 8 : pj0;
                tile(kc, pi, pj0, pj1, pj2, acc);
                const int64_t j0 = p * 8, nr = (d - j0) < NR ? (d - j0) : NR;
                for (int64_t r = 0; r < mr; r++) {
                    double *crow = C + (i0 + r) * ldc + j0;
                    for (int64_t c = 0; c < nr; c++) crow[c] += acc[r][c];
                }
            }
        }
    }
}
