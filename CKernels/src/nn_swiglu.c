/*
 * nn_swiglu.c — the SwiGLU gate of the Llama MLP, Y = silu(G) ∘ U (API in lt_nn.h).
 *
 *   forward   s = silu(g) = g · σ(g),  σ(g) = 1 / (1 + e^{−g});   y = s · u
 *   backward  dU = dY ∘ s;   dG = dY ∘ U ∘ silu'(g),  silu'(g) = σ(g) (1 + g (1 − σ(g)))
 *
 * Numerics. σ, silu and silu' are evaluated in double with lt__exp_d (e^{−g} for g clamped to
 * ±708: for g ≤ −708 the double σ is below 1e-307 and silu(g) is −0 or a float denormal as the
 * exact value is; for g ≥ 708, σ = 1 exactly), so there is no overflow, no 0·∞ and no NaN for any
 * finite g (±100, ±1e30, ±FLT_MAX included). silu(g) is then rounded to float once — the
 * correctly rounded value except in rare near-ties, where torch's float32 `x / (1 + exp(−x))`
 * rounds three times (within ~2 ulp) — and multiplied by u in float32, as transformers does
 * (`act_fn(gate) * up`). dG is rounded once from the double product dy·u·silu'(g); dU = dy · s
 * in float, with the same s as the forward.
 *
 * Each row loop is written once and compiled three times (portable, AVX2+FMA, AVX-512; target
 * attributes, never -march), chosen by the active ISA; the loops are plain arithmetic, so they
 * auto-vectorise (libm's expf would be a scalar call per element). OpenMP over rows with a fixed
 * chunk.
 */
#include "lt_nn.h"
#include "nn_internal.h"

#include <math.h>

/* (The width is called w here, not I as in lt_nn.h: <complex.h>, pulled in by cblas.h, defines
 * I as a macro.) */

/* σ(g) in double for finite or infinite g (NaN passes through). */
static inline double swiglu_sigmoid(float g) { return 1.0 / (1.0 + lt__exp_d(-(double)g)); }

typedef void (*swiglu_fwd_row_fn)(const float *g, const float *u, float *y, int64_t d);
typedef void (*swiglu_bwd_row_fn)(const float *g, const float *u, const float *dy, float *dg,
                                  float *du, int64_t d);

#define LT_SWIGLU_ROWS(suffix, attr)                                                          \
    attr static void swiglu_fwd_row_##suffix(const float *g, const float *u, float *y,         \
                                             int64_t d) {                                     \
        LT_ELEMENTWISE                                                                        \
        for (int64_t j = 0; j < d; j++) {                                                     \
            const float gj = g[j];                                                            \
            const float s = (float)((double)gj * swiglu_sigmoid(gj));                         \
            y[j] = s * u[j];                                                                  \
        }                                                                                     \
    }                                                                                         \
    attr static void swiglu_bwd_row_##suffix(const float *g, const float *u, const float *dy,  \
                                             float *dg, float *du, int64_t d) {               \
        LT_ELEMENTWISE                                                                        \
        for (int64_t j = 0; j < d; j++) {                                                     \
            const float gj = g[j], uj = u[j], dyj = dy[j];                                    \
            const double sg = swiglu_sigmoid(gj), gd = (double)gj;                            \
            const float s = (float)(gd * sg);                                                 \
            const double ds = sg * (1.0 + gd * (1.0 - sg));                                   \
            du[j] = dyj * s;                                                                  \
            dg[j] = (float)((double)dyj * (double)uj * ds);                                   \
        }                                                                                     \
    }

LT_SWIGLU_ROWS(scalar, )
#if defined(__x86_64__)
LT_SWIGLU_ROWS(avx2, __attribute__((target("avx2,fma"))))
LT_SWIGLU_ROWS(avx512, __attribute__((target("avx512f,fma"))))
#endif

static swiglu_fwd_row_fn swiglu_fwd_row_for(lt_isa isa) {
#if defined(__x86_64__)
    if (isa == LT_ISA_AVX512) return swiglu_fwd_row_avx512;
    if (isa == LT_ISA_AVX2) return swiglu_fwd_row_avx2;
#endif
    (void)isa;
    return swiglu_fwd_row_scalar;
}

static swiglu_bwd_row_fn swiglu_bwd_row_for(lt_isa isa) {
#if defined(__x86_64__)
    if (isa == LT_ISA_AVX512) return swiglu_bwd_row_avx512;
    if (isa == LT_ISA_AVX2) return swiglu_bwd_row_avx2;
#endif
    (void)isa;
    return swiglu_bwd_row_scalar;
}

