/*
 * quant_quantize.c — float32 → Q8_0 blocks (API in lt_quant.h), bit for bit what ggml's
 * reference quantize_row_q8_0_ref and the gguf Python package's
 * gguf.quants.quantize(x, GGMLQuantizationType.Q8_0) produce:
 *
 *   amax = max |x_j| over the block's 32 values      (float32)
 *   d    = amax / 127                                (float32 division)
 *   id   = d != 0 ? 1 / d : 0                        (float32)
 *   q_j  = roundf(x_j · id)                          (half away from zero, as numpy's np_roundf)
 *   block = [f16(d) little-endian][q_0 … q_31 as int8]    (34 bytes)
 *
 * f16(d) rounds to nearest, ties to even (numpy's float32 → float16 cast). Only the scalar path
 * exists: quantizing is done once per exported file, at memory speed anyway.
 */
#pragma STDC FP_CONTRACT OFF
#include <math.h>
#include <string.h>
#include "lt_quant.h"
#include "quant_internal.h"
#include "internal.h"

/* binary32 → binary16 bits, round to nearest, ties to even; overflow → ±inf; NaN stays NaN
 * (quiet). The same as numpy's cast and HalfPrecision.f16Bits in the Swift layer. */
static uint16_t lt__f32_to_f16_rne(float f) {
    const uint32_t bits = lt__f32_bits(f);
    const uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    const uint32_t mag = bits & 0x7FFFFFFFu;
    const uint32_t exponent = mag >> 23, mantissa = mag & 0x007FFFFFu;
    if (exponent == 0xFFu) return (uint16_t)(sign | (mantissa ? (0x7E00u | (mantissa >> 13)) : 0x7C00u));
    if (exponent >= 143u) return (uint16_t)(sign | 0x7C00u);
    if (exponent >= 113u) {
        uint32_t h = ((exponent - 112u) << 10) | (mantissa >> 13);
        const uint32_t rest = mantissa & 0x1FFFu;
        if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h += 1u;
        return (uint16_t)(sign | h);
    }
    const uint32_t shift = 126u - exponent;            /* 14 … 126 */
    if (shift > 24u) return sign;
    const uint32_t m = mantissa | 0x00800000u;
    uint32_t h = m >> shift;
    const uint32_t rest = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
    if (rest > halfway || (rest == halfway && (h & 1u))) h += 1u;
    return (uint16_t)(sign | h);
}

lt_status lt_quantize_q8_0(const float *src, int64_t n, void *dst, int64_t dst_bytes) {
    LT_CHECK(n >= 0 && n % 32 == 0 && dst_bytes >= 0, LT_ERR_INVALID_ARGUMENT);
    if (n == 0) return LT_OK;
    LT_CHECK(src && dst, LT_ERR_NULL_POINTER);
    const int64_t nblocks = n / 32;
    int64_t need;
    LT_CHECK(!lt__mul_overflows(nblocks, 34, &need) && dst_bytes >= need, LT_ERR_INVALID_ARGUMENT);
    /* Refuse non-finite input before writing anything. */
    for (int64_t i = 0; i < n; i++) LT_CHECK(isfinite(src[i]), LT_ERR_INVALID_ARGUMENT);
    uint8_t *out = (uint8_t *)dst;
    for (int64_t b = 0; b < nblocks; b++) {
        const float *x = src + b * 32;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) {
            const float a = fabsf(x[j]);
            if (a > amax) amax = a;
        }
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const uint16_t dh = lt__f32_to_f16_rne(d);
        uint8_t *blk = out + b * 34;
        blk[0] = (uint8_t)(dh & 0xFFu);
        blk[1] = (uint8_t)(dh >> 8);
        for (int j = 0; j < 32; j++) {
            float v = roundf(x[j] * id);
            /* |v| <= 127 for every block whose 1/d is finite; a block of values below ~1e-37
             * (1/d overflows, f16(d) is 0 and the block decodes to zeros whatever q is) is
             * clamped instead of left to an undefined conversion. */
            if (!(v >= -127.0f)) v = isnan(v) ? 0.0f : -127.0f;
            if (v > 127.0f) v = 127.0f;
            const int8_t q = (int8_t)v;
            memcpy(blk + 2 + j, &q, 1);
        }
    }
    return LT_OK;
}
