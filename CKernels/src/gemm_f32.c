/*
 * gemm_f32.c — lt_sgemm: the public float32 GEMM on the packed core (gemm_internal.h), contract
 * in lt_gemm.h.
 */
#pragma STDC FP_CONTRACT OFF
#include "lt_gemm.h"
#include "gemm_internal.h"
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>

/* The B description of op(B): a copy packer (B stored k × n) or a transposing one (n × k). */
static void f32_b(int trans_b, const lt__gemm_f32_source *src, lt__gemm_b *b) {
    b->pack = trans_b ? lt__gemm_pack_b_f32_t : lt__gemm_pack_b_f32_n;
    b->ctx = src;
    b->scratch_per_kc = trans_b ? 16 : 0;
    b->scratch_per_nc = 0;
    b->scratch_const = 0;
    b->kc_multiple = 1;
    b->nc_align = 1;
}

/* One thread's share: the largest plan over both packers and every ISA variant (so a size
 * queried under one ISA stays valid after switching to another); with `prepacked`, the share of
 * a product whose B was packed beforehand (no B panels). */
static int64_t share_floats(int64_t m, int64_t n, int64_t k, int prepacked) {
    int64_t most = 0;
    const int isas[3] = {LT_ISA_SCALAR, LT_ISA_AVX2, LT_ISA_AVX512};
    for (int v = 0; v < 3; v++) {
        for (int t = 0; t < 2; t++) {
            lt__gemm_b b;
            lt__gemm_plan plan;
            f32_b(t, NULL, &b);
            lt__gemm_make_plan(lt__gemm_kernel_for_isa(isas[v]), m, n, k, &b, 1, &plan);
            const int64_t f = prepacked ? plan.prepacked_per_thread_floats : plan.per_thread_floats;
            if (f > most) most = f;
        }
    }
    return most;
}
static int64_t per_thread_floats(int64_t m, int64_t n, int64_t k) { return share_floats(m, n, k, 0); }

static int sizes_ok(int64_t m, int64_t n, int64_t k) { return m >= 0 && n >= 0 && k >= 0; }

/* The shape checks of lt_sgemm and lt_gemm_f32 (lt_gemm.h): trans flags, sizes, leading
 * dimensions, offsets that fit int64. Stored shapes: A (trans_a ? k × m : m × k),
 * B (trans_b ? n × k : k × n), C m × n. */
