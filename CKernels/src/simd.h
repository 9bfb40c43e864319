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

/* dot_block: out[i*ldo + k] = sum_j X[i*ldx + j] * M[k*ldm + j]     X: m x d,  M: r x d,  out: m x r
 * m x r dot products of length d (attention scores q_i . k_k, dP = dC V^T). Register tiles of
 * rows x keys share every load. Each entry is computed by the same arithmetic wherever it falls
 * in the tiling (one lane-parallel accumulator per entry over chunks of the vector width, the
 * lanes then added in one fixed tree), so an entry depends only on its two vectors, never on m,
 * r or its position: a score is the same whether its query row is computed alone (decode) or
 * with others (prefill). */
typedef void (*lt_dot_block_fn)(int64_t m, int64_t r, int64_t d, const float *X, int64_t ldx,
                                const float *M, int64_t ldm, float *out, int64_t ldo);

/* axpy_block: Y[i*ldy + j] += sum_k Cf[i*ldc + k] * M[k*ldm + j]     Cf: m x r,  M: r x d,  Y: m x d
 * A small GEMM (P V, dS K, dS^T Q). Per element: acc = 0, then acc += Cf[i,k] * M[k,j] for
 * k = 0 ... r-1 in order (a fused multiply-add on the vector ISAs), then y += acc: the result
 * depends neither on m nor on the column tiling. Y must not overlap Cf or M. */
typedef void (*lt_axpy_block_fn)(int64_t m, int64_t r, int64_t d, const float *Cf, int64_t ldc,
                                 const float *M, int64_t ldm, float *Y, int64_t ldy);

void lt__dot_block_scalar(int64_t m, int64_t r, int64_t d, const float *X, int64_t ldx, const float *M, int64_t ldm, float *out, int64_t ldo);
void lt__axpy_block_scalar(int64_t m, int64_t r, int64_t d, const float *Cf, int64_t ldc, const float *M, int64_t ldm, float *Y, int64_t ldy);
#if defined(__x86_64__)
void lt__dot_block_avx2(int64_t m, int64_t r, int64_t d, const float *X, int64_t ldx, const float *M, int64_t ldm, float *out, int64_t ldo);
void lt__axpy_block_avx2(int64_t m, int64_t r, int64_t d, const float *Cf, int64_t ldc, const float *M, int64_t ldm, float *Y, int64_t ldy);
void lt__dot_block_avx512(int64_t m, int64_t r, int64_t d, const float *X, int64_t ldx, const float *M, int64_t ldm, float *out, int64_t ldo);
void lt__axpy_block_avx512(int64_t m, int64_t r, int64_t d, const float *Cf, int64_t ldc, const float *M, int64_t ldm, float *Y, int64_t ldy);
#endif

/* The variant for the active ISA (resolved at call time, so tests can switch ISA). */
lt_dot_many_fn lt__dot_many(void);
lt_axpy_many_fn lt__axpy_many(void);
lt_dot_block_fn lt__dot_block(void);
lt_axpy_block_fn lt__axpy_block(void);
/* The variant of a given ISA (no support check). */
lt_dot_block_fn lt__dot_block_for(int isa);
lt_axpy_block_fn lt__axpy_block_for(int isa);

/* Fixed chunking for OpenMP loops over rows: results never depend on the thread count
 * because every row is computed by the same code regardless of which thread runs it. */
#define LT_ROWS_PER_CHUNK 16

/* First statement of an instrumented row loop's body (row index i): the thread that starts a
 * chunk records itself for the test diagnostic lt_debug_threads_seen (lt_runtime.h). */
void lt__note_thread(void);
#define LT__NOTE_CHUNK(i) do { if ((i) % LT_ROWS_PER_CHUNK == 0) lt__note_thread(); } while (0)

#endif
