/*
 * quant_internal.h — block decoders of the GGML storage types, shared by the dequantization
 * entry points (quant_dequant.c) and the products with stored matrices (lt_quant_matmul*).
 * Not part of the public API.
 *
 * A row decoder turns `nblocks` consecutive blocks into nblocks · block_elements floats:
 *
 *     lt__dequant_fn f = lt__dequant_for(LT_GGML_Q4_1);     // NULL: type not supported
 *     f(row_bytes, cols / 32, out);                          // out[0 ..< cols]
 *
 * Decoders are reentrant (no globals, no allocation), read blocks with unaligned byte loads,
 * and write every value with the same float32 operations in the same order as ggml's
 * `dequantize_row_*` and the `gguf` Python package (numpy), so the results are bit-identical
 * to both and do not depend on the ISA variant, the block range a call covers, or the thread
 * that runs it. Callers check sizes: a decoder reads exactly nblocks · block_bytes bytes and
 * writes exactly nblocks · block_elements floats (src and dst must not overlap).
 *
 * Each type has a portable variant and, on x86-64, the same C code compiled for AVX2 and for
 * AVX-512 (target attributes: the compiler vectorises the loops with wider registers; the
 * arithmetic is unchanged, FP contraction is off). lt__dequant_for picks the variant of the
 * active ISA (lt_isa_active()); lt__dequant_for_isa selects one explicitly (tests, benches).
 *
 * Formulas (d, m, dmin are float16 widened exactly to float32; q are the unsigned codes):
 *   Q4_0  d·(q − 8)          Q4_1  d·q + m          Q5_0  d·(q − 16)       Q5_1  d·q + m
 *   Q8_0  d·q (q int8)       Q4_K, Q5_K  (d·sc)·q − (dmin·mn)   (6-bit sc, mn per 32 values)
 *   Q6_K  (d·sc)·(q − 32)    (int8 sc per 16 values)
 *   F16   exact widening (NaN payload kept as numpy does: signalling NaNs stay signalling)
 *   BF16  bits << 16        F32  copied
 * NaN scales propagate as the hardware does; where two different NaNs meet in one operation
 * (e.g. Q4_1 with both d and m NaN) the surviving payload depends on the compiler's operand
 * order, so such values are NaN but their payload bits are not specified.
 *
 * For fused kernels: every product above is exact in float32 (a float16 scale has 11
 * significant bits, a 6-bit scale 6, an int8 scale 7, a code at most 6, so at most 24 bits;
 * the float16 range keeps them far from overflow and from float32 subnormals). Only the
 * addition of the minimum rounds. So (d·sc)·q == d·(sc·q), and fma(d1, q, −m1) == d1·q − m1:
 * a kernel may regroup the products or contract them with the add and still get these bits.
 */
#ifndef LT_QUANT_INTERNAL_H
#define LT_QUANT_INTERNAL_H

#include <stdint.h>
#include <string.h>
#include "lt_quant.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGML block decoders assume a little-endian host"
#endif

/* Decodes nblocks blocks of src into dst (see above). */
typedef void (*lt__dequant_fn)(const uint8_t *src, int64_t nblocks, float *dst);

/* Block geometry of a supported type (1) or 0 for any other type number. */
int lt__quant_geometry(int32_t type, int64_t *block_elements, int64_t *block_bytes);

/* The decoder of `type` for the active ISA, or NULL when the type is not supported. */
lt__dequant_fn lt__dequant_for(int32_t type);

/* The decoder of `type` for one ISA (an lt_isa value), or NULL when the type is not supported
 * or the ISA has no variant in this build (the caller checks lt_isa_supported first). */
lt__dequant_fn lt__dequant_for_isa(int32_t type, int isa);

/* ---- scalar helpers -------------------------------------------------------------------------- */

static inline uint16_t lt__load_u16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline uint32_t lt__load_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline float lt__f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t lt__f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* IEEE binary16 → binary32, exact for every bit pattern and identical to numpy's
 * float16 → float32 cast: normals and subnormals exactly, ±0, ±inf, and NaNs with their
 * payload shifted up 13 bits (not quietened). Written with selects so that loops over many
 * values vectorise. */
static inline float lt__f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t em = h & 0x7FFFu;                  /* exponent and mantissa */
    const uint32_t e = em >> 10;
    uint32_t bits = (em << 13) + (112u << 23);        /* normal: rebias 15 → 127 */
    if (e == 31u) bits += 112u << 23;                 /* inf/NaN: exponent 255, payload kept */
    if (e == 0u) bits = lt__f32_bits((float)em * 0x1p-24f);  /* ±0 and subnormals: exact */
    return lt__f32_from_bits(sign | bits);
}

/* bfloat16 → binary32: the 16 bits become the high half. */
static inline float lt__bf16_to_f32(uint16_t h) {
    return lt__f32_from_bits((uint32_t)h << 16);
}

#endif /* LT_QUANT_INTERNAL_H */
