/*
 * quant_matmul.c — products of float32 activations with stored (possibly quantized) weight
 * matrices: lt_quant_matmul_workspace_size, lt_quant_matmul, lt_quant_matmul_backward_input
 * (contract in lt_quant.h).
 *
 *   n <= LT_QUANT_GEMV_MAX_ROWS (decoding): fused decode-and-multiply kernels
 *     (quant_gemv_*.c), OpenMP over fixed chunks of W rows (forward) or of dX columns
 *     (backward); no workspace. With the int8 decode mode (lt_decode_arith_set) the forward of
 *     Q8_0/Q4_0/Q4_1/Q4_K/Q6_K weights goes to lt_quant_matmul_int8 (quant_int8.c) instead.
 *   larger n (prefill, batches, training): the packed GEMM core (gemm_internal.h) with a
 *     packer that dequantizes W straight into the micro-panels of B:
 *       forward   Y = X · Wᵀ:  B = Wᵀ (K = d_in), each 16-row strip of W is decoded into the
 *                 thread's scratch (kc values per row) and transposed into its panel;
 *       backward dX = dY · W:  B = W (K = d_out), each W row's slice of the panel's columns is
 *                 decoded and copied into the micro-panels.
 *     F32 weights use the same core with plain copy/transpose packers (no decoding).
 */
#pragma STDC FP_CONTRACT OFF
#include "lt_quant.h"
#include "nn_internal.h"   /* low-rank terms as a tile hook */
#include "quant_internal.h"
#include "quant_matmul_internal.h"
#include "gemm_internal.h"
#include "internal.h"

float lt__qelem(int32_t type, const uint8_t *row, int64_t k) {
    switch (type) {
    case LT_GGML_F32: return lt__f32_from_bits(lt__load_u32(row + 4 * k));
    case LT_GGML_F16: return lt__f16_to_f32(lt__load_u16(row + 2 * k));
    case LT_GGML_BF16: return lt__bf16_to_f32(lt__load_u16(row + 2 * k));
    default: return 0.0f;   /* block types never have a ragged end */
    }
}

static lt__qgemv_fn qgemv_for(int isa) {
#if defined(__x86_64__)
    if (isa == LT_ISA_AVX512) return lt__qgemv_avx512;
    if (isa == LT_ISA_AVX2) return lt__qgemv_avx2;
#endif
    (void)isa;
    return lt__qgemv_scalar;
}

static lt__qgemv_bwd_fn qgemv_bwd_for(int isa) {
#if defined(__x86_64__)
    if (isa == LT_ISA_AVX512) return lt__qgemv_bwd_avx512;
    if (isa == LT_ISA_AVX2) return lt__qgemv_bwd_avx2;
#endif
    (void)isa;
    return lt__qgemv_bwd_scalar;
}

/* ---- packers (inside the GEMM core's parallel region) --------------------------------------- */

typedef struct qsource {
    int32_t type;
    const uint8_t *W;
    int64_t row_bytes, be, bb;
    int isa;
} qsource;

/* Forward: B = Wᵀ, B[k, j] = w[j, k]. Panel columns = W rows j0 ..< j0 + nc, chunk k0 ..< k0 + kc
 * (k0 and kc whole blocks). Scratch: 16 · kc floats. */
static void pack_wt(const void *ctx, const lt__gemm_kernel *kern, int64_t j0, int64_t nc, int64_t k0,
                    int64_t kc, float *dst, float *scratch) {
    const qsource *s = (const qsource *)ctx;
    const lt__dequant_fn dq = lt__dequant_for_isa(s->type, s->isa);
    const int64_t nr = kern->nr, npan = (nc + nr - 1) / nr, off = (k0 / s->be) * s->bb, nb = kc / s->be;
    for (int64_t q = 0; q < npan; q++) {
        float *panel = lt__gemm_panel(dst, q, kc, (int)nr);
        for (int64_t g = 0; g < nr; g += 16) {
            const int64_t j = j0 + q * nr + g, rows = nc - (q * nr + g);
            for (int64_t r = 0; r < 16; r++) {
                if (r < rows) dq(s->W + (j + r) * s->row_bytes + off, nb, scratch + r * kc);
                else memset(scratch + r * kc, 0, (size_t)kc * sizeof(float));
            }
            kern->transpose16(scratch, kc, kc, panel + g, nr);
        }
    }
}