static lt_status check_product(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, int64_t lda,
                               int64_t ldb, int64_t ldc) {
    LT_CHECK(trans_a == 0 || trans_a == 1, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(trans_b == 0 || trans_b == 1, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(sizes_ok(m, n, k), LT_ERR_INVALID_ARGUMENT);
    const int64_t a_rows = trans_a ? k : m, a_cols = trans_a ? m : k;
    const int64_t b_rows = trans_b ? n : k, b_cols = trans_b ? k : n;
    LT_CHECK(lt__ld_ok(lda, a_cols) && lt__ld_ok(ldb, b_cols) && lt__ld_ok(ldc, n), LT_ERR_INVALID_ARGUMENT);
    int64_t t;
    LT_CHECK(!lt__mul_overflows(a_rows, lda, &t) && !lt__mul_overflows(b_rows, ldb, &t) &&
             !lt__mul_overflows(m, ldc, &t), LT_ERR_INVALID_ARGUMENT);
    return LT_OK;
}

lt_status lt_sgemm_workspace_size(int64_t m, int64_t n, int64_t k, int64_t *floats) {
    LT_CHECK(floats, LT_ERR_NULL_POINTER);
    LT_CHECK(sizes_ok(m, n, k), LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    if (m == 0 || n == 0 || k == 0) { *floats = 0; return LT_OK; }
    LT_CHECK(!lt__mul_overflows(per_thread_floats(m, n, k), (int64_t)lt_get_num_threads(), floats),
             LT_ERR_INVALID_ARGUMENT);
    const int64_t shared = lt__gemm_shared_b_floats(n, k);     /* B packed once for the team */
    LT_CHECK(*floats <= INT64_MAX - shared, LT_ERR_INVALID_ARGUMENT);
    *floats += shared;
    return LT_OK;
}

lt_status lt_sgemm_tasks(int64_t m, int64_t n, int64_t k, int64_t *tasks, int *team) {
    LT_CHECK(tasks && team, LT_ERR_NULL_POINTER);
    LT_CHECK(sizes_ok(m, n, k), LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    *tasks = 0;
    *team = 0;
    if (m == 0 || n == 0 || k == 0) return LT_OK;
    const int threads = lt_get_num_threads();
    lt__gemm_b b;
    lt__gemm_plan plan;
    f32_b(0, NULL, &b);
    lt__gemm_make_plan(lt__gemm_kernel_for_isa((int)lt_isa_active()), m, n, k, &b, threads, &plan);
    *tasks = lt__gemm_tasks(&plan, m, n);
    *team = lt__gemm_uses_team(m, n, k) && *tasks > 1 && threads > 1;
    return LT_OK;
}

/* Plans and runs a valid, non-empty float32 product on the core with the team's thread count. */
static void run_f32(const lt__gemm_kernel *kern, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                    const float *A, int64_t lda, const float *B, int64_t ldb, const lt__gemm_epilogue *epi,
                    float *C, int64_t ldc, float *workspace, int64_t workspace_floats) {
    const int threads = lt_get_num_threads();
    const lt__gemm_f32_source src = {B, ldb};
    lt__gemm_b b;
    f32_b(trans_b, &src, &b);
    lt__gemm_plan plan;
    lt__gemm_make_plan(kern, m, n, k, &b, threads, &plan);
    const lt__gemm_a a = {A, lda, trans_a};
    lt__gemm_run(kern, &plan, m, n, k, &a, &b, epi, C, ldc, workspace, workspace_floats, threads);
}

lt_status lt_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                   float *C, int64_t ldc, float *workspace, int64_t workspace_floats) {
    LT_CHECK(workspace_floats >= 0, LT_ERR_INVALID_ARGUMENT);
    lt_status st = check_product(trans_a, trans_b, m, n, k, lda, ldb, ldc);
    if (st != LT_OK) return st;
    if (m == 0 || n == 0) return LT_OK;
    LT_CHECK(C, LT_ERR_NULL_POINTER);
    const int empty = k == 0 || alpha == 0.0f;
    if (!empty) {
        LT_CHECK(workspace_floats >= per_thread_floats(m, n, k), LT_ERR_INVALID_ARGUMENT);
        LT_CHECK(A && B && workspace, LT_ERR_NULL_POINTER);
    }
    (void)lt__ensure_init();
    if (empty) {                                    /* C = beta · C, A and B not read */
        lt__scale_matrix(C, m, n, ldc, beta);
        return LT_OK;
    }
    const lt__gemm_epilogue epi = {alpha, beta, NULL, NULL};
    run_f32(lt__gemm_kernel_for_isa((int)lt_isa_active()), trans_a, trans_b, m, n, k, A, lda, B, ldb,
            &epi, C, ldc, workspace, workspace_floats);
    return LT_OK;
}

/* ---- lt_gemm_f32: the kernels' GEMM, on the active backend --------------------------------- */

/* One packing buffer per calling thread (pthread key: freed at thread exit). */
typedef struct { float *p; int64_t floats; } thread_buffer;
static pthread_key_t g_buffer_key;
static pthread_once_t g_buffer_once = PTHREAD_ONCE_INIT;
static int g_buffer_key_ok;

static void buffer_free(void *v) {
    thread_buffer *b = v;
    free(b->p);
    free(b);
}

static void buffer_key_make(void) { g_buffer_key_ok = pthread_key_create(&g_buffer_key, buffer_free) == 0; }

/* The calling thread's buffer of at least `floats` floats, or NULL when it cannot be had. */
static float *thread_workspace(int64_t floats) {
    pthread_once(&g_buffer_once, buffer_key_make);
    if (!g_buffer_key_ok) return NULL;
    thread_buffer *b = pthread_getspecific(g_buffer_key);
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b) return NULL;
        if (pthread_setspecific(g_buffer_key, b) != 0) { free(b); return NULL; }
    }
    if (b->floats >= floats) return b->p;
    if ((uint64_t)floats > SIZE_MAX / sizeof(float)) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, 64, (size_t)floats * sizeof(float)) != 0) return NULL;
    free(b->p);
    b->p = p;
    b->floats = floats;
    return b->p;
}

static lt_status blas_gemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                           const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                           float *C, int64_t ldc) {
    LT_CHECK(lt__blas_ok(m) && lt__blas_ok(n) && lt__blas_ok(k) && lt__blas_ok(lda) && lt__blas_ok(ldb) &&
             lt__blas_ok(ldc), LT_ERR_INVALID_ARGUMENT);
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                (blasint)m, (blasint)n, (blasint)k, alpha, A, (blasint)lda, B, (blasint)ldb, beta, C,
                (blasint)ldc);
    return LT_OK;
}

