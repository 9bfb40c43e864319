/*
 * quant_dequant.c — block geometry and dequantization of the GGML storage types (API in
 * lt_quant.h; the per-type block decoders are described in quant_internal.h and written in
 * quant_dequant_kernels.h, compiled here once per ISA).
 */
#pragma STDC FP_CONTRACT OFF
#include "lt_quant.h"
#include "quant_internal.h"
#include "internal.h"

/* ---- the decoders, one set per ISA ------------------------------------------------------------ */

/* Loops over blocks: vectorise the work inside a block (contiguous bytes and floats), never
 * across blocks (that needs strided gathers, measured 2-4x slower than the scalar code). */
#if defined(__clang__)
#define LT_DQ_BLOCK_LOOP _Pragma("clang loop vectorize(disable) interleave(disable)")
#else
#define LT_DQ_BLOCK_LOOP
#endif

/* Block scales: the exact portable widening, or one F16C instruction on x86. The two differ
 * only for a signalling NaN (F16C quietens it, as numpy's cast does not), and a scale only ever
 * enters a product, which quietens it anyway: the decoded values are the same bits. */
#define LT_DQ_NAME(base) base##_scalar
#define LT_DQ_ATTR static
#define LT_DQ_SCALE(p) lt__f16_to_f32(lt__load_u16(p))
#include "quant_dequant_kernels.h"
#undef LT_DQ_NAME
#undef LT_DQ_ATTR
#undef LT_DQ_SCALE

#if defined(__x86_64__)
#include <immintrin.h>
#define LT_DQ_SCALE(p) _cvtsh_ss(lt__load_u16(p))

#define LT_DQ_NAME(base) base##_avx2
#define LT_DQ_ATTR static __attribute__((target("avx2,f16c")))
#include "quant_dequant_kernels.h"
#undef LT_DQ_NAME
#undef LT_DQ_ATTR

#define LT_DQ_NAME(base) base##_avx512
#define LT_DQ_ATTR static __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,f16c")))
#include "quant_dequant_kernels.h"
#undef LT_DQ_NAME
#undef LT_DQ_ATTR
#undef LT_DQ_SCALE
#endif

/* ---- geometry ----------------------------------------------------------------------------------- */

int lt__quant_geometry(int32_t type, int64_t *block_elements, int64_t *block_bytes) {
    int64_t e, b;
    switch (type) {
    case LT_GGML_F32: e = 1; b = 4; break;
    case LT_GGML_F16: e = 1; b = 2; break;
    case LT_GGML_BF16: e = 1; b = 2; break;
    case LT_GGML_Q4_0: e = 32; b = 18; break;
    case LT_GGML_Q4_1: e = 32; b = 20; break;
    case LT_GGML_Q5_0: e = 32; b = 22; break;
    case LT_GGML_Q5_1: e = 32; b = 24; break;
    case LT_GGML_Q8_0: e = 32; b = 34; break;
    case LT_GGML_Q4_K: e = 256; b = 144; break;
    case LT_GGML_Q5_K: e = 256; b = 176; break;
    case LT_GGML_Q6_K: e = 256; b = 210; break;
    default: return 0;
    }
    if (block_elements) *block_elements = e;
    if (block_bytes) *block_bytes = b;
    return 1;
}

#define LT_DQ_TABLE(sfx)                                                                         \
    switch (type) {                                                                              \
    case LT_GGML_F32: return lt__dq_f32_##sfx;                                                   \
    case LT_GGML_F16: return lt__dq_f16_##sfx;                                                   \
    case LT_GGML_BF16: return lt__dq_bf16_##sfx;                                                 \
    case LT_GGML_Q4_0: return lt__dq_q4_0_##sfx;                                                 \
    case LT_GGML_Q4_1: return lt__dq_q4_1_##sfx;                                                 \
    case LT_GGML_Q5_0: return lt__dq_q5_0_##sfx;                                                 \
    case LT_GGML_Q5_1: return lt__dq_q5_1_##sfx;                                                 \
    case LT_GGML_Q8_0: return lt__dq_q8_0_##sfx;                                                 \
    case LT_GGML_Q4_K: return lt__dq_q4_k_##sfx;                                                 \
    case LT_GGML_Q5_K: return lt__dq_q5_k_##sfx;                                                 \
    case LT_GGML_Q6_K: return lt__dq_q6_k_##sfx;                                                 \
    default: return NULL;                                                                        \
    }

lt__dequant_fn lt__dequant_for_isa(int32_t type, int isa) {
#if defined(__x86_64__)
    if (isa == LT_ISA_AVX512) { LT_DQ_TABLE(avx512) }
    if (isa == LT_ISA_AVX2) { LT_DQ_TABLE(avx2) }
#endif
    if (isa == LT_ISA_SCALAR) { LT_DQ_TABLE(scalar) }
    return NULL;
}

