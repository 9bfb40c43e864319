/*
 * gemm.c — driver of the packed GEMM core (blocking, tasks, OpenMP team, epilogue) and the
 * float32 packers. Design and guarantees in gemm_internal.h.
 */
#pragma STDC FP_CONTRACT OFF
#include "gemm_internal.h"
#include "internal.h"

extern int omp_get_thread_num(void);

/* ---- kernels ------------------------------------------------------------------------------ */

static const lt__gemm_kernel k_scalar = {LT_GEMM_SCALAR_MR, LT_GEMM_SCALAR_NR, lt__gemm_ukernel_scalar,
                                         lt__transpose16_scalar, LT_ISA_SCALAR};
#if defined(__x86_64__)
static const lt__gemm_kernel k_avx2 = {LT_GEMM_AVX2_MR, LT_GEMM_AVX2_NR, lt__gemm_ukernel_avx2,
                                       lt__transpose16_avx2, LT_ISA_AVX2};
static const lt__gemm_kernel k_avx512 = {LT_GEMM_AVX512_MR, LT_GEMM_AVX512_NR, lt__gemm_ukernel_avx512,
                                         lt__transpose16_avx512, LT_ISA_AVX512};
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

/* Target depth of a packed chunk of B: a micro-panel's kc · NR floats stay in L1 (with the
 * tile's A rows) while every tile of the task's M-block streams past it: 128 · 48 · 4 B =
 * 24 KiB of a 48 KiB L1 on AVX-512. Override at build time for experiments (-DLT_GEMM_KC=…);
 * the value never changes a result bit (partial tiles are reloaded exactly). */
#ifndef LT_GEMM_KC
#define LT_GEMM_KC 128
#endif
/* Cap of the partial-result block of a task (mc · nc floats) and of mc. */
#ifndef LT_GEMM_PARTIAL_FLOATS
#define LT_GEMM_PARTIAL_FLOATS 65536
#endif
#ifndef LT_GEMM_MC_MAX
#define LT_GEMM_MC_MAX 1024
#endif

static int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }
static int64_t gcd64(int64_t a, int64_t b) { while (b) { int64_t t = a % b; a = b; b = t; } return a; }
/* 16 floats = 64 bytes: keeps the per-thread pieces on cache-line boundaries. */
static int64_t pad16(int64_t v) { return round_up(v, 16); }

void lt__gemm_make_plan(const lt__gemm_kernel *kern, int64_t M, int64_t N, int64_t K,
                        const lt__gemm_b *b, lt__gemm_plan *plan) {
    const int64_t mr = kern->mr, nr = kern->nr;
    const int64_t kmul = b->kc_multiple > 0 ? b->kc_multiple : 1;
    const int64_t align = b->nc_align > 0 ? b->nc_align : 1;
    /* kc: K split into equal chunks of about LT_GEMM_KC, each a multiple of kmul. */
    int64_t kc = K;
    if (K > LT_GEMM_KC) {
        const int64_t chunks = (K + LT_GEMM_KC - 1) / LT_GEMM_KC;
        kc = round_up((K + chunks - 1) / chunks, kmul);
    }
    if (kc < 1) kc = 1;
    /* nc: one micro-panel, or whole aligned units when that stays narrow (see nc_align). */
    int64_t nc = nr * (align / gcd64(nr, align));
    if (nc > 2 * (nr > align ? nr : align)) nc = round_up(align, nr);
    if (nc > round_up(N, nr)) nc = round_up(N > 0 ? N : 1, nr);
    /* mc: all of M when the partial block stays small, else capped. */
    int64_t mc = round_up(M > 0 ? M : 1, mr);
    int64_t cap = LT_GEMM_PARTIAL_FLOATS / nc / mr * mr;
    if (cap > LT_GEMM_MC_MAX) cap = LT_GEMM_MC_MAX / mr * mr;
    if (cap < mr) cap = mr;
    if (mc > cap) {
        const int64_t blocks = (mc + cap - 1) / cap;
        mc = round_up((mc + blocks - 1) / blocks, mr);
    }
    plan->kc = kc;
    plan->nc = nc;
    plan->mc = mc;
    plan->per_thread_floats = pad16(kc * nc) + pad16(mc * nc) + pad16(mr * kc) +
                              pad16(b->scratch_per_kc * kc + b->scratch_per_nc * nc + b->scratch_const);
}

/* ---- epilogue ----------------------------------------------------------------------------- */

static void epilogue_tile(const lt__gemm_epilogue *epi, const float *t, int64_t ldt, float *c,
                          int64_t ldc, int64_t mr, int64_t nr) {
    for (int64_t r = 0; r < mr; r++) {
        const float *s = t + r * ldt;
        float *d = c + r * ldc;
        if (epi->accumulate) for (int64_t j = 0; j < nr; j++) d[j] += s[j];
        else memcpy(d, s, (size_t)nr * sizeof(float));
    }
}

