/*
 * CKernels.h — umbrella header of the C kernels (the module map names it). Every public header
 * is listed here explicitly: a new header changes this file, which invalidates Clang's module
 * cache (an umbrella *directory* would not, and incremental builds would miss the header).
 */
#ifndef LT_CKERNELS_H
#define LT_CKERNELS_H
#include "lt_runtime.h"
#include "lt_rng.h"
#include "lt_lora.h"
#include "lt_lorta.h"
#include "lt_stats.h"
#include "lt_nn.h"
#include "lt_optim.h"
#include "lt_quant.h"
#include "lt_fs.h"
#include "lt_gemm.h"
#endif
