/* gemm_scalar.c — portable micro-kernel (4 × 16 tile) and 16-row transpose of the packed GEMM
 * core (gemm_internal.h). c += a·b per k in k order, the product rounded separately (no FMA:
 * contraction is off, so every compiler and CPU gives the same bits). */
#pragma STDC FP_CONTRACT OFF
#include "gemm_internal.h"

void lt__gemm_ukernel_scalar(int64_t kc, const float *ap, const float *bp, float *c,
                             int64_t ldc, int load_c) {
    float acc[LT_GEMM_SCALAR_MR][LT_GEMM_SCALAR_NR];
    for (int r = 0; r < LT_GEMM_SCALAR_MR; r++)
        for (int j = 0; j < LT_GEMM_SCALAR_NR; j++) acc[r][j] = load_c ? c[r * ldc + j] : 0.0f;
    for (int64_t k = 0; k < kc; k++) {
        const float *b = bp + k * LT_GEMM_SCALAR_NR;
        for (int r = 0; r < LT_GEMM_SCALAR_MR; r++) {
            const float av = ap[k * LT_GEMM_SCALAR_MR + r];
            for (int j = 0; j < LT_GEMM_SCALAR_NR; j++) acc[r][j] += av * b[j];
        }
    }
    for (int r = 0; r < LT_GEMM_SCALAR_MR; r++)
        for (int j = 0; j < LT_GEMM_SCALAR_NR; j++) c[r * ldc + j] = acc[r][j];
}

void lt__transpose16_scalar(const float *src, int64_t lds, int64_t kc, float *dst, int64_t ldd) {
    for (int64_t k = 0; k < kc; k++)
        for (int r = 0; r < 16; r++) dst[k * ldd + r] = src[r * lds + k];
}
