/*
 * nn_causal_attention.c — causal grouped-query attention with a key/value cache (API in lt_nn.h).
 *
 * Per sequence b and query head h (kv head g = h / rep, rep = H / H_kv), query t at absolute
 * position past + t sees keys 0 … past + t (e_t = past + t + 1 of them):
 *   forward   s_tj = scale · q_t·k_j  (j < e_t)    p_t = softmax(s_t)    c_t = Σ_j p_tj v_j
 *   backward  (past = 0)  dp_tj = dc_t·v_j    dS_tj = scale · p_tj (dp_tj − Σ_k p_tk dp_tk)
 *             dq_t = Σ_j dS_tj k_j    dk_j = Σ_{h∈g} Σ_t dS_tj q_t    dv_j = Σ_{h∈g} Σ_t p_tj dc_t
 *
 * Arithmetic (the same for every path below, which is what makes them agree bit for bit):
 *   - a score q·k is one dot_block entry (simd.h): its value depends only on q, k and the ISA;
 *   - a row's softmax: max, e_j = e^{s_j − max} (lt__exp_d, rounded to float), normaliser
 *     Σ e_j in double (vector partial sums fixed by the compiled code and the row length),
 *     p_j = (float)(e_j · (1/Σ)) in double;
 *   - c_t = (((0 + a_0) + a_1) + …) where a_k = Σ_{j in key block k} p_tj v_j is formed by
 *     axpy_block over the block's keys in order (blocks of CA_KEYS keys from key 0). A block
 *     reaching past e_t is summed over e_t − k0 keys, or over more with p = 0 for the keys the
 *     row does not see (adding 0·v leaves the partial sum unchanged).
 * So a query row gets the same bits whether the T tokens come in one call (prefill), one at a
 * time with a growing cache (decode), with any thread count and on either path.
 *
 * Two ways to split the work (chosen from the shapes only, never from the thread count):
 *   row path (prefill, many query rows): items = (sequence, head, block of CA_ROWS query rows),
 *     heaviest first, dealt out cyclically (schedule(static, 1): thread loads differ by at most
 *     about one item; schedule(dynamic) is not an option, clang 21 emits __kmpc_dispatch_deinit,
 *     which the system libomp (LLVM 14) lacks). An item computes its rows' scores (ca_causal_dots:
 *     4 rows × 4 keys register tiles over the keys groups of rows share, the last few diagonal
 *     keys per row), the softmax, and C by key blocks with axpy_block (4 rows × 64 columns).
 *     Only visible keys get a score; the upper triangle is skipped, not masked.
 *   key path (decode: fewer than CA_ROWS query tokens, or fewer than CA_KEY_PATH_ITEMS row
 *     items, and at least 2·CA_KEYS keys): the row path would read each kv head's cache once per
 *     query head, and give only 9 items to the threads for SmolLM2 decode, so the keys are split
 *     instead, in four OpenMP loops of one parallel region: (1) items (sequence, kv head, key
 *     block): the scores of all the group's query heads against the block (K read once per
 *     group, not once per query head); (2) per
 *     row: softmax; (3) items (sequence, kv head, full key block): the block's partial P·V of
 *     every query head of the group (V read once per group), stored in the workspace at the
 *     block's own offset of the row; (4) per row: the partials added in block order, plus the
 *     row's last, incomplete block.
 * Scores live in P when it is given, else in the workspace (B·H·T·S floats, P's layout). The
 * row path without P uses one CA_ROWS × S slot of the workspace per thread.
 *
 * Backward (training, past = 0): two loops. (1) items (sequence, head, block of query rows):
 * without a saved P, the rows' probabilities recomputed into the workspace's second half by the
 * forward's own steps (ca_causal_dots of Q and K, then the softmax: the same bits as the forward's
 * P, since a score depends only on its two vectors); dP by dot_block (visible keys only), dS rows
 * into the workspace, dQ = dS K by axpy_block;
 * (2) items (sequence, kv head, block of CA_BWD_KEYS keys): dK and dV of the block, summed over
 * the group's query heads in head order and over query rows in order (the block's column of dS
 * or P gathered on the stack, CA_BWD_ROWS rows at a time, then one axpy_block).
 */
#include "lt_nn.h"
#include "nn_internal.h"
#include "simd.h"

#include <math.h>

/* The toolchain ships no omp.h. */
extern int omp_get_max_threads(void);
extern int omp_get_thread_num(void);

