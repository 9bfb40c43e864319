/*
 * gemm.c — driver of the packed GEMM core (blocking, tasks, OpenMP team, epilogue) and the
 * float32 packers. Design and guarantees in gemm_internal.h.
 */
#pragma STDC FP_CONTRACT OFF
#include "gemm_internal.h"
#include "internal.h"
#include "simd.h"

extern int omp_get_thread_num(void);

/* ---- kernels ------------------------------------------------------------------------------ */

static const lt__gemm_kernel k_scalar = {LT_GEMM_SCALAR_MR, LT_GEMM_SCALAR_NR, lt__gemm_ukernel_scalar,
                                         lt__transpose16_scalar, NULL, LT_ISA_SCALAR};
#if defined(__x86_64__)
static const lt__gemm_kernel k_avx2 = {LT_GEMM_AVX2_MR, LT_GEMM_AVX2_NR, lt__gemm_ukernel_avx2,
                                       lt__transpose16_avx2, NULL, LT_ISA_AVX2};
static const lt__gemm_kernel k_avx512 = {LT_GEMM_AVX512_MR, LT_GEMM_AVX512_NR, lt__gemm_ukernel_avx512,
                                         lt__transpose16_avx512, lt__gemm_pack_a8_avx2, LT_ISA_AVX512};
#endif

const lt__gemm_kernel *lt__gemm_kernel_for_isa(int isa) {
#if defined(__x86_64__)
    if (isa == LT_ISA_AVX512) return &k_avx512;
    if (isa == LT_ISA_AVX2) return &k_avx2;
#endif
    (void)isa;
    return &k_scalar;
}

/* ---- blocking ----------------------------------------------------------------------------- */

/* Depth of a packed chunk (kc): K is split into equal chunks of at most LT_GEMM_KC. A task packs
 * its A block (mc × kc) and its B panel (kc × nc) into the thread's workspace, about the size
 * of the core's L2 (1 MiB per core here; sysfs cpu0/cache/index2); the micro-kernel then keeps
 * one A micro-panel (MR × kc: 8 · 384 · 4 B = 12 KiB on AVX-512) in L1 while the B micro-panels
 * of the task stream past it (three full vector loads per k, prefetched). One chunk covers
 * K <= 384 (MiniLM's hidden size), so those products never reload a partial tile; SmolLM2's
 * K = 576 takes two (a harness measured +2–8% with -DLT_GEMM_KC=576). Override at build time
 * for experiments (-DLT_GEMM_KC=… etc.); the blocking never changes a result bit (partial tiles
 * are reloaded exactly, and every element is one fma chain in k order). */
#ifndef LT_GEMM_KC
#define LT_GEMM_KC 384
#endif
/* Rows (mc) and columns (nc) of a task at most: A block 192 · 384 · 4 B = 288 KiB, B panel
 * 384 · 384 · 4 B = 576 KiB, partial block 192 · 384 · 4 B = 288 KiB per thread. Packing A costs
 * about 1/nc of the work and packing B 1/mc, so both are kept in the hundreds. */
#ifndef LT_GEMM_MC
#define LT_GEMM_MC 192
#endif
#ifndef LT_GEMM_NC
#define LT_GEMM_NC 384
#endif
/* 1: A micro-panel outer, B micro-panels inner (A in L1, B streamed from L2); 0: the reverse. */
#ifndef LT_GEMM_A_OUTER
#define LT_GEMM_A_OUTER 1
#endif

static int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }
static int64_t ceil_div(int64_t v, int64_t m) { return (v + m - 1) / m; }
static int64_t gcd64(int64_t a, int64_t b) { while (b) { int64_t t = a % b; a = b; b = t; } return a; }
/* 16 floats = 64 bytes: keeps the per-thread pieces on cache-line boundaries. */
static int64_t pad16(int64_t v) { return round_up(v, 16); }

