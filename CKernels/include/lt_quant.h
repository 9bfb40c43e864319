/*
 * lt_quant.h — frozen weight matrices stored in GGML block formats (as in GGUF files):
 * dequantization, and products with float32 activations that read the blocks directly, so a
 * quantized model never needs its weights widened to float32 as a whole.
 *
 * Storage types are identified by their ggml type number (the value GGUF files store):
 *   F32 0, F16 1, Q4_0 2, Q4_1 3, Q5_0 6, Q5_1 7, Q8_0 8, Q4_K 12, Q5_K 13, Q6_K 14, BF16 30.
 * These are the types this library dequantizes; every other ggml type number gives
 * LT_ERR_UNSUPPORTED (a valid type we do not implement) — never garbage.
 *
 * A matrix W [rows × cols] (PyTorch `out × in`; GGUF dims [cols, rows]) is stored row after
 * row; each row is cols / block_elements blocks of block_bytes bytes (cols must be a multiple
 * of block_elements: 1 for F32/F16/BF16, 32 for Q4_0…Q8_0, 256 for the K types). Blocks are
 * little-endian and not aligned (Q4_1 blocks are 20 bytes): kernels use unaligned loads.
 * The dequantized values are exactly those of ggml's reference `dequantize_row_*` (and of the
 * `gguf` Python package): the same float32 operations in the same order (e.g. Q4_1:
 * d·q + m with d, m widened from float16), so they are bit-identical. Every product in these
 * formulas is exact in float32 (at most 11 + 7 + 6 significant bits); only the added minimum
 * (Q4_1, Q5_1, Q4_K, Q5_K) rounds. F16 widens exactly, NaN payloads kept as numpy keeps them
 * (a signalling NaN stays signalling); BF16 is the high half of a float32. Where two different
 * NaNs meet in one operation (both scales of a block NaN) the result is NaN but its payload is
 * not specified.
 *
 * Conventions as in lt_lora.h / lt_nn.h: row-major, explicit leading dimensions, int64_t
 * sizes, every entry point validates its arguments and returns an lt_status, nothing aborts,
 * prints or allocates (callers pass workspace sized by the *_workspace_size query, in floats),
 * results are bitwise identical for any thread count (each output element is computed by the
 * same code in the same order whichever thread runs it; no split of a sum across threads).
 * BLAS is never called inside an OpenMP region.
 */
#ifndef LT_QUANT_H
#define LT_QUANT_H

#include <stdint.h>
#include "lt_runtime.h"
#include "lt_nn.h"   /* lt_lowrank_term */