#define CA_ROWS 16              /* query rows per row-path item */
#define CA_KEYS 256             /* key block (P·V partial sums; key-path work unit) */
#ifndef CA_KEY_PATH_ITEMS
#define CA_KEY_PATH_ITEMS 16    /* row path from this many row items on (-D… for experiments) */
#endif
#define CA_BWD_KEYS 16          /* keys per backward dK/dV item */
#define CA_BWD_ROWS 64          /* query rows per gathered dS/P column block */
#define CA_LANES 16             /* max lanes of the softmax */

static inline int64_t ca_min(int64_t a, int64_t b) { return a < b ? a : b; }

/* ---- softmax of one row, in place ------------------------------------------------------------
 * s_j ← scale·s_j (float, as transformers scales the product), then p_j = e^{s_j − max} / Σ with
 * e^x = (float)lt__exp_d(x) and the normaliser in double. Written once, compiled per ISA; all
 * four loops vectorise: the max over CA_LANES fixed lanes (exact in any order), the exponentials
 * element-wise, the normaliser as a reduction the compiler may reassociate (`#pragma clang fp
 * reassociate` on that loop only: it keeps vector-width partial sums, an order fixed by the
 * compiled code and the row length — the same in every call, whichever path or thread makes
 * it), the normalisation element-wise. n >= 1. */
typedef void (*ca_softmax_fn)(float *s, int64_t n, float scale);

/* Σ_j s_j in double; the only loop whose additions may be reassociated (vector partial sums). */
#define LT_CA_ROW_SUM(suffix, attr)                                                           \
    attr static double ca_row_sum_##suffix(const float *s, int64_t n) {                       \
        _Pragma("clang fp reassociate(on)")                                                   \
        double acc = 0.0;                                                                     \
        _Pragma("clang loop interleave_count(2)")                                             \
        for (int64_t j = 0; j < n; j++) acc += (double)s[j];                                  \
        return acc;                                                                           \
    }

#define LT_CA_SOFTMAX(suffix, attr)                                                           \
    LT_CA_ROW_SUM(suffix, attr)                                                               \
    attr static void ca_softmax_##suffix(float *s, int64_t n, float scale) {                  \
        float mx[CA_LANES];                                                                   \
        for (int k = 0; k < CA_LANES; k++) mx[k] = -INFINITY;                                 \
        int64_t j = 0;                                                                        \
        for (; j + CA_LANES <= n; j += CA_LANES)                                              \
            for (int k = 0; k < CA_LANES; k++) {                                              \
                float v = s[j + k] * scale;                                                   \
                s[j + k] = v;                                                                 \
                mx[k] = v > mx[k] ? v : mx[k];                                                \
            }                                                                                 \
        for (int k = 0; j < n; j++, k++) {                                                    \
            float v = s[j] * scale;                                                           \
            s[j] = v;                                                                         \
            mx[k] = v > mx[k] ? v : mx[k];                                                    \
        }                                                                                     \
        for (int w = CA_LANES / 2; w >= 1; w /= 2)      /* lanes folded as a tree */          \
            for (int k = 0; k < w; k++) mx[k] = mx[k + w] > mx[k] ? mx[k + w] : mx[k];        \
        const double md = (double)mx[0];                                                      \
        _Pragma("clang loop vectorize(assume_safety) interleave_count(1)")                  \
        for (int64_t t = 0; t < n; t++) s[t] = (float)lt__exp_d((double)s[t] - md);           \
        const double inv = 1.0 / ca_row_sum_##suffix(s, n);                                   \
        _Pragma("clang loop vectorize(assume_safety) interleave_count(1)")                  \
        for (int64_t t = 0; t < n; t++) s[t] = (float)((double)s[t] * inv);                   \
    }

LT_CA_SOFTMAX(scalar, )
#if defined(__x86_64__)
LT_CA_SOFTMAX(avx2, __attribute__((target("avx2,fma"))))
LT_CA_SOFTMAX(avx512, __attribute__((target("avx512f,fma"))))
#endif

static ca_softmax_fn ca_softmax_for(lt_isa isa) {
#if defined(__x86_64__)
    if (isa == LT_ISA_AVX512) return ca_softmax_avx512;
    if (isa == LT_ISA_AVX2) return ca_softmax_avx2;
#endif
    (void)isa;
    return ca_softmax_scalar;
}

/* dS row in place over dP: D = Σ_j p_j dp_j (double; reassociable into vector partial sums as
 * the softmax normaliser); ds_j = scale · p_j (dp_j − D). */