/* lt_gemm_f32 on the library's core with the thread's buffer. Returns -1 (nothing written)
 * when the buffer cannot be had, else the status of the product. */
static int lorta_gemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                      const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                      float *C, int64_t ldc) {
    const lt__gemm_kernel *kern = lt__gemm_kernel_for_isa((int)lt_isa_active());
    int64_t floats;
    if (!(2 * n <= kern->nr && m >= kern->nr)) {
        if (lt_sgemm_workspace_size(m, n, k, &floats) != LT_OK) return -1;
        float *w = thread_workspace(floats);
        if (!w) return -1;
        return lt_sgemm(trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, w, floats);
    }
    /* A narrow C (e.g. LoRA's dB = s·dYᵀT, d_out × r): its tiles would be mostly empty columns.
     * Compute Cᵀ = op(B)ᵀ·op(A)ᵀ (n × m: a few full row tiles) into the thread buffer, then apply
     * the core's epilogue while transposing back. Same bits as the direct product: each element
     * is the same fma chain (fma(b, a, p) = fma(a, b, p)), and the epilogue is the same code. */
    const int64_t t_floats = (n * m + 15) / 16 * 16;
    if (lt_sgemm_workspace_size(n, m, k, &floats) != LT_OK || floats > INT64_MAX - t_floats) return -1;
    float *w = thread_workspace(t_floats + floats);
    if (!w) return -1;
    lt_status st = lt_sgemm(!trans_b, !trans_a, n, m, k, 1.0f, B, ldb, A, lda, 0.0f, w, m, w + t_floats, floats);
    if (st != LT_OK) return st;
    const lt__gemm_epilogue epi = {alpha, beta};
    lt__gemm_epilogue_apply(&epi, w, 1, m, C, ldc, m, n);
    return LT_OK;
}

int lt__gemm_f32_hooked(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                        const float *A, int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc,
                        void (*hook)(const void *ctx, int64_t i, int64_t j, int64_t rows, int64_t cols,
                                     float *c, int64_t ldc),
                        const void *hook_ctx) {
    return lt__gemm_f32_hooked_beta(trans_a, trans_b, m, n, k, A, lda, B, ldb, 0.0f, C, ldc, hook, hook_ctx);
}

int lt__gemm_f32_hooked_beta(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                             const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                             float *C, int64_t ldc,
                             void (*hook)(const void *ctx, int64_t i, int64_t j, int64_t rows, int64_t cols,
                                          float *c, int64_t ldc),
                             const void *hook_ctx) {
    (void)lt__ensure_init();
    if (lt_gemm_backend_active() != LT_GEMM_LORTA || m < 1 || n < 1 || k < 1) return 0;
    const int isa = (int)lt_isa_active();
    const lt__gemm_kernel *kern = lt__gemm_kernel_for_isa(isa);
    if (2 * n <= kern->nr && m >= kern->nr) return 0;          /* lorta_gemm would transpose */
    int64_t floats;
    if (lt_sgemm_workspace_size(m, n, k, &floats) != LT_OK) return 0;
    float *w = thread_workspace(floats);
    if (!w) return 0;
    const lt__gemm_epilogue epi = {1.0f, beta, hook, hook_ctx};
    run_f32(kern, trans_a, trans_b, m, n, k, A, lda, B, ldb, &epi, C, ldc, w, floats);
    return 1;
}

