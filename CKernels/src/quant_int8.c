/*
 * quant_int8.c — decode-sized products with int8 activations: lt_quant_matmul_int8 (contract in
 * lt_quant.h; arithmetic and layout in quant_int8_internal.h). The activations are rounded here
 * once per call; the kernels (portable below, AVX2 / AVX-VNNI and AVX-512 VNNI in
 * quant_int8_*.c) multiply every weight block with its activation block in exact integers and
 * apply the scales with one float multiply-add per lane. This is llama.cpp's arithmetic for
 * quantized weights.
 */
#pragma STDC FP_CONTRACT OFF
#include "lt_quant.h"
#include "quant_int8_internal.h"
#include "quant_internal.h"
#include "gemm_internal.h"
#include "internal.h"
#include <math.h>
#include <stdlib.h>

/* Byte position of value j (0 … 31) of block b in the pair layout. */
static inline int64_t q8pos(int32_t type, int64_t b, int j) {
    const int natural = type == LT_GGML_Q8_0 || lt__q8_is_k(type);
    const int64_t base = 64 * (b >> 1) + (natural ? 32 : 16) * (b & 1);
    return natural || j < 16 ? base + j : base + 16 + j;   /* high half: +32 − 16 */
}

/* x[0 ..< 32·nb] → the rounded row (q, corr, d, s zeroed beforehand). */
static void round_row(int32_t type, const float *x, int64_t nb, int8_t *q, int32_t *corr, float *d, float *s) {
    for (int64_t b = 0; b < nb; b++) {
        const float *v = x + 32 * b;
        float amax = 0.0f;
        int finite = 1;
        for (int j = 0; j < 32; j++) {
            const float a = fabsf(v[j]);
            amax = a > amax ? a : amax;
            finite &= isfinite(a) != 0;
        }
        /* a NaN or infinity makes the block's scale NaN, so every output it meets is NaN (as
         * in the float product) while its codes stay in range */
        const float dx = finite ? amax / 127.0f : NAN, id = finite && amax != 0.0f ? 1.0f / dx : 0.0f;
        int32_t sum = 0;
        for (int j = 0; j < 32; j++) {
            float t = roundf(v[j] * id);
            t = t > 127.0f ? 127.0f : (t < -127.0f ? -127.0f : t);
            const int8_t c = (int8_t)(finite ? t : 0.0f);
            q[q8pos(type, b, j)] = c;
            sum += c;
        }
        d[b] = dx;
        s[b] = dx * (float)sum;
    }
    if (type == LT_GGML_Q4_1 || type == LT_GGML_Q4_K) return;
    const int32_t c = type == LT_GGML_Q8_0 ? 128 : (type == LT_GGML_Q6_K ? 32 : 8);
    for (int64_t p = 0; p < (nb + 1) / 2; p++)
        for (int l = 0; l < 16; l++) {
            const int8_t *g = q + 64 * p + 4 * l;
            corr[16 * p + l] = -c * ((int32_t)g[0] + g[1] + g[2] + g[3]);
        }
}

/* ---- portable variant: the lane arithmetic of quant_int8_internal.h, lane by lane ------------- */

/* The signed weight codes of blocks b, b + 1 in the pair layout (zeros for a missing second). */
static void pair_codes(int32_t type, const uint8_t *row, int64_t b, int has_b, int32_t code[64]) {
    const int64_t bytes = lt__q8_block_bytes(type), off = lt__q8_code_offset(type);
    for (int h = 0; h < 2; h++) {
        const uint8_t *blk = row + bytes * (b + h);
        for (int j = 0; j < 32; j++) {
            int32_t v = 0;
            if (h == 0 || has_b) {
                if (type == LT_GGML_Q8_0) v = (int8_t)blk[off + j];
                else v = (j < 16 ? (blk[off + j] & 0x0F) : (blk[off + j - 16] >> 4)) - (type == LT_GGML_Q4_0 ? 8 : 0);
            }
            code[type == LT_GGML_Q8_0 ? 32 * h + j : (j < 16 ? 16 * h + j : 32 + 16 * h + j - 16)] = v;
        }
    }
}