void lt__gemm_make_plan(const lt__gemm_kernel *kern, int64_t M, int64_t N, int64_t K,
                        const lt__gemm_b *b, int threads, lt__gemm_plan *plan) {
    const int64_t mr = kern->mr, nr = kern->nr;
    const int64_t kmul = b->kc_multiple > 0 ? b->kc_multiple : 1;
    const int64_t align = b->nc_align > 0 ? b->nc_align : 1;
    if (M < 1) M = 1;
    if (N < 1) N = 1;
    /* kc: K split into equal chunks of about LT_GEMM_KC, each a multiple of kmul. It depends on
     * K and kmul only (a prepacked B relies on it: gemm_internal.h). */
    int64_t kc = K;
    if (K > LT_GEMM_KC) kc = round_up(ceil_div(K, ceil_div(K, LT_GEMM_KC)), kmul);
    if (kc < 1) kc = 1;
    /* nc: whole units of width u (one micro-panel, or aligned units, see nc_align), about
     * LT_GEMM_NC wide, the panels of N equal. */
    int64_t u = nr * (align / gcd64(nr, align));
    if (u > 2 * (nr > align ? nr : align)) u = round_up(align, nr);
    int64_t nc = LT_GEMM_NC / u * u;
    if (nc < u) nc = u;
    nc = round_up(ceil_div(N, ceil_div(N, nc)), u);
    /* mc: equal M-blocks of at most LT_GEMM_MC rows (whole tiles). */
    int64_t cap = LT_GEMM_MC / mr * mr;
    if (cap < mr) cap = mr;
    int64_t mc = round_up(ceil_div(M, ceil_div(M, cap)), mr);
    plan->per_thread_floats = pad16(kc * nc) + pad16(mc * kc) + pad16(mc * nc) +
                              pad16(b->scratch_per_kc * kc + b->scratch_per_nc * nc + b->scratch_const);
    plan->prepacked_per_thread_floats = pad16(mc * kc) + pad16(mc * nc);
    /* Balance (the workspace above stays an upper bound: mc and nc only shrink): with a team,
     * at least 4 tasks per thread where the shape allows (M-blocks down to 4 tiles, then
     * narrower N-panels), so that dynamic hand-out evens out a busy core; then more M-blocks
     * until the task count is a multiple of the team. */
    if (threads > 1) {
        const int64_t target = 4 * (int64_t)threads;
        while (ceil_div(M, mc) * ceil_div(N, nc) < target) {
            const int64_t m2 = round_up(ceil_div(M, ceil_div(M, mc) + 1), mr);
            const int64_t n2 = round_up(ceil_div(N, ceil_div(N, nc) + 1), u);
            if (mc > 4 * mr && m2 < mc) mc = m2;
            else if (n2 < nc) nc = n2;
            else break;
        }
        const int64_t panels = ceil_div(N, nc);
        if ((ceil_div(M, mc) * panels) % threads != 0) {
            for (int64_t blocks = ceil_div(M, mc) + 1; blocks <= ceil_div(M, mr) && blocks <= 4 * ceil_div(M, mc) + threads; blocks++) {
                const int64_t m2 = round_up(ceil_div(M, blocks), mr);
                if ((ceil_div(M, m2) * panels) % threads == 0) { mc = m2; break; }
            }
        }
    }
    plan->kc = kc;
    plan->nc = nc;
    plan->mc = mc;
}

/* ---- packing A ---------------------------------------------------------------------------- */

#ifndef LT_GEMM_PF_ROWS
#define LT_GEMM_PF_ROWS 8
#endif

/* dst[0 ..< n] = src[0 ..< n]; inlined with a constant n, a few vector moves. */
static inline __attribute__((always_inline)) void copy_n(float *dst, const float *src, int n) {
    for (int i = 0; i < n; i++) dst[i] = src[i];
}

/* The A block of a task chunk: rows i0 ..< i0 + mcur, k0 ..< k0 + kc, as ceil(mcur / mr)
 * micro-panels of mr rows, k-major (A[i0 + t·mr + r, k0 + k] at dst[t·mr·kc + k·mr + r]); rows
 * past the edge are zero. Stored A is read along its rows (contiguous) in both layouts. */
