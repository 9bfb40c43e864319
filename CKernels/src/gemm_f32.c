/*
 * gemm_f32.c — lt_sgemm: the public float32 GEMM on the packed core (gemm_internal.h), contract
 * in lt_gemm.h.
 */
#pragma STDC FP_CONTRACT OFF
#include "lt_gemm.h"
#include "gemm_internal.h"
#include "internal.h"

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
 * queried under one ISA stays valid after switching to another). */
static int64_t per_thread_floats(int64_t m, int64_t n, int64_t k) {
    int64_t most = 0;
    const int isas[3] = {LT_ISA_SCALAR, LT_ISA_AVX2, LT_ISA_AVX512};
    for (int v = 0; v < 3; v++) {
        for (int t = 0; t < 2; t++) {
            lt__gemm_b b;
            lt__gemm_plan plan;
            f32_b(t, NULL, &b);
            lt__gemm_make_plan(lt__gemm_kernel_for_isa(isas[v]), m, n, k, &b, 1, &plan);
            if (plan.per_thread_floats > most) most = plan.per_thread_floats;
        }
    }
    return most;
}

static int sizes_ok(int64_t m, int64_t n, int64_t k) { return m >= 0 && n >= 0 && k >= 0; }

lt_status lt_sgemm_workspace_size(int64_t m, int64_t n, int64_t k, int64_t *floats) {
    LT_CHECK(floats, LT_ERR_NULL_POINTER);
    LT_CHECK(sizes_ok(m, n, k), LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    if (m == 0 || n == 0 || k == 0) { *floats = 0; return LT_OK; }
    LT_CHECK(!lt__mul_overflows(per_thread_floats(m, n, k), (int64_t)lt_get_num_threads(), floats),
             LT_ERR_INVALID_ARGUMENT);
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

lt_status lt_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                   float *C, int64_t ldc, float *workspace, int64_t workspace_floats) {
    LT_CHECK(trans_a == 0 || trans_a == 1, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(trans_b == 0 || trans_b == 1, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(sizes_ok(m, n, k) && workspace_floats >= 0, LT_ERR_INVALID_ARGUMENT);
    /* stored shapes: A (trans_a ? k × m : m × k), B (trans_b ? n × k : k × n), C m × n */
    const int64_t a_rows = trans_a ? k : m, a_cols = trans_a ? m : k;
    const int64_t b_rows = trans_b ? n : k, b_cols = trans_b ? k : n;
    LT_CHECK(lt__ld_ok(lda, a_cols) && lt__ld_ok(ldb, b_cols) && lt__ld_ok(ldc, n), LT_ERR_INVALID_ARGUMENT);
    int64_t t;
    LT_CHECK(!lt__mul_overflows(a_rows, lda, &t) && !lt__mul_overflows(b_rows, ldb, &t) &&
             !lt__mul_overflows(m, ldc, &t), LT_ERR_INVALID_ARGUMENT);
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
    const int isa = (int)lt_isa_active();
    const int threads = lt_get_num_threads();
    const lt__gemm_kernel *kern = lt__gemm_kernel_for_isa(isa);
    const lt__gemm_f32_source src = {B, ldb};
    lt__gemm_b b;
    f32_b(trans_b, &src, &b);
    lt__gemm_plan plan;
    lt__gemm_make_plan(kern, m, n, k, &b, threads, &plan);
    const lt__gemm_a a = {A, lda, trans_a};
    const lt__gemm_epilogue epi = {alpha, beta};
    lt__gemm_run(kern, &plan, m, n, k, &a, &b, &epi, C, ldc, workspace, workspace_floats, threads);
    return LT_OK;
}
