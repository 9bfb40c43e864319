/*
 * lt_rng.h — seeded, counter-based random numbers (element i depends only on (seed, i), so
 * results never depend on the thread count or on how a fill is split).
 */
#ifndef LT_RNG_H
#define LT_RNG_H
#include <stdint.h>
#include "lt_runtime.h"
#ifdef __cplusplus
extern "C" {
#endif

/* out[i] = uniform in [lo, hi) from (seed, offset + i), i < n. */
lt_status lt_rng_uniform(uint64_t seed, uint64_t offset, float lo, float hi, float *out, int64_t n);
/* out[i] = mean + std * standard normal from (seed, offset + i) (Box–Muller). */
lt_status lt_rng_normal(uint64_t seed, uint64_t offset, float mean, float std, float *out, int64_t n);
/* The 64-bit value number `counter` of stream `seed` (splitmix64 of a Weyl sequence). */
uint64_t lt_rng_u64(uint64_t seed, uint64_t counter);
/* Kaiming-uniform bound with a = sqrt(5) as in PyTorch's nn.Linear / PEFT's lora_A:
 * gain = sqrt(2 / (1 + a^2)) = sqrt(1/3); bound = gain * sqrt(3 / fan_in) = 1 / sqrt(fan_in). */
float lt_kaiming_uniform_bound(int64_t fan_in);

#ifdef __cplusplus
}
#endif
#endif