/* ---- driver ------------------------------------------------------------------------------- */

int64_t lt__gemm_tasks(const lt__gemm_plan *plan, int64_t M, int64_t N) {
    return ((N + plan->nc - 1) / plan->nc) * ((M + plan->mc - 1) / plan->mc);
}

int lt__gemm_uses_team(int64_t M, int64_t N, int64_t K) {
    return LT_PARALLEL_IF(2.0 * (double)M * (double)N * (double)K);
}

void lt__gemm_run(const lt__gemm_kernel *kern, const lt__gemm_plan *plan, int64_t M, int64_t N,
                  int64_t K, const float *A, int64_t lda, const lt__gemm_b *b,
                  const lt__gemm_epilogue *epi, float *C, int64_t ldc,
                  float *workspace, int64_t workspace_floats, int max_threads) {
    const int64_t mr = kern->mr, nr = kern->nr;
    const int64_t kc = plan->kc, nc = plan->nc, mc = plan->mc;
    const int64_t mblocks = (M + mc - 1) / mc;
    const int64_t tasks = lt__gemm_tasks(plan, M, N);
    int64_t threads = workspace_floats / plan->per_thread_floats;
    if (threads > max_threads) threads = max_threads;
    if (threads > tasks) threads = tasks;
    if (!lt__gemm_uses_team(M, N, K)) threads = 1;
    if (threads < 1) threads = 1;
    const int64_t off_c = pad16(kc * nc), off_a = off_c + pad16(mc * nc), off_s = off_a + pad16(mr * kc);

    int64_t counter = 0;
    #pragma omp parallel num_threads((int)threads) if (threads > 1)
    {
        float *base = workspace + (int64_t)omp_get_thread_num() * plan->per_thread_floats;
        float *bbuf = base, *cpart = base + off_c, *apad = base + off_a, *scratch = base + off_s;
        for (int64_t t; (t = lt__next_task(&counter)) < tasks;) {
            const int64_t j0 = (t / mblocks) * nc, i0 = (t % mblocks) * mc;
            const int64_t ncur = N - j0 < nc ? N - j0 : nc, mcur = M - i0 < mc ? M - i0 : mc;
            const int64_t npan = (ncur + nr - 1) / nr, ntiles = (mcur + mr - 1) / mr;
            const int64_t ldp = npan * nr;
            if (K == 0) memset(cpart, 0, (size_t)(ntiles * mr * ldp) * sizeof(float));
            for (int64_t k0 = 0; k0 < K; k0 += kc) {
                const int64_t kcur = K - k0 < kc ? K - k0 : kc;
                const int last = k0 + kcur >= K;
                b->pack(b->ctx, kern, j0, ncur, k0, kcur, bbuf, scratch);
                for (int64_t it = 0; it < ntiles; it++) {
                    const int64_t i = i0 + it * mr, rows = M - i < mr ? M - i : mr;
                    const float *a = A + i * lda + k0;
                    int64_t alda = lda;
                    if (rows < mr) {          /* ragged last tile: zero-padded copy of its rows */
                        for (int64_t r = 0; r < mr; r++) {
                            if (r < rows) memcpy(apad + r * kcur, a + r * lda, (size_t)kcur * sizeof(float));
                            else memset(apad + r * kcur, 0, (size_t)kcur * sizeof(float));
                        }
                        a = apad;
                        alda = kcur;
                    }
                    float *ct = cpart + it * mr * ldp;
                    for (int64_t q = 0; q < npan; q++) {
                        kern->ukernel(kcur, a, alda, bbuf + q * kcur * nr, ct + q * nr, ldp, k0 > 0);
                        if (last) {
                            const int64_t j = j0 + q * nr, cols = N - j < nr ? N - j : nr;
                            epilogue_tile(epi, ct + q * nr, ldp, C + i * ldc + j, ldc, rows, cols);
                        }
                    }
                }
            }
            if (K == 0)
                for (int64_t it = 0; it < ntiles; it++) {
                    const int64_t i = i0 + it * mr, rows = M - i < mr ? M - i : mr;
                    epilogue_tile(epi, cpart + it * mr * ldp, ldp, C + i * ldc + j0, ldc, rows, ncur);
                }
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
    for (int64_t q = 0; q < npan; q++) {
        float *panel = lt__gemm_panel(dst, q, kc, (int)nr);
        const int64_t cols = nc - q * nr < nr ? nc - q * nr : nr;
        for (int64_t k = 0; k < kc; k++) {
            memcpy(panel + k * nr, s->p + (k0 + k) * s->ld + j0 + q * nr, (size_t)cols * sizeof(float));
            if (cols < nr) memset(panel + k * nr + cols, 0, (size_t)(nr - cols) * sizeof(float));
        }
    }
}