static void pack_a_block(const lt__gemm_kernel *kern, const lt__gemm_a *A, int64_t i0, int64_t mcur,
                         int64_t k0, int64_t kc, float *dst) {
    const int64_t mr = kern->mr, ld = A->ld, ntiles = (mcur + mr - 1) / mr;
    if (A->trans) {                         /* A[i, k] = p[k · ld + i]: one stored row per k */
        for (int64_t k = 0; k < kc; k++) {
            const float *s = A->p + (k0 + k) * ld + i0;
            /* The pieces are a page apart or more: hint the one LT_GEMM_PF_ROWS rows ahead (the
             * hardware prefetcher stays within a page). */
            if (k + LT_GEMM_PF_ROWS < kc)
                for (int64_t c = 0; c < mcur; c += 16) __builtin_prefetch(s + LT_GEMM_PF_ROWS * ld + c, 0, 3);
            const int64_t full = mcur / mr;
            int64_t t = 0;
            if (mr == 8) for (; t < full; t++) copy_n(dst + t * 8 * kc + k * 8, s + t * 8, 8);
            else if (mr == 6) for (; t < full; t++) copy_n(dst + t * 6 * kc + k * 6, s + t * 6, 6);
            else if (mr == 4) for (; t < full; t++) copy_n(dst + t * 4 * kc + k * 4, s + t * 4, 4);
            for (; t < ntiles; t++) {
                float *d = dst + t * mr * kc + k * mr;
                const int64_t rows = mcur - t * mr < mr ? mcur - t * mr : mr;
                int64_t r = 0;
                for (; r < rows; r++) d[r] = s[t * mr + r];
                for (; r < mr; r++) d[r] = 0.0f;
            }
        }
        return;
    }
    for (int64_t t = 0; t < ntiles; t++) {
        const int64_t rows = mcur - t * mr < mr ? mcur - t * mr : mr;
        const float *s = A->p + (i0 + t * mr) * ld + k0;
        float *d = dst + t * mr * kc;
        if (rows == mr && kern->pack_a_full) { kern->pack_a_full(s, ld, kc, d); continue; }
        for (int64_t r = 0; r < mr; r++) {
            if (r < rows) for (int64_t k = 0; k < kc; k++) d[k * mr + r] = s[r * ld + k];
            else for (int64_t k = 0; k < kc; k++) d[k * mr + r] = 0.0f;
        }
    }
}

/* ---- epilogue ----------------------------------------------------------------------------- */

void lt__gemm_epilogue_apply(const lt__gemm_epilogue *epi, const float *t, int64_t ldt, int64_t st,
                             float *c, int64_t ldc, int64_t mr, int64_t nr) {
    const float alpha = epi->alpha, beta = epi->beta;
    for (int64_t r = 0; r < mr; r++) {
        const float *s = t + r * ldt;
        float *d = c + r * ldc;
        if (beta == 0.0f) {
            if (alpha == 1.0f && st == 1) memcpy(d, s, (size_t)nr * sizeof(float));
            else if (alpha == 1.0f) for (int64_t j = 0; j < nr; j++) d[j] = s[j * st];
            else for (int64_t j = 0; j < nr; j++) d[j] = alpha * s[j * st];
        } else if (alpha == 1.0f && beta == 1.0f) {
            for (int64_t j = 0; j < nr; j++) d[j] = d[j] + s[j * st];
        } else {
            for (int64_t j = 0; j < nr; j++) d[j] = alpha * s[j * st] + beta * d[j];
        }
    }
}

/* Tile (i, j) of C from its partial block t: the alpha/beta step, then the tile hook. */
static void epilogue_tile(const lt__gemm_epilogue *epi, const float *t, int64_t ldt, float *c,
                          int64_t ldc, int64_t i, int64_t j, int64_t mr, int64_t nr) {
    lt__gemm_epilogue_apply(epi, t, ldt, 1, c, ldc, mr, nr);
    if (epi->tile_hook) epi->tile_hook(epi->hook_ctx, i, j, mr, nr, c, ldc);
}

/* ---- driver ------------------------------------------------------------------------------- */

int64_t lt__gemm_shared_b_floats(int64_t N, int64_t K) {
    if (K <= LT_GEMM_KC || N < 1) return 0;          /* one chunk: see the reuse in lt__gemm_run */
    const int64_t f = pad16(round_up(N, LT_GEMM_MAX_NR) * K);
    return f <= LT_GEMM_SHARED_B_MAX ? f : 0;
}