static float dot_scalar(int32_t type, const uint8_t *row, int64_t nb, const lt__q8row *x) {
    const int64_t bytes = lt__q8_block_bytes(type);
    float acc[16] = {0};
    for (int64_t b0 = 0; b0 < nb; b0 += 16) {
        float s[16];
        for (int j = 0; j < 16; j++) {
            const int64_t b = b0 + j;
            const float d = b < nb ? lt__f16_to_f32(lt__load_u16(row + bytes * b)) : 0.0f;
            s[j] = d * x->d[b];
            if (type == LT_GGML_Q4_1) {
                const float m = b < nb ? lt__f16_to_f32(lt__load_u16(row + bytes * b + 2)) : 0.0f;
                acc[j] = fmaf(m, x->s[b], acc[j]);
            }
        }
        const int64_t b1 = b0 + 16 < nb ? b0 + 16 : nb;
        for (int64_t b = b0; b < b1; b += 2) {
            int32_t code[64];
            pair_codes(type, row, b, b + 1 < nb, code);
            const int8_t *q = x->q + 32 * b;              /* pair b/2: 64 bytes */
            const int k = (int)(b - b0) / 2;
            for (int l = 0; l < 16; l++) {
                int32_t L = 0;
                for (int t = 0; t < 4; t++) L += code[4 * l + t] * q[4 * l + t];
                const int half = type == LT_GGML_Q8_0 ? l >= 8 : (l & 7) >= 4;
                acc[l] = fmaf((float)L, s[2 * k + half], acc[l]);
            }
        }
    }
    float v8[8], v4[4], v2[2];
    for (int l = 0; l < 8; l++) v8[l] = acc[l] + acc[l + 8];
    for (int l = 0; l < 4; l++) v4[l] = v8[l] + v8[l + 4];
    for (int l = 0; l < 2; l++) v2[l] = v4[l] + v4[l + 2];
    return v2[0] + v2[1];
}

/* The K types, lane by lane (quant_int8_internal.h). */
static float dot_scalar_k(int32_t type, const uint8_t *row, int64_t nb, const lt__q8row *x) {
    const int64_t bytes = lt__q8_super_bytes(type);
    float acc[16] = {0};
    for (int64_t B = 0; B < nb / 8; B++) {
        const uint8_t *blk = row + bytes * B;
        const int64_t b0 = 8 * B;
        float v[16];
        if (type == LT_GGML_Q4_K) {
            const float d = lt__f16_to_f32(lt__load_u16(blk)), dmin = lt__f16_to_f32(lt__load_u16(blk + 2));
            uint8_t sm[16];
            lt__q4k_scales(blk + 4, sm);
            for (int j = 0; j < 8; j++) v[j] = (d * (float)sm[j]) * x->d[b0 + j];
            for (int j = 0; j < 8; j++) acc[j] = fmaf(-(dmin * (float)sm[8 + j]), x->s[b0 + j], acc[j]);
        } else {
            const float d = lt__f16_to_f32(lt__load_u16(blk + 208));
            const int8_t *sc = (const int8_t *)(blk + 192);
            for (int t = 0; t < 16; t++) v[t] = (d * (float)sc[t]) * x->d[b0 + t / 2];
        }
        for (int k = 0; k < 4; k++) {
            int32_t code[64];   /* values 64k … 64k + 63 of the super-block, signed */
            for (int p = 0; p < 64; p++) {
                if (type == LT_GGML_Q4_K) {
                    const uint8_t c = blk[16 + 32 * k + (p & 31)];
                    code[p] = p < 32 ? (c & 0x0F) : (c >> 4);
                } else {
                    const int h = k >> 1, i = 64 * (k & 1) + p, g = i / 32, l = i % 32;
                    const uint8_t lo = blk[64 * h + 32 * (g & 1) + l];
                    const int nib = g >= 2 ? lo >> 4 : lo & 0x0F;
                    code[p] = (nib | (((blk[128 + 32 * h + l] >> (2 * g)) & 3) << 4)) - 32;
                }
            }
            const int8_t *q = x->q + 32 * (b0 + 2 * k);   /* pair (b0 + 2k)/2: 64 bytes */
            for (int l = 0; l < 16; l++) {
                int32_t L = 0;
                for (int t = 0; t < 4; t++) L += code[4 * l + t] * q[4 * l + t];
                const float sv = type == LT_GGML_Q4_K ? v[2 * k + (l >= 8)] : v[4 * k + l / 4];
                acc[l] = fmaf((float)L, sv, acc[l]);
            }
        }
    }
    float v8[8], v4[4], v2[2];
    for (int l = 0; l < 8; l++) v8[l] = acc[l] + acc[l + 8];
    for (int l = 0; l < 4; l++) v4[l] = v8[l] + v8[l + 4];
    for (int l = 0; l < 2; l++) v2[l] = v4[l] + v4[l + 2];
    return v2[0] + v2[1];
}

