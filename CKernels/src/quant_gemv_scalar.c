/*
 * quant_gemv_scalar.c — portable decode-sized products with stored matrices (n <= 8 rows of
 * activations): the reference decoders fill a stack buffer with up to 256 weights of a row,
 * which are then dotted with every activation row (contract in quant_matmul_internal.h).
 */
#pragma STDC FP_CONTRACT OFF
#include "quant_matmul_internal.h"
#include "quant_internal.h"

/* Weights decoded per step: a multiple of every block size (one K-type block). */
#define QS_CHUNK 256

void lt__qgemv_scalar(int32_t type, const uint8_t *W, int64_t rb, int64_t K, int64_t o0, int64_t o1,
                      const float *X, int64_t ldx, int64_t n, float *Y, int64_t ldy, int accumulate,
                      const uint8_t *pf, int64_t pf_bytes) {
    (void)pf; (void)pf_bytes;
    int64_t be = 1, bb = 4;
    lt__quant_geometry(type, &be, &bb);
    const lt__dequant_fn dq = lt__dequant_for_isa(type, LT_ISA_SCALAR);
    float w[QS_CHUNK];
    for (int64_t o = o0; o < o1; o++) {
        const uint8_t *row = W + o * rb;
        float acc[LT_QUANT_GEMV_MAX_ROWS][8];
        for (int64_t i = 0; i < n; i++)
            for (int t = 0; t < 8; t++) acc[i][t] = 0.0f;
        for (int64_t k0 = 0; k0 < K; k0 += QS_CHUNK) {
            const int64_t len = K - k0 < QS_CHUNK ? K - k0 : QS_CHUNK;
            dq(row + (k0 / be) * bb, len / be, w);
            for (int64_t i = 0; i < n; i++) {
                const float *x = X + i * ldx + k0;
                float *a = acc[i];
                for (int64_t j = 0; j < len; j++) a[(k0 + j) & 7] += x[j] * w[j];
            }
        }
        for (int64_t i = 0; i < n; i++) {
            const float *a = acc[i];
            const float s = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
            float *y = Y + i * ldy + o;
            *y = accumulate ? *y + s : s;
        }
    }
}

void lt__qgemv_bwd_scalar(int32_t type, const uint8_t *W, int64_t rb, int64_t d_out, int64_t c0,
                          int64_t c1, const float *dY, int64_t lddy, int64_t n, float *dX,
                          int64_t lddx, int accumulate) {
    int64_t be = 1, bb = 4;
    lt__quant_geometry(type, &be, &bb);
    const lt__dequant_fn dq = lt__dequant_for_isa(type, LT_ISA_SCALAR);
    const int64_t width = c1 - c0, nb = width / be, src = (c0 / be) * bb;
    float acc[LT_QUANT_GEMV_MAX_ROWS][LT_QBWD_COLS_MAX];
    float w[LT_QBWD_COLS_MAX];
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < width; j++) acc[i][j] = 0.0f;
    for (int64_t o = 0; o < d_out; o++) {
        dq(W + o * rb + src, nb, w);
        for (int64_t i = 0; i < n; i++) {
            const float g = dY[i * lddy + o];
            float *a = acc[i];
            for (int64_t j = 0; j < width; j++) a[j] += g * w[j];
        }
    }
    for (int64_t i = 0; i < n; i++) {
        float *d = dX + i * lddx + c0;
        if (accumulate) for (int64_t j = 0; j < width; j++) d[j] += acc[i][j];
        else for (int64_t j = 0; j < width; j++) d[j] = acc[i][j];
    }
}
