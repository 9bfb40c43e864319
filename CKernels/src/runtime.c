/* runtime.c — thread count, ISA dispatch state and CPU/BLAS detection (see lt_runtime.h). */
#include "lt_runtime.h"
#include "internal.h"

#include <cblas.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define LT_X86 1
#endif

/* The toolchain ships no omp.h: declare what we call (LLVM libomp). */
extern void omp_set_num_threads(int);
extern int omp_get_max_threads(void);
extern int omp_get_num_procs(void);
extern int omp_get_thread_num(void);
extern void kmp_set_blocktime(int);

const char *lt_status_string(int status) {
    switch (status) {
    case LT_OK: return "ok";
    case LT_ERR_NULL_POINTER: return "null pointer";
    case LT_ERR_INVALID_ARGUMENT: return "invalid argument";
    case LT_ERR_UNSUPPORTED_ISA: return "unsupported ISA";
    case LT_ERR_BAD_ENVIRONMENT: return "bad environment variable";
    case LT_ERR_NUMERICAL: return "numerical failure";
    case LT_ERR_UNSUPPORTED: return "unsupported";
    default: return "unknown status";
    }
}

/* ---- CPU features ------------------------------------------------------------------------ */

typedef struct {
    int detected;
    int avx2, fma, avx512f, avx512bw, avx512vl, avx512dq, avx512cd, avx512bf16, avx512vnni, avx;
    int avxvnni;   /* AVX-VNNI: VEX-encoded vpdpbusd on 256-bit registers */
    int os_ymm, os_zmm;
} cpu_features;

static cpu_features g_cpu;

static void detect_cpu(void) {
    if (g_cpu.detected) return;
    cpu_features f;
    memset(&f, 0, sizeof f);
#ifdef LT_X86
    unsigned a, b, c, d;
    unsigned max_leaf = __get_cpuid_max(0, 0);
    if (max_leaf >= 1) {
        __cpuid_count(1, 0, a, b, c, d);
        int osxsave = (c >> 27) & 1;
        f.avx = (c >> 28) & 1;
        f.fma = (c >> 12) & 1;
        if (osxsave) {
            unsigned xa, xd;
            __asm__ volatile("xgetbv" : "=a"(xa), "=d"(xd) : "c"(0));
            unsigned long long xcr0 = ((unsigned long long)xd << 32) | xa;
            f.os_ymm = (xcr0 & 0x6) == 0x6;
            f.os_zmm = (xcr0 & 0xe6) == 0xe6;
        }
    }
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        f.avx2 = (b >> 5) & 1;
        f.avx512f = (b >> 16) & 1;
        f.avx512dq = (b >> 17) & 1;
        f.avx512cd = (b >> 28) & 1;
        f.avx512bw = (b >> 30) & 1;
        f.avx512vl = (b >> 31) & 1;
        f.avx512vnni = (c >> 11) & 1;
        __cpuid_count(7, 1, a, b, c, d);
        f.avxvnni = (a >> 4) & 1;
        f.avx512bf16 = (a >> 5) & 1;
    }
    if (!f.os_ymm) { f.avx = f.avx2 = f.fma = f.avxvnni = 0; }
    if (!f.os_zmm) { f.avx512f = f.avx512bw = f.avx512vl = f.avx512dq = f.avx512cd = f.avx512bf16 = f.avx512vnni = 0; }
#endif
    f.detected = 1;
    g_cpu = f;
}

int lt_isa_supported(int isa) {
    detect_cpu();
    switch (isa) {
    case LT_ISA_SCALAR: return 1;
    case LT_ISA_AVX2: return g_cpu.avx2 && g_cpu.fma;
    case LT_ISA_AVX512: return g_cpu.avx512f && g_cpu.fma;
    default: return 0;
    }
}

int lt__cpu_has_avx512vnni(void) {
    detect_cpu();
    return g_cpu.avx512f && g_cpu.avx512bw && g_cpu.avx512vl && g_cpu.avx512dq && g_cpu.avx512vnni && g_cpu.fma;
}

int lt_cpu_has_avx_vnni(void) {
    detect_cpu();
    return g_cpu.avxvnni && g_cpu.avx2 && g_cpu.fma;
}

lt_isa lt_isa_best(void) {
    if (lt_isa_supported(LT_ISA_AVX512)) return LT_ISA_AVX512;
    if (lt_isa_supported(LT_ISA_AVX2)) return LT_ISA_AVX2;
    return LT_ISA_SCALAR;
}

const char *lt_isa_name(int isa) {
    switch (isa) {
    case LT_ISA_SCALAR: return "scalar";
    case LT_ISA_AVX2: return "avx2";
    case LT_ISA_AVX512: return "avx512";
    default: return NULL;
    }
}

