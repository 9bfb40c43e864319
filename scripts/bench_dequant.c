/*
 * bench_dequant.c — single-thread throughput of the GGML block decoders of quant_internal.h,
 * per type and ISA variant, on a cache-resident row (16,384 values, as a matmul panel would
 * decode). Builds the decoders from the library's own sources (quant_dequant.c) with the
 * runtime stubbed out; run through scripts/bench-dequant.sh. Prints the best of 15 runs of
 * 2,000 decodes (the machines are shared and noisy).
 */
#include "quant_dequant.c"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

lt_isa lt_isa_active(void) { return LT_ISA_SCALAR; }
lt_status lt__ensure_init(void) { return LT_OK; }

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(void) {
    const char *names[] = {"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"};
    const int32_t types[] = {0, 1, 30, 2, 3, 6, 7, 8, 12, 13, 14};
    const char *isas[] = {"scalar", "avx2", "avx512"};
    const int64_t n = 16384;
    float *out = malloc((size_t)n * sizeof(float));
    printf("%-5s %10s %10s %10s   (Gvalues/s, 1 thread, %lld values per call)\n", "type", isas[0], isas[1], isas[2], (long long)n);
    for (int t = 0; t < 11; t++) {
        int64_t be, bb;
        lt__quant_geometry(types[t], &be, &bb);
        const int64_t nblocks = n / be;
        uint8_t *src = malloc((size_t)(nblocks * bb));
        srand(1);
        for (int64_t i = 0; i < nblocks * bb; i++) src[i] = (uint8_t)rand();
        printf("%-5s", names[t]);
        for (int isa = 0; isa < 3; isa++) {
            lt__dequant_fn f = lt__dequant_for_isa(types[t], isa);
            if (!f) { printf(" %10s", "-"); continue; }
            double best = 1e30;
            for (int rep = 0; rep < 15; rep++) {
                double t0 = seconds();
                for (int r = 0; r < 2000; r++) f(src, nblocks, out);
                double dt = seconds() - t0;
                if (dt < best) best = dt;
            }
            printf(" %10.2f", 2000.0 * (double)n / best / 1e9);
        }
        printf("\n");
        free(src);
    }
    free(out);
    return 0;
}
