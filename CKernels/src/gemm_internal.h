/*
 * gemm_internal.h — the packed GEMM core (BLIS style) run on our own OpenMP team. Not public.
 *
 *     C[M × N] (=|+=) A[M × K] · B[K × N]          row-major, explicit leading dimensions
 *
 * A (row-major M × K, or stored transposed K × M) is packed by the core into micro-panels of MR
 * rows, k-major (A[r, k] at [k·MR + r]), so the micro-kernel broadcasts from one contiguous
 * stream. B is never read by the core:
 * a caller-supplied packer writes column panels of B into the packed layout the micro-kernel
 * wants, so B may be anything that can produce its values — a float32 matrix (plain or
 * transposed), or a quantized weight matrix dequantized straight into the panel. The epilogue
 * (how a finished tile of A·B reaches C: alpha·P, or alpha·P + beta·C) is a separate step
 * applied once per tile; fused epilogues (bias, activation, residual, adapter terms) plug in
 * there.
 *
 * Layout of a packed panel of B (columns j0 ..< j0 + nc, rows k0 ..< k0 + kc): micro-panels of
 * NR columns, one after the other; micro-panel q holds B[k0 + k, j0 + q·NR + c] at
 * [q·kc·NR + k·NR + c] (k-major). Columns at or past N are zero.
 *
 * Blocking and threads (all choices depend on the shape, the ISA and the team size only):
 *   - tasks = (N-panels of nc <= 384 columns) × (M-blocks of mc <= 192 rows); K in equal chunks
 *     of kc <= 384. With a team, blocks shrink until there are >= 4 tasks per thread (where
 *     the shape allows) and the task count is a multiple of the team size. The threads take
 *     tasks from a shared counter (dynamic, robust to a busy core); a task is done by one
 *     thread from start to end;
 *   - inside a task, for each kc-chunk of K: the task packs its B panel (kc × nc) — unless the
 *     team packed all of B once beforehand (shared packed B, below) or B is a frozen weight
 *     packed once at load (prepacked B, below) — and its A
 *     block (mc × kc) into the thread's workspace (both stay in the core's L2), then for each
 *     A micro-panel (in L1) runs the micro-kernel over every B micro-panel (streamed from L2);
 *     partial tiles live in C itself (full tiles of a plain store, alpha = 1 and beta = 0) or
 *     in the thread's partial block between chunks, and are reloaded exactly;
 *   - the micro-kernel computes c = fma(a[k], b[k], c) for k = 0, 1, …, K−1 starting from 0.
 * So every element of A·B is one float32 fma chain in k order, whichever thread, task, tile,
 * chunk or ISA variant (AVX2 and AVX-512 give identical bits; the portable variant rounds the
 * product separately) computes it: the results do not depend on the thread count or blocking.
 * The core never calls BLAS and never allocates: it uses the caller's workspace.
 */
#ifndef LT_GEMM_INTERNAL_H
#define LT_GEMM_INTERNAL_H

#include <stdint.h>
#include "lt_runtime.h"

/* Micro-kernel: C_tile[MR × NR] (ld ldc) = (load_c ? C_tile : 0) + A_tile[MR × kc] · Bp[kc × NR]
 *   ap: packed A micro-panel (k-major: A[r, k] at ap[k·MR + r]); bp: packed B micro-panel
 *   (k-major: B[k, c] at bp[k·NR + c]). */
typedef void (*lt__gemm_ukernel_fn)(int64_t kc, const float *ap, const float *bp,
                                    float *c, int64_t ldc, int load_c);

/* Transpose of a 16-row strip: dst[k·ldd + r] = src[r·lds + k] for r < 16, k < kc. The packers
 * use it to turn rows of a weight matrix into k-major micro-panels. */
typedef void (*lt__transpose16_fn)(const float *src, int64_t lds, int64_t kc, float *dst, int64_t ldd);

typedef struct lt__gemm_kernel {
    int mr, nr;                     /* tile shape (nr a multiple of 16) */
    lt__gemm_ukernel_fn ukernel;
    lt__transpose16_fn transpose16;
    /* Packs a full MR-row micro-panel of row-major A (dst[k·MR + r] = src[r·lds + k]), or NULL
     * for the portable loop. */
    void (*pack_a_full)(const float *src, int64_t lds, int64_t kc, float *dst);
    int isa;                        /* the lt_isa this variant belongs to */
} lt__gemm_kernel;

/* The kernel of an ISA (LT_ISA_SCALAR always exists). */
const lt__gemm_kernel *lt__gemm_kernel_for_isa(int isa);

