/* stats.c — streaming, mergeable statistics: count, mean, scatter, third and fourth central
 * norm moments (see lt_stats.h for the formulas). */
#include "lt_stats.h"
#include "internal.h"
#include "simd.h"
#include "stats_internal.h"
#include <math.h>
#include <string.h>

/* Columns summed by one task in the mean pass (fixed, so sums never depend on threads). */
#define LT_STATS_COL_CHUNK 32
/* Below this many elements per parallel pass the OpenMP fork costs more than it saves. */
#define LT_STATS_PAR_MIN 32768

static int stats_valid(const lt_stats *s) {
    return s && s->dim >= 1 && s->count >= 0 && s->mean && s->scatter && s->third;
}

lt_status lt_stats_update_workspace_size(int64_t dim, int64_t rows, int64_t *doubles) {
    LT_CHECK(doubles, LT_ERR_NULL_POINTER);
    LT_CHECK(dim >= 1 && rows >= 0, LT_ERR_INVALID_ARGUMENT);
    int64_t b = rows < LT_STATS_BLOCK_ROWS ? rows : LT_STATS_BLOCK_ROWS;
    *doubles = b * (((dim + 7) / 8) * 8 + 1) + 2 * dim;
    return LT_OK;
}

lt_status lt_stats_merge_workspace_size(int64_t dim, int64_t *doubles) {
    LT_CHECK(doubles, LT_ERR_NULL_POINTER);
    LT_CHECK(dim >= 1, LT_ERR_INVALID_ARGUMENT);
    *doubles = 3 * dim;
    return LT_OK;
}

/* v (d) ← M c with M d × d symmetric row-major; ordered sums (deterministic). */
static void symv_rows(int64_t d, const double *M, const double *c, double *v) {
    for (int64_t i = 0; i < d; i++) {
        const double *m = M + i * d;
        double acc = 0.0;
        for (int64_t j = 0; j < d; j++) acc += m[j] * c[j];
        v[i] = acc;
    }
}

/* Third and fourth moments of an object (count n, scatter M2, third T3, fourth Q4) about a mean
 * moved by c (new = old − c, i.e. c = μ_old − μ_new): writes T3' into t_out and returns Q4'.
 * mc: d scratch. t_out may alias T3. */
static double shifted_moments(int64_t d, int64_t n, const double *M2, const double *T3,
                              double Q4, const double *c, double *mc, double *t_out) {
    symv_rows(d, M2, c, mc);
    double tr = 0.0, cc = 0.0, cmc = 0.0, ct = 0.0;
    for (int64_t j = 0; j < d; j++) {
        tr += M2[j * d + j];
        cc += c[j] * c[j];
        cmc += c[j] * mc[j];
        ct += c[j] * T3[j];
    }
    const double nd = (double)n;
    for (int64_t j = 0; j < d; j++) t_out[j] = T3[j] + 2.0 * mc[j] + (tr + nd * cc) * c[j];
    return Q4 + 4.0 * ct + 2.0 * cc * tr + 4.0 * cmc + nd * cc * cc;
}

/* Upper triangle → lower triangle. */
static void mirror_upper(int64_t d, double *M) {
    for (int64_t i = 1; i < d; i++)
        for (int64_t j = 0; j < i; j++) M[i * d + j] = M[j * d + i];
}

/* mean_b (d) ← column means of x (rows × d, ld ldx) in float64. Column chunks run in parallel;
 * every column is summed over rows in order by the same code, so the bits never depend on the
 * thread count. Returns 0 when a sum is not finite (NaN/Inf in the data). */
static int batch_mean(const float *x, int64_t rows, int64_t ldx, int64_t d, double *mean_b) {
    const int64_t nchunks = (d + LT_STATS_COL_CHUNK - 1) / LT_STATS_COL_CHUNK;
    const int par = rows * d >= LT_STATS_PAR_MIN && nchunks > 1;
#pragma omp parallel for schedule(static, 1) if (par)
    for (int64_t c = 0; c < nchunks; c++) {
        const int64_t j0 = c * LT_STATS_COL_CHUNK;
        const int64_t w = (d - j0) < LT_STATS_COL_CHUNK ? (d - j0) : LT_STATS_COL_CHUNK;
        double acc[LT_STATS_COL_CHUNK];
        for (int64_t j = 0; j < w; j++) acc[j] = 0.0;
        for (int64_t i = 0; i < rows; i++) {
            const float *r = x + i * ldx + j0;
            for (int64_t j = 0; j < w; j++) acc[j] += (double)r[j];
        }
        for (int64_t j = 0; j < w; j++) mean_b[j0 + j] = acc[j] / (double)rows;
    }
    for (int64_t j = 0; j < d; j++)
        if (!isfinite(mean_b[j])) return 0;
    return 1;
}