/* The gate on the tiles of a product (nn_internal.h): terms first, then the row kernels on the
 * tile's columns j ..< j + cols (element-wise: the same bits as lt_swiglu_forward/backward). */
void lt__swiglu_forward_tile(const void *vctx, int64_t i, int64_t j, int64_t rows, int64_t cols, float *c,
                             int64_t ldc) {
    const lt__swiglu_tile_ctx *x = vctx;
    if (x->terms.n_terms > 0) lt__lowrank_terms_tile(&x->terms, i, j, rows, cols, c, ldc);
    const swiglu_fwd_row_fn row = swiglu_fwd_row_for(x->isa);
    for (int64_t q = 0; q < rows; q++)
        row(x->G + (i + q) * x->ldg + j, c + q * ldc, x->A + (i + q) * x->lda + j, cols);
}

void lt__swiglu_backward_tile(const void *vctx, int64_t i, int64_t j, int64_t rows, int64_t cols, float *c,
                              int64_t ldc) {
    const lt__swiglu_tile_ctx *x = vctx;
    if (x->terms.n_terms > 0) lt__lowrank_terms_tile(&x->terms, i, j, rows, cols, c, ldc);
    const swiglu_bwd_row_fn row = swiglu_bwd_row_for(x->isa);
    for (int64_t q = 0; q < rows; q++)
        row(x->G + (i + q) * x->ldg + j, x->U + (i + q) * x->ldu + j, c + q * ldc,
            x->dG + (i + q) * x->lddg + j, x->dU + (i + q) * x->lddu + j, cols);
}

/* Y = silu(G) ∘ U                                             G, U, Y [n × w] */
lt_status lt_swiglu_forward(int64_t n, int64_t w, const float *G, int64_t ldg,
                            const float *U, int64_t ldu, float *Y, int64_t ldy) {
    LT_CHECK(G && U && Y, LT_ERR_NULL_POINTER);
    LT_CHECK(n >= 0 && w >= 0 && lt__ld_ok(ldg, w) && lt__ld_ok(ldu, w) && lt__ld_ok(ldy, w),
             LT_ERR_INVALID_ARGUMENT);
    LT_CHECK((Y != G || ldy == ldg) && (Y != U || ldy == ldu), LT_ERR_INVALID_ARGUMENT);
    int64_t t;
    LT_CHECK(!lt__mul_overflows(n, ldg, &t) && !lt__mul_overflows(n, ldu, &t) &&
             !lt__mul_overflows(n, ldy, &t), LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    const swiglu_fwd_row_fn row = swiglu_fwd_row_for(lt_isa_active());
    #pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK) if(LT_PARALLEL_IF(30.0 * (double)n * (double)w))
    for (int64_t i = 0; i < n; i++) row(G + i * ldg, U + i * ldu, Y + i * ldy, w);
    return LT_OK;
}

/* dG = dY ∘ U ∘ silu'(G),  dU = dY ∘ silu(G)                  (both overwritten) */
lt_status lt_swiglu_backward(int64_t n, int64_t w, const float *G, int64_t ldg,
                             const float *U, int64_t ldu, const float *dY, int64_t lddy,
                             float *dG, int64_t lddg, float *dU, int64_t lddu) {
    LT_CHECK(G && U && dY && dG && dU, LT_ERR_NULL_POINTER);
    LT_CHECK(n >= 0 && w >= 0 && lt__ld_ok(ldg, w) && lt__ld_ok(ldu, w) && lt__ld_ok(lddy, w) &&
             lt__ld_ok(lddg, w) && lt__ld_ok(lddu, w), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(dG != dY || lddg == lddy, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK((const float *)dU != dY && dU != dG, LT_ERR_INVALID_ARGUMENT);
    int64_t t;
    LT_CHECK(!lt__mul_overflows(n, ldg, &t) && !lt__mul_overflows(n, ldu, &t) &&
             !lt__mul_overflows(n, lddy, &t) && !lt__mul_overflows(n, lddg, &t) &&
             !lt__mul_overflows(n, lddu, &t), LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    const swiglu_bwd_row_fn row = swiglu_bwd_row_for(lt_isa_active());
    #pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK) if(LT_PARALLEL_IF(40.0 * (double)n * (double)w))
    for (int64_t i = 0; i < n; i++)
        row(G + i * ldg, U + i * ldu, dY + i * lddy, dG + i * lddg, dU + i * lddu, w);
    return LT_OK;
}