/* Packer: writes the packed panel of B for columns j0 ..< j0 + nc and rows k0 ..< k0 + kc into
 * dst (layout above, ceil(nc / NR) micro-panels, zero past N). `scratch` is the thread's
 * scratch area of the size the packer declared (lt__gemm_b.scratch_per_*). Runs
 * inside the parallel region: must be reentrant and allocation-free. */
typedef void (*lt__gemm_pack_b_fn)(const void *ctx, const lt__gemm_kernel *kern, int64_t j0,
                                   int64_t nc, int64_t k0, int64_t kc, float *dst, float *scratch);

typedef struct lt__gemm_b {
    lt__gemm_pack_b_fn pack;
    const void *ctx;
    int64_t scratch_per_kc;         /* the packer's scratch per thread: scratch_per_kc · kc */
    int64_t scratch_per_nc;         /*   + scratch_per_nc · nc + scratch_const floats */
    int64_t scratch_const;
    int64_t kc_multiple;            /* every chunk of K but the last is a multiple of this
                                       (e.g. the quant block when k runs along stored rows) */
    int64_t nc_align;               /* preferred alignment of panel starts (e.g. the quant block
                                       when columns run along stored rows); 1 if none. Panels
                                       are lcm(NR, nc_align) wide when that is at most twice
                                       the larger of the two, else the smallest multiple of NR
                                       >= nc_align (and the packer meets unaligned starts). */
} lt__gemm_b;

/* Epilogue: how a finished tile P = A·B reaches C:
 *   beta == 0:  C = alpha·P          (C is not read: NaN or garbage in C is overwritten)
 *   otherwise:  C = alpha·P + beta·C (each product rounded, then the sum; no fma)
 * alpha == 1 gives P exactly, so {1, 0} stores and {1, 1} adds (C + P). */
typedef struct lt__gemm_epilogue {
    float alpha, beta;
    /* Optional, run on each tile of C once it is final (after the alpha/beta step), by the
     * thread that computed it, while the tile is hot: rows i ..< i + rows, columns j ..< j + cols
     * of C, at c (ld ldc). Fused terms (a LoRA update) plug in here. It must write only that
     * tile. NULL: nothing. */
    void (*tile_hook)(const void *ctx, int64_t i, int64_t j, int64_t rows, int64_t cols, float *c, int64_t ldc);
    const void *hook_ctx;
} lt__gemm_epilogue;

/* How A is read: row-major M × K (lda) in place, or transposed (stored K × M, lda). */
/* C[r, j] = alpha · T[r·ldt + j·st] (+ beta · C[r, j] unless beta = 0) for mr × nr elements:
 * the one epilogue of the core (each product rounded, then the sum; FP_CONTRACT off). st = 1 for
 * a row-major tile, st = ldt' of a transposed one (lt_gemm_f32's narrow outputs). */
void lt__gemm_epilogue_apply(const lt__gemm_epilogue *epi, const float *t, int64_t ldt, int64_t st,
                             float *c, int64_t ldc, int64_t mr, int64_t nr);

typedef struct lt__gemm_a {
    const float *p;
    int64_t ld;
    int trans;
} lt__gemm_a;

/* The blocking chosen for a shape (a pure function of the shape, the kernel and the packer). */
typedef struct lt__gemm_plan {
    int64_t kc, nc, mc;
    int64_t per_thread_floats;      /* workspace one thread needs */
    int64_t prepacked_per_thread_floats;    /* the same when B is prepacked (lt__gemm_run_prepacked):
                                               no B panel, no packer scratch */
} lt__gemm_plan;

/* threads: the team size the plan balances its tasks for (the blocking never changes a bit of
 * the result, see above); per_thread_floats does not depend on it. kc depends on K and
 * b->kc_multiple only (never on M, N, the ISA or the team): a B prepacked in chunks of kc (below)
 * serves every plan of its K. nc is a multiple of NR when b->nc_align = 1 (the float32 packers). */
void lt__gemm_make_plan(const lt__gemm_kernel *kern, int64_t M, int64_t N, int64_t K,
                        const lt__gemm_b *b, int threads, lt__gemm_plan *plan);

/* Shared packed B. When K spans several chunks, every M-block's task would pack its B panel
 * chunks again; instead the team first packs all of B once (each thread a share of the
 * (panel, chunk) pieces, into one area after the threads' shares), then the tasks read it. Only
 * for products whose packed B is at most LT_GEMM_SHARED_B_MAX floats (it would otherwise hold
 * a float copy of a large — possibly quantized — weight), and only when the caller's workspace
 * has room for it on top of the threads' shares. The packing is the same, so are the bits.
 * Floats a workspace reserves for it (0: the product packs per task). */
