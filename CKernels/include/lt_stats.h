/*
 * lt_stats.h — streaming, mergeable activation statistics (float64) and the dense
 * symmetric linear algebra the estimators and detectors need.
 *
 * A statistics object describes n rows x_1..x_n of dimension d by
 *   count  n
 *   mean   μ = (1/n) Σ x_i                                  (d, float64)
 *   scatter M2 = Σ (x_i − μ)(x_i − μ)ᵀ                       (d × d, float64, row-major, both
 *                                                            triangles filled, symmetric)
 *   third  T3 = Σ ‖x_i − μ‖² (x_i − μ)                       (d, float64)
 *   fourth Q4 = Σ ‖x_i − μ‖⁴                                 (scalar, float64)
 * Q4 is what the Ledoit–Wolf shrinkage needs (sklearn's beta_). Q4 and T3 are central
 * moments about the *current* mean, so the object stays exactly mergeable: when the mean moves
 * by c (x − μ_new = y + c with y = x − μ_old, Σ y = 0),
 *   M2' = M2 + n c cᵀ
 *   T3' = T3 + 2 M2 c + tr(M2) c + n ‖c‖² c
 *   Q4' = Q4 + 4 cᵀT3 + 2 ‖c‖² tr(M2) + 4 cᵀM2 c + n ‖c‖⁴
 * and two objects merge by shifting both to the pooled mean and adding (Chan et al. for M2:
 * δ = μ_b − μ_a, M2 = M2_a + M2_b + (n_a n_b / n) δδᵀ). No second pass is needed.
 *
 * Updates centre each float32 batch on its own float64 mean, so a large common offset never
 * cancels digits (float32 inputs are converted exactly to float64 before any subtraction).
 * The batch scatter Yᵀ Y is accumulated per block of LT_STATS_BLOCK_ROWS rows: the centred
 * float64 block is packed in caller workspace and a tiled SIMD kernel (scalar / AVX2 / AVX-512,
 * OpenMP over tiles of 8 × 24 entries of the upper triangle) adds it to M2.
 * Why not BLAS dsyrk: OpenBLAS's threaded dsyrk and dgemm change the summation of some entries
 * with the thread count (measured with OpenBLAS 0.3.21: dsyrk at d = 150, dgemm at about a
 * quarter of the shapes tried), and single-threaded dsyrk cannot use more than one core. The
 * tiled kernel runs at 0.7–0.95× single-threaded dsyrk per core on this machine (d = 384–1024)
 * and scales with threads.
 *
 * Determinism: for fixed inputs and fixed batch boundaries the results are bitwise identical for
 * any thread count (column-parallel mean with per-column ordered sums, row-parallel centring,
 * one task per output tile summing rows in order, ordered serial reductions). The LAPACK
 * and BLAS calls of lt_cholesky, lt_cholesky_inverse, lt_sym_eigen, lt_sym_whiten,
 * lt_sym_unwhiten and lt_mahalanobis_scores run on one BLAS thread for the same reason (the
 * library's thread setting is restored afterwards). Different batch splits
 * and different ISAs agree up to float64 rounding.
 */
#ifndef LT_STATS_H
#define LT_STATS_H

#include <stdint.h>
#include "lt_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Rows per block in lt_stats_update (scatter kernel) and lt_mahalanobis_scores (dtrsm). */
#define LT_STATS_BLOCK_ROWS 512

/* The statistics of one site. The caller owns the arrays (mean: dim, scatter: dim*dim,
 * third: dim). An empty object has count 0 and all arrays zero. */
typedef struct lt_stats {
    int64_t dim;      /* d >= 1 */
    int64_t count;    /* n >= 0 */
    double *mean;     /* d */
    double *scatter;  /* d × d, row-major, ld = d */
    double *third;    /* d */
    double fourth;    /* scalar */
} lt_stats;

/* Doubles of workspace lt_stats_update needs for a batch of `rows` rows of dimension `dim`:
 * min(rows, LT_STATS_BLOCK_ROWS) * (8·ceil(dim/8) + 1) + 2 * dim. */
lt_status lt_stats_update_workspace_size(int64_t dim, int64_t rows, int64_t *doubles);