/* Backward: B = W, B[k, j] = w[k, j]. Panel columns j0 ..< j0 + nc, rows k0 ..< k0 + kc: the
 * blocks covering the columns are decoded (whole blocks: up to one block more on each side
 * when j0 or j0 + nc is not block-aligned) and the panel's part copied. Scratch: nc + 2 · be. */
static void pack_w(const void *ctx, const lt__gemm_kernel *kern, int64_t j0, int64_t nc, int64_t k0,
                   int64_t kc, float *dst, float *scratch) {
    const qsource *s = (const qsource *)ctx;
    const lt__dequant_fn dq = lt__dequant_for_isa(s->type, s->isa);
    const int64_t b0 = j0 / s->be, b1 = (j0 + nc + s->be - 1) / s->be, skip = j0 - b0 * s->be;
    const int64_t nr = kern->nr, npan = (nc + nr - 1) / nr, off = b0 * s->bb;
    for (int64_t k = 0; k < kc; k++) {
        dq(s->W + (k0 + k) * s->row_bytes + off, b1 - b0, scratch);
        for (int64_t q = 0; q < npan; q++) {
            float *p = lt__gemm_panel(dst, q, kc, (int)nr) + k * nr;
            const int64_t cols = nc - q * nr < nr ? nc - q * nr : nr;
            memcpy(p, scratch + skip + q * nr, (size_t)cols * sizeof(float));
            if (cols < nr) memset(p + cols, 0, (size_t)(nr - cols) * sizeof(float));
        }
    }
}

/* The GEMM description of a product: forward (B = Wᵀ) or backward (B = W). */
typedef struct qgemm {
    qsource src;
    lt__gemm_f32_source f32;
    lt__gemm_b b;
    int64_t M, N, K;
} qgemm;

static void qgemm_setup(qgemm *g, int backward, int32_t type, int64_t n, int64_t d_in, int64_t d_out,
                        const void *W, int64_t row_bytes, int64_t be, int64_t bb, int isa) {
    g->src.type = type;
    g->src.W = (const uint8_t *)W;
    g->src.row_bytes = row_bytes;
    g->src.be = be;
    g->src.bb = bb;
    g->src.isa = isa;
    g->f32.p = (const float *)W;
    g->f32.ld = d_in;
    g->M = n;
    g->K = backward ? d_out : d_in;
    g->N = backward ? d_in : d_out;
    g->b.kc_multiple = 1;
    g->b.nc_align = 1;
    g->b.scratch_per_kc = backward ? 0 : 16;          /* 16-row strips to transpose */
    g->b.scratch_per_nc = 0;
    g->b.scratch_const = 0;
    if (type == LT_GGML_F32) {
        g->b.ctx = &g->f32;
        g->b.pack = backward ? lt__gemm_pack_b_f32_n : lt__gemm_pack_b_f32_t;
    } else {
        g->b.ctx = &g->src;
        g->b.pack = backward ? pack_w : pack_wt;
        if (backward) {
            g->b.nc_align = be;
            g->b.scratch_per_nc = 1;                    /* one decoded row slice, whole blocks */
            g->b.scratch_const = 2 * be;
        } else {
            g->b.kc_multiple = be;
        }
    }
}

/* Per-thread floats of the larger of the forward and backward plans, over every ISA variant
 * (so a size queried under one ISA stays valid after switching to another). */
static int64_t per_thread_floats(int32_t type, int64_t n, int64_t d_in, int64_t d_out, int64_t be,
                                 int64_t bb, int64_t row_bytes) {
    int64_t most = 0;
    const int isas[3] = {LT_ISA_SCALAR, LT_ISA_AVX2, LT_ISA_AVX512};
    for (int v = 0; v < 3; v++) {
        const lt__gemm_kernel *kern = lt__gemm_kernel_for_isa(isas[v]);
        for (int backward = 0; backward < 2; backward++) {
            qgemm g;
            lt__gemm_plan plan;
            qgemm_setup(&g, backward, type, n, d_in, d_out, NULL, row_bytes, be, bb, isas[v]);
            lt__gemm_make_plan(kern, g.M, g.N, g.K, &g.b, 1, &plan);
            if (plan.per_thread_floats > most) most = plan.per_thread_floats;
        }
    }
    return most;
}

