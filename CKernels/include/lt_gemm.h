/*
 * lt_gemm.h — float32 matrix product on the library's own packed GEMM core and OpenMP team
 * (no BLAS call):
 *
 *     C[m × n] = alpha · op(A) · op(B) + beta · C
 *
 * Row-major storage with explicit leading dimensions (as cblas_sgemm with CblasRowMajor):
 *   op(A) = A      A stored m × k, lda >= k        (trans_a = 0)
 *         = Aᵀ     A stored k × m, lda >= m        (trans_a = 1)
 *   op(B) = B      B stored k × n, ldb >= n        (trans_b = 0)
 *         = Bᵀ     B stored n × k, ldb >= k        (trans_b = 1)
 *   C stored m × n, ldc >= n. Leading dimensions are also >= 1. Padding between rows is neither
 *   read nor written. C must not overlap A, B or the workspace.
 *
 * Values. P = op(A)·op(B) is computed element by element as one float32 chain
 * p = fma(a_k, b_k, p) for k = 0, 1, …, k−1 starting from 0 (the portable kernel rounds each
 * product separately: no fma), then
 *   beta == 0:  C = alpha · P            (C is not read: NaN or garbage in C is overwritten)
 *   otherwise:  C = alpha · P + beta · C (each product rounded, then the sum)
 * alpha == 1 gives P itself; alpha == 0 or k == 0 means an empty product: C = beta · C
 * (beta == 0 writes zeros) and A, B are not read (as in BLAS; a NaN in A or B does not reach C).
 * Results are bitwise identical for any thread count and any accepted workspace size, and
 * between the AVX2 and AVX-512 kernels (the same fma chain); the portable kernel differs in the
 * last bits (within the bound γ_{k+2} · (Σ|a·b|·|alpha| + |beta·c|) of any float32 sum).
 *
 * Complexity: 2·m·n·k flops on lt_get_num_threads() threads (the team runs from 1 MFLOP on);
 * the work is split into tasks of about 192 rows × 384 columns of C (never along k), handed out
 * dynamically. Blocks of A (≤ 192 × 384) and B (≤ 384 × 384) are packed into the workspace
 * (memory traffic O(m·k·n/384 + m·n) floats); micro-kernels: AVX-512 8 × 48, AVX2 6 × 16,
 * portable 4 × 16 (chosen by lt_isa_active()).
 *
 * Workspace: `workspace_floats` floats (64-byte alignment recommended, not required), never
 * allocated by the library. lt_sgemm_workspace_size gives the size that lets every thread of
 * the current team work, for any trans flags and any ISA; 0 when the product is empty (m, n or
 * k is 0; the workspace may then be NULL). When k spans several packed chunks (k > 384) and B
 * is at most 8 MiB packed, that size also holds all of B packed once for the team (round_up(n,
 * 48)·k floats), which the tasks then share instead of each packing its own panels. A smaller
 * workspace, down to one thread's share (the size with 2 threads minus the size with 1), only
 * runs fewer threads or packs B per task (the results do not change); less than one share →
 * LT_ERR_INVALID_ARGUMENT. A call with alpha == 0 needs no workspace.
 *
 * Argument errors: trans flags other than 0/1, negative sizes, leading dimensions too small,
 * sizes whose offsets overflow int64, a short workspace → LT_ERR_INVALID_ARGUMENT; a NULL
 * pointer that would be read or written → LT_ERR_NULL_POINTER (m = 0 or n = 0: nothing is
 * touched, every pointer may be NULL). Nothing is written unless the call returns LT_OK.
 * Never aborts, prints or allocates; never call it from inside an OpenMP parallel region of
 * your own (it runs its own team).
 */
#ifndef LT_GEMM_H
#define LT_GEMM_H

#include <stdint.h>
#include "lt_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Floats of workspace lt_sgemm needs for an m × n × k product on the current thread count. */
lt_status lt_sgemm_workspace_size(int64_t m, int64_t n, int64_t k, int64_t *floats);

lt_status lt_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                   float *C, int64_t ldc, float *workspace, int64_t workspace_floats);

/* The library's GEMM entry, behind every dense product of its kernels (layers, adapters,
 * Tensor.matmul): the same contract and values as lt_sgemm, on the backend
 * lt_gemm_backend_active() names (lt_runtime.h; LORTA_GEMM), without a workspace argument:
 *   LT_GEMM_LORTA     lt_sgemm with a packing buffer the library keeps per calling thread
 *                     (grown on demand to lt_sgemm_workspace_size, 64-byte aligned, freed when
 *                     the thread exits). This entry, unlike lt_sgemm, may allocate; when the
 *                     buffer cannot be allocated it computes the product with cblas_sgemm.
 *                     A narrow C (n at most half the micro-kernel's width, m at least that
 *                     width, e.g. LoRA's d_out × r gradient) is computed as Cᵀ = op(B)ᵀop(A)ᵀ
 *                     and transposed back: the same bits, without mostly empty tiles.
 *   LT_GEMM_OPENBLAS  cblas_sgemm (its values differ from lt_sgemm's in the last bits; its own
 *                     thread pool). Sizes must then fit in 32 bits (else LT_ERR_INVALID_ARGUMENT).
 * Argument errors as lt_sgemm; nothing is written unless the call returns LT_OK. Never call it
 * from inside an OpenMP parallel region. */
lt_status lt_gemm_f32(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                      const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                      float *C, int64_t ldc);

/* How an m × n × k product is shared out (for tests and benchmarks): *tasks = task blocks of
 * C, *team = 1 when a call with a full-size workspace runs its OpenMP team (work above the
 * library's small-work threshold, more than one task and more than one thread). */
lt_status lt_sgemm_tasks(int64_t m, int64_t n, int64_t k, int64_t *tasks, int *team);

#ifdef __cplusplus
}
#endif
#endif /* LT_GEMM_H */