static double ca_row_dot(const float *p, const float *dp, int64_t n) {
    _Pragma("clang fp reassociate(on)")
    double acc = 0.0;
    for (int64_t j = 0; j < n; j++) acc += (double)p[j] * (double)dp[j];
    return acc;
}

static void ca_dsoftmax_row(const float *p, float *ds, int64_t n, float scale) {
    const float D = (float)ca_row_dot(p, ds, n);
    LT_ELEMENTWISE
    for (int64_t t = 0; t < n; t++) ds[t] = scale * (p[t] * (ds[t] - D));
}

/* ---- causal block of dot products ----------------------------------------------------------
 * out[r, j] = x_r · k_j for r < n and j < e0 + r (row r sees e0 + r keys): the e0 keys every row
 * sees as one dot_block, then per group of 4 rows (the register tile) the keys the group shares,
 * then each row's last 1–3 keys. Only visible pairs are computed. */
static void ca_causal_dots(lt_dot_block_fn dot, int64_t n, int64_t e0, int64_t dh,
                           const float *X, int64_t ldx, const float *Kb, int64_t ldk,
                           float *out, int64_t ldo) {
    dot(n, e0, dh, X, ldx, Kb, ldk, out, ldo);
    for (int64_t q = 0; q < n; q += 4) {
        const int64_t qn = ca_min(4, n - q);
        if (q > 0) dot(qn, q, dh, X + q * ldx, ldx, Kb + e0 * ldk, ldk, out + q * ldo + e0, ldo);
        for (int64_t i = 1; i < qn; i++)
            dot(1, i, dh, X + (q + i) * ldx, ldx, Kb + (e0 + q) * ldk, ldk, out + (q + i) * ldo + e0 + q, ldo);
    }
}

/* ---- forward -------------------------------------------------------------------------------- */

typedef struct {
    int64_t B, T, past, H, Hkv, dh, rep, S, cache_len;
    float scale;
    const float *Q; int64_t ldq;
    const float *K; int64_t ldk;
    const float *V; int64_t ldv;
    float *P; float *C; int64_t ldc;
    float *ws;
    lt_dot_block_fn dot;
    lt_axpy_block_fn axpy;
    ca_softmax_fn softmax;
} ca_fwd;

/* Row path: query rows t0 … t1−1 of sequence b, head h; sc: their score rows (ld S). */
static void ca_rows_forward(const ca_fwd *a, int64_t b, int64_t h, int64_t t0, int64_t t1, float *sc) {
    const int64_t S = a->S, dh = a->dh, n = t1 - t0, g = h / a->rep;
    const float *Qr = a->Q + (b * a->T + t0) * a->ldq + h * dh;
    const float *Kg = a->K + b * a->cache_len * a->ldk + g * dh;
    const float *Vg = a->V + b * a->cache_len * a->ldv + g * dh;
    float *Cr = a->C + (b * a->T + t0) * a->ldc + h * dh;
    const int64_t e0 = a->past + t0 + 1;      /* keys row t0 sees; row t0 + r sees e0 + r */
    const int64_t e_last = e0 + n - 1;

    ca_causal_dots(a->dot, n, e0, dh, Qr, a->ldq, Kg, a->ldk, sc, S);       /* S = Q Kᵀ, visible */
    /* softmax; the keys a row does not see get p = 0 (up to S in P, up to e_last in a slot,
     * which is all the P·V blocks below read). */
    for (int64_t r = 0; r < n; r++) {
        float *row = sc + r * S;
        a->softmax(row, e0 + r, a->scale);
        const int64_t zero_end = a->P ? S : e_last;
        if (e0 + r < zero_end) memset(row + e0 + r, 0, (size_t)(zero_end - e0 - r) * sizeof(float));
    }
    /* C = Σ over key blocks of the block's P·V; rows that see no key of a block skip it. */
    for (int64_t r = 0; r < n; r++) memset(Cr + r * a->ldc, 0, (size_t)dh * sizeof(float));
    for (int64_t k0 = 0; k0 < e_last; k0 += CA_KEYS) {
        const int64_t kn = ca_min(CA_KEYS, e_last - k0);
        const int64_t r0 = k0 < e0 ? 0 : k0 - e0 + 1;
        a->axpy(n - r0, kn, dh, sc + r0 * S + k0, S, Vg + k0 * a->ldv, a->ldv, Cr + r0 * a->ldc, a->ldc);
    }
}