/* ---- shared validation ----------------------------------------------------------------------- */

typedef struct qcall {
    int64_t be, bb, row_bytes;
} qcall;

/* Sizes, strides and the weight buffer of a call; the activations run along `in_len` (ld_in)
 * and the results along `out_len` (ld_out). */
static lt_status qcheck(int32_t type, int64_t n, int64_t d_in, int64_t d_out, int64_t ld_in,
                        int64_t in_len, int64_t ld_out, int64_t out_len, int64_t w_bytes,
                        int accumulate, qcall *c) {
    LT_CHECK(lt__quant_geometry(type, &c->be, &c->bb), LT_ERR_UNSUPPORTED);
    LT_CHECK(n >= 0 && d_in >= 0 && d_out >= 0 && w_bytes >= 0, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(d_in % c->be == 0, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(accumulate == 0 || accumulate == 1, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(lt__ld_ok(ld_in, in_len) && lt__ld_ok(ld_out, out_len), LT_ERR_INVALID_ARGUMENT);
    int64_t need, t;
    LT_CHECK(!lt__mul_overflows(d_in / c->be, c->bb, &c->row_bytes), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(!lt__mul_overflows(d_out, c->row_bytes, &need) && w_bytes >= need, LT_ERR_INVALID_ARGUMENT);
    /* every addressed element must have an int64 offset */
    LT_CHECK(!lt__mul_overflows(n, ld_in, &t) && !lt__mul_overflows(n, ld_out, &t), LT_ERR_INVALID_ARGUMENT);
    return LT_OK;
}

/* The batched path needs at least one thread's share of workspace (the decode-sized one none). */
static lt_status workspace_check(int32_t type, int64_t n, int64_t d_in, int64_t d_out, const qcall *c,
                                 const float *workspace, int64_t workspace_floats) {
    if (n <= LT_QUANT_GEMV_MAX_ROWS) return LT_OK;
    LT_CHECK(workspace_floats >= per_thread_floats(type, n, d_in, d_out, c->be, c->bb, c->row_bytes),
             LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(workspace, LT_ERR_NULL_POINTER);
    return LT_OK;
}

/* Y[n × cols] = 0 (accumulate 0) or unchanged: the product with an empty sum. */
static void zero_rows(int64_t n, int64_t cols, float *Y, int64_t ldy, int accumulate) {
    if (accumulate) return;
    for (int64_t i = 0; i < n; i++) memset(Y + i * ldy, 0, (size_t)cols * sizeof(float));
}

/* Prefetch hints for the decode-sized forward (build with -DLT_QGEMV_PREFETCH=0 to compare). */
#ifndef LT_QGEMV_PREFETCH
#define LT_QGEMV_PREFETCH 1
#endif
/* How far ahead: the thread's k-th next chunk (assuming the threads take chunks in turn). */
#ifndef LT_QGEMV_PF_CHUNKS
#define LT_QGEMV_PF_CHUNKS 1
#endif

/* ---- task split of the decode-sized paths ----------------------------------------------------- */

static int64_t gemv_chunks(int64_t d_out) {
    return (d_out + LT_QGEMV_ROWS_PER_CHUNK - 1) / LT_QGEMV_ROWS_PER_CHUNK;
}
/* Backward: dX columns per task (whole blocks). */
static int64_t bwd_width(int64_t be) { return be > LT_QBWD_COLS ? be : LT_QBWD_COLS; }
static int uses_team(int64_t n, int64_t d_in, int64_t d_out) {
    return LT_PARALLEL_IF(2.0 * (double)n * (double)d_in * (double)d_out);
}

/* ---- public entry points ------------------------------------------------------------------- */

lt_status lt_quant_matmul_tasks(int32_t type, int64_t n, int64_t d_in, int64_t d_out, int backward,
                                int64_t *tasks, int *team) {
    LT_CHECK(tasks && team, LT_ERR_NULL_POINTER);
    qcall c;
    LT_CHECK(lt__quant_geometry(type, &c.be, &c.bb), LT_ERR_UNSUPPORTED);
    LT_CHECK(n >= 0 && d_in >= 0 && d_out >= 0 && d_in % c.be == 0, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(backward == 0 || backward == 1, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(!lt__mul_overflows(d_in / c.be, c.bb, &c.row_bytes), LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    *tasks = 0;
    *team = 0;
    if (n == 0 || d_in == 0 || d_out == 0) return LT_OK;
    if (n <= LT_QUANT_GEMV_MAX_ROWS) {
        *tasks = backward ? (d_in + bwd_width(c.be) - 1) / bwd_width(c.be) : gemv_chunks(d_out);
        *team = uses_team(n, d_in, d_out) && *tasks > 1;
        return LT_OK;
    }
    const int isa = (int)lt_isa_active();
    qgemm g;
    lt__gemm_plan plan;
    qgemm_setup(&g, backward, type, n, d_in, d_out, NULL, c.row_bytes, c.be, c.bb, isa);
    lt__gemm_make_plan(lt__gemm_kernel_for_isa(isa), g.M, g.N, g.K, &g.b, lt_get_num_threads(), &plan);
    *tasks = lt__gemm_tasks(&plan, g.M, g.N);
    *team = lt__gemm_uses_team(g.M, g.N, g.K) && *tasks > 1;
    return LT_OK;
}

lt_status lt_quant_matmul_workspace_size(int32_t type, int64_t n, int64_t d_in, int64_t d_out,
                                         int64_t *floats) {
    LT_CHECK(floats, LT_ERR_NULL_POINTER);
    qcall c;
    LT_CHECK(lt__quant_geometry(type, &c.be, &c.bb), LT_ERR_UNSUPPORTED);
    LT_CHECK(n >= 0 && d_in >= 0 && d_out >= 0 && d_in % c.be == 0, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(!lt__mul_overflows(d_in / c.be, c.bb, &c.row_bytes), LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    if (n <= LT_QUANT_GEMV_MAX_ROWS || d_in == 0 || d_out == 0) {
        *floats = 0;
        return LT_OK;
    }
    const int64_t per = per_thread_floats(type, n, d_in, d_out, c.be, c.bb, c.row_bytes);
    LT_CHECK(!lt__mul_overflows(per, (int64_t)lt_get_num_threads(), floats), LT_ERR_INVALID_ARGUMENT);
    /* B packed once for the team (gemm_internal.h): forward B is d_in × d_out, backward d_out × d_in */
    const int64_t fwd = lt__gemm_shared_b_floats(d_out, d_in), bwd = lt__gemm_shared_b_floats(d_in, d_out);
    const int64_t shared = fwd > bwd ? fwd : bwd;
    LT_CHECK(*floats <= INT64_MAX - shared, LT_ERR_INVALID_ARGUMENT);
    *floats += shared;
    return LT_OK;
}

/* The forward; `post` (a tile epilogue: low-rank terms, SwiGLU; its arguments checked by the
 * caller) runs on each tile on the GEMM path, and on the whole output after the product on the
 * other paths (the same bits: every post operation is row- and element-wise). */
static lt_status quant_forward(int32_t type, int64_t n, int64_t d_in, int64_t d_out,
                               const float *X, int64_t ldx, const void *W, int64_t w_bytes,
                               float *Y, int64_t ldy, int accumulate,
                               float *workspace, int64_t workspace_floats, const lt__tile_fn *post) {
    qcall c;
    lt_status st = qcheck(type, n, d_in, d_out, ldx, d_in, ldy, d_out, w_bytes, accumulate, &c);
    if (st != LT_OK) return st;
    if (n == 0 || d_out == 0) return LT_OK;
    LT_CHECK(Y, LT_ERR_NULL_POINTER);
    LT_CHECK(d_in == 0 || (X && W), LT_ERR_NULL_POINTER);
    if (d_in > 0) {
        st = workspace_check(type, n, d_in, d_out, &c, workspace, workspace_floats);
        if (st != LT_OK) return st;
    }
    (void)lt__ensure_init();
    if (d_in == 0) { zero_rows(n, d_out, Y, ldy, accumulate); lt__tile_fn_whole(post, n, d_out, Y, ldy); return LT_OK; }
    const int isa = (int)lt_isa_active();
    const int threads = lt_get_num_threads();
    const uint8_t *w = (const uint8_t *)W;

    if (n <= LT_QUANT_GEMV_MAX_ROWS && lt_decode_arith_active() == LT_DECODE_INT8 &&
        (type == LT_GGML_Q8_0 || type == LT_GGML_Q4_0 || type == LT_GGML_Q4_1 || type == LT_GGML_Q4_K ||
         type == LT_GGML_Q6_K)) {
        /* int8 activations (quant_int8.c); a failed allocation there falls back to the float path */
        st = lt_quant_matmul_int8(type, n, d_in, d_out, X, ldx, W, w_bytes, Y, ldy, accumulate);
        if (st == LT_OK) lt__tile_fn_whole(post, n, d_out, Y, ldy);
        if (st != LT_ERR_UNSUPPORTED) return st;
    }
    if (n <= LT_QUANT_GEMV_MAX_ROWS) {
        const lt__qgemv_fn f = qgemv_for(isa);
        const int64_t rb = c.row_bytes;
        const int64_t chunks = gemv_chunks(d_out);
        int64_t counter = 0;
        #pragma omp parallel num_threads(threads) if (uses_team(n, d_in, d_out) && chunks > 1)
        for (int64_t ch; (ch = lt__next_task(&counter)) < chunks;) {
            const int64_t o0 = ch * LT_QGEMV_ROWS_PER_CHUNK;
            const int64_t o1 = o0 + LT_QGEMV_ROWS_PER_CHUNK < d_out ? o0 + LT_QGEMV_ROWS_PER_CHUNK : d_out;
            /* hint: the chunk this thread probably takes after the other threads' next ones */
            const int64_t p0 = o0 + (int64_t)threads * LT_QGEMV_PF_CHUNKS * LT_QGEMV_ROWS_PER_CHUNK;
            const int64_t p1 = p0 + LT_QGEMV_ROWS_PER_CHUNK < d_out ? p0 + LT_QGEMV_ROWS_PER_CHUNK : d_out;
            const int pf = LT_QGEMV_PREFETCH && p0 < d_out;
            f(type, w, rb, d_in, o0, o1, X, ldx, n, Y, ldy, accumulate, pf ? w + p0 * rb : NULL,
              pf ? (p1 - p0) * rb : 0);
        }
        lt__tile_fn_whole(post, n, d_out, Y, ldy);
        return LT_OK;
    }

    const lt__gemm_kernel *kern = lt__gemm_kernel_for_isa(isa);
    qgemm g;
    lt__gemm_plan plan;
    qgemm_setup(&g, 0, type, n, d_in, d_out, W, c.row_bytes, c.be, c.bb, isa);
    lt__gemm_make_plan(kern, g.M, g.N, g.K, &g.b, threads, &plan);
    const lt__gemm_epilogue epi = {1.0f, accumulate ? 1.0f : 0.0f, post ? post->fn : NULL, post ? post->ctx : NULL};
    const lt__gemm_a a = {X, ldx, 0};
    lt__gemm_run(kern, &plan, g.M, g.N, g.K, &a, &g.b, &epi, Y, ldy, workspace, workspace_floats, threads);
    return LT_OK;
}

static lt_status quant_backward(int32_t type, int64_t n, int64_t d_in, int64_t d_out,
                                const float *dY, int64_t lddy, const void *W, int64_t w_bytes,
                                float *dX, int64_t lddx, int accumulate,
                                float *workspace, int64_t workspace_floats, const lt__tile_fn *post) {
    qcall c;
    lt_status st = qcheck(type, n, d_in, d_out, lddy, d_out, lddx, d_in, w_bytes, accumulate, &c);
    if (st != LT_OK) return st;
    if (n == 0 || d_in == 0) return LT_OK;
    LT_CHECK(dX, LT_ERR_NULL_POINTER);
    LT_CHECK(d_out == 0 || (dY && W), LT_ERR_NULL_POINTER);
    if (d_out > 0) {
        st = workspace_check(type, n, d_in, d_out, &c, workspace, workspace_floats);
        if (st != LT_OK) return st;
    }
    (void)lt__ensure_init();
    if (d_out == 0) { zero_rows(n, d_in, dX, lddx, accumulate); lt__tile_fn_whole(post, n, d_in, dX, lddx); return LT_OK; }
    const int isa = (int)lt_isa_active();
    const int threads = lt_get_num_threads();

    if (n <= LT_QUANT_GEMV_MAX_ROWS) {
        const lt__qgemv_bwd_fn f = qgemv_bwd_for(isa);
        const int64_t width = bwd_width(c.be);
        const int64_t chunks = (d_in + width - 1) / width;
        const uint8_t *w = (const uint8_t *)W;
        int64_t counter = 0;
        #pragma omp parallel num_threads(threads) if (uses_team(n, d_in, d_out) && chunks > 1)
        for (int64_t ch; (ch = lt__next_task(&counter)) < chunks;) {
            const int64_t c0 = ch * width, c1 = c0 + width < d_in ? c0 + width : d_in;
            f(type, w, c.row_bytes, d_out, c0, c1, dY, lddy, n, dX, lddx, accumulate);
        }
        lt__tile_fn_whole(post, n, d_in, dX, lddx);
        return LT_OK;
    }

    const lt__gemm_kernel *kern = lt__gemm_kernel_for_isa(isa);
    qgemm g;
    lt__gemm_plan plan;
    qgemm_setup(&g, 1, type, n, d_in, d_out, W, c.row_bytes, c.be, c.bb, isa);
    lt__gemm_make_plan(kern, g.M, g.N, g.K, &g.b, threads, &plan);
    const lt__gemm_epilogue epi = {1.0f, accumulate ? 1.0f : 0.0f, post ? post->fn : NULL, post ? post->ctx : NULL};
    const lt__gemm_a a = {dY, lddy, 0};
    lt__gemm_run(kern, &plan, g.M, g.N, g.K, &a, &g.b, &epi, dX, lddx, workspace, workspace_floats, threads);
    return LT_OK;
}

lt_status lt_quant_matmul(int32_t type, int64_t n, int64_t d_in, int64_t d_out,
                          const float *X, int64_t ldx,
                          const void *W, int64_t w_bytes,
                          float *Y, int64_t ldy, int accumulate,
                          float *workspace, int64_t workspace_floats) {
    return quant_forward(type, n, d_in, d_out, X, ldx, W, w_bytes, Y, ldy, accumulate, workspace, workspace_floats,
                         NULL);
}

lt_status lt_quant_matmul_backward_input(int32_t type, int64_t n, int64_t d_in, int64_t d_out,
                                         const float *dY, int64_t lddy,
                                         const void *W, int64_t w_bytes,
                                         float *dX, int64_t lddx, int accumulate,
                                         float *workspace, int64_t workspace_floats) {
    return quant_backward(type, n, d_in, d_out, dY, lddy, W, w_bytes, dX, lddx, accumulate, workspace,
                          workspace_floats, NULL);
}

lt_status lt_quant_matmul_terms(int32_t type, int64_t n, int64_t d_in, int64_t d_out,
                                const float *X, int64_t ldx, const void *W, int64_t w_bytes,
                                const lt_lowrank_term *terms, int64_t n_terms,
                                float *Y, int64_t ldy, int accumulate,
                                float *workspace, int64_t workspace_floats) {
    LT_CHECK(d_out >= 0 && n >= 0, LT_ERR_INVALID_ARGUMENT);
    lt_status st = lt__lowrank_terms_check(n, d_out, terms, n_terms);
    if (st != LT_OK) return st;
    (void)lt__ensure_init();
    const lt__lowrank_terms_ctx ctx = {terms, n_terms, lt__axpy_block()};
    const lt__tile_fn post = {lt__lowrank_terms_tile, &ctx};
    return quant_forward(type, n, d_in, d_out, X, ldx, W, w_bytes, Y, ldy, accumulate, workspace, workspace_floats,
                         n_terms > 0 ? &post : NULL);
}

lt_status lt_quant_matmul_backward_input_terms(int32_t type, int64_t n, int64_t d_in, int64_t d_out,
                                               const float *dY, int64_t lddy, const void *W, int64_t w_bytes,
                                               const lt_lowrank_term *terms, int64_t n_terms,
                                               float *dX, int64_t lddx, int accumulate,
                                               float *workspace, int64_t workspace_floats) {
    LT_CHECK(d_in >= 0 && n >= 0, LT_ERR_INVALID_ARGUMENT);
    lt_status st = lt__lowrank_terms_check(n, d_in, terms, n_terms);
    if (st != LT_OK) return st;
    (void)lt__ensure_init();
    const lt__lowrank_terms_ctx ctx = {terms, n_terms, lt__axpy_block()};
    const lt__tile_fn post = {lt__lowrank_terms_tile, &ctx};
    return quant_backward(type, n, d_in, d_out, dY, lddy, W, w_bytes, dX, lddx, accumulate, workspace,
                          workspace_floats, n_terms > 0 ? &post : NULL);
}

/* Checks of a SwiGLU operand: NULL only when there is nothing to read or write, ld >= w, n·ld
 * does not overflow. */
static lt_status swiglu_operand(const void *p, int64_t ld, int64_t n, int64_t w) {
    LT_CHECK(p || n == 0 || w == 0, LT_ERR_NULL_POINTER);
    int64_t t;
    LT_CHECK(lt__ld_ok(ld, w) && !lt__mul_overflows(n, ld, &t), LT_ERR_INVALID_ARGUMENT);
    return LT_OK;
}

lt_status lt_quant_matmul_swiglu(int32_t type, int64_t n, int64_t d_in, int64_t w,
                                 const float *X, int64_t ldx, const void *W_up, int64_t w_bytes,
                                 const lt_lowrank_term *terms, int64_t n_terms,
                                 const float *G, int64_t ldg, float *U, int64_t ldu, float *A, int64_t lda,
                                 float *workspace, int64_t workspace_floats) {
    LT_CHECK(n >= 0 && w >= 0, LT_ERR_INVALID_ARGUMENT);
    lt_status st = lt__lowrank_terms_check(n, w, terms, n_terms);
    if (st == LT_OK) st = swiglu_operand(G, ldg, n, w);
    if (st == LT_OK) st = swiglu_operand(A, lda, n, w);
    if (st != LT_OK) return st;
    LT_CHECK((const float *)A != G && A != U && (const float *)U != G, LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    const lt__swiglu_tile_ctx ctx = {{terms, n_terms, lt__axpy_block()}, lt_isa_active(), G, ldg, NULL, 0, A, lda,
                                     NULL, 0, NULL, 0};
    const lt__tile_fn post = {lt__swiglu_forward_tile, &ctx};
    return quant_forward(type, n, d_in, w, X, ldx, W_up, w_bytes, U, ldu, 0, workspace, workspace_floats, &post);
}

lt_status lt_quant_matmul_swiglu_backward(int32_t type, int64_t n, int64_t w, int64_t d_out,
                                          const float *dY, int64_t lddy, const void *W_down, int64_t w_bytes,
                                          const lt_lowrank_term *terms, int64_t n_terms,
                                          const float *G, int64_t ldg, const float *U, int64_t ldu,
                                          float *dA, int64_t ldda, float *dG, int64_t lddg, float *dU, int64_t lddu,
                                          float *workspace, int64_t workspace_floats) {
    LT_CHECK(n >= 0 && w >= 0, LT_ERR_INVALID_ARGUMENT);
    lt_status st = lt__lowrank_terms_check(n, w, terms, n_terms);
    if (st == LT_OK) st = swiglu_operand(G, ldg, n, w);
    if (st == LT_OK) st = swiglu_operand(U, ldu, n, w);
    if (st == LT_OK) st = swiglu_operand(dG, lddg, n, w);
    if (st == LT_OK) st = swiglu_operand(dU, lddu, n, w);
    if (st != LT_OK) return st;
    LT_CHECK(dG != dA && dU != dA && dU != dG && (const float *)dG != G && (const float *)dG != U &&
             (const float *)dU != G && (const float *)dU != U, LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    const lt__swiglu_tile_ctx ctx = {{terms, n_terms, lt__axpy_block()}, lt_isa_active(), G, ldg, U, ldu, NULL, 0,
                                     dG, lddg, dU, lddu};
    const lt__tile_fn post = {lt__swiglu_backward_tile, &ctx};
    return quant_backward(type, n, w, d_out, dY, lddy, W_down, w_bytes, dA, ldda, 0, workspace, workspace_floats,
                          &post);
}
