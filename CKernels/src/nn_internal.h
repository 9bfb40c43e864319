/* nn_internal.h — helpers shared by the nn_*.c kernels (not part of the public API). */
#ifndef LT_NN_INTERNAL_H
#define LT_NN_INTERNAL_H

#include <stdint.h>
#include <string.h>
#include "lt_nn.h"   /* before cblas.h, whose complex.h defines I */
#include <cblas.h>
#include "internal.h"
#include "simd.h"   /* LT_ROWS_PER_CHUNK */

/* Columns per task when a kernel reduces over rows (parameter gradients, pooling): each task
 * owns a block of columns and sums over all rows in order, so no float is summed across
 * threads. The double accumulators of one block live on the stack. */
#define NN_COL_BLOCK 64

/* Put before an element-wise loop whose output may alias an input exactly (in-place GELU,
 * LayerNorm, …): iteration j reads only element j of each input before writing element j of
 * the output, so vector iterations are safe. Without it the compiler guards the vector loop
 * with an overlap check, which fails for in-place calls and falls back to the scalar loop. */
#if defined(__clang__)
#define LT_ELEMENTWISE _Pragma("clang loop vectorize(assume_safety)")
#else
#define LT_ELEMENTWISE _Pragma("omp simd")
#endif

/* e^x in double, for the element-wise loops of the decoder kernels (softmax, SiLU). x is clamped
 * to [−708, 708] (e^x stays a normal double; NaN passes through); x = n·ln2 + r with |r| <= ln2/2
 * (Cody–Waite, fdlibm's two-part ln2, n·ln2_hi exact), e^r by its Taylor polynomial of degree 11
 * (truncation < 1e-14 relative), 2^n put into the exponent bits. Relative error about 1e-15, so
 * (float)lt__exp_d(x) is the correctly rounded e^x except within ~1e-15 of a rounding tie (libm's
 * expf is itself within 1 ulp); unlike a libm call it is plain arithmetic, so loops over it
 * vectorise (8 doubles per AVX-512 register). */
static inline double lt__exp_d(double x) {
    x = x < -708.0 ? -708.0 : (x > 708.0 ? 708.0 : x);
    const double shifter = 6755399441055744.0;              /* 1.5 · 2^52: round to nearest */
    double kd = x * 1.4426950408889634074 + shifter;
    double n = kd - shifter;
    double r = x - n * 6.93147180369123816490e-01;          /* ln2 high part (32 bits) */
    r = r - n * 1.90821492927058770002e-10;                 /* ln2 low part */
    double p = 1.0 / 39916800.0;                            /* 1/11! */
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    uint64_t bits;
    memcpy(&bits, &kd, sizeof bits);                        /* low bits: 2^51 + n */
    bits = (bits + 1023u) << 52;                            /* exponent field n + 1023 */
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* A tile epilogue for the products outside nn_basic.c: fn runs on each finished tile of the
 * output (the GEMM core's tile hook), or once on the whole output where a product has no tiles
 * (lt__tile_fn_whole; nothing when post is NULL). Its operations must be row- and element-wise
 * so that both give the same bits. */
typedef struct lt__tile_fn {
    void (*fn)(const void *ctx, int64_t i, int64_t j, int64_t rows, int64_t cols, float *c, int64_t ldc);
    const void *ctx;
} lt__tile_fn;
static inline void lt__tile_fn_whole(const lt__tile_fn *post, int64_t n, int64_t cols, float *Y, int64_t ldy) {
    if (post && n > 0 && cols > 0) post->fn(post->ctx, 0, 0, n, cols, Y, ldy);
}

/* Low-rank terms (lt_nn.h) as a GEMM tile hook, for the products outside nn_basic.c (the
 * quantized ones): ctx is an lt__lowrank_terms_ctx; the terms were checked by
 * lt__lowrank_terms_check (columns inside the product's output, strides, pointers). */
typedef struct lt__lowrank_terms_ctx {
    const lt_lowrank_term *terms;
    int64_t n_terms;
    lt_axpy_block_fn axpy;
} lt__lowrank_terms_ctx;
lt_status lt__lowrank_terms_check(int64_t n, int64_t cols, const lt_lowrank_term *terms, int64_t n_terms);
void lt__lowrank_terms_tile(const void *ctx, int64_t i, int64_t j, int64_t rows, int64_t cols, float *c,
                           int64_t ldc);

/* The SwiGLU gate on the tiles of a product (nn_swiglu.c), after the low-rank terms of that
 * product (terms.n_terms may be 0):
 *   forward  (C = U, the up projection's tile):      A = silu(G) ∘ U
 *   backward (C = dA, the down projection's input gradient): dG, dU as lt_swiglu_backward
 * with the row kernels of lt_swiglu_forward / lt_swiglu_backward, so the bits are theirs. */
typedef struct lt__swiglu_tile_ctx {
    lt__lowrank_terms_ctx terms;
    lt_isa isa;
    const float *G;
    int64_t ldg;
    const float *U;        /* backward */
    int64_t ldu;
    float *A;              /* forward */
    int64_t lda;
    float *dG;             /* backward */
    int64_t lddg;
    float *dU;
    int64_t lddu;
} lt__swiglu_tile_ctx;
void lt__swiglu_forward_tile(const void *ctx, int64_t i, int64_t j, int64_t rows, int64_t cols, float *c,
                             int64_t ldc);
void lt__swiglu_backward_tile(const void *ctx, int64_t i, int64_t j, int64_t rows, int64_t cols, float *c,
                              int64_t ldc);

#endif
