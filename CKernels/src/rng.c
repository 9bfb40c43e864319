/* rng.c — counter-based generator: splitmix64 finalizer over seed-keyed Weyl counters. */
#include "lt_rng.h"
#include <math.h>

uint64_t lt_rng_u64(uint64_t seed, uint64_t counter) {
    uint64_t z = seed * 0xD1B54A32D192ED03ull + (counter + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [0, 1) with 24 random bits: exactly representable in float */
static inline float unit24(uint64_t v) { return (float)(v >> 40) * (1.0f / 16777216.0f); }

lt_status lt_rng_uniform(uint64_t seed, uint64_t offset, float lo, float hi, float *out, int64_t n) {
    if (n < 0) return LT_ERR_INVALID_ARGUMENT;
    if (n > 0 && !out) return LT_ERR_NULL_POINTER;
    if (!(hi >= lo) || !isfinite(lo) || !isfinite(hi)) return LT_ERR_INVALID_ARGUMENT;
    for (int64_t i = 0; i < n; i++) {
        float u = unit24(lt_rng_u64(seed, offset + (uint64_t)i));
        float v = lo + (hi - lo) * u;
        out[i] = v < hi ? v : lo; /* guard rounding up to hi */
    }
    return LT_OK;
}

lt_status lt_rng_normal(uint64_t seed, uint64_t offset, float mean, float std, float *out, int64_t n) {
    if (n < 0) return LT_ERR_INVALID_ARGUMENT;
    if (n > 0 && !out) return LT_ERR_NULL_POINTER;
    if (!isfinite(mean) || !isfinite(std) || std < 0) return LT_ERR_INVALID_ARGUMENT;
    for (int64_t i = 0; i < n; i++) {
        uint64_t c = 2 * (offset + (uint64_t)i);
        double u1 = ((double)(lt_rng_u64(seed, c) >> 11) + 1.0) * (1.0 / 9007199254740993.0); /* (0,1] */
        double u2 = (double)(lt_rng_u64(seed, c + 1) >> 11) * (1.0 / 9007199254740992.0);
        double z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
        out[i] = (float)(mean + std * z);
    }
    return LT_OK;
}

float lt_kaiming_uniform_bound(int64_t fan_in) {
    if (fan_in <= 0) return 0.0f;
    return (float)(1.0 / sqrt((double)fan_in));
}