/* Key path step 1: scores of all query heads of kv head g against key block kb (all t). */
static void ca_keys_scores(const ca_fwd *a, float *sc, int64_t b, int64_t g, int64_t kb) {
    const int64_t S = a->S, T = a->T, dh = a->dh, k0 = kb * CA_KEYS, h0 = g * a->rep;
    const float *Kb = a->K + (b * a->cache_len + k0) * a->ldk + g * dh;
    for (int64_t t = 0; t < T; t++) {
        const int64_t e = a->past + t + 1;
        if (k0 >= e) continue;
        /* rows = the group's query heads: columns h·dh of the query row (ld dh), score rows
         * T·S apart */
        a->dot(a->rep, ca_min(CA_KEYS, e - k0), dh, a->Q + (b * T + t) * a->ldq + h0 * dh, dh,
               Kb, a->ldk, sc + ((b * a->H + h0) * T + t) * S + k0, T * S);
    }
}

/* Key path step 3: partial P·V of full key block kb for every query head of kv head g (all t
 * for which the block is complete), stored at the block's offset of the row in the workspace. */
static void ca_keys_partials(const ca_fwd *a, const float *sc, int64_t b, int64_t g, int64_t kb) {
    const int64_t S = a->S, T = a->T, dh = a->dh, k0 = kb * CA_KEYS, h0 = g * a->rep;
    const float *Vb = a->V + (b * a->cache_len + k0) * a->ldv + g * dh;
    float tmp[4 * CA_KEYS];   /* 4 rows × dh (dh <= CA_KEYS on this path) */
    for (int64_t t = 0; t < T; t++) {
        if (k0 + CA_KEYS > a->past + t + 1) continue;
        for (int64_t i0 = 0; i0 < a->rep; i0 += 4) {
            const int64_t in = ca_min(4, a->rep - i0);
            const int64_t row0 = (b * a->H + h0 + i0) * T + t;
            memset(tmp, 0, (size_t)(in * dh) * sizeof(float));
            a->axpy(in, CA_KEYS, dh, sc + row0 * S + k0, T * S, Vb, a->ldv, tmp, dh);
            for (int64_t i = 0; i < in; i++)
                memcpy(a->ws + (row0 + i * T) * S + k0, tmp + i * dh, (size_t)dh * sizeof(float));
        }
    }
}

/* Key path step 4: row ρ = (b·H + h)·T + t of C from the stored partials and its last block. */
static void ca_keys_combine(const ca_fwd *a, const float *sc, int64_t rho) {
    const int64_t S = a->S, T = a->T, dh = a->dh;
    const int64_t t = rho % T, bh = rho / T, b = bh / a->H, h = bh % a->H, g = h / a->rep;
    const int64_t e = a->past + t + 1, nfull = e / CA_KEYS, rest = e - nfull * CA_KEYS;
    float *c = a->C + (b * T + t) * a->ldc + h * dh;
    memset(c, 0, (size_t)dh * sizeof(float));
    for (int64_t kb = 0; kb < nfull; kb++) {
        const float *part = a->ws + rho * S + kb * CA_KEYS;
        for (int64_t j = 0; j < dh; j++) c[j] += part[j];
    }
    if (rest > 0)
        a->axpy(1, rest, dh, sc + rho * S + nfull * CA_KEYS, S,
                a->V + (b * a->cache_len + nfull * CA_KEYS) * a->ldv + g * dh, a->ldv, c, a->ldc);
}

/* Key path for a long cache (two key blocks or more) when the query rows are too few to fill
 * one row block (decode, at any batch size: the row path would read each kv head's cache once
 * per query head instead of once per kv head) or to give the threads enough items. */
static int ca_key_path(int64_t B, int64_t T, int64_t past, int64_t H, int64_t dh) {
    const int64_t row_items = B * H * ((T + CA_ROWS - 1) / CA_ROWS);
    return dh <= CA_KEYS && past + T >= 2 * CA_KEYS && (T < CA_ROWS || row_items < CA_KEY_PATH_ITEMS);
}

