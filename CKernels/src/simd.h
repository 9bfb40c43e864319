/*
 * simd.h — the ISA-specific micro-kernels (BLIS style: tiny kernels, portable loops around).
 *
 * Each micro-kernel has a scalar, an AVX2+FMA and an AVX-512 variant (simd_scalar.c,
 * simd_avx2.c, simd_avx512.c, compiled with target attributes, never -march) and a dispatcher
 * that picks the active ISA (lt_isa_active()). Shapes in the comments; row-major; ld = leading
 * dimension (elements between consecutive rows).
 */
#ifndef LT_SIMD_H
#define LT_SIMD_H

#include <stdint.h>

/* dot_many:  out[k] = sum_j x[j] * M[k*ldm + j]      x: d,  M: r x d (ld ldm),  out: r
 * Used for skinny projections: t = A x (LoRA), g = Bᵀ dy, P = B x_h (LoRTA). */
typedef void (*lt_dot_many_fn)(const float *x, const float *M, int64_t ldm, int64_t r,
                               int64_t d, float *out);

/* axpy_many: y[j] += sum_k coef[k] * M[k*ldm + j]     y: d,  M: r x d (ld ldm),  coef: r
 * Rank-r row update: reads and writes y once. Used for Y += s T Bᵀ rows, merges, dX += G A. */
typedef void (*lt_axpy_many_fn)(float *y, const float *coef, const float *M, int64_t ldm,
                                int64_t r, int64_t d);

void lt__dot_many_scalar(const float *x, const float *M, int64_t ldm, int64_t r, int64_t d, float *out);
void lt__axpy_many_scalar(float *y, const float *coef, const float *M, int64_t ldm, int64_t r, int64_t d);
#if defined(__x86_64__)
void lt__dot_many_avx2(const float *x, const float *M, int64_t ldm, int64_t r, int64_t d, float *out);
void lt__axpy_many_avx2(float *y, const float *coef, const float *M, int64_t ldm, int64_t r, int64_t d);
void lt__dot_many_avx512(const float *x, const float *M, int64_t ldm, int64_t r, int64_t d, float *out);
void lt__axpy_many_avx512(float *y, const float *coef, const float *M, int64_t ldm, int64_t r, int64_t d);
#endif

/* The variant for the active ISA (resolved at call time, so tests can switch ISA). */
lt_dot_many_fn lt__dot_many(void);
lt_axpy_many_fn lt__axpy_many(void);

/* Fixed chunking for OpenMP loops over rows: results never depend on the thread count
 * because every row is computed by the same code regardless of which thread runs it. */
#define LT_ROWS_PER_CHUNK 16

#endif
