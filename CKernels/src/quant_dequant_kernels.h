/*
 * quant_dequant_kernels.h — the block decoders of quant_internal.h, written once and compiled
 * once per ISA: quant_dequant.c includes this file three times with
 *   LT_DQ_NAME(base)  the function name for this variant (e.g. base##_avx2)
 *   LT_DQ_ATTR        the function attributes (static plus a target attribute, or just static)
 *   LT_DQ_SCALE(p)    the float32 value of the float16 block scale at byte pointer p
 * Plain loops of exact float32 operations (no FMA: quant_dequant.c turns contraction off), so
 * every variant gives the same bits; the compiler vectorises the inner loops.
 * Block layouts (little-endian, unaligned), from ggml-common.h:
 *   Q4_0  [d f16][qs 16]                   32 values: qs low nibbles, then high nibbles
 *   Q4_1  [d f16][m f16][qs 16]
 *   Q5_0  [d f16][qh u32][qs 16]           bit j of qh is bit 4 of value j
 *   Q5_1  [d f16][m f16][qh u32][qs 16]
 *   Q8_0  [d f16][qs int8 32]
 *   Q4_K  [d f16][dmin f16][scales 12][qs 128]           8 sub-blocks of 32, 6-bit sc/mn
 *   Q5_K  [d f16][dmin f16][scales 12][qh 32][qs 128]
 *   Q6_K  [ql 128][qh 64][scales int8 16][d f16]         16 sub-blocks of 16
 * No include guard: included once per variant.
 */

LT_DQ_ATTR void LT_DQ_NAME(lt__dq_f32)(const uint8_t *restrict src, int64_t n, float *restrict dst) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

LT_DQ_ATTR void LT_DQ_NAME(lt__dq_f16)(const uint8_t *restrict src, int64_t n, float *restrict dst) {
    for (int64_t i = 0; i < n; i++) dst[i] = lt__f16_to_f32(lt__load_u16(src + 2 * i));
}

LT_DQ_ATTR void LT_DQ_NAME(lt__dq_bf16)(const uint8_t *restrict src, int64_t n, float *restrict dst) {
    for (int64_t i = 0; i < n; i++) dst[i] = lt__bf16_to_f32(lt__load_u16(src + 2 * i));
}

LT_DQ_ATTR void LT_DQ_NAME(lt__dq_q4_0)(const uint8_t *restrict src, int64_t nblocks, float *restrict dst) {
    LT_DQ_BLOCK_LOOP
    for (int64_t b = 0; b < nblocks; b++) {
        const uint8_t *blk = src + b * 18;
        const float d = LT_DQ_SCALE(blk);
        const uint8_t *qs = blk + 2;
        float *y = dst + b * 32;
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)((int)(qs[j] & 0x0F) - 8);
            y[j + 16] = d * (float)((int)(qs[j] >> 4) - 8);
        }
    }
}

LT_DQ_ATTR void LT_DQ_NAME(lt__dq_q4_1)(const uint8_t *restrict src, int64_t nblocks, float *restrict dst) {
    LT_DQ_BLOCK_LOOP
    for (int64_t b = 0; b < nblocks; b++) {
        const uint8_t *blk = src + b * 20;
        const float d = LT_DQ_SCALE(blk);
        const float m = LT_DQ_SCALE(blk + 2);
        const uint8_t *qs = blk + 4;
        float *y = dst + b * 32;
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)(qs[j] & 0x0F) + m;
            y[j + 16] = d * (float)(qs[j] >> 4) + m;
        }
    }
}

LT_DQ_ATTR void LT_DQ_NAME(lt__dq_q5_0)(const uint8_t *restrict src, int64_t nblocks, float *restrict dst) {
    LT_DQ_BLOCK_LOOP
    for (int64_t b = 0; b < nblocks; b++) {
        const uint8_t *blk = src + b * 22;
        const float d = LT_DQ_SCALE(blk);
        const uint32_t qh = lt__load_u32(blk + 2);
        const uint8_t *qs = blk + 6;
        float *y = dst + b * 32;
        for (int j = 0; j < 16; j++) {
            const int lo = (int)((qs[j] & 0x0Fu) | (((qh >> j) & 1u) << 4));
            const int hi = (int)((uint32_t)(qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4));
            y[j] = d * (float)(lo - 16);
            y[j + 16] = d * (float)(hi - 16);
        }
    }
}

LT_DQ_ATTR void LT_DQ_NAME(lt__dq_q5_1)(const uint8_t *restrict src, int64_t nblocks, float *restrict dst) {
    LT_DQ_BLOCK_LOOP
    for (int64_t b = 0; b < nblocks; b++) {
        const uint8_t *blk = src + b * 24;
        const float d = LT_DQ_SCALE(blk);
        const float m = LT_DQ_SCALE(blk + 2);
        const uint32_t qh = lt__load_u32(blk + 4);
        const uint8_t *qs = blk + 8;
        float *y = dst + b * 32;
        for (int j = 0; j < 16; j++) {
            const uint32_t lo = (qs[j] & 0x0Fu) | (((qh >> j) & 1u) << 4);
            const uint32_t hi = (uint32_t)(qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4);
            y[j] = d * (float)lo + m;
            y[j + 16] = d * (float)hi + m;
        }
    }
}