lt_status lt_gemm_f32(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                      const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                      float *C, int64_t ldc) {
    lt_status st = check_product(trans_a, trans_b, m, n, k, lda, ldb, ldc);
    if (st != LT_OK) return st;
    if (m == 0 || n == 0) return LT_OK;
    LT_CHECK(C, LT_ERR_NULL_POINTER);
    (void)lt__ensure_init();
    if (k == 0 || alpha == 0.0f) {                  /* C = beta · C, A and B not read */
        lt__scale_matrix(C, m, n, ldc, beta);
        return LT_OK;
    }
    LT_CHECK(A && B, LT_ERR_NULL_POINTER);
    if (lt_gemm_backend_active() == LT_GEMM_LORTA) {
        const int done = lorta_gemm(trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
        if (done >= 0) return (lt_status)done;
    }
    return blas_gemm(trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* ---- prepacked B: a frozen weight packed once (lt_sgemm_pack_b) ----------------------------- */

/* Header of a packed buffer: 8 int64 in the first 16 floats (so the data that follows keeps a
 * 64-byte aligned buffer's alignment). */
#define PACKED_HEADER_FLOATS 16
#define PACKED_MAGIC INT64_C(0x314250544C54524C)   /* "LRTLTPB1" */
enum { H_MAGIC, H_ISA, H_NR, H_KC, H_K, H_N, H_TRANS, H_CHECK, H_COUNT };

static int64_t header_check(const int64_t *h) {
    uint64_t x = UINT64_C(0x9E3779B97F4A7C15);
    for (int i = 0; i < H_CHECK; i++) x = (x ^ (uint64_t)h[i]) * UINT64_C(0xBF58476D1CE4E5B9);
    return (int64_t)(x ^ (x >> 31));
}

/* The float32 B description with the layout decided at pack time (kc from the plan). */
static int64_t f32_kc(const lt__gemm_kernel *kern, int trans_b, int64_t n, int64_t k) {
    lt__gemm_b b;
    lt__gemm_plan plan;
    f32_b(trans_b, NULL, &b);
    lt__gemm_make_plan(kern, 1, n, k, &b, 1, &plan);
    return plan.kc;
}

/* 1 when `packed` holds a B packed for (k, n) by the kernel `kern` (the active ISA's), with
 * the chunking this build's plan uses; *trans_b = its op. */
static int packed_matches(const float *packed, const lt__gemm_kernel *kern, int64_t n, int64_t k, int *trans_b) {
    int64_t h[H_COUNT];
    memcpy(h, packed, sizeof h);
    if (h[H_MAGIC] != PACKED_MAGIC || h[H_CHECK] != header_check(h)) return 0;
    if (h[H_ISA] != kern->isa || h[H_NR] != kern->nr || h[H_K] != k || h[H_N] != n) return 0;
    if (h[H_TRANS] != 0 && h[H_TRANS] != 1) return 0;
    if (h[H_KC] != f32_kc(kern, (int)h[H_TRANS], n, k)) return 0;
    *trans_b = (int)h[H_TRANS];
    return 1;
}

lt_status lt_sgemm_packed_b_size(int trans_b, int64_t k, int64_t n, int64_t *floats) {
    LT_CHECK(floats, LT_ERR_NULL_POINTER);
    LT_CHECK(trans_b == 0 || trans_b == 1, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(sizes_ok(0, n, k) && n <= INT64_MAX - LT_GEMM_MAX_NR, LT_ERR_INVALID_ARGUMENT);
    int64_t data;
    LT_CHECK(!lt__mul_overflows((n + LT_GEMM_MAX_NR - 1) / LT_GEMM_MAX_NR * LT_GEMM_MAX_NR, k, &data) &&
             data <= INT64_MAX - PACKED_HEADER_FLOATS, LT_ERR_INVALID_ARGUMENT);
    *floats = PACKED_HEADER_FLOATS + data;
    return LT_OK;
}

lt_status lt_sgemm_pack_b(int trans_b, int64_t k, int64_t n, const float *B, int64_t ldb, float *packed,
                          int64_t packed_floats) {
    int64_t need;
    lt_status st = lt_sgemm_packed_b_size(trans_b, k, n, &need);
    if (st != LT_OK) return st;
    const int64_t b_rows = trans_b ? n : k, b_cols = trans_b ? k : n;
    int64_t t;
    LT_CHECK(lt__ld_ok(ldb, b_cols) && !lt__mul_overflows(b_rows, ldb, &t), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(packed_floats >= need, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(packed && (B || n == 0 || k == 0), LT_ERR_NULL_POINTER);
    (void)lt__ensure_init();
    const lt__gemm_kernel *kern = lt__gemm_kernel_for_isa((int)lt_isa_active());
    int64_t h[H_COUNT] = {PACKED_MAGIC, kern->isa, kern->nr, f32_kc(kern, trans_b, n, k), k, n, trans_b, 0};
    h[H_CHECK] = header_check(h);
    _Static_assert(sizeof(int64_t) * H_COUNT == sizeof(float) * PACKED_HEADER_FLOATS, "header size");
    memcpy(packed, h, sizeof h);
    if (n > 0 && k > 0) {
        const lt__gemm_f32_source src = {B, ldb};
        lt__gemm_b b;
        f32_b(trans_b, &src, &b);
        lt__gemm_prepack_b(kern, n, k, h[H_KC], &b, packed + PACKED_HEADER_FLOATS, lt_get_num_threads());
    }
    return LT_OK;
}

/* One thread's share with a prepacked B: the largest over every ISA variant (as lt_sgemm's). */
static int64_t prepacked_per_thread_floats(int64_t m, int64_t n, int64_t k) { return share_floats(m, n, k, 1); }

lt_status lt_sgemm_prepacked_workspace_size(int64_t m, int64_t n, int64_t k, int64_t *floats) {
    LT_CHECK(floats, LT_ERR_NULL_POINTER);
    LT_CHECK(sizes_ok(m, n, k), LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    if (m == 0 || n == 0 || k == 0) { *floats = 0; return LT_OK; }
    LT_CHECK(!lt__mul_overflows(prepacked_per_thread_floats(m, n, k), (int64_t)lt_get_num_threads(), floats),
             LT_ERR_INVALID_ARGUMENT);
    return LT_OK;
}

/* Plans and runs a valid, non-empty product with a prepacked B (made for `kern`, checked). */
static void run_prepacked(const lt__gemm_kernel *kern, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                          const float *A, int64_t lda, const float *packed, const lt__gemm_epilogue *epi,
                          float *C, int64_t ldc, float *workspace, int64_t workspace_floats) {
    const int threads = lt_get_num_threads();
    lt__gemm_b b;
    f32_b(trans_b, NULL, &b);
    lt__gemm_plan plan;
    lt__gemm_make_plan(kern, m, n, k, &b, threads, &plan);
    const lt__gemm_a a = {A, lda, trans_a};
    lt__gemm_run_prepacked(kern, &plan, m, n, k, &a, packed + PACKED_HEADER_FLOATS, epi, C, ldc, workspace,
                           workspace_floats, threads);
}

lt_status lt_sgemm_prepacked(int trans_a, int64_t m, int64_t n, int64_t k, float alpha, const float *A,
                             int64_t lda, const float *packed, float beta, float *C, int64_t ldc,
                             float *workspace, int64_t workspace_floats) {
    LT_CHECK(workspace_floats >= 0, LT_ERR_INVALID_ARGUMENT);
    /* B's shape is in the header; its ld stands in as n (k · n must fit, as the packed size). */
    lt_status st = check_product(trans_a, 0, m, n, k, lda, n > 1 ? n : 1, ldc);
    if (st != LT_OK) return st;
    if (m == 0 || n == 0) return LT_OK;
    LT_CHECK(C, LT_ERR_NULL_POINTER);
    LT_CHECK(packed, LT_ERR_NULL_POINTER);
    (void)lt__ensure_init();
    const lt__gemm_kernel *kern = lt__gemm_kernel_for_isa((int)lt_isa_active());
    int trans_b;
    LT_CHECK(packed_matches(packed, kern, n, k, &trans_b), LT_ERR_INVALID_ARGUMENT);
    const int empty = k == 0 || alpha == 0.0f;
    if (!empty) {
        LT_CHECK(workspace_floats >= prepacked_per_thread_floats(m, n, k), LT_ERR_INVALID_ARGUMENT);
        LT_CHECK(A && workspace, LT_ERR_NULL_POINTER);
    }
    if (empty) {                                    /* C = beta · C, A and B not read */
        lt__scale_matrix(C, m, n, ldc, beta);
        return LT_OK;
    }
    const lt__gemm_epilogue epi = {alpha, beta, NULL, NULL};
    run_prepacked(kern, trans_a, trans_b, m, n, k, A, lda, packed, &epi, C, ldc, workspace, workspace_floats);
    return LT_OK;
}

int lt__gemm_f32_prepacked_hooked(int trans_a, int64_t m, int64_t n, int64_t k, const float *A, int64_t lda,
                                  const float *packed, float *C, int64_t ldc,
                                  void (*hook)(const void *ctx, int64_t i, int64_t j, int64_t rows, int64_t cols,
                                               float *c, int64_t ldc),
                                  const void *hook_ctx) {
    (void)lt__ensure_init();
    if (lt_gemm_backend_active() != LT_GEMM_LORTA || m < 1 || n < 1 || k < 1 || !packed) return 0;
    const lt__gemm_kernel *kern = lt__gemm_kernel_for_isa((int)lt_isa_active());
    int trans_b;
    if (!packed_matches(packed, kern, n, k, &trans_b)) return 0;
    int64_t floats;
    if (lt_sgemm_prepacked_workspace_size(m, n, k, &floats) != LT_OK) return 0;
    float *w = thread_workspace(floats);
    if (!w) return 0;
    const lt__gemm_epilogue epi = {1.0f, 0.0f, hook, hook_ctx};
    run_prepacked(kern, trans_a, trans_b, m, n, k, A, lda, packed, &epi, C, ldc, w, floats);
    return 1;
}