static void q8gemv_scalar(int32_t type, const uint8_t *W, int64_t row_bytes, int64_t nb, int64_t o0,
                          int64_t o1, const lt__q8row *x, int64_t n, float *Y, int64_t ldy, int accumulate) {
    for (int64_t o = o0; o < o1; o++)
        for (int64_t i = 0; i < n; i++) {
            const float r = lt__q8_is_k(type) ? dot_scalar_k(type, W + o * row_bytes, nb, &x[i])
                                              : dot_scalar(type, W + o * row_bytes, nb, &x[i]);
            Y[i * ldy + o] = accumulate ? Y[i * ldy + o] + r : r;
        }
}

/* ---- entry point -------------------------------------------------------------------------------- */

/* Rows o0 ..< o1 with an ISA's tiles (quant_int8_internal.h): 4 W rows × 2 activation rows
 * at a time. pf / pf_bytes (the thread's probable next chunk) are prefetched to L2, spread
 * over this chunk's rows. */
static void q8gemv_tiled(const lt__q8tiles *t, int32_t type, const uint8_t *W, int64_t row_bytes,
                         int64_t nb, int64_t o0, int64_t o1, const lt__q8row *x, int64_t n, float *Y,
                         int64_t ldy, int accumulate, const uint8_t *pf, int64_t pf_bytes) {
    float res[8];
    const int64_t pf_step = (pf_bytes / (o1 - o0) + 64) & ~(int64_t)63;
    int64_t pf_off = 0;
    for (int64_t o = o0; o < o1;) {
        const int R = o1 - o >= 4 ? 4 : 1;
        for (const int64_t end = pf_off + R * pf_step; pf_off < end && pf_off < pf_bytes; pf_off += 64)
            __builtin_prefetch(pf + pf_off, 0, 2);
        for (int64_t i = 0; i < n;) {
            const int G = n - i >= 2 ? 2 : 1;
            const lt__q8tile_fn f = R == 4 ? (G == 2 ? t->t4x2 : t->t4x1) : (G == 2 ? t->t1x2 : t->t1x1);
            f(type, W + o * row_bytes, row_bytes, nb, x + i, res);
            for (int g = 0; g < G; g++)
                for (int r = 0; r < R; r++) {
                    float *y = Y + (i + g) * ldy + o + r;
                    *y = accumulate ? *y + res[g * R + r] : res[g * R + r];
                }
            i += G;
        }
        o += R;
    }
}