#ifndef LT_GEMM_SHARED_B_MAX
#define LT_GEMM_SHARED_B_MAX (2 * 1024 * 1024)
#endif
int64_t lt__gemm_shared_b_floats(int64_t N, int64_t K);

/* Prepacked B (a frozen weight packed once, lt_sgemm_pack_b in lt_gemm.h). All of B in the
 * core's packed layout, chunk-major then micro-panel-major:
 *     [k-chunk c (K in chunks of kc, as the plan cuts it)][micro-panel q of NR columns][k][NR]
 * chunk c (k0 = c·kc, depth kcur) starts at round_up(N, NR)·k0, and its micro-panel q at
 * + q·kcur·NR: the panel of any nc columns from j0 (multiples of NR) is the contiguous range
 * from round_up(N, NR)·k0 + j0·kcur, exactly what a packer writes for (j0, nc, k0, kcur) — so a
 * task reads its panels in place for whatever plan (nc, mc) the shape and team give. Columns at
 * or past N are zero. round_up(N, NR)·K floats. */
static inline const float *lt__gemm_prepacked_panel(const float *packed, int64_t N, int nr, int64_t j0,
                                                    int64_t k0, int64_t kcur) {
    return packed + ((N + nr - 1) / nr * nr) * k0 + j0 * kcur;
}
/* Packs all of B (N columns, K rows, chunks of kc) into `dst` in the prepacked layout, on up to
 * `max_threads` threads (fixed pieces: a copy, whatever thread does it). Only for packers whose
 * scratch is at most 16·kc floats (b->scratch_per_nc = b->scratch_const = 0; the float32
 * packers): the scratch is on each thread's stack. N, K >= 1. */
void lt__gemm_prepack_b(const lt__gemm_kernel *kern, int64_t N, int64_t K, int64_t kc, const lt__gemm_b *b,
                        float *dst, int max_threads);
/* lt__gemm_run with B read from `packed` (the prepacked layout above, made for this kernel's NR
 * and plan->kc) instead of a packer: no B packing at all, and each thread's share is
 * plan->prepacked_per_thread_floats. Same bits as lt__gemm_run with the packer that made it. */
void lt__gemm_run_prepacked(const lt__gemm_kernel *kern, const lt__gemm_plan *plan, int64_t M, int64_t N,
                            int64_t K, const lt__gemm_a *A, const float *packed,
                            const lt__gemm_epilogue *epi, float *C, int64_t ldc,
                            float *workspace, int64_t workspace_floats, int max_threads);

/* Tasks of a plan (N-panels × M-blocks): the units the team shares out. */
int64_t lt__gemm_tasks(const lt__gemm_plan *plan, int64_t M, int64_t N);
/* 1 when a product of this size uses the team at all (the LT_PARALLEL_IF threshold). */
int lt__gemm_uses_team(int64_t M, int64_t N, int64_t K);

/* Runs the product on up to `max_threads` threads (fewer when the workspace holds fewer
 * per-thread shares; the caller checked that it holds at least one). Sizes must be valid and
 * non-empty (M, N >= 1; K >= 0: K = 0 gives A·B = 0). */
void lt__gemm_run(const lt__gemm_kernel *kern, const lt__gemm_plan *plan, int64_t M, int64_t N,
                  int64_t K, const lt__gemm_a *A, const lt__gemm_b *b,
                  const lt__gemm_epilogue *epi, float *C, int64_t ldc,
                  float *workspace, int64_t workspace_floats, int max_threads);

/* C = op(A)·op(B) (m × n, C overwritten) on the core with the calling thread's buffer, then
 * `hook` on every finished tile (see lt__gemm_epilogue). Returns 1 when done, 0 when the core
 * cannot take it — the openblas backend, k = 0, an output narrow enough for lt_gemm_f32's
 * transposed path, no buffer — and nothing was written: the caller takes another way. Sizes must
 * have passed lt_gemm_f32's checks. */
int lt__gemm_f32_hooked(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                        const float *A, int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc,
                        void (*hook)(const void *ctx, int64_t i, int64_t j, int64_t rows, int64_t cols,
                                     float *c, int64_t ldc),
                        const void *hook_ctx);
