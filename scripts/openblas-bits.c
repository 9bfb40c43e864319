// Does OpenBLAS's sgemm give the same bits with 1 and 2 threads? (README, "Determinism and
// numerics".) For Y = X Wᵀ — cblas_sgemm(RowMajor, NoTrans, Trans, M, N, K), the product every
// linear layer makes — with M = 512 rows and N = 384 outputs, it runs each K of the list once with
// one OpenBLAS thread and once with two and prints the K whose results differ in any bit.
// OpenBLAS picks its core at load time (OPENBLAS_CORETYPE); scripts/openblas-bits.sh runs this
// once per core. Build: cc -O2 openblas-bits.c -lopenblas.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>

static void fill(float *a, size_t n, uint64_t seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        a[i] = (float)((double)(seed >> 40) / (double)(1ULL << 24) - 0.5);
    }
}

int main(void) {
    enum { M = 512, N = 384, KMAX = 3072 };
    int ks[1100], nk = 0;
    for (int k = 1; k <= 1024; k++) ks[nk++] = k;
    const int big[] = {1152, 1536, 2048, 3072};
    for (int i = 0; i < 4; i++) ks[nk++] = big[i];
    float *x = malloc(sizeof(float) * M * KMAX), *w = malloc(sizeof(float) * N * KMAX);
    float *y1 = malloc(sizeof(float) * M * N), *y2 = malloc(sizeof(float) * M * N);
    if (!x || !w || !y1 || !y2) { fprintf(stderr, "out of memory\n"); return 1; }
    fill(x, (size_t)M * KMAX, 1);
    fill(w, (size_t)N * KMAX, 2);
    int differ = 0;
    char same[1100];
    for (int i = 0; i < nk; i++) {
        int k = ks[i];
        openblas_set_num_threads(1);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, k, 1.0f, x, k, w, k, 0.0f, y1, N);
        openblas_set_num_threads(2);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, k, 1.0f, x, k, w, k, 0.0f, y2, N);
        same[i] = memcmp(y1, y2, sizeof(float) * M * N) == 0;
        differ += !same[i];
    }
    /* the K with equal bits, as ranges of consecutive list entries */
    printf("OpenBLAS core %s, sgemm %dx%dxK (X Wt), 1 vs 2 threads, K = 1..1024, 1152, 1536, 2048, 3072:\n",
           openblas_get_corename(), M, N);
    printf("  same bits for K =");
    int first = 1;
    for (int i = 0; i < nk;) {
        if (!same[i]) { i++; continue; }
        int j = i;
        while (j + 1 < nk && same[j + 1] && ks[j + 1] == ks[j] + 1) j++;
        printf(first ? " %d" : ", %d", ks[i]);
        if (j > i) printf("-%d", ks[j]);
        first = 0;
        i = j + 1;
    }
    printf("%s\n  different bits for %d of the %d K values\n", first ? " none" : "", differ, nk);
    free(x); free(w); free(y1); free(y2);
    return 0;
}