static lt_status ca_check_heads(int64_t H, int64_t H_kv, int64_t d_h, float scale) {
    LT_CHECK(H >= 1 && H_kv >= 1 && d_h >= 1 && H % H_kv == 0, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(isfinite(scale), LT_ERR_INVALID_ARGUMENT);
    return LT_OK;
}

/* B·H·T·S with S = past + T, checked for overflow. */
static lt_status ca_score_floats(int64_t B, int64_t T, int64_t past, int64_t H, int64_t *out) {
    LT_CHECK(B >= 0 && T >= 0 && past >= 0 && H >= 1, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(past <= INT64_MAX - T, LT_ERR_INVALID_ARGUMENT);
    int64_t bh, bht;
    LT_CHECK(!lt__mul_overflows(B, H, &bh) && !lt__mul_overflows(bh, T, &bht) &&
             !lt__mul_overflows(bht, past + T, out), LT_ERR_INVALID_ARGUMENT);
    return LT_OK;
}

lt_status lt_causal_attention_workspace_size(int64_t B, int64_t T, int64_t past, int64_t H,
                                             int64_t *floats) {
    LT_CHECK(floats, LT_ERR_NULL_POINTER);
    return ca_score_floats(B, T, past, H, floats);
}

lt_status lt_causal_attention_forward(int64_t B, int64_t T, int64_t past,
                                      int64_t H, int64_t H_kv, int64_t d_h, float scale,
                                      const float *Q, int64_t ldq,
                                      const float *K, int64_t ldk,
                                      const float *V, int64_t ldv, int64_t cache_len,
                                      float *P, float *C, int64_t ldc,
                                      float *workspace) {
    LT_CHECK(Q && K && V && C && workspace, LT_ERR_NULL_POINTER);
    lt_status st = ca_check_heads(H, H_kv, d_h, scale);
    if (st != LT_OK) return st;
    int64_t floats, d, dkv, n, t;
    st = ca_score_floats(B, T, past, H, &floats);
    if (st != LT_OK) return st;
    const int64_t S = past + T;
    LT_CHECK(cache_len >= S, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(!lt__mul_overflows(H, d_h, &d) && !lt__mul_overflows(H_kv, d_h, &dkv) &&
             !lt__mul_overflows(B, T, &n), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(lt__ld_ok(ldq, d) && lt__ld_ok(ldc, d) && lt__ld_ok(ldk, dkv) && lt__ld_ok(ldv, dkv),
             LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(!lt__mul_overflows(n, ldq, &t) && !lt__mul_overflows(n, ldc, &t) &&
             !lt__mul_overflows(B, cache_len, &t) && !lt__mul_overflows(t, ldk > ldv ? ldk : ldv, &t),
             LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    if (B == 0 || T == 0) return LT_OK;

    ca_fwd a = {
        .B = B, .T = T, .past = past, .H = H, .Hkv = H_kv, .dh = d_h, .rep = H / H_kv, .S = S,
        .cache_len = cache_len, .scale = scale, .Q = Q, .ldq = ldq, .K = K, .ldk = ldk, .V = V,
        .ldv = ldv, .P = P, .C = C, .ldc = ldc, .ws = workspace,
        .dot = lt__dot_block(), .axpy = lt__axpy_block(), .softmax = ca_softmax_for(lt_isa_active()),
    };
    /* ≈ 4·d_h flops per (query, visible key) pair, plus the softmax */
    const double flops = (double)B * (double)H * (double)T * ((double)past + 0.5 * (double)(T + 1)) *
                         (4.0 * (double)d_h + 20.0);
    const int par = LT_PARALLEL_IF(flops);
    float *sc_all = P ? P : workspace;

    if (ca_key_path(B, T, past, H, d_h)) {
        const int64_t nblocks = (S + CA_KEYS - 1) / CA_KEYS, nfull = S / CA_KEYS;
        const int64_t score_items = B * H_kv * nblocks, partial_items = B * H_kv * nfull, rows = B * H * T;
        #pragma omp parallel if(par)
        {
            #pragma omp for schedule(static, 1)
            for (int64_t it = 0; it < score_items; it++)
                ca_keys_scores(&a, sc_all, it / (H_kv * nblocks), (it / nblocks) % H_kv, it % nblocks);
            #pragma omp for schedule(static, 1)
            for (int64_t rho = 0; rho < rows; rho++) {
                const int64_t e = past + rho % T + 1;
                float *row = sc_all + rho * S;
                a.softmax(row, e, scale);
                if (P && e < S) memset(row + e, 0, (size_t)(S - e) * sizeof(float));
            }
            #pragma omp for schedule(static, 1)
            for (int64_t it = 0; it < partial_items; it++)
                ca_keys_partials(&a, sc_all, it / (H_kv * nfull), (it / nfull) % H_kv, it % nfull);
            #pragma omp for schedule(static, 1)
            for (int64_t rho = 0; rho < rows; rho++) ca_keys_combine(&a, sc_all, rho);
        }
        return LT_OK;
    }

    /* Row path. Items ordered heaviest first (last query blocks see the most keys), dealt out
     * cyclically: which thread runs an item does not change its bits. Without P each
     * thread uses its own slot of slot_rows × S floats; the workspace holds B·H·T / slot_rows
     * of them, so at most that many threads run. */
    const int64_t nqb = (T + CA_ROWS - 1) / CA_ROWS, items = B * H * nqb;
    const int64_t slot_rows = ca_min(CA_ROWS, T);
    int64_t threads = omp_get_max_threads();
    if (!P) threads = ca_min(threads, (B * H * T) / slot_rows);
    if (threads < 1) threads = 1;
    #pragma omp parallel for schedule(static, 1) num_threads((int)threads) if(par)
    for (int64_t it = 0; it < items; it++) {
        const int64_t qb = nqb - 1 - it / (B * H), bh = it % (B * H), b = bh / H, h = bh % H;
        const int64_t t0 = qb * CA_ROWS, t1 = ca_min(T, t0 + CA_ROWS);
        float *sc = P ? P + ((b * H + h) * T + t0) * S
                      : workspace + (int64_t)omp_get_thread_num() * slot_rows * S;
        ca_rows_forward(&a, b, h, t0, t1, sc);
    }
    return LT_OK;
}

/* ---- backward ------------------------------------------------------------------------------- */

lt_status lt_causal_attention_backward_workspace_size(int64_t B, int64_t T, int64_t H,
                                                      int64_t *floats) {
    LT_CHECK(floats, LT_ERR_NULL_POINTER);
    int64_t one;
    lt_status st = ca_score_floats(B, T, 0, H, &one);
    if (st != LT_OK) return st;
    LT_CHECK(one <= INT64_MAX / 2, LT_ERR_INVALID_ARGUMENT);
    *floats = 2 * one;                 /* dS, then P when it is recomputed */
    return LT_OK;
}

typedef struct {
    int64_t B, T, H, Hkv, dh, rep;
    float scale;
    const float *Q; int64_t ldq;
    const float *K; int64_t ldk;
    const float *V; int64_t ldv;
    const float *P;             /* saved probabilities, or the recomputed ones in the workspace */
    float *Pw;                  /* where step 1 recomputes P (NULL when the caller gave P) */
    const float *dC; int64_t lddc;
    float *dQ; int64_t lddq;
    float *dK; int64_t lddk;
    float *dV; int64_t lddv;
    float *dS;
    lt_dot_block_fn dot;
    lt_axpy_block_fn axpy;
    ca_softmax_fn softmax;
} ca_bwd;

/* Step 1: rows t0 … t1−1 of sequence b, head h: dS rows (workspace) and dQ rows. */
static void ca_rows_backward(const ca_bwd *a, int64_t b, int64_t h, int64_t t0, int64_t t1) {
    const int64_t T = a->T, dh = a->dh, n = t1 - t0, g = h / a->rep;
    const int64_t row0 = (b * a->H + h) * T + t0;
    const float *Pr = a->P + row0 * T;
    float *dSr = a->dS + row0 * T;
    const float *dCr = a->dC + (b * T + t0) * a->lddc + h * dh;
    const float *Kg = a->K + b * T * a->ldk + g * dh;
    const float *Vg = a->V + b * T * a->ldv + g * dh;
    float *dQr = a->dQ + (b * T + t0) * a->lddq + h * dh;
    const int64_t e0 = t0 + 1, e_last = t1;

    if (a->Pw) {                    /* P recomputed as the forward computes it (zeros up to T) */
        float *Pw = a->Pw + row0 * T;
        ca_causal_dots(a->dot, n, e0, dh, a->Q + (b * T + t0) * a->ldq + h * dh, a->ldq, Kg, a->ldk, Pw, T);
        for (int64_t r = 0; r < n; r++) {
            a->softmax(Pw + r * T, e0 + r, a->scale);
            if (e0 + r < T) memset(Pw + r * T + e0 + r, 0, (size_t)(T - e0 - r) * sizeof(float));
        }
    }
    ca_causal_dots(a->dot, n, e0, dh, dCr, a->lddc, Vg, a->ldv, dSr, T);     /* dP = dC Vᵀ, visible */
    for (int64_t r = 0; r < n; r++) {
        float *ds = dSr + r * T;
        ca_dsoftmax_row(Pr + r * T, ds, e0 + r, a->scale);
        if (e0 + r < e_last) memset(ds + e0 + r, 0, (size_t)(e_last - e0 - r) * sizeof(float));
    }
    for (int64_t r = 0; r < n; r++) memset(dQr + r * a->lddq, 0, (size_t)dh * sizeof(float));
    for (int64_t k0 = 0; k0 < e_last; k0 += CA_KEYS) {                      /* dQ = dS K */
        const int64_t kn = ca_min(CA_KEYS, e_last - k0);
        const int64_t r0 = k0 < e0 ? 0 : k0 - e0 + 1;
        a->axpy(n - r0, kn, dh, dSr + r0 * T + k0, T, Kg + k0 * a->ldk, a->ldk, dQr + r0 * a->lddq, a->lddq);
    }
}

/* Step 2: keys j0 … j1−1 of sequence b, kv head g: dK = Σ_h dSᵀ Q_h, dV = Σ_h Pᵀ dC_h. */
static void ca_keys_backward(const ca_bwd *a, int64_t b, int64_t g, int64_t j0, int64_t j1) {
    const int64_t T = a->T, dh = a->dh, jn = j1 - j0;
    float *dKb = a->dK + (b * T + j0) * a->lddk + g * dh;
    float *dVb = a->dV + (b * T + j0) * a->lddv + g * dh;
    for (int64_t j = 0; j < jn; j++) {
        memset(dKb + j * a->lddk, 0, (size_t)dh * sizeof(float));
        memset(dVb + j * a->lddv, 0, (size_t)dh * sizeof(float));
    }
    float cs[CA_BWD_KEYS * CA_BWD_ROWS], cp[CA_BWD_KEYS * CA_BWD_ROWS];
    for (int64_t h = g * a->rep; h < (g + 1) * a->rep; h++) {
        const int64_t rowh = (b * a->H + h) * T;
        for (int64_t i0 = j0; i0 < T; i0 += CA_BWD_ROWS) {         /* rows i < j0 see no key here */
            const int64_t in = ca_min(CA_BWD_ROWS, T - i0);
            for (int64_t i = 0; i < in; i++) {
                const float *ds = a->dS + (rowh + i0 + i) * T + j0, *p = a->P + (rowh + i0 + i) * T + j0;
                for (int64_t j = 0; j < jn; j++) {
                    const int vis = i0 + i >= j0 + j;                /* row i0+i sees key j0+j */
                    cs[j * CA_BWD_ROWS + i] = vis ? ds[j] : 0.0f;
                    cp[j * CA_BWD_ROWS + i] = vis ? p[j] : 0.0f;
                }
            }
            a->axpy(jn, in, dh, cs, CA_BWD_ROWS, a->Q + (b * T + i0) * a->ldq + h * dh, a->ldq, dKb, a->lddk);
            a->axpy(jn, in, dh, cp, CA_BWD_ROWS, a->dC + (b * T + i0) * a->lddc + h * dh, a->lddc, dVb, a->lddv);
        }
    }
}

lt_status lt_causal_attention_backward(int64_t B, int64_t T,
                                       int64_t H, int64_t H_kv, int64_t d_h, float scale,
                                       const float *Q, int64_t ldq,
                                       const float *K, int64_t ldk,
                                       const float *V, int64_t ldv,
                                       const float *P,
                                       const float *dC, int64_t lddc,
                                       float *dQ, int64_t lddq,
                                       float *dK, int64_t lddk,
                                       float *dV, int64_t lddv,
                                       float *workspace) {
    LT_CHECK(Q && K && V && dC && dQ && dK && dV && workspace, LT_ERR_NULL_POINTER);
    lt_status st = ca_check_heads(H, H_kv, d_h, scale);
    if (st != LT_OK) return st;
    int64_t floats, d, dkv, n, t;
    st = ca_score_floats(B, T, 0, H, &floats);
    if (st != LT_OK) return st;
    LT_CHECK(!lt__mul_overflows(H, d_h, &d) && !lt__mul_overflows(H_kv, d_h, &dkv) &&
             !lt__mul_overflows(B, T, &n), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(lt__ld_ok(ldq, d) && lt__ld_ok(lddc, d) && lt__ld_ok(lddq, d) &&
             lt__ld_ok(ldk, dkv) && lt__ld_ok(ldv, dkv) && lt__ld_ok(lddk, dkv) && lt__ld_ok(lddv, dkv),
             LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(!lt__mul_overflows(n, ldq, &t) && !lt__mul_overflows(n, lddc, &t) &&
             !lt__mul_overflows(n, lddq, &t) && !lt__mul_overflows(n, ldk, &t) &&
             !lt__mul_overflows(n, ldv, &t) && !lt__mul_overflows(n, lddk, &t) &&
             !lt__mul_overflows(n, lddv, &t), LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    if (B == 0 || T == 0) return LT_OK;

    ca_bwd a = {
        .B = B, .T = T, .H = H, .Hkv = H_kv, .dh = d_h, .rep = H / H_kv, .scale = scale,
        .Q = Q, .ldq = ldq, .K = K, .ldk = ldk, .V = V, .ldv = ldv,
        .P = P ? P : workspace + floats, .Pw = P ? NULL : workspace + floats, .dC = dC, .lddc = lddc,
        .dQ = dQ, .lddq = lddq, .dK = dK, .lddk = lddk, .dV = dV, .lddv = lddv, .dS = workspace,
        .dot = lt__dot_block(), .axpy = lt__axpy_block(), .softmax = ca_softmax_for(lt_isa_active()),
    };
    const double flops = (double)B * (double)H * (double)T * 0.5 * (double)(T + 1) * (8.0 * (double)d_h + 10.0);
    const int64_t nqb = (T + CA_ROWS - 1) / CA_ROWS, row_items = B * H * nqb;
    const int64_t nkb = (T + CA_BWD_KEYS - 1) / CA_BWD_KEYS, key_items = B * H_kv * nkb;
    #pragma omp parallel if(LT_PARALLEL_IF(flops))
    {
        /* heaviest first in both loops, dealt out cyclically */
        #pragma omp for schedule(static, 1)
        for (int64_t it = 0; it < row_items; it++) {
            const int64_t qb = nqb - 1 - it / (B * H), bh = it % (B * H);
            ca_rows_backward(&a, bh / H, bh % H, qb * CA_ROWS, ca_min(T, qb * CA_ROWS + CA_ROWS));
        }
        #pragma omp for schedule(static, 1)
        for (int64_t it = 0; it < key_items; it++) {
            const int64_t kb = it / (B * H_kv), bg = it % (B * H_kv);
            ca_keys_backward(&a, bg / H_kv, bg % H_kv, kb * CA_BWD_KEYS, ca_min(T, kb * CA_BWD_KEYS + CA_BWD_KEYS));
        }
    }
    return LT_OK;
}

/* ---- micro-kernel entry points (tests, benchmarks) ------------------------------------------ */

static lt_status ca_kernel_isa(int isa) {
    LT_CHECK(isa == LT_ISA_SCALAR || isa == LT_ISA_AVX2 || isa == LT_ISA_AVX512, LT_ERR_INVALID_ARGUMENT);
    (void)lt__ensure_init();
    LT_CHECK(lt_isa_supported(isa), LT_ERR_UNSUPPORTED_ISA);
    return LT_OK;
}

lt_status lt_kernel_dot_block(int isa, int64_t m, int64_t r, int64_t d, const float *X, int64_t ldx,
                              const float *M, int64_t ldm, float *out, int64_t ldo) {
    LT_CHECK(X && M && out, LT_ERR_NULL_POINTER);
    LT_CHECK(m >= 0 && r >= 0 && d >= 0 && ldx >= d && ldm >= d && ldo >= r, LT_ERR_INVALID_ARGUMENT);
    lt_status st = ca_kernel_isa(isa);
    if (st != LT_OK) return st;
    lt__dot_block_for(isa)(m, r, d, X, ldx, M, ldm, out, ldo);
    return LT_OK;
}

lt_status lt_kernel_axpy_block(int isa, int64_t m, int64_t r, int64_t d, const float *Cf, int64_t ldc,
                               const float *M, int64_t ldm, float *Y, int64_t ldy) {
    LT_CHECK(Cf && M && Y, LT_ERR_NULL_POINTER);
    LT_CHECK(m >= 0 && r >= 0 && d >= 0 && ldc >= r && ldm >= d && ldy >= d, LT_ERR_INVALID_ARGUMENT);
    lt_status st = ca_kernel_isa(isa);
    if (st != LT_OK) return st;
    lt__axpy_block_for(isa)(m, r, d, Cf, ldc, M, ldm, Y, ldy);
    return LT_OK;
}
