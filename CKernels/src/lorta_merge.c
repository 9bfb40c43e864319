/*
 * lorta_merge.c — LoRTA merge/unmerge into dense weights, parameter count and reference
 * initialisation (see lt_lorta.h).
 */
#include "lt_lorta.h"
#include "lt_rng.h"
#include "internal.h"
#include "lorta_internal.h"
#include "simd.h"

/* ======================================================================================
 * Merge of one (l, m) slice
 *   W (d_out x H*d_h, ld ldw) += factor * A diag(c) KRᵀ,  c = C_L[l] ∘ C_M[m],
 *   W[o, h*d_h + j] += Σ_k (factor * A[o,k] * c[k] * C_H[h,k]) * B[k,j]
 * Rows o in parallel; one axpy_many (rank r, length d_h) per (o, h): W is read and written once.
 * ====================================================================================== */
lt_status lt_lorta_merge_slice(const lt_lorta_dims *dims, int64_t d_out, const float *A,
                               const float *B, const float *C_H, const float *C_L, const float *C_M,
                               int64_t layer, int64_t matrix, float factor, float *W, int64_t ldw) {
    LT_CHECK(dims, LT_ERR_NULL_POINTER);
    lt_status st = lt__lorta_check_dims(dims);
    if (st != LT_OK) return st;
    const int64_t r = dims->rank, H = dims->heads, dh = dims->head_dim, din = H * dh;
    LT_CHECK(d_out >= 1, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(layer >= 0 && layer < dims->layers, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(matrix >= 0 && matrix < dims->matrices, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(lt__finite(factor), LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(A && B && C_H && C_L && C_M && W, LT_ERR_NULL_POINTER);
    LT_CHECK(ldw >= din, LT_ERR_INVALID_ARGUMENT);
    st = lt__ensure_init();
    if (st != LT_OK) return st;
    const lt_axpy_many_fn axpy = lt__axpy_many();
    const float *cl = C_L + layer * r, *cm = C_M + matrix * r;

    #pragma omp parallel for schedule(static, LT_ROWS_PER_CHUNK)
    for (int64_t o = 0; o < d_out; o++) {
        LT__NOTE_CHUNK(o);
        float ac[LT_LORTA_KBLOCK], coef[LT_LORTA_KBLOCK];
        float *w = W + o * ldw;
        const float *a = A + o * r;
        for (int64_t k0 = 0; k0 < r; k0 += LT_LORTA_KBLOCK) {
            const int64_t kb = r - k0 < LT_LORTA_KBLOCK ? r - k0 : LT_LORTA_KBLOCK;
            for (int64_t k = 0; k < kb; k++) ac[k] = (factor * a[k0 + k]) * (cl[k0 + k] * cm[k0 + k]);
            for (int64_t h = 0; h < H; h++) {
                const float *chh = C_H + h * r + k0;
                for (int64_t k = 0; k < kb; k++) coef[k] = ac[k] * chh[k];
                axpy(w + h * dh, coef, B + k0 * dh, dh, kb, dh);
            }
        }
    }
    return LT_OK;
}

/* Every slice (l, m); W[l*M + m] may be NULL to skip a slice. */
lt_status lt_lorta_merge_all(const lt_lorta_dims *dims, const int64_t *d_out, const float *const *A,
                             const float *B, const float *C_H, const float *C_L, const float *C_M,
                             float factor, float *const *W, const int64_t *ldw) {
    LT_CHECK(dims, LT_ERR_NULL_POINTER);
    lt_status st = lt__lorta_check_dims(dims);
    if (st != LT_OK) return st;
    LT_CHECK(d_out && A && W && ldw, LT_ERR_NULL_POINTER);
    const int64_t L = dims->layers, M = dims->matrices;
    /* Validate everything before touching any weight, so an error leaves W unchanged. */
    for (int64_t m = 0; m < M; m++) {
        LT_CHECK(A[m], LT_ERR_NULL_POINTER);
        LT_CHECK(d_out[m] >= 1 && ldw[m] >= dims->heads * dims->head_dim, LT_ERR_INVALID_ARGUMENT);
    }
    LT_CHECK(B && C_H && C_L && C_M, LT_ERR_NULL_POINTER);
    LT_CHECK(lt__finite(factor), LT_ERR_INVALID_ARGUMENT);
    for (int64_t l = 0; l < L; l++)
        for (int64_t m = 0; m < M; m++) {
            float *w = W[l * M + m];
            if (!w) continue;
            st = lt_lorta_merge_slice(dims, d_out[m], A[m], B, C_H, C_L, C_M, l, m, factor, w, ldw[m]);
            if (st != LT_OK) return st;
        }
    return LT_OK;
}

/* ======================================================================================
 * Parameter count and reference initialisation
 * ====================================================================================== */
lt_status lt_lorta_parameter_count(const lt_lorta_dims *dims, int64_t n_a, const int64_t *a_rows,
                                   int64_t *count) {
    LT_CHECK(dims && a_rows && count, LT_ERR_NULL_POINTER);
    lt_status st = lt__lorta_check_dims(dims);
    if (st != LT_OK) return st;
    LT_CHECK(n_a >= 1, LT_ERR_INVALID_ARGUMENT);
    int64_t rows = dims->head_dim + dims->heads + dims->layers + dims->matrices;
    for (int64_t t = 0; t < n_a; t++) {
        LT_CHECK(a_rows[t] >= 1 && a_rows[t] <= LT_LORTA_MAX_DIM, LT_ERR_INVALID_ARGUMENT);
        rows += a_rows[t];
    }
    LT_CHECK(rows <= INT64_MAX / dims->rank, LT_ERR_INVALID_ARGUMENT);
    *count = rows * dims->rank;
    return LT_OK;
}

lt_status lt_lorta_init(const lt_lorta_dims *dims, int64_t n_a, const int64_t *a_rows,
                        float *const *A, float *B, float *C_H, float *C_L, float *C_M,
                        uint64_t seed, float c_value) {
    LT_CHECK(dims && a_rows && A && B && C_H && C_L && C_M, LT_ERR_NULL_POINTER);
    lt_status st = lt__lorta_check_dims(dims);
    if (st != LT_OK) return st;
    LT_CHECK(n_a >= 1, LT_ERR_INVALID_ARGUMENT);
    LT_CHECK(lt__finite(c_value), LT_ERR_INVALID_ARGUMENT);
    for (int64_t t = 0; t < n_a; t++) {
        LT_CHECK(A[t], LT_ERR_NULL_POINTER);
        LT_CHECK(a_rows[t] >= 1 && a_rows[t] <= LT_LORTA_MAX_DIM, LT_ERR_INVALID_ARGUMENT);
    }
    const int64_t r = dims->rank;
    const float bound = lt_kaiming_uniform_bound(dims->heads * dims->head_dim);
    uint64_t offset = 0;
    for (int64_t t = 0; t < n_a; t++) {
        st = lt_rng_uniform(seed, offset, -bound, bound, A[t], a_rows[t] * r);
        if (st != LT_OK) return st;
        offset += (uint64_t)(a_rows[t] * r);
    }
    for (int64_t q = 0; q < r * dims->head_dim; q++) B[q] = 0.0f;
    for (int64_t q = 0; q < dims->heads * r; q++) C_H[q] = c_value;
    for (int64_t q = 0; q < dims->layers * r; q++) C_L[q] = c_value;
    for (int64_t q = 0; q < dims->matrices * r; q++) C_M[q] = c_value;
    return LT_OK;
}
