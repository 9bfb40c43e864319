/*
 * lt_runtime.h — status codes, thread count, SIMD (ISA) dispatch and BLAS diagnostics.
 *
 * The only global state of the C library lives here: the thread count (shared by our OpenMP
 * kernels and OpenBLAS) and the active ISA. Nothing in this library aborts or prints.
 */
#ifndef LT_RUNTIME_H
#define LT_RUNTIME_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes returned by every entry point. */
typedef enum lt_status {
    LT_OK = 0,
    LT_ERR_NULL_POINTER = 1,      /* a required pointer was NULL */
    LT_ERR_INVALID_ARGUMENT = 2,  /* a size, stride or option is out of range */
    LT_ERR_UNSUPPORTED_ISA = 3,   /* the requested ISA is not supported by this CPU/build */
    LT_ERR_BAD_ENVIRONMENT = 4,   /* LORTA_ISA / LORTA_NUM_THREADS / LORTA_GEMM holds an unknown value */
    LT_ERR_NUMERICAL = 5,         /* a factorization failed (singular matrix, NaN) */
    LT_ERR_UNSUPPORTED = 6,       /* a valid request this library does not implement (e.g. a
                                     tensor storage type without a dequantizer) */
} lt_status;

/* Human-readable name of a status code (static storage). */
const char *lt_status_string(int status);

/* SIMD instruction sets with a kernel variant. */
typedef enum lt_isa {
    LT_ISA_SCALAR = 0,  /* portable C */
    LT_ISA_AVX2 = 1,    /* AVX2 + FMA */
    LT_ISA_AVX512 = 2,  /* AVX-512 F */
} lt_isa;

/* Reads LORTA_ISA (scalar|avx2|avx512), LORTA_NUM_THREADS, LORTA_GEMM (lorta|openblas) and LORTA_DECODE (float|int8) once. Idempotent: later calls
 * return the first result. LT_ERR_UNSUPPORTED_ISA when LORTA_ISA names an ISA this CPU lacks,
 * LT_ERR_BAD_ENVIRONMENT for an unparsable value. On error the defaults stay in force. */
lt_status lt_runtime_init(void);

/* 1 when `isa` can run here (CPU feature bits and OS register-state support). */
int lt_isa_supported(int isa);
/* The best ISA this CPU supports. */
lt_isa lt_isa_best(void);
/* The ISA the kernels currently use. */
lt_isa lt_isa_active(void);
/* Selects the ISA; LT_ERR_UNSUPPORTED_ISA when the CPU lacks it. */
lt_status lt_isa_set(int isa);
/* "scalar", "avx2", "avx512" or NULL. */
const char *lt_isa_name(int isa);
/* Parses a name as accepted by LORTA_ISA; returns -1 when unknown. */
int lt_isa_parse(const char *name);
/* 1 when the CPU (and OS) support AVX-VNNI (VEX-encoded vpdpbusd on 256-bit registers,
 * CPUID.(EAX=7,ECX=1):EAX[4]) with AVX2 and FMA; the AVX2 kernels of lt_quant_matmul_int8 use it. */
int lt_cpu_has_avx_vnni(void);

/* The float32 GEMM behind the kernels' dense products (lt_gemm_f32 in lt_gemm.h, so every
 * layer, adapter and Tensor.matmul): the library's own packed GEMM run by its OpenMP team
 * (default), or OpenBLAS's cblas_sgemm, kept as the reference path so that a speed or accuracy
 * claim can be checked against it in one run (LORTA_GEMM=openblas). LAPACK always uses OpenBLAS. */
typedef enum lt_gemm_backend {
    LT_GEMM_LORTA = 0,     /* lt_sgemm: packed, thread-count independent bits */
    LT_GEMM_OPENBLAS = 1,  /* cblas_sgemm */
} lt_gemm_backend;

/* The backend lt_gemm_f32 uses now. */
lt_gemm_backend lt_gemm_backend_active(void);
/* Selects the backend; LT_ERR_INVALID_ARGUMENT for another value. */
lt_status lt_gemm_backend_set(int backend);
/* "lorta", "openblas" or NULL. */
const char *lt_gemm_backend_name(int backend);
/* Parses a name as accepted by LORTA_GEMM ("lorta", "openblas"; "auto" = "lorta"); -1 when unknown. */
int lt_gemm_backend_parse(const char *name);