int lt_isa_parse(const char *name) {
    if (!name) return -1;
    if (!strcasecmp(name, "scalar")) return LT_ISA_SCALAR;
    if (!strcasecmp(name, "avx2")) return LT_ISA_AVX2;
    if (!strcasecmp(name, "avx512") || !strcasecmp(name, "avx-512")) return LT_ISA_AVX512;
    return -1;
}

/* ---- global settings ----------------------------------------------------------------------- */

static int g_isa = -1;        /* -1: not yet chosen */
static int g_gemm = LT_GEMM_LORTA;
static int g_threads = 0;     /* 0: not yet chosen */
/* OpenMP's nthreads-var and block time are per thread: each thread that runs a kernel copies
 * the global setting once per change (see lt__ensure_init). */
static _Thread_local int tl_threads = 0;
static _Thread_local int tl_blocktime = -1;
static int g_init_status = -1;

/* How long (ms) an idle OpenMP worker spins before it sleeps. On our GEMM backend the team is
 * the only pool: a short spin keeps the workers awake across the hundreds of parallel regions
 * of a decode step (waking a sleeping worker costs futex calls and a context switch each time;
 * 1 ms measured +30% decode tokens/s on SmolLM2, 2 threads, training unchanged). With the
 * OpenBLAS backend OpenBLAS's own threads run between our regions, so our workers must not spin
 * (0). KMP_BLOCKTIME in the environment, when set, is left in force. */
#define LT_BLOCKTIME_MS 1
static int blocktime_wanted(void) {
    static int env = -2;                     /* -2: not read yet, -1: not set */
    if (env == -2) env = getenv("KMP_BLOCKTIME") ? -1 : 0;
    if (env == -1) return -1;
    return g_gemm == LT_GEMM_OPENBLAS ? 0 : LT_BLOCKTIME_MS;
}
static void apply_blocktime(void) {
    const int bt = blocktime_wanted();
    if (bt >= 0 && bt != tl_blocktime) kmp_set_blocktime(bt);
    tl_blocktime = bt;
}

lt_isa lt_isa_active(void) {
    if (g_isa < 0) g_isa = lt_isa_best();
    return (lt_isa)g_isa;
}

lt_status lt_isa_set(int isa) {
    if (isa < LT_ISA_SCALAR || isa > LT_ISA_AVX512) return LT_ERR_INVALID_ARGUMENT;
    if (!lt_isa_supported(isa)) return LT_ERR_UNSUPPORTED_ISA;
    g_isa = isa;
    return LT_OK;
}

lt_gemm_backend lt_gemm_backend_active(void) { return (lt_gemm_backend)g_gemm; }

lt_status lt_gemm_backend_set(int backend) {
    if (backend != LT_GEMM_LORTA && backend != LT_GEMM_OPENBLAS) return LT_ERR_INVALID_ARGUMENT;
    g_gemm = backend;
    return LT_OK;
}

const char *lt_gemm_backend_name(int backend) {
    switch (backend) {
    case LT_GEMM_LORTA: return "lorta";
    case LT_GEMM_OPENBLAS: return "openblas";
    default: return NULL;
    }
}

int lt_gemm_backend_parse(const char *name) {
    if (!name) return -1;
    if (!strcasecmp(name, "lorta") || !strcasecmp(name, "auto")) return LT_GEMM_LORTA;
    if (!strcasecmp(name, "openblas")) return LT_GEMM_OPENBLAS;
    return -1;
}

static int g_decode = LT_DECODE_FLOAT;

lt_decode_arith lt_decode_arith_active(void) { return (lt_decode_arith)g_decode; }

lt_status lt_decode_arith_set(int mode) {
    if (mode != LT_DECODE_FLOAT && mode != LT_DECODE_INT8) return LT_ERR_INVALID_ARGUMENT;
    g_decode = mode;
    return LT_OK;
}

const char *lt_decode_arith_name(int mode) {
    switch (mode) {
    case LT_DECODE_FLOAT: return "float";
    case LT_DECODE_INT8: return "int8";
    default: return NULL;
    }
}

int lt_decode_arith_parse(const char *name) {
    if (!name) return -1;
    if (!strcasecmp(name, "float")) return LT_DECODE_FLOAT;
    if (!strcasecmp(name, "int8")) return LT_DECODE_INT8;
    return -1;
}

lt_status lt_set_num_threads(int n) {
    if (n < 1 || n > 4096) return LT_ERR_INVALID_ARGUMENT;
    g_threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
    apply_blocktime();
    tl_threads = n;
    return LT_OK;
}

lt_status lt__ensure_init(void) {
    lt_status st = lt_runtime_init();
    if (tl_threads != g_threads) {
        omp_set_num_threads(g_threads);
        tl_threads = g_threads;
    }
    if (tl_blocktime != blocktime_wanted()) apply_blocktime();
    return st;
}

/* ---- test diagnostic: threads that ran chunks of instrumented loops ---------------------- */