int64_t lt__gemm_tasks(const lt__gemm_plan *plan, int64_t M, int64_t N) {
    return ((N + plan->nc - 1) / plan->nc) * ((M + plan->mc - 1) / plan->mc);
}

int lt__gemm_uses_team(int64_t M, int64_t N, int64_t K) {
    return LT_PARALLEL_IF(2.0 * (double)M * (double)N * (double)K);
}

/* The driver: B from the packer `b`, or (pre != NULL) read in place from a prepacked B. */
static void run(const lt__gemm_kernel *kern, const lt__gemm_plan *plan, int64_t M, int64_t N,
                int64_t K, const lt__gemm_a *A, const lt__gemm_b *b, const float *pre,
                const lt__gemm_epilogue *epi, float *C, int64_t ldc,
                float *workspace, int64_t workspace_floats, int max_threads) {
    const int64_t mr = kern->mr, nr = kern->nr;
    const int64_t kc = plan->kc, nc = plan->nc, mc = plan->mc;
    const int64_t mblocks = (M + mc - 1) / mc;
    const int64_t tasks = lt__gemm_tasks(plan, M, N);
    const int64_t per_thread = pre ? plan->prepacked_per_thread_floats : plan->per_thread_floats;
    int64_t threads = workspace_floats / per_thread;
    if (threads > max_threads) threads = max_threads;
    if (threads > tasks) threads = tasks;
    if (!lt__gemm_uses_team(M, N, K)) threads = 1;
    if (threads < 1) threads = 1;
    /* Shared packed B (gemm_internal.h), the area the size queries reserve: B's pieces at
     * [j0·K + round_up(ncur, nr)·k0] (panels start at multiples of nr, so the panels before j0
     * fill j0·K floats; all of B fits in round_up(N, nr)·K). */
    int64_t shared = 0;
    if (!pre && K > kc && mblocks > 1) {
        const int64_t f = lt__gemm_shared_b_floats(N, K);
        if (f > 0 && workspace_floats - f >= threads * per_thread) shared = f;
    }
    float *const sb = workspace;                     /* the shared B, when shared > 0 */
    workspace += shared;
    const int64_t kchunks = (K + kc - 1) / kc, npanels = (N + nc - 1) / nc;
    /* A thread's share: [B panel (not with a prepacked B)][A block][partial block][scratch]. */
    const int64_t off_a = pre ? 0 : pad16(kc * nc), off_c = off_a + pad16(mc * kc), off_s = off_c + pad16(mc * nc);
    /* Full tiles of a plain store (C = A·B) keep their partial sums in C itself (C is not
     * read otherwise); every other tile goes through the thread's partial block. */
    const int direct = epi->alpha == 1.0f && epi->beta == 0.0f;
    const lt__gemm_ukernel_fn uk = kern->ukernel;

    int64_t counter = 0, pack_counter = 0;
    #pragma omp parallel num_threads((int)threads) if (threads > 1)
    {
        float *base = workspace + (int64_t)omp_get_thread_num() * per_thread;
        float *bbuf = base, *abuf = base + off_a, *cpart = base + off_c, *scratch = pre ? NULL : base + off_s;
        int noted = 0;
        int64_t packed_j0 = -1;             /* panel held in bbuf (single-chunk products) */
        if (shared) {
            /* every (panel, chunk) piece of B once, then wait for the whole of it */
            for (int64_t u; (u = lt__next_task(&pack_counter)) < npanels * kchunks;) {
                if (!noted) { lt__note_thread(); noted = 1; }
                const int64_t j0 = (u / kchunks) * nc, k0 = (u % kchunks) * kc;
                const int64_t ncur = N - j0 < nc ? N - j0 : nc, kcur = K - k0 < kc ? K - k0 : kc;
                b->pack(b->ctx, kern, j0, ncur, k0, kcur, sb + j0 * K + round_up(ncur, nr) * k0, scratch);
            }
            #pragma omp barrier
        }
        for (int64_t t; (t = lt__next_task(&counter)) < tasks;) {
            if (!noted) { lt__note_thread(); noted = 1; }
            const int64_t j0 = (t / mblocks) * nc, i0 = (t % mblocks) * mc;
            const int64_t ncur = N - j0 < nc ? N - j0 : nc, mcur = M - i0 < mc ? M - i0 : mc;
            const int64_t npan = (ncur + nr - 1) / nr, ntiles = (mcur + mr - 1) / mr;
            const int64_t ldp = npan * nr;
            if (K == 0) {
                memset(cpart, 0, (size_t)(ntiles * mr * ldp) * sizeof(float));
                for (int64_t it = 0; it < ntiles; it++) {
                    const int64_t i = i0 + it * mr, rows = M - i < mr ? M - i : mr;
                    epilogue_tile(epi, cpart + it * mr * ldp, ldp, C + i * ldc + j0, ldc, i, j0, rows, ncur);
                }
                continue;
            }
            for (int64_t k0 = 0; k0 < K; k0 += kc) {
                const int64_t kcur = K - k0 < kc ? K - k0 : kc;
                const int last = k0 + kcur >= K;
                /* One chunk (K <= kc): the packed panel of the thread's previous task is still
                 * in bbuf; consecutive tasks usually share it (tasks run panel-major). */
                const float *bpanel = bbuf;
                if (pre) bpanel = lt__gemm_prepacked_panel(pre, N, (int)nr, j0, k0, kcur);
                else if (shared) bpanel = sb + j0 * K + round_up(ncur, nr) * k0;
                else if (!(K == kcur && packed_j0 == j0)) b->pack(b->ctx, kern, j0, ncur, k0, kcur, bbuf, scratch);
                packed_j0 = K == kcur ? j0 : -1;
                pack_a_block(kern, A, i0, mcur, k0, kcur, abuf);
#if LT_GEMM_A_OUTER
                for (int64_t it = 0; it < ntiles; it++) {
                    for (int64_t q = 0; q < npan; q++) {
#else
                for (int64_t q = 0; q < npan; q++) {
                    for (int64_t it = 0; it < ntiles; it++) {
#endif
                        const int64_t i = i0 + it * mr, rows = M - i < mr ? M - i : mr;
                        const int64_t j = j0 + q * nr, cols = N - j < nr ? N - j : nr;
                        const float *ap = abuf + it * mr * kcur, *bp = bpanel + q * kcur * nr;
                        if (direct && rows == mr && cols == nr) {
                            uk(kcur, ap, bp, C + i * ldc + j, ldc, k0 > 0);
                            if (last && epi->tile_hook) epi->tile_hook(epi->hook_ctx, i, j, rows, cols, C + i * ldc + j, ldc);
                        } else {
                            float *ct = cpart + it * mr * ldp + q * nr;
                            uk(kcur, ap, bp, ct, ldp, k0 > 0);
                            if (last) epilogue_tile(epi, ct, ldp, C + i * ldc + j, ldc, i, j, rows, cols);
                        }
                    }
                }
            }
        }
    }
}

void lt__gemm_run(const lt__gemm_kernel *kern, const lt__gemm_plan *plan, int64_t M, int64_t N,
                  int64_t K, const lt__gemm_a *A, const lt__gemm_b *b,
                  const lt__gemm_epilogue *epi, float *C, int64_t ldc,
                  float *workspace, int64_t workspace_floats, int max_threads) {
    run(kern, plan, M, N, K, A, b, NULL, epi, C, ldc, workspace, workspace_floats, max_threads);
}

void lt__gemm_run_prepacked(const lt__gemm_kernel *kern, const lt__gemm_plan *plan, int64_t M, int64_t N,
                            int64_t K, const lt__gemm_a *A, const float *packed,
                            const lt__gemm_epilogue *epi, float *C, int64_t ldc,
                            float *workspace, int64_t workspace_floats, int max_threads) {
    run(kern, plan, M, N, K, A, NULL, packed, epi, C, ldc, workspace, workspace_floats, max_threads);
}

/* ---- prepacked B ------------------------------------------------------------------------------ */

void lt__gemm_prepack_b(const lt__gemm_kernel *kern, int64_t N, int64_t K, int64_t kc, const lt__gemm_b *b,
                        float *dst, int max_threads) {
    const int64_t nr = kern->nr, npan = ceil_div(N, nr), kchunks = ceil_div(K, kc);
    /* Pieces: (chunk, group of micro-panels about LT_GEMM_NC wide), each written by one packer
     * call at its place in the layout (gemm_internal.h). */
    int64_t g = LT_GEMM_NC / nr;
    if (g < 1) g = 1;
    const int64_t groups = ceil_div(npan, g), pieces = kchunks * groups;
    int threads = max_threads;
    if (threads > pieces) threads = (int)pieces;
    if ((double)N * (double)K < 65536.0) threads = 1;     /* a copy: small ones are not worth a team */
    if (threads < 1) threads = 1;
    int64_t counter = 0;
    #pragma omp parallel num_threads(threads) if (threads > 1)
    {
        float scratch[16 * LT_GEMM_KC];     /* the transposing packer's 16·kc floats (kc <= LT_GEMM_KC) */
        for (int64_t u; (u = lt__next_task(&counter)) < pieces;) {
            const int64_t k0 = (u / groups) * kc, j0 = (u % groups) * g * nr;
            const int64_t kcur = K - k0 < kc ? K - k0 : kc, ncur = N - j0 < g * nr ? N - j0 : g * nr;
            b->pack(b->ctx, kern, j0, ncur, k0, kcur, dst + round_up(N, nr) * k0 + j0 * kcur, scratch);
        }
    }
}

/* ---- float32 packers ---------------------------------------------------------------------- */

void lt__gemm_pack_b_f32_t(const void *ctx, const lt__gemm_kernel *kern, int64_t j0, int64_t nc,
                           int64_t k0, int64_t kc, float *dst, float *scratch) {
    const lt__gemm_f32_source *s = (const lt__gemm_f32_source *)ctx;
    const int64_t nr = kern->nr, npan = (nc + nr - 1) / nr;
    for (int64_t q = 0; q < npan; q++) {
        float *panel = lt__gemm_panel(dst, q, kc, (int)nr);
        for (int64_t g = 0; g < nr; g += 16) {
            const int64_t j = j0 + q * nr + g;          /* first W row of this 16-row strip */
            const int64_t rows = nc - (q * nr + g);
            if (rows >= 16) {
                kern->transpose16(s->p + j * s->ld + k0, s->ld, kc, panel + g, nr);
            } else {                                      /* ragged strip: zero-padded copy */
                for (int64_t r = 0; r < 16; r++) {
                    if (r < rows) memcpy(scratch + r * kc, s->p + (j + r) * s->ld + k0, (size_t)kc * sizeof(float));
                    else memset(scratch + r * kc, 0, (size_t)kc * sizeof(float));
                }
                kern->transpose16(scratch, kc, kc, panel + g, nr);
            }
        }
    }
}

void lt__gemm_pack_b_f32_n(const void *ctx, const lt__gemm_kernel *kern, int64_t j0, int64_t nc,
                           int64_t k0, int64_t kc, float *dst, float *scratch) {
    (void)scratch;
    const lt__gemm_f32_source *s = (const lt__gemm_f32_source *)ctx;
    const int64_t nr = kern->nr, npan = (nc + nr - 1) / nr;
    for (int64_t k = 0; k < kc; k++) {          /* one stored row piece per k, read contiguously */
        const float *src = s->p + (k0 + k) * s->ld + j0;
        const int64_t full = nc / nr;
        int64_t q = 0;
        if (nr == 48) for (; q < full; q++) copy_n(dst + q * kc * 48 + k * 48, src + q * 48, 48);
        else if (nr == 16) for (; q < full; q++) copy_n(dst + q * kc * 16 + k * 16, src + q * 16, 16);
        for (; q < npan; q++) {
            float *p = lt__gemm_panel(dst, q, kc, (int)nr) + k * nr;
            const int64_t cols = nc - q * nr < nr ? nc - q * nr : nr;
            int64_t c = 0;
            for (; c < cols; c++) p[c] = src[q * nr + c];
            for (; c < nr; c++) p[c] = 0.0f;
        }
    }
}
