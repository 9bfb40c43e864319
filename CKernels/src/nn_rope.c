/*
 * nn_rope.c — rotary position embedding, Hugging Face "rotate_half" layout (API in lt_nn.h).
 *
 * transformers (LlamaRotaryEmbedding + apply_rotary_pos_emb), per row with position p:
 *   freqs = inv_freq · p (float32),  emb = cat(freqs, freqs),  cos = emb.cos(), sin = emb.sin()
 *   x' = x · cos + rotate_half(x) · sin,   rotate_half(x) = cat(−x[h:], x[:h])   (h = d_rot/2)
 * i.e. for j < h, with θ_j = p · inv_freq[j] (cos and sin are the same for j and j + h):
 *   x'_j     = x_j · cos θ_j − x_{j+h} · sin θ_j
 *   x'_{j+h} = x_{j+h} · cos θ_j + x_j · sin θ_j
 * The float32 expressions are evaluated in that order (a·c + (−b)·s equals a·c − b·s exactly),
 * without contraction into fused multiply-adds. θ is the float32 product (float)p · inv_freq[j];
 * cos θ and sin θ are computed in double and rounded to float (torch's float32 cos/sin are within
 * an ulp of that). Columns d_rot … d_h−1 of every head pass through untouched (partial rotary).
 *
 * cos/sin in double: for |θ| < 2^19 (positions times frequencies in any real model) by
 * rope_sincos below — Cody–Waite reduction by π/2 with fdlibm's two 33-bit parts (k times
 * each exact for these k) and the remainder, fdlibm's __kernel_sin/__kernel_cos polynomials on |r| <= π/4 (error below an ulp
 * of double), quadrant by selection — plain arithmetic that vectorises, where libm's sin and
 * cos (two calls of ~20 ns each per pair) took most of the kernel's time; libm beyond.
 *
 * backward: the map is x ↦ R x with R orthogonal per pair; its transpose (the rotation by −θ,
 * with the same float cos/sin) maps the output gradient to the input gradient.
 *
 * Rows are independent: OpenMP over rows with a fixed chunk; cos/sin of a row are evaluated
 * once (in chunks of ROPE_CHUNK pairs on the stack) and applied to all H heads.
 */
#pragma STDC FP_CONTRACT OFF
#include "lt_nn.h"
#include "nn_internal.h"

#include <math.h>

#define ROPE_CHUNK 64
#define ROPE_REDUCE_MAX 524288.0   /* 2^19: |k| < 2^19 · 2/π, so k · (33-bit part) is exact */

/* cos x and sin x in double for |x| < ROPE_REDUCE_MAX (see the header comment). */
static inline void rope_sincos(double x, double *cs, double *sn) {
    const double shifter = 6755399441055744.0;                 /* 1.5 · 2^52 */
    double kd = x * 6.36619772367581382433e-01 + shifter;      /* round(x · 2/π) */
    double k = kd - shifter;
    double r = x - k * 1.57079632673412561417e+00;             /* π/2, first 33 bits */
    r = r - k * 6.07710050630396597660e-11;                    /* second 33 bits */
    r = r - k * 2.02226624879595063154e-21;                    /* π/2 minus the two */
    uint64_t bits;
    memcpy(&bits, &kd, sizeof bits);
    const uint64_t q = bits & 3u;                              /* k mod 4 */
    const double z = r * r;
    const double ps = -1.66666666666666324348e-01 + z * (8.33333333332248946124e-03 +
                      z * (-1.98412698298579493134e-04 + z * (2.75573137070700676789e-06 +
                      z * (-2.50507602534068634195e-08 + z * 1.58969099521155010221e-10))));
    const double s = r + r * z * ps;
    const double pc = 4.16666666666666019037e-02 + z * (-1.38888888888741095749e-03 +
                      z * (2.48015872894767294178e-05 + z * (-2.75573143513906633035e-07 +
                      z * (2.08757232129817482790e-09 + z * -1.13596475577881948265e-11))));
    const double c = (1.0 - 0.5 * z) + z * z * pc;
    /* x = kπ/2 + r: quadrant 0 (s, c), 1 (c, −s), 2 (−s, −c), 3 (−c, s) */
    const double s1 = (q & 1u) ? c : s, c1 = (q & 1u) ? s : c;
    *sn = (q & 2u) ? -s1 : s1;
    *cs = ((q + 1u) & 2u) ? -c1 : c1;
}

