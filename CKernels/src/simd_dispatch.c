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

lt_dot_block_fn lt__dot_block_for(int isa) {
#if defined(__x86_64__)
    if (isa == LT_ISA_AVX512) return lt__dot_block_avx512;
    if (isa == LT_ISA_AVX2) return lt__dot_block_avx2;
#endif
    (void)isa;
    return lt__dot_block_scalar;
}

lt_axpy_block_fn lt__axpy_block_for(int isa) {
#if defined(__x86_64__)
    if (isa == LT_ISA_AVX512) return lt__axpy_block_avx512;
    if (isa == LT_ISA_AVX2) return lt__axpy_block_avx2;
#endif
    (void)isa;
    return lt__axpy_block_scalar;
}

lt_dot_block_fn lt__dot_block(void) { return lt__dot_block_for(lt_isa_active()); }
lt_axpy_block_fn lt__axpy_block(void) { return lt__axpy_block_for(lt_isa_active()); }