static atomic_int g_threads_seen;

void lt__note_thread(void) {
    int seen = omp_get_thread_num() + 1;
    int cur = atomic_load_explicit(&g_threads_seen, memory_order_relaxed);
    while (seen > cur && !atomic_compare_exchange_weak_explicit(&g_threads_seen, &cur, seen, memory_order_relaxed,
                                                                  memory_order_relaxed)) {
    }
}

int lt_debug_threads_seen(void) { return atomic_load_explicit(&g_threads_seen, memory_order_relaxed); }

void lt_debug_reset_threads_seen(void) { atomic_store_explicit(&g_threads_seen, 0, memory_order_relaxed); }

int lt_get_num_threads(void) {
    if (g_threads <= 0) {
        int n = omp_get_max_threads();
        lt_set_num_threads(n > 0 ? n : 1);
    }
    return g_threads;
}

lt_status lt_runtime_init(void) {
    if (g_init_status >= 0) return (lt_status)g_init_status;
    lt_status st = LT_OK;
    const char *isa = getenv("LORTA_ISA");
    if (isa && *isa && strcasecmp(isa, "auto") != 0) {
        int v = lt_isa_parse(isa);
        if (v < 0) st = LT_ERR_BAD_ENVIRONMENT;
        else if (lt_isa_set(v) != LT_OK) st = LT_ERR_UNSUPPORTED_ISA;
    }
    if (g_isa < 0) g_isa = lt_isa_best();
    const char *gemm = getenv("LORTA_GEMM");
    if (gemm && *gemm) {
        int v = lt_gemm_backend_parse(gemm);
        if (v < 0) { if (st == LT_OK) st = LT_ERR_BAD_ENVIRONMENT; }
        else g_gemm = v;
    }
    const char *decode = getenv("LORTA_DECODE");
    if (decode && *decode) {
        int v = lt_decode_arith_parse(decode);
        if (v < 0) { if (st == LT_OK) st = LT_ERR_BAD_ENVIRONMENT; }
        else g_decode = v;
    }
    const char *nt = getenv("LORTA_NUM_THREADS");
    int threads = 0;
    if (nt && *nt) {
        char *end = NULL;
        long v = strtol(nt, &end, 10);
        if (end == nt || *end != '\0' || v < 1 || v > 4096) {
            if (st == LT_OK) st = LT_ERR_BAD_ENVIRONMENT;
        } else {
            threads = (int)v;
        }
    }
    if (threads <= 0) threads = omp_get_max_threads();
    lt_set_num_threads(threads > 0 ? threads : 1);
    g_init_status = st;
    return st;
}

/* ---- BLAS diagnostics ----------------------------------------------------------------------- */

const char *lt_blas_corename(void) {
    const char *s = openblas_get_corename();
    return s ? s : "unknown";
}

const char *lt_blas_config(void) {
    const char *s = openblas_get_config();
    return s ? s : "unknown";
}

int lt_blas_core_level(const char *name) {
    if (!name) return -1;
    static const char *const sse[] = {"prescott", "core2", "penryn", "dunnington", "nehalem",
                                      "atom", "katmai", "coppermine", "northwood", "banias",
                                      "athlon", "opteron", "opteron_sse3", "barcelona",
                                      "nano", "bobcat", "generic", NULL};
    static const char *const avx[] = {"sandybridge", "bulldozer", "piledriver", NULL};
    static const char *const avx2[] = {"haswell", "zen", "steamroller", "excavator",
                                       "skylake", NULL};
    static const char *const avx512[] = {"skylakex", "cooperlake", "sapphirerapids", NULL};
    const char *const *tables[] = {sse, avx, avx2, avx512};
    for (int level = 0; level < 4; level++)
        for (const char *const *p = tables[level]; *p; p++)
            if (!strcasecmp(name, *p)) return level;
    return -1;
}

int lt_cpu_simd_level(void) {
    detect_cpu();
    if (g_cpu.avx512f && g_cpu.avx512bw && g_cpu.avx512vl && g_cpu.avx512dq && g_cpu.avx512cd)
        return 3;
    if (g_cpu.avx2 && g_cpu.fma) return 2;
    if (g_cpu.avx) return 1;
    return 0;
}

int lt_cpu_has_avx512bf16(void) {
    detect_cpu();
    return g_cpu.avx512bf16;
}

const char *lt_blas_recommended_coretype(void) {
    switch (lt_cpu_simd_level()) {
    case 3: return lt_cpu_has_avx512bf16() ? "Cooperlake" : "SkylakeX";
    case 2: return "Haswell";
    case 1: return "Sandybridge";
    default: return NULL;
    }
}

int lt_blas_core_is_weaker_than_cpu(void) {
    int core = lt_blas_core_level(lt_blas_corename());
    return core >= 0 && core < lt_cpu_simd_level();
}