static lt_status rope_check(int64_t n, int64_t H, int64_t d_h, int64_t d_rot, const int32_t *pos,
                            const float *inv_freq, const float *X, int64_t ldx) {
    LT_CHECK(pos && inv_freq && X, LT_ERR_NULL_POINTER);
    LT_CHECK(n >= 0 && H >= 1 && d_h >= 1, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(d_rot >= 2 && d_rot <= d_h && d_rot % 2 == 0, LT_ERR_INVALID_ARGUMENT);
    int64_t d, t;
    LT_CHECK(!lt__mul_overflows(H, d_h, &d) && lt__ld_ok(ldx, d), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(!lt__mul_overflows(n, ldx, &t), LT_ERR_INVALID_ARGUMENT);
    for (int64_t i = 0; i < n; i++) LT_CHECK(pos[i] >= 0, LT_ERR_INVALID_ARGUMENT);
    for (int64_t j = 0; j < d_rot / 2; j++) LT_CHECK(isfinite(inv_freq[j]), LT_ERR_INVALID_ARGUMENT);
    return LT_OK;
}

/* Rotates the pairs (j, j + half) of every head of rows 0 … n−1 by +θ (sign = 1, forward) or
 * −θ (sign = −1, backward). */
static void rope_apply(int64_t n, int64_t H, int64_t d_h, int64_t d_rot, const int32_t *pos,
                       const float *inv_freq, float *X, int64_t ldx, int sign) {
    const int64_t half = d_rot / 2;
    const double flops = (double)n * ((double)H * (double)d_rot * 3.0 + (double)half * 40.0);
    #pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK) if(LT_PARALLEL_IF(flops))
    for (int64_t i = 0; i < n; i++) {
        const float p = (float)pos[i];
        float c[ROPE_CHUNK], s[ROPE_CHUNK];
        for (int64_t j0 = 0; j0 < half; j0 += ROPE_CHUNK) {
            const int64_t w = half - j0 < ROPE_CHUNK ? half - j0 : ROPE_CHUNK;
            int big = 0;
            for (int64_t j = 0; j < w; j++) {
                const double theta = (double)(p * inv_freq[j0 + j]);
                double cd, sd;
                rope_sincos(theta, &cd, &sd);
                c[j] = (float)cd;
                s[j] = (float)sd;
                big |= !(fabs(theta) < ROPE_REDUCE_MAX);
            }
            if (big)   /* positions × frequencies this large: libm's full range reduction */
                for (int64_t j = 0; j < w; j++) {
                    const double theta = (double)(p * inv_freq[j0 + j]);
                    if (!(fabs(theta) < ROPE_REDUCE_MAX)) { c[j] = (float)cos(theta); s[j] = (float)sin(theta); }
                }
            if (sign < 0)
                for (int64_t j = 0; j < w; j++) s[j] = -s[j];
            for (int64_t h = 0; h < H; h++) {
                float *lo = X + i * ldx + h * d_h + j0, *hi = lo + half;
                for (int64_t j = 0; j < w; j++) {
                    const float a = lo[j], b = hi[j];
                    lo[j] = a * c[j] - b * s[j];
                    hi[j] = b * c[j] + a * s[j];
                }
            }
        }
    }
}

lt_status lt_rope_forward(int64_t n, int64_t H, int64_t d_h, int64_t d_rot,
                          const int32_t *pos, const float *inv_freq, float *X, int64_t ldx) {
    lt_status st = rope_check(n, H, d_h, d_rot, pos, inv_freq, X, ldx);
    if (st != LT_OK) return st;
    (void)lt__ensure_init();
    rope_apply(n, H, d_h, d_rot, pos, inv_freq, X, ldx, 1);
    return LT_OK;
}

lt_status lt_rope_backward(int64_t n, int64_t H, int64_t d_h, int64_t d_rot,
                           const int32_t *pos, const float *inv_freq, float *dX, int64_t lddx) {
    lt_status st = rope_check(n, H, d_h, d_rot, pos, inv_freq, dX, lddx);
    if (st != LT_OK) return st;
    (void)lt__ensure_init();
    rope_apply(n, H, d_h, d_rot, pos, inv_freq, dX, lddx, -1);
    return LT_OK;
}