/* The arithmetic of decode-sized products with quantized weights (lt_quant_matmul with
 * n <= LT_QUANT_GEMV_MAX_ROWS rows and Q8_0, Q4_0, Q4_1, Q4_K or Q6_K weights,
 * lt_quant.h):
 *   LT_DECODE_FLOAT (default): the float32 activations times exactly the dequantized weights;
 *   LT_DECODE_INT8: the activations rounded to int8 per block of 32 and exact integer dot
 *     products with the weight codes (lt_quant_matmul_int8: llama.cpp's arithmetic, faster;
 *     the results differ by the activations' rounding).
 * LORTA_DECODE=float|int8 selects it when the runtime starts. Other types and shapes are not
 * affected. */
typedef enum lt_decode_arith {
    LT_DECODE_FLOAT = 0,
    LT_DECODE_INT8 = 1,
} lt_decode_arith;

lt_decode_arith lt_decode_arith_active(void);
/* LT_ERR_INVALID_ARGUMENT for another value. */
lt_status lt_decode_arith_set(int mode);
/* "float", "int8" or NULL. */
const char *lt_decode_arith_name(int mode);
/* Parses a name as accepted by LORTA_DECODE ("float", "int8"); -1 when unknown. */
int lt_decode_arith_parse(const char *name);

/* Threads used by OpenMP kernels and by OpenBLAS (one knob for both). n >= 1. */
lt_status lt_set_num_threads(int n);
int lt_get_num_threads(void);

/* ---- Test diagnostic: did a second thread really work? ----------------------------------
 * Small loops run on the calling thread alone (a flop threshold), so a test comparing 1 and 2
 * threads proves nothing unless its loops ran on both. lt_debug_threads_seen() is 1 + the
 * highest OpenMP thread number that ran a chunk of rows of an instrumented loop since the last
 * lt_debug_reset_threads_seen(): 0 when none ran, 1 when they ran on one thread only, 2 when
 * thread 1 ran at least one chunk. Instrumented: the row loops of lt_lora_forward,
 * lt_lora_backward, lt_lora_merge / lt_lora_unmerge and lt_lorta_merge_slice (not the BLAS
 * calls), and the packed GEMM core (lt_sgemm, batched lt_quant_matmul: once per thread that
 * took a task). Process-wide and relaxed-atomic: cheap (one compare per row, a call per chunk of
 * LT_ROWS_PER_CHUNK rows), thread-safe, meant for tests that run one at a time. */
int lt_debug_threads_seen(void);
void lt_debug_reset_threads_seen(void);

/* ---- BLAS diagnostics -------------------------------------------------------------------
 * Distribution OpenBLAS builds (DYNAMIC_ARCH) may not know a new CPU and fall back to old
 * SSE3 ("Prescott") kernels, several times slower. These helpers compare the active core
 * with what the CPU supports and name the OPENBLAS_CORETYPE value that fixes it. */

/* Name of the active OpenBLAS kernel core, e.g. "skylakex", "prescott" (static storage). */
const char *lt_blas_corename(void);
/* OpenBLAS build configuration string. */
const char *lt_blas_config(void);
/* SIMD level of an OpenBLAS core name: 0 SSE-only, 1 AVX, 2 AVX2, 3 AVX-512; -1 unknown. */
int lt_blas_core_level(const char *corename);
/* SIMD level the CPU supports, on the same scale (AVX-512 requires F, BW, VL, DQ, CD). */
int lt_cpu_simd_level(void);
/* 1 when the CPU has AVX512_BF16 (OpenBLAS "Cooperlake" kernels). */
int lt_cpu_has_avx512bf16(void);
/* OPENBLAS_CORETYPE value best matching this CPU ("Cooperlake", "SkylakeX", "Haswell",
 * "Sandybridge") or NULL when nothing better than SSE applies. */
const char *lt_blas_recommended_coretype(void);
/* 1 when the active core's level is known and lower than the CPU's level. */
int lt_blas_core_is_weaker_than_cpu(void);

#ifdef __cplusplus
}
#endif
#endif /* LT_RUNTIME_H */
