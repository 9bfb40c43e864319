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

/* ---- Prepacked B: a constant B (a frozen weight) packed once, products that read it in place --
 *
 *     C[m × n] = alpha · op(A) · op(B) + beta · C        op(B) fixed when B is packed
 *
 * lt_sgemm packs the panels of B it needs on every call (about 1/mc of the work, or all of B
 * once per call when k spans several chunks). For a B that never changes, lt_sgemm_pack_b
 * writes all of op(B) (k × n; trans_b = 1: B stored n × k, ldb >= k, e.g. a weight W [d_out ×
 * d_in] for X·Wᵀ; trans_b = 0: B stored k × n, ldb >= n) once, in the core's packed layout for
 * the ISA active at that moment, and lt_sgemm_prepacked then multiplies without packing B at
 * all. A packed buffer serves one op(B) only (no input-gradient direction from the same buffer).
 *
 * Values: exactly lt_sgemm's bits for the same arguments (same kernel, same packed values, same
 * fma chain and epilogue), for any thread count and workspace size. Products always take the
 * direct path (lt_gemm_f32's narrow-output transposition is not used; the bits are the same).
 *
 * Layout (for information; only these functions read it): a header of 16 floats (magic, ISA,
 * micro-kernel width NR, k-chunk depth kc, k, n, trans_b, a check word), then op(B) as
 * [k-chunk][micro-panel of NR columns][k][NR], columns past n zero: round_up(n, NR)·k floats.
 * The buffer is lt_sgemm_packed_b_size floats = 16 + round_up(n, 48)·k (the widest NR, so one
 * size fits every ISA); 64-byte alignment recommended (the data then starts aligned), not
 * required. The buffer is not position-dependent: it may be copied or saved and reused by the
 * same build.
 *
 * ISA: a buffer packed under one ISA is rejected (LT_ERR_INVALID_ARGUMENT, nothing written or
 * read beyond the header) once another ISA is active (lt_isa_set / LORTA_ISA): repack it. So is
 * a buffer for another k or n, or one that does not start with a valid header (never packed, or
 * overwritten). Threads: packing runs on the team (fixed pieces, a copy); products as lt_sgemm.
 * Never aborts, prints or allocates; never call from inside an OpenMP parallel region. */

/* Floats of a packed op(B) (k × n): 16 + round_up(n, 48)·k, the same for every ISA. k, n >= 0.
 * LT_ERR_INVALID_ARGUMENT for trans_b other than 0/1, negative or overflowing sizes;
 * LT_ERR_NULL_POINTER for a NULL `floats`. */
lt_status lt_sgemm_packed_b_size(int trans_b, int64_t k, int64_t n, int64_t *floats);

/* Packs op(B) (k × n; B stored trans_b ? n × k : k × n with leading dimension ldb, >= its
 * columns and >= 1) into `packed` (packed_floats >= lt_sgemm_packed_b_size) for the active ISA.
 * B's row padding is not read. k = 0 or n = 0 writes the header only (B may then be NULL).
 * O(k·n) copies. LT_ERR_INVALID_ARGUMENT: bad trans_b, negative or overflowing sizes, ldb too
 * small, packed_floats too small; LT_ERR_NULL_POINTER: packed NULL, or B NULL with k, n >= 1.
 * Nothing is written unless it returns LT_OK. */
lt_status lt_sgemm_pack_b(int trans_b, int64_t k, int64_t n, const float *B, int64_t ldb, float *packed,
                          int64_t packed_floats);

/* Floats of workspace lt_sgemm_prepacked needs for an m × n × k product on the current thread
 * count (any ISA); smaller than lt_sgemm_workspace_size's: no B panels, no shared B. 0 when m, n
 * or k is 0. A smaller workspace, down to one thread's share (size with 1 thread), runs fewer
 * threads with the same bits. */
lt_status lt_sgemm_prepacked_workspace_size(int64_t m, int64_t n, int64_t k, int64_t *floats);

/* C = alpha · op(A) · op(B) + beta · C with op(B) (k × n) from `packed` (lt_sgemm_pack_b). A,
 * C, lda, ldc, alpha, beta, the workspace, empty products and argument errors as lt_sgemm, plus:
 * when m, n >= 1, `packed` must be non-NULL (LT_ERR_NULL_POINTER) and made for this k and n
 * under the active ISA (else LT_ERR_INVALID_ARGUMENT), even for an empty product (alpha = 0 or
 * k = 0: C = beta · C, the packed values and A are not read). C must not overlap `packed`.
 * Nothing is written unless it returns LT_OK. */
lt_status lt_sgemm_prepacked(int trans_a, int64_t m, int64_t n, int64_t k, float alpha, const float *A,
                             int64_t lda, const float *packed, float beta, float *C, int64_t ldc,
                             float *workspace, int64_t workspace_floats);

/* How an m × n × k product is shared out (for tests and benchmarks): *tasks = task blocks of
 * C, *team = 1 when a call with a full-size workspace runs its OpenMP team (work above the
 * library's small-work threshold, more than one task and more than one thread). */
lt_status lt_sgemm_tasks(int64_t m, int64_t n, int64_t k, int64_t *tasks, int *team);

#ifdef __cplusplus
}
#endif
#endif /* LT_GEMM_H */
