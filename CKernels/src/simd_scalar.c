/* simd_scalar.c — portable variants of the micro-kernels (see simd.h). */
#include "simd.h"

void lt__dot_many_scalar(const float *x, const float *M, int64_t ldm, int64_t r, int64_t d, float *out) {
    for (int64_t k = 0; k < r; k++) {
        const float *m = M + k * ldm;
        /* 8 partial sums: same association as the vector variants, keeps error low. */
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int64_t j = 0;
        for (; j + 8 <= d; j += 8)
            for (int t = 0; t < 8; t++) acc[t] += x[j + t] * m[j + t];
        float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for (; j < d; j++) s += x[j] * m[j];
        out[k] = s;
    }
}

void lt__axpy_many_scalar(float *y, const float *coef, const float *M, int64_t ldm, int64_t r, int64_t d) {
    for (int64_t j = 0; j < d; j++) {
        float acc = 0.0f;
        for (int64_t k = 0; k < r; k++) acc += coef[k] * M[k * ldm + j];
        y[j] += acc;
    }
}

void lt__dot_block_scalar(int64_t m, int64_t r, int64_t d, const float *X, int64_t ldx, const float *M,
                          int64_t ldm, float *out, int64_t ldo) {
    for (int64_t i = 0; i < m; i++) lt__dot_many_scalar(X + i * ldx, M, ldm, r, d, out + i * ldo);
}

/* Per row, columns in chunks of 64 held in a local accumulator (the k loop is the outer one, so
 * the inner loop over columns vectorises); each element is its own chain over k in order. */
void lt__axpy_block_scalar(int64_t m, int64_t r, int64_t d, const float *Cf, int64_t ldc, const float *M,
                           int64_t ldm, float *Y, int64_t ldy) {
    for (int64_t i = 0; i < m; i++) {
        const float *c = Cf + i * ldc;
        float *y = Y + i * ldy;
        for (int64_t j0 = 0; j0 < d; j0 += 64) {
            int64_t w = d - j0 < 64 ? d - j0 : 64;
            float acc[64];
            for (int64_t j = 0; j < w; j++) acc[j] = 0.0f;
            for (int64_t k = 0; k < r; k++) {
                const float ck = c[k], *mk = M + k * ldm + j0;
                for (int64_t j = 0; j < w; j++) acc[j] += ck * mk[j];
            }
            for (int64_t j = 0; j < w; j++) y[j0 + j] += acc[j];
        }
    }
}
