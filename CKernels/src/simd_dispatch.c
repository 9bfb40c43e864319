/* simd_dispatch.c — picks the micro-kernel variant of the active ISA. */
#include "simd.h"
#include "lt_runtime.h"

lt_dot_many_fn lt__dot_many(void) {
#if defined(__x86_64__)
    switch (lt_isa_active()) {
    case LT_ISA_AVX512: return lt__dot_many_avx512;
    case LT_ISA_AVX2: return lt__dot_many_avx2;
    default: break;
    }
#endif
    return lt__dot_many_scalar;
}

lt_axpy_many_fn lt__axpy_many(void) {
#if defined(__x86_64__)
    switch (lt_isa_active()) {
    case LT_ISA_AVX512: return lt__axpy_many_avx512;
    case LT_ISA_AVX2: return lt__axpy_many_avx2;
    default: break;
    }
#endif
    return lt__axpy_many_scalar;
}