#ifdef __cplusplus
extern "C" {
#endif

/* ggml type numbers of the storage types this library dequantizes. */
enum {
    LT_GGML_F32 = 0, LT_GGML_F16 = 1, LT_GGML_Q4_0 = 2, LT_GGML_Q4_1 = 3, LT_GGML_Q5_0 = 6,
    LT_GGML_Q5_1 = 7, LT_GGML_Q8_0 = 8, LT_GGML_Q4_K = 12, LT_GGML_Q5_K = 13, LT_GGML_Q6_K = 14,
    LT_GGML_BF16 = 30,
};

/* Block geometry of a supported type: elements per block and bytes per block.
 * LT_ERR_UNSUPPORTED for any other type number; LT_ERR_NULL_POINTER for a NULL output. */
lt_status lt_quant_block_size(int32_t type, int64_t *block_elements, int64_t *block_bytes);

/* Bytes of one row of `cols` elements (cols a multiple of the block size, else
 * LT_ERR_INVALID_ARGUMENT; overflow → LT_ERR_INVALID_ARGUMENT). */
lt_status lt_quant_row_bytes(int32_t type, int64_t cols, int64_t *bytes);

/* ---- dequantization ------------------------------------------------------------------------
 * dst[0 ..< n] = the n values encoded by the first n / block_elements blocks of src.
 *   n a multiple of the block size; src_bytes >= the bytes those blocks need (checked, so a
 *   short buffer is LT_ERR_INVALID_ARGUMENT, never an overread: exactly those bytes are read).
 *   src needs no alignment; dst must not overlap src. n = 0 accepts NULL pointers.
 *   OpenMP over fixed chunks of 16,384 values from 65,536 values on (each value written by the
 *   same code whatever the thread count). Kernel variants per ISA (lt_isa_active()) give the
 *   same bits. The per-type block decoders are internal (CKernels/src/quant_internal.h). */
lt_status lt_dequantize(int32_t type, const void *src, int64_t src_bytes, int64_t n, float *dst);

/* Rows of a matrix: Y[i, :] = dequantized row ids[i] of W   (an embedding lookup).
 *   W [rows × cols] in `type`; ids [n] int32 each in 0 ..< rows (LT_ERR_INVALID_ARGUMENT
 *   otherwise); Y [n × cols] (ld ldy). */
lt_status lt_quant_gather_rows(int32_t type, int64_t rows, int64_t cols, const void *W,
                               int64_t w_bytes, const int32_t *ids, int64_t n,
                               float *Y, int64_t ldy);

/* ---- products with a stored matrix (frozen weights) -------------------------------------------
 * forward:            Y[n × d_out] (=|+=) X[n × d_in] · Wᵀ          W [d_out × d_in] in `type`
 * backward (input):   dX[n × d_in] (=|+=) dY[n × d_out] · W
 *   w_bytes >= d_out · row_bytes(type, d_in) (checked: a short buffer is LT_ERR_INVALID_ARGUMENT,
 *   never an overread); d_in a multiple of the block size; accumulate 0 overwrites, 1 adds
 *   (Y = Y + (X·Wᵀ), the product rounded first); ldx >= d_in, ldy >= d_out (padding between
 *   rows is neither read nor written). Y/dX must not overlap the inputs.
 *   Empty shapes: n = 0 or no output columns → nothing is touched; an empty sum (d_in = 0 in
 *   the forward, d_out = 0 in the backward) gives zeros (accumulate 0) or leaves Y unchanged;
 *   pointers that would not be read may then be NULL.
 * int8 decode mode: when lt_decode_arith_active() is LT_DECODE_INT8 (LORTA_DECODE=int8), the
 *   forward with n <= LT_QUANT_GEMV_MAX_ROWS and Q8_0, Q4_0, Q4_1, Q4_K or Q6_K weights is
 *   lt_quant_matmul_int8 (below: int8 activations); everything else, the backward and every
 *   other shape and type keep the float arithmetic described here.
 * Values: every product uses exactly the dequantized weights (the values lt_dequantize gives,
 *   bit for bit, NaN payloads aside) and the float32 activations; only the order of the sum is
 *   the kernels' own. That order is fixed by the code (never by the thread count), so each
 *   element obeys the bound of any float32 sum of K products (K = d_in forward, d_out
 *   backward): |error| <= γ_{K+2} · (Σ_k |x_k·w_k| + |y_old|), γ_m = m·2⁻²⁴ / (1 − m·2⁻²⁴).
 *   Results are bitwise identical for any thread count and any accepted workspace size; the
 *   decode-sized and batched paths, and different ISAs, may differ in the last bits.
 * Paths (chosen from the shape and the active ISA, never from the thread count):
 *   - n <= LT_QUANT_GEMV_MAX_ROWS (decoding): fused kernels decode 32 stored values at a time
 *     in registers (AVX-512 / AVX2; the portable variant decodes up to 256 values into a stack
 *     buffer) and multiply-add them with every X row; OpenMP over fixed chunks of 32 W rows
 *     (backward: of 128 dX columns, 256 for the K types). No workspace.
 *   - larger n (prefill, batches, training): a packed GEMM on the library's own OpenMP team
 *     (no BLAS): panels of W are dequantized straight into the micro-kernel's packed layout
 *     (forward: Wᵀ; backward: W), X (dY) is packed in blocks of MR-row micro-panels, and
 *     register-blocked micro-kernels (AVX-512 8×48, AVX2 6×16, portable 4×16) compute each
 *     output tile from start to end on one thread (the summed dimension is never split across
 *     threads).
 *   - F32 W: the same paths without decoding.
 * BLAS is not called. The backward of the parameters does not exist here: stored matrices are
 * frozen.
 * workspace: `workspace_floats` floats (64-byte alignment recommended, not required).
 * lt_quant_matmul_workspace_size gives a size that lets every thread of the current team work
 * in either direction (forward and backward_input of the same type and shape) under any ISA;
 * 0 for n <= LT_QUANT_GEMV_MAX_ROWS (workspace may then be NULL); like lt_sgemm_workspace_size
 * it includes the decoded W packed once for the team when the summed dimension exceeds 384 and
 * that copy is at most 8 MiB. A smaller workspace, down to one thread's share, only runs fewer
 * threads or decodes per task (the results do not change); workspace_floats
 * below one share → LT_ERR_INVALID_ARGUMENT; a NULL workspace where one is needed →
 * LT_ERR_NULL_POINTER.
 * Argument errors: unsupported type → LT_ERR_UNSUPPORTED (checked first); bad sizes, strides,
 * accumulate flag or buffer sizes → LT_ERR_INVALID_ARGUMENT; a NULL pointer that would be read
 * or written → LT_ERR_NULL_POINTER. Nothing is written unless the call returns LT_OK. */
#define LT_QUANT_GEMV_MAX_ROWS 8
lt_status lt_quant_matmul_workspace_size(int32_t type, int64_t n, int64_t d_in, int64_t d_out,
                                         int64_t *floats);
lt_status lt_quant_matmul(int32_t type, int64_t n, int64_t d_in, int64_t d_out,
                          const float *X, int64_t ldx,
                          const void *W, int64_t w_bytes,
                          float *Y, int64_t ldy, int accumulate,
                          float *workspace, int64_t workspace_floats);
lt_status lt_quant_matmul_backward_input(int32_t type, int64_t n, int64_t d_in, int64_t d_out,
                                         const float *dY, int64_t lddy,
                                         const void *W, int64_t w_bytes,
                                         float *dX, int64_t lddx, int accumulate,
                                         float *workspace, int64_t workspace_floats);
/* The same products followed by low-rank terms (lt_lowrank_term, lt_nn.h) on the output's columns
 * (Y's d_out, dX's d_in), applied in order: on the packed-GEMM path they are added to each tile
 * while it is in cache, on the decode-sized paths after the product — the same bits as the
 * product followed by lt_lowrank_terms_apply. Term errors as lt_lowrank_terms_apply's, checked
 * before anything is written; the rest as the products. */
lt_status lt_quant_matmul_terms(int32_t type, int64_t n, int64_t d_in, int64_t d_out,
                                const float *X, int64_t ldx, const void *W, int64_t w_bytes,
                                const struct lt_lowrank_term *terms, int64_t n_terms,
                                float *Y, int64_t ldy, int accumulate,
                                float *workspace, int64_t workspace_floats);
lt_status lt_quant_matmul_backward_input_terms(int32_t type, int64_t n, int64_t d_in, int64_t d_out,
                                               const float *dY, int64_t lddy, const void *W, int64_t w_bytes,
                                               const struct lt_lowrank_term *terms, int64_t n_terms,
                                               float *dX, int64_t lddx, int accumulate,
                                               float *workspace, int64_t workspace_floats);
/* The Llama MLP's SwiGLU gate fused into the products around it (lt_swiglu_*, lt_nn.h):
 * forward:  U[n × w] = X · W_upᵀ, then the terms on U (the up projection's adapter), then
 *           A[n × w] = silu(G) ∘ U — on each tile of U while it is in cache (G, the gate
 *           projection's output with its terms, computed before);
 * backward: dA[n × w] = dY · W_down, then the terms on dA (the down projection's input-gradient
 *           terms), then dG, dU = lt_swiglu_backward(G, U, dA) on each tile of dA.
 * W_up is w × d_in, W_down d_out × w, in `type` (as lt_quant_matmul). Bit for bit the product,
 * lt_lowrank_terms_apply and lt_swiglu_forward / lt_swiglu_backward one after the other. A must
 * not overlap G or U, dG and dU must not overlap G, U, dA or each other (pointer equality is
 * checked: LT_ERR_INVALID_ARGUMENT). Other errors as lt_quant_matmul_terms. */
lt_status lt_quant_matmul_swiglu(int32_t type, int64_t n, int64_t d_in, int64_t w,
                                 const float *X, int64_t ldx, const void *W_up, int64_t w_bytes,
                                 const struct lt_lowrank_term *terms, int64_t n_terms,
                                 const float *G, int64_t ldg, float *U, int64_t ldu, float *A, int64_t lda,
                                 float *workspace, int64_t workspace_floats);
lt_status lt_quant_matmul_swiglu_backward(int32_t type, int64_t n, int64_t w, int64_t d_out,
                                          const float *dY, int64_t lddy, const void *W_down, int64_t w_bytes,
                                          const struct lt_lowrank_term *terms, int64_t n_terms,
                                          const float *G, int64_t ldg, const float *U, int64_t ldu,
                                          float *dA, int64_t ldda, float *dG, int64_t lddg, float *dU, int64_t lddu,
                                          float *workspace, int64_t workspace_floats);

/* Decode-sized forward with int8 activations (llama.cpp's arithmetic; what lt_quant_matmul
 * does for these shapes when the int8 decode mode is on, lt_decode_int8_set):
 *   Y[n × d_out] (=|+=) X̃ · Wᵀ
 * where X̃ is X with each block of 32 values of a row rounded to dx · q (dx = max|x|/127,
 * q = round(x/dx) in −127 … 127), and each block of W meets its X̃ block in exact integer dot
 * products applied with one float multiply-add per 4 products:
 *   Q8_0, Q4_0: scale d_w·dx;  Q4_1: the same, and m_w·(dx·Σq) added;
 *   Q4_K (super-blocks of 256, sub-blocks j of 32 with 6-bit sc_j, m_j): scale (d·sc_j)·dx,
 *     and (dmin·m_j)·(dx·Σq) subtracted;
 *   Q6_K (sub-blocks t of 16 with int8 sc_t, two per activation block): scale (d·sc_t)·dx.
 * Types Q8_0, Q4_0, Q4_1, Q4_K, Q6_K and n <= LT_QUANT_GEMV_MAX_ROWS; another type or a larger
 * n is LT_ERR_UNSUPPORTED (lt_quant_matmul serves those); d_in a multiple of 32 (256 for the K
 * types). Kernels: AVX-512 VNNI (vpdpbusd on zmm) when the active ISA is AVX-512 and the CPU
 * has AVX512_VNNI; on AVX2 (and AVX-512 without AVX512_VNNI) AVX-VNNI (VEX vpdpbusd on ymm) when
 * the CPU has it, else vpmaddubsw + vpmaddwd; portable C under the scalar ISA — all give the
 * same bits (the integer sums are exact and the order of the float operations is one fixed lane
 * scheme, CKernels/src/quant_int8_internal.h), for any thread count.
 * Against the exact product X̃·Wᵀ (W dequantized) an output differs only by float32 rounding:
 * at most γ_{K+2}·(Σ_k |x̃_k·w_k| + |y_old|) (K = d_in), where for Q4_1 and Q4_K the terms
 * count the two parts of each weight apart: |x̃|·(|d·q| + |m|), |x̃|·(|d·sc·q| + |dmin·m|).
 * Against the float product with the dequantized W (lt_quant_matmul) an output differs by the
 * activations' rounding, at most Σ_blocks (dx/2)·Σ|w| (dx/2 = max|x|/254 of the block), plus
 * float32 rounding. A NaN or infinity in a block of X makes every output it meets NaN. Same
 * argument checks as lt_quant_matmul; a failed allocation of the rounded activations
 * (≈ n · (1.3 · d_in + 64) bytes) is LT_ERR_UNSUPPORTED. */
lt_status lt_quant_matmul_int8(int32_t type, int64_t n, int64_t d_in, int64_t d_out,
                               const float *X, int64_t ldx, const void *W, int64_t w_bytes,
                               float *Y, int64_t ldy, int accumulate);

/* The kernel variants of lt_quant_matmul_int8, for tests and benchmarks (all give the same
 * bits): lt_quant_int8_kernel() is the one lt_quant_matmul_int8 uses under the active ISA;
 * lt_quant_int8_kernel_supported(k) is 1 when this CPU runs k; lt_quant_matmul_int8_kernel
 * runs variant k whatever the active ISA (LT_ERR_INVALID_ARGUMENT for an unknown k,
 * LT_ERR_UNSUPPORTED_ISA for one this CPU lacks, checked first; otherwise exactly
 * lt_quant_matmul_int8). */
enum {
    LT_INT8_KERNEL_PORTABLE = 0,     /* portable C */
    LT_INT8_KERNEL_AVX2 = 1,         /* AVX2: vpmaddubsw + vpmaddwd */
    LT_INT8_KERNEL_AVX_VNNI = 2,     /* AVX2 with AVX-VNNI: vpdpbusd (VEX, ymm) */
    LT_INT8_KERNEL_AVX512_VNNI = 3,  /* AVX-512 VNNI: vpdpbusd (zmm) */
};
int lt_quant_int8_kernel(void);
int lt_quant_int8_kernel_supported(int kernel);
lt_status lt_quant_matmul_int8_kernel(int kernel, int32_t type, int64_t n, int64_t d_in, int64_t d_out,
                                      const float *X, int64_t ldx, const void *W, int64_t w_bytes,
                                      float *Y, int64_t ldy, int accumulate);

/* How a product of this shape is shared out (for tests and benchmarks): *tasks = independent
 * units of work (row or column chunks, GEMM task blocks), *team = 1 when the call runs its
 * OpenMP team (work above the library's small-work threshold and more than one task; with a
 * full-size workspace). backward 0: lt_quant_matmul, 1: lt_quant_matmul_backward_input.
 * Same argument checks as the products' sizes. */
lt_status lt_quant_matmul_tasks(int32_t type, int64_t n, int64_t d_in, int64_t d_out, int backward,
                                int64_t *tasks, int *team);


/* ---- quantization ---------------------------------------------------------------------------
 * dst = the Q8_0 blocks of src[0 ..< n] (n / 32 blocks of 34 bytes: an f16 scale d = max|x|/127
 * rounded to nearest even, then 32 int8 values roundf(x · (1/d)) in float32), bit for bit what ggml's
 * quantize_row_q8_0_ref and the gguf Python package (gguf.quants.quantize(x, Q8_0)) write.
 *   n a multiple of 32 and dst_bytes >= n / 32 · 34, else LT_ERR_INVALID_ARGUMENT; every value
 *   finite, else LT_ERR_INVALID_ARGUMENT and nothing is written. n = 0 accepts NULL pointers.
 *   A block whose largest magnitude is below ~1e-37 (its 1/d overflows; its f16 scale is 0 and
 *   it decodes to zeros) gets clamped q values where numpy's are unspecified. Single-threaded. */
lt_status lt_quantize_q8_0(const float *src, int64_t n, void *dst, int64_t dst_bytes);

#ifdef __cplusplus
}
#endif
#endif /* LT_QUANT_H */