lt__dequant_fn lt__dequant_for(int32_t type) {
    return lt__dequant_for_isa(type, (int)lt_isa_active());
}

/* ---- public entry points -------------------------------------------------------------------- */

/* Work below this many values is decoded on the calling thread (waking a team costs more). */
#ifndef LT_DEQUANT_PARALLEL_MIN
#define LT_DEQUANT_PARALLEL_MIN 65536
#endif
/* Values per OpenMP chunk (a multiple of every block size). */
#define LT_DEQUANT_CHUNK 16384

lt_status lt_quant_block_size(int32_t type, int64_t *block_elements, int64_t *block_bytes) {
    LT_CHECK(block_elements && block_bytes, LT_ERR_NULL_POINTER);
    LT_CHECK(lt__quant_geometry(type, block_elements, block_bytes), LT_ERR_UNSUPPORTED);
    return LT_OK;
}

lt_status lt_quant_row_bytes(int32_t type, int64_t cols, int64_t *bytes) {
    LT_CHECK(bytes, LT_ERR_NULL_POINTER);
    int64_t be, bb;
    LT_CHECK(lt__quant_geometry(type, &be, &bb), LT_ERR_UNSUPPORTED);
    LT_CHECK(cols >= 0 && cols % be == 0, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(!lt__mul_overflows(cols / be, bb, bytes), LT_ERR_INVALID_ARGUMENT);
    return LT_OK;
}

lt_status lt_dequantize(int32_t type, const void *src, int64_t src_bytes, int64_t n, float *dst) {
    int64_t be, bb;
    LT_CHECK(lt__quant_geometry(type, &be, &bb), LT_ERR_UNSUPPORTED);
    LT_CHECK(n >= 0 && n % be == 0 && src_bytes >= 0, LT_ERR_INVALID_ARGUMENT);
    if (n == 0) return LT_OK;
    LT_CHECK(src && dst, LT_ERR_NULL_POINTER);
    const int64_t nblocks = n / be;
    int64_t need;
    LT_CHECK(!lt__mul_overflows(nblocks, bb, &need) && src_bytes >= need, LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    const lt__dequant_fn f = lt__dequant_for(type);
    const uint8_t *s = (const uint8_t *)src;
    const int64_t chunk_blocks = LT_DEQUANT_CHUNK / be;
    const int64_t nchunks = (nblocks + chunk_blocks - 1) / chunk_blocks;
    #pragma omp parallel for schedule(static) if (n >= LT_DEQUANT_PARALLEL_MIN)
    for (int64_t c = 0; c < nchunks; c++) {
        const int64_t b0 = c * chunk_blocks;
        const int64_t nb = nblocks - b0 < chunk_blocks ? nblocks - b0 : chunk_blocks;
        f(s + b0 * bb, nb, dst + b0 * be);
    }
    return LT_OK;
}

lt_status lt_quant_gather_rows(int32_t type, int64_t rows, int64_t cols, const void *W,
                               int64_t w_bytes, const int32_t *ids, int64_t n,
                               float *Y, int64_t ldy) {
    int64_t be, bb;
    LT_CHECK(lt__quant_geometry(type, &be, &bb), LT_ERR_UNSUPPORTED);
    LT_CHECK(rows >= 0 && cols >= 0 && n >= 0 && w_bytes >= 0, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(cols % be == 0 && lt__ld_ok(ldy, cols), LT_ERR_INVALID_ARGUMENT);
    int64_t row_bytes, need;
    LT_CHECK(!lt__mul_overflows(cols / be, bb, &row_bytes), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(!lt__mul_overflows(rows, row_bytes, &need) && w_bytes >= need, LT_ERR_INVALID_ARGUMENT);
    if (n == 0) return LT_OK;
    LT_CHECK(ids && Y, LT_ERR_NULL_POINTER);
    for (int64_t i = 0; i < n; i++) LT_CHECK(ids[i] >= 0 && ids[i] < rows, LT_ERR_INVALID_ARGUMENT);
    int64_t total;
    LT_CHECK(!lt__mul_overflows(n - 1, ldy, &total) && total <= INT64_MAX - cols, LT_ERR_INVALID_ARGUMENT);
    if (cols == 0) return LT_OK;
    LT_CHECK(W, LT_ERR_NULL_POINTER);
    (void)lt__ensure_init();
    const lt__dequant_fn f = lt__dequant_for(type);
    const uint8_t *w = (const uint8_t *)W;
    const int64_t nblocks = cols / be;
    #pragma omp parallel for schedule(static) if (n * cols >= LT_DEQUANT_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) f(w + (int64_t)ids[i] * row_bytes, nblocks, Y + i * ldy);
    return LT_OK;
}