lt_status lt_stats_update(lt_stats *s, const float *x, int64_t rows, int64_t ldx,
                          double *work, int64_t work_size) {
    LT_CHECK(s, LT_ERR_NULL_POINTER);
    LT_CHECK(stats_valid(s), s->dim < 1 || s->count < 0 ? LT_ERR_INVALID_ARGUMENT : LT_ERR_NULL_POINTER);
    LT_CHECK(rows >= 0, LT_ERR_INVALID_ARGUMENT);
    if (rows == 0) return LT_OK;
    LT_CHECK(x && work, LT_ERR_NULL_POINTER);
    const int64_t d = s->dim;
    LT_CHECK(ldx >= d && d <= INT32_MAX, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(s->count <= INT64_MAX - rows, LT_ERR_INVALID_ARGUMENT);
    int64_t need = 0;
    lt_status st = lt_stats_update_workspace_size(d, rows, &need);
    if (st != LT_OK) return st;
    LT_CHECK(work_size >= need, LT_ERR_INVALID_ARGUMENT);
    st = lt__ensure_init();
    (void)st; /* environment errors are reported by lt_runtime_init; defaults apply */

    const int64_t B = rows < LT_STATS_BLOCK_ROWS ? rows : LT_STATS_BLOCK_ROWS;
    const int64_t dp = ((d + 7) / 8) * 8; /* d rounded up to whole panels */
    double *Y = work;                 /* B × dp centred block, packed in panels of 8 columns */
    double *sq = Y + B * dp;          /* B: ‖x_i − μ_new‖² */
    double *mean_b = sq + B;          /* d */
    double *cvec = mean_b + d;        /* d: shift vector, then scratch */

    if (!batch_mean(x, rows, ldx, d, mean_b)) return LT_ERR_INVALID_ARGUMENT;

    const int64_t na = s->count, nb = rows, n = na + nb;
    const double fa = (double)na, fb = (double)nb, fn = (double)n;
    double *mu = s->mean, *M2 = s->scatter, *T3 = s->third;

    /* Move the existing moments to the pooled mean μ_new = μ_a + δ nb/n (c_A = μ_a − μ_new). */
    if (na > 0) {
        for (int64_t j = 0; j < d; j++) cvec[j] = -(mean_b[j] - mu[j]) * (fb / fn);
        /* scratch for M2 c: the start of the Y block, unused until the block loop */
        s->fourth = shifted_moments(d, na, M2, T3, s->fourth, cvec, Y, T3);
    }
    /* c_B = μ_b − μ_new = δ na/n; kept in cvec for the batch pass (zero when na == 0). */
    for (int64_t j = 0; j < d; j++) cvec[j] = (mean_b[j] - mu[j]) * (fa / fn);
    if (na == 0) { /* an empty object starts from exact zeros whatever its arrays held */
        for (int64_t j = 0; j < d; j++) { cvec[j] = 0.0; T3[j] = 0.0; }
        memset(M2, 0, (size_t)(d * d) * sizeof(double));
        s->fourth = 0.0;
    }

    double q4 = 0.0;
    for (int64_t r0 = 0; r0 < rows; r0 += B) {
        const int64_t b = (rows - r0) < B ? (rows - r0) : B;
        const int par = b * d >= LT_STATS_PAR_MIN;
        /* centre in float64 into the packed block: Y[k][j] at Y[(j/8)*b*8 + k*8 + j%8] */
#pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK) if (par)
        for (int64_t i = 0; i < b; i++) {
            const float *xr = x + (r0 + i) * ldx;
            double acc = 0.0;
            for (int64_t j = 0; j < dp; j++) {
                double *y = Y + (j >> 3) * b * 8 + i * 8 + (j & 7);
                if (j >= d) { *y = 0.0; continue; }
                const double v = (double)xr[j] - mean_b[j];
                const double z = v + cvec[j];
                *y = v;
                acc += z * z;
            }
            sq[i] = acc;
        }
        /* M2 (upper) += Yᵀ Y: own tiled kernel, deterministic for any thread count (OpenBLAS's
         * threaded dsyrk/dgemm change some sums with the thread count; measured). */
        lt__stats_syrk_packed(d, b, Y, M2, d, b * d * d >= LT_STATS_PAR_MIN * 8);
        /* T3 += Σ ‖z_i‖² z_i, Q4 += Σ ‖z_i‖⁴ with z_i = y_i + c_B (ordered). */
        for (int64_t i = 0; i < b; i++) {
            const double w = sq[i];
            q4 += w * w;
            for (int64_t p = 0; p < dp / 8; p++) {
                const double *y = Y + p * b * 8 + i * 8;
                const int64_t w8 = (d - p * 8) < 8 ? (d - p * 8) : 8;
                for (int64_t c = 0; c < w8; c++) T3[p * 8 + c] += w * (y[c] + cvec[p * 8 + c]);
            }
        }
    }
    s->fourth += q4;

    /* Chan et al.: M2 += (na nb / n) δδᵀ (upper), then mirror and move the mean. */
    if (na > 0) {
        const double k = fa * fb / fn;
        for (int64_t i = 0; i < d; i++) {
            const double di = mean_b[i] - mu[i];
            for (int64_t j = i; j < d; j++) M2[i * d + j] += k * di * (mean_b[j] - mu[j]);
        }
        for (int64_t j = 0; j < d; j++) mu[j] += (mean_b[j] - mu[j]) * (fb / fn);
    } else {
        memcpy(mu, mean_b, (size_t)d * sizeof(double));
    }
    mirror_upper(d, M2);
    s->count = n;
    return LT_OK;
}

lt_status lt_stats_merge(lt_stats *dst, const lt_stats *src, double *work, int64_t work_size) {
    LT_CHECK(dst && src && work, LT_ERR_NULL_POINTER);
    LT_CHECK(dst->dim >= 1 && dst->count >= 0 && src->count >= 0, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(stats_valid(dst) && stats_valid(src), LT_ERR_NULL_POINTER);
    LT_CHECK(src->dim == dst->dim, LT_ERR_INVALID_ARGUMENT);
    const int64_t d = dst->dim;
    LT_CHECK(work_size >= 3 * d, LT_ERR_INVALID_ARGUMENT);
    if (src->count == 0) return LT_OK;
    LT_CHECK(dst->count <= INT64_MAX - src->count, LT_ERR_INVALID_ARGUMENT);
    if (dst->count == 0) {
        dst->count = src->count;
        memcpy(dst->mean, src->mean, (size_t)d * sizeof(double));
        memcpy(dst->scatter, src->scatter, (size_t)(d * d) * sizeof(double));
        memcpy(dst->third, src->third, (size_t)d * sizeof(double));
        dst->fourth = src->fourth;
        return LT_OK;
    }
    const int64_t na = dst->count, nb = src->count, n = na + nb;
    const double fa = (double)na, fb = (double)nb, fn = (double)n;
    double *c = work, *mc = work + d, *tb = work + 2 * d;
    double *mu = dst->mean;
    const double *mub = src->mean;

    /* shift src by c_B = δ na/n into tb, q4b */
    for (int64_t j = 0; j < d; j++) c[j] = (mub[j] - mu[j]) * (fa / fn);
    const double q4b = shifted_moments(d, nb, src->scatter, src->third, src->fourth, c, mc, tb);
    /* shift dst by c_A = −δ nb/n in place */
    for (int64_t j = 0; j < d; j++) c[j] = -(mub[j] - mu[j]) * (fb / fn);
    const double q4a = shifted_moments(d, na, dst->scatter, dst->third, dst->fourth, c, mc, dst->third);
    for (int64_t j = 0; j < d; j++) dst->third[j] += tb[j];
    dst->fourth = q4a + q4b;

    const double k = fa * fb / fn;
    double *M2 = dst->scatter;
    const double *M2b = src->scatter;
    for (int64_t i = 0; i < d; i++) {
        const double di = mub[i] - mu[i];
        for (int64_t j = i; j < d; j++)
            M2[i * d + j] += M2b[i * d + j] + k * di * (mub[j] - mu[j]);
    }
    mirror_upper(d, M2);
    for (int64_t j = 0; j < d; j++) mu[j] += (mub[j] - mu[j]) * (fb / fn);
    dst->count = n;
    return LT_OK;
}
