/* internal.h — helpers shared by the kernel sources (not part of the public API). */
#ifndef LT_INTERNAL_H
#define LT_INTERNAL_H

#include <stdint.h>
#include <stddef.h>
#include "lt_runtime.h"
#include "lt_gemm.h"

#define LT_CHECK(cond, err) do { if (!(cond)) return (err); } while (0)

/* Ensures the runtime is initialised (environment read) and that the calling thread's OpenMP
 * settings (thread count, zero block time) match the global ones: OpenMP keeps them per
 * thread, and Swift may call kernels from any thread. Returns the initialisation status. */
lt_status lt__ensure_init(void);

/* 1 when the CPU (and OS) support AVX-512 F/BW/VL/DQ with VNNI (vpdpbusd). */
int lt__cpu_has_avx512vnni(void);

/* Work below this many flops runs its OpenMP loop on the calling thread only (`if` clause):
 * waking a team costs more than it saves for tiny loops. The result bits do not change: every
 * row is computed by the same code either way. Measured at n = 512, d = 384 (LoRA r = 8 and
 * LoRTA r = 8 forwards, ~6–13 MFLOP, 2 cores, three interleaved A/B runs): a 16 MFLOP threshold
 * (those loops serial) was no better than always parallel, and LoRA was slower (+24% vs +15%
 * over the base GEMM), so only really small loops stay serial. Override at build time with
 * -DLT_PARALLEL_MIN_FLOPS=… for experiments. */
#ifndef LT_PARALLEL_MIN_FLOPS
#define LT_PARALLEL_MIN_FLOPS 1.0e6
#endif
#define LT_PARALLEL_IF(flops) ((double)(flops) >= LT_PARALLEL_MIN_FLOPS)

#include <cblas.h>
#include <string.h>

/* A leading dimension must cover the row (and be >= 1 so that empty rows stay addressable). */
static inline int lt__ld_ok(int64_t ld, int64_t len) { return ld >= (len > 1 ? len : 1); }

/* a * b without overflow (a, b >= 0): returns 0 and sets *out, or 1 on overflow. */
static inline int lt__mul_overflows(int64_t a, int64_t b, int64_t *out) {
    if (a != 0 && b > INT64_MAX / a) return 1;
    *out = a * b;
    return 0;
}

/* BLAS takes 32-bit sizes in the usual LP64 build: reject what it cannot address. */
static inline int lt__blas_ok(int64_t v) { return v <= (int64_t)INT32_MAX; }

/* C[m×n] = beta · C, row-major; beta = 0 means "set to zero" (C is not read, NaN is replaced).
 * What a product with k = 0 or alpha = 0 leaves. */
static inline void lt__scale_matrix(float *C, int64_t m, int64_t n, int64_t ldc, float beta) {
    for (int64_t i = 0; i < m; i++) {
        float *c = C + i * ldc;
        if (beta == 0.0f) memset(c, 0, (size_t)n * sizeof(float));
        else if (beta != 1.0f) for (int64_t j = 0; j < n; j++) c[j] *= beta;
    }
}

/* C[m×n] = alpha op(A) op(B) + beta C, row-major: lt_gemm_f32 (lt_gemm.h) on the active
 * backend — the one way the kernels multiply dense float32 matrices. Arguments are the
 * caller's, already checked (an error here would be a bug: the call then computes nothing).
 * Never call it inside an OpenMP region. */
static inline void lt__sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                             const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                             float *C, int64_t ldc) {
    (void)lt_gemm_f32(trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

#endif