/* Adds rows x[i*ldx + j] (i < rows, j < dim, float32) to `s`.
 * x: rows × dim (ld ldx >= dim); work: `work_size` doubles, at least the query's answer.
 * rows == 0 is a no-op. LT_ERR_INVALID_ARGUMENT (state untouched) when x holds NaN or ±Inf
 * or when the count would overflow.
 * Cost: O(rows·d²/2) multiply-adds + O(rows·d). */
lt_status lt_stats_update(lt_stats *s, const float *x, int64_t rows, int64_t ldx,
                          double *work, int64_t work_size);

/* Doubles of workspace lt_stats_merge needs: 3 * dim. */
lt_status lt_stats_merge_workspace_size(int64_t dim, int64_t *doubles);

/* dst ← statistics of the union of dst's and src's rows (same dim; src untouched). O(d²). */
lt_status lt_stats_merge(lt_stats *dst, const lt_stats *src, double *work, int64_t work_size);

/* ---- dense symmetric linear algebra (LAPACKE; these may allocate LAPACK workspace) ---------- */

/* In place: a (d × d, ld lda, row-major, symmetric) ← its lower Cholesky factor L (a = L Lᵀ),
 * strict upper triangle set to zero. LT_ERR_NUMERICAL when a is not positive definite; then
 * *failed_order (may be NULL) receives the order of the first non-positive leading minor (1-based)
 * and a is left partly overwritten. */
lt_status lt_cholesky(int64_t d, double *a, int64_t lda, int64_t *failed_order);

/* inv (d × d, ld ldi) ← (L Lᵀ)⁻¹, full symmetric, from a lower Cholesky factor L. */
lt_status lt_cholesky_inverse(int64_t d, const double *L, int64_t ldl, double *inv, int64_t ldi);

/* Eigen-decomposition of a symmetric matrix (dsyevd). a (d × d, ld lda) is destroyed; on
 * return w (d) holds the eigenvalues in ascending order and, when want_vectors != 0, a holds
 * the matching orthonormal eigenvectors in its columns. LT_ERR_NUMERICAL if dsyevd fails. */
lt_status lt_sym_eigen(int64_t d, double *a, int64_t lda, double *w, int want_vectors);

/* S (d × d, ld lds, symmetric) ← L⁻¹ S L⁻ᵀ for a lower-triangular L (ld ldl): the matrix in
 * whitened coordinates x̃ = L⁻¹ x. Result symmetrized exactly (upper copied from lower). */
lt_status lt_sym_whiten(int64_t d, const double *L, int64_t ldl, double *S, int64_t lds);

/* S (d × d, ld lds, symmetric) ← L S Lᵀ for a lower-triangular L (ld ldl) (inverse of
 * lt_sym_whiten). Result symmetrized exactly (upper copied from lower). */
lt_status lt_sym_unwhiten(int64_t d, const double *L, int64_t ldl, double *S, int64_t lds);

/* Doubles of workspace lt_mahalanobis_scores needs: min(rows, LT_STATS_BLOCK_ROWS) * dim. */
lt_status lt_mahalanobis_workspace_size(int64_t dim, int64_t rows, int64_t *doubles);

/* Squared Mahalanobis distances  out[i] = (x_i − μ)ᵀ (L Lᵀ)⁻¹ (x_i − μ) = ‖L⁻¹(x_i − μ)‖².
 * x: rows × d float32 (ld ldx), mean: d, L: d × d lower Cholesky factor (ld ldl), out: rows.
 * Centring in float64, then one dtrsm per block of rows. O(rows·d²/2). */
lt_status lt_mahalanobis_scores(int64_t d, const double *mean, const double *L, int64_t ldl,
                                const float *x, int64_t rows, int64_t ldx, double *out,
                                double *work, int64_t work_size);

/* Squared Euclidean distances in float64 from float32 rows to float64 points:
 *   out[i*ldo + c] = Σ_j (x[i*ldx + j] − p[c*ldp + j])²      x: rows × d, p: k × d, out: rows × k
 * OpenMP over rows (each entry summed over j in order: bits independent of the thread count).
 * O(rows·k·d). Used by k-means (assignment, k-means++ seeding) and TwoNN. */
lt_status lt_squared_distances(int64_t d, const float *x, int64_t rows, int64_t ldx,
                               const double *p, int64_t k, int64_t ldp, double *out, int64_t ldo);

#ifdef __cplusplus
}
#endif
#endif /* LT_STATS_H */