/* The same with C = op(A)·op(B) + beta·C (beta 0 or 1: the core's epilogue, one rounding) before
 * the hook: an input gradient accumulated onto a residual gradient, then fused terms. */
int lt__gemm_f32_hooked_beta(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                             const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                             float *C, int64_t ldc,
                             void (*hook)(const void *ctx, int64_t i, int64_t j, int64_t rows, int64_t cols,
                                          float *c, int64_t ldc),
                             const void *hook_ctx);

/* C = op(A)·B (m × n, C overwritten: {alpha = 1, beta = 0}) with B read from a buffer made by
 * lt_sgemm_pack_b (header included; op(B) as trans_b was at pack time), then `hook` on every
 * finished tile, with the calling thread's buffer. Always the direct path (no narrow-output
 * transposition). Returns 1 when done, 0 when it declines — the openblas backend, m, n or k < 1,
 * a packed buffer not made for (k, n) and the active ISA, no buffer — and nothing was written.
 * Sizes and lda, ldc must have passed lt_sgemm_prepacked's checks. */
int lt__gemm_f32_prepacked_hooked(int trans_a, int64_t m, int64_t n, int64_t k, const float *A, int64_t lda,
                                  const float *packed, float *C, int64_t ldc,
                                  void (*hook)(const void *ctx, int64_t i, int64_t j, int64_t rows, int64_t cols,
                                               float *c, int64_t ldc),
                                  const void *hook_ctx);

/* Packers for float32 B. ctx points to an lt__gemm_f32_source. */
typedef struct lt__gemm_f32_source {
    const float *p;
    int64_t ld;
} lt__gemm_f32_source;
/* B = Wᵀ where W is row-major N × K (ld): a micro-panel is a transposed strip of W rows.
 * Scratch: 16 · kc floats (the ragged last strip is transposed from a zero-padded copy). */
void lt__gemm_pack_b_f32_t(const void *ctx, const lt__gemm_kernel *kern, int64_t j0, int64_t nc,
                           int64_t k0, int64_t kc, float *dst, float *scratch);
/* B row-major K × N (ld): a micro-panel is a copy of row pieces. No scratch. */
void lt__gemm_pack_b_f32_n(const void *ctx, const lt__gemm_kernel *kern, int64_t j0, int64_t nc,
                           int64_t k0, int64_t kc, float *dst, float *scratch);

/* Dynamic hand-out of tasks inside a parallel region: each call returns the next task index
 * (>= tasks: no work left). The Debian libomp (LLVM 14) lacks the dispatch entry point that
 * newer clangs emit for schedule(dynamic), so the counter is ours; which thread takes a task
 * never changes what the task computes. */
static inline int64_t lt__next_task(int64_t *counter) {
    return __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

/* Bookkeeping the packers share: the columns of panel q of a packed chunk, and its base. */
static inline float *lt__gemm_panel(float *dst, int64_t q, int64_t kc, int nr) {
    return dst + q * kc * (int64_t)nr;
}

/* Micro-kernels and transposes of each ISA (gemm_scalar.c, gemm_avx2.c, gemm_avx512.c). */
void lt__gemm_ukernel_scalar(int64_t kc, const float *ap, const float *bp, float *c,
                             int64_t ldc, int load_c);
void lt__transpose16_scalar(const float *src, int64_t lds, int64_t kc, float *dst, int64_t ldd);
#if defined(__x86_64__)
void lt__gemm_ukernel_avx2(int64_t kc, const float *ap, const float *bp, float *c,
                           int64_t ldc, int load_c);
void lt__transpose16_avx2(const float *src, int64_t lds, int64_t kc, float *dst, int64_t ldd);
void lt__gemm_pack_a8_avx2(const float *src, int64_t lds, int64_t kc, float *dst);
void lt__gemm_ukernel_avx512(int64_t kc, const float *ap, const float *bp, float *c,
                             int64_t ldc, int load_c);
void lt__transpose16_avx512(const float *src, int64_t lds, int64_t kc, float *dst, int64_t ldd);
#endif
/* Tile shapes of the variants. */
#define LT_GEMM_SCALAR_MR 4
#define LT_GEMM_SCALAR_NR 16
#define LT_GEMM_AVX2_MR 6
#define LT_GEMM_AVX2_NR 16
#define LT_GEMM_AVX512_MR 8
#define LT_GEMM_AVX512_NR 48
#define LT_GEMM_MAX_MR 8
#define LT_GEMM_MAX_NR 48

#endif /* LT_GEMM_INTERNAL_H */