/* The kernel variant lt_quant_matmul_int8 uses under `isa` on this CPU. */
static int q8kernel_for(int isa) {
#if defined(__x86_64__)
    if (isa == LT_ISA_AVX512 && lt__cpu_has_avx512vnni()) return LT_INT8_KERNEL_AVX512_VNNI;
    if ((isa == LT_ISA_AVX512 || isa == LT_ISA_AVX2) && lt_cpu_has_avx_vnni()) return LT_INT8_KERNEL_AVX_VNNI;
    if (isa == LT_ISA_AVX512 || isa == LT_ISA_AVX2) return LT_INT8_KERNEL_AVX2;
#endif
    (void)isa;
    return LT_INT8_KERNEL_PORTABLE;
}

int lt_quant_int8_kernel_supported(int kernel) {
    switch (kernel) {
    case LT_INT8_KERNEL_PORTABLE: return 1;
#if defined(__x86_64__)
    case LT_INT8_KERNEL_AVX2: return lt_isa_supported(LT_ISA_AVX2);
    case LT_INT8_KERNEL_AVX_VNNI: return lt_cpu_has_avx_vnni();
    case LT_INT8_KERNEL_AVX512_VNNI: return lt__cpu_has_avx512vnni();
#endif
    default: return 0;
    }
}

int lt_quant_int8_kernel(void) {
    (void)lt__ensure_init();
    return q8kernel_for((int)lt_isa_active());
}

/* The tiles of a kernel variant, or NULL for the portable one. */
static const lt__q8tiles *q8tiles_of(int kernel) {
#if defined(__x86_64__)
    if (kernel == LT_INT8_KERNEL_AVX512_VNNI) return &lt__q8tiles_vnni;
    if (kernel == LT_INT8_KERNEL_AVX_VNNI) return &lt__q8tiles_avxvnni;
    if (kernel == LT_INT8_KERNEL_AVX2) return &lt__q8tiles_avx2;
#endif
    (void)kernel;
    return NULL;
}

#define Q8_ROWS_PER_CHUNK 32