LT_DQ_ATTR void LT_DQ_NAME(lt__dq_q8_0)(const uint8_t *restrict src, int64_t nblocks, float *restrict dst) {
    LT_DQ_BLOCK_LOOP
    for (int64_t b = 0; b < nblocks; b++) {
        const uint8_t *blk = src + b * 34;
        const float d = LT_DQ_SCALE(blk);
        const int8_t *qs = (const int8_t *)(blk + 2);
        float *y = dst + b * 32;
        for (int j = 0; j < 32; j++) y[j] = (float)qs[j] * d;
    }
}

/* The 6-bit scale and min of sub-block j (0…7) of a Q4_K/Q5_K block (ggml get_scale_min_k4). */
static inline void LT_DQ_NAME(lt__scale_min_k4)(int j, const uint8_t *q, uint8_t *sc, uint8_t *mn) {
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4));
        *mn = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

LT_DQ_ATTR void LT_DQ_NAME(lt__dq_q4_k)(const uint8_t *restrict src, int64_t nblocks, float *restrict dst) {
    LT_DQ_BLOCK_LOOP
    for (int64_t b = 0; b < nblocks; b++) {
        const uint8_t *blk = src + b * 144;
        const float d = LT_DQ_SCALE(blk);
        const float dmin = LT_DQ_SCALE(blk + 2);
        const uint8_t *scales = blk + 4;
        const uint8_t *qs = blk + 16;
        float *y = dst + b * 256;
        for (int c = 0; c < 4; c++) {                 /* 32 bytes → sub-blocks 2c, 2c+1 */
            uint8_t s0, m0, s1, m1;
            LT_DQ_NAME(lt__scale_min_k4)(2 * c, scales, &s0, &m0);
            LT_DQ_NAME(lt__scale_min_k4)(2 * c + 1, scales, &s1, &m1);
            const float d0 = d * (float)s0, n0 = dmin * (float)m0;
            const float d1 = d * (float)s1, n1 = dmin * (float)m1;
            const uint8_t *q = qs + 32 * c;
            float *yc = y + 64 * c;
            for (int l = 0; l < 32; l++) yc[l] = d0 * (float)(q[l] & 0x0F) - n0;
            for (int l = 0; l < 32; l++) yc[32 + l] = d1 * (float)(q[l] >> 4) - n1;
        }
    }
}

LT_DQ_ATTR void LT_DQ_NAME(lt__dq_q5_k)(const uint8_t *restrict src, int64_t nblocks, float *restrict dst) {
    LT_DQ_BLOCK_LOOP
    for (int64_t b = 0; b < nblocks; b++) {
        const uint8_t *blk = src + b * 176;
        const float d = LT_DQ_SCALE(blk);
        const float dmin = LT_DQ_SCALE(blk + 2);
        const uint8_t *scales = blk + 4;
        const uint8_t *qh = blk + 16;
        const uint8_t *qs = blk + 48;
        float *y = dst + b * 256;
        for (int c = 0; c < 4; c++) {
            uint8_t s0, m0, s1, m1;
            LT_DQ_NAME(lt__scale_min_k4)(2 * c, scales, &s0, &m0);
            LT_DQ_NAME(lt__scale_min_k4)(2 * c + 1, scales, &s1, &m1);
            const float d0 = d * (float)s0, n0 = dmin * (float)m0;
            const float d1 = d * (float)s1, n1 = dmin * (float)m1;
            const uint8_t *q = qs + 32 * c;
            const int sh0 = 2 * c, sh1 = 2 * c + 1;
            float *yc = y + 64 * c;
            for (int l = 0; l < 32; l++) {
                const uint32_t v = (uint32_t)(q[l] & 0x0F) | ((uint32_t)((qh[l] >> sh0) & 1) << 4);
                yc[l] = d0 * (float)v - n0;
            }
            for (int l = 0; l < 32; l++) {
                const uint32_t v = (uint32_t)(q[l] >> 4) | ((uint32_t)((qh[l] >> sh1) & 1) << 4);
                yc[32 + l] = d1 * (float)v - n1;
            }
        }
    }
}

LT_DQ_ATTR void LT_DQ_NAME(lt__dq_q6_k)(const uint8_t *restrict src, int64_t nblocks, float *restrict dst) {
    LT_DQ_BLOCK_LOOP
    for (int64_t b = 0; b < nblocks; b++) {
        const uint8_t *blk = src + b * 210;
        const uint8_t *ql = blk;
        const uint8_t *qh = blk + 128;
        const int8_t *scales = (const int8_t *)(blk + 192);
        const float d = LT_DQ_SCALE(blk + 208);
        float ds[16];
        for (int k = 0; k < 16; k++) ds[k] = d * (float)scales[k];
        float *y = dst + b * 256;
        for (int h = 0; h < 2; h++) {                 /* two halves of 128 values */
            const uint8_t *l0 = ql + 64 * h, *h0 = qh + 32 * h;
            const float *s = ds + 8 * h;
            float *yh = y + 128 * h;
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = (int)((l0[l] & 0x0F) | (((h0[l] >> 0) & 3) << 4)) - 32;
                const int q2 = (int)((l0[l + 32] & 0x0F) | (((h0[l] >> 2) & 3) << 4)) - 32;
                const int q3 = (int)((l0[l] >> 4) | (((h0[l] >> 4) & 3) << 4)) - 32;
                const int q4 = (int)((l0[l + 32] >> 4) | (((h0[l] >> 6) & 3) << 4)) - 32;
                yh[l] = s[is] * (float)q1;
                yh[l + 32] = s[is + 2] * (float)q2;
                yh[l + 64] = s[is + 4] * (float)q3;
                yh[l + 96] = s[is + 6] * (float)q4;
            }
        }
    }
}