/* kernel: an LT_INT8_KERNEL_* variant the CPU has, or -1 for the one of the active ISA. */
static lt_status q8matmul(int kernel, int32_t type, int64_t n, int64_t d_in, int64_t d_out,
                          const float *X, int64_t ldx, const void *W, int64_t w_bytes,
                          float *Y, int64_t ldy, int accumulate) {
    LT_CHECK(type == LT_GGML_Q8_0 || type == LT_GGML_Q4_0 || type == LT_GGML_Q4_1 || lt__q8_is_k(type),
             LT_ERR_UNSUPPORTED);
    LT_CHECK(n >= 0 && d_in >= 0 && d_out >= 0 && w_bytes >= 0, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(n <= LT_QUANT_GEMV_MAX_ROWS, LT_ERR_UNSUPPORTED);
    LT_CHECK(d_in % (lt__q8_is_k(type) ? 256 : 32) == 0 && (accumulate == 0 || accumulate == 1),
             LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(lt__ld_ok(ldx, d_in) && lt__ld_ok(ldy, d_out), LT_ERR_INVALID_ARGUMENT);
    const int64_t nb = d_in / 32, row_bytes = lt__q8_row_bytes(type, nb);
    int64_t need, t;
    LT_CHECK(!lt__mul_overflows(d_out, row_bytes, &need) && w_bytes >= need, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(!lt__mul_overflows(n, ldx, &t) && !lt__mul_overflows(n, ldy, &t), LT_ERR_INVALID_ARGUMENT);
    if (n == 0 || d_out == 0) return LT_OK;
    LT_CHECK(Y, LT_ERR_NULL_POINTER);
    LT_CHECK(d_in == 0 || (X && W), LT_ERR_NULL_POINTER);
    (void)lt__ensure_init();
    if (d_in == 0) {
        if (!accumulate) for (int64_t i = 0; i < n; i++) memset(Y + i * ldy, 0, (size_t)d_out * sizeof(float));
        return LT_OK;
    }
    /* the rounded rows: per row q (64 per pair), corr (16 int32 per pair), d and s (per block,
     * padded to whole chunks of 16 blocks) */
    const int64_t pairs = (nb + 1) / 2, padded = (nb + 15) / 16 * 16;
    const size_t per_row = (size_t)(64 * pairs) + 4 * (size_t)(16 * pairs) + 8 * (size_t)padded;
    uint8_t *buf = (uint8_t *)calloc((size_t)n, per_row);
    if (!buf) return LT_ERR_UNSUPPORTED;
    lt__q8row rows[LT_QUANT_GEMV_MAX_ROWS];
    for (int64_t i = 0; i < n; i++) {
        uint8_t *p = buf + (size_t)i * per_row;
        int32_t *corr = (int32_t *)(void *)p;
        float *d = (float *)(void *)(p + 4 * 16 * pairs), *s = d + padded;
        int8_t *q = (int8_t *)(void *)(s + padded);
        round_row(type, X + i * ldx, nb, q, corr, d, s);
        rows[i] = (lt__q8row){q, corr, d, s};
    }
    const lt__q8tiles *tiles = q8tiles_of(kernel >= 0 ? kernel : q8kernel_for((int)lt_isa_active()));
    const uint8_t *w = (const uint8_t *)W;
    const int threads = lt_get_num_threads();
    const int64_t chunks = (d_out + Q8_ROWS_PER_CHUNK - 1) / Q8_ROWS_PER_CHUNK;
    int64_t counter = 0;
    #pragma omp parallel num_threads(threads) if (LT_PARALLEL_IF(2.0 * (double)n * (double)d_in * (double)d_out) && chunks > 1)
    for (int64_t ch; (ch = lt__next_task(&counter)) < chunks;) {
        const int64_t o0 = ch * Q8_ROWS_PER_CHUNK;
        const int64_t o1 = o0 + Q8_ROWS_PER_CHUNK < d_out ? o0 + Q8_ROWS_PER_CHUNK : d_out;
        /* hint: the chunk this thread probably takes after the other threads' next ones (as in
         * lt_quant_matmul's decode path) */
        const int64_t p0 = o0 + (int64_t)threads * Q8_ROWS_PER_CHUNK;
        const int64_t p1 = p0 + Q8_ROWS_PER_CHUNK < d_out ? p0 + Q8_ROWS_PER_CHUNK : d_out;
        if (tiles)
            q8gemv_tiled(tiles, type, w, row_bytes, nb, o0, o1, rows, n, Y, ldy, accumulate,
                         p0 < d_out ? w + p0 * row_bytes : NULL, p0 < d_out ? (p1 - p0) * row_bytes : 0);
        else
            q8gemv_scalar(type, w, row_bytes, nb, o0, o1, rows, n, Y, ldy, accumulate);
    }
    free(buf);
    return LT_OK;
}

lt_status lt_quant_matmul_int8(int32_t type, int64_t n, int64_t d_in, int64_t d_out,
                               const float *X, int64_t ldx, const void *W, int64_t w_bytes,
                               float *Y, int64_t ldy, int accumulate) {
    return q8matmul(-1, type, n, d_in, d_out, X, ldx, W, w_bytes, Y, ldy, accumulate);
}

lt_status lt_quant_matmul_int8_kernel(int kernel, int32_t type, int64_t n, int64_t d_in, int64_t d_out,
                                      const float *X, int64_t ldx, const void *W, int64_t w_bytes,
                                      float *Y, int64_t ldy, int accumulate) {
    LT_CHECK(kernel >= LT_INT8_KERNEL_PORTABLE && kernel <= LT_INT8_KERNEL_AVX512_VNNI, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(lt_quant_int8_kernel_supported(kernel), LT_ERR_UNSUPPORTED_ISA);
    return q8matmul(kernel, type, n, d_in, d_out, X, ldx, W, w_bytes, Y, ldy, accumulate);
}
