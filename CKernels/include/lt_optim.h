/*
 * lt_optim.h — optimizer kernels: fused AdamW with decoupled weight decay, and a finiteness
 * check for gradients.
 *
 * AdamW, step t >= 1 (t counts the updates made so far including this one), all arrays of
 * length n, float32, updated in place element by element as torch.optim.AdamW (single-tensor
 * path, amsgrad=False, maximize=False), with torch's operation order (lerp_, addcmul_,
 * addcdiv_); torch's CPU vector kernels may fuse multiply-adds, so results agree to a few
 * float32 ulps rather than bitwise:
 *
 *     p  <- p * (1 - lr * weight_decay)                  (decoupled weight decay)
 *     m  <- beta1 * m + (1 - beta1) * g     (computed as m + (1 - beta1) * (g - m), torch's lerp_)
 *     v  <- beta2 * v + (1 - beta2) * g * g
 *     p  <- p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 *
 * The hyper-parameters are doubles, as Python floats are in torch: the scalars 1 - beta1,
 * 1 - beta2, 1 - lr * weight_decay, lr / (1 - beta1^t) and sqrt(1 - beta2^t) are computed in
 * double and rounded once to float (rounding beta2 = 0.999 to float first would change
 * 1 - beta2 by 1.3e-5 relative). Every element is independent, so the result is bitwise
 * the same for any thread count; OpenMP splits the arrays into fixed chunks (LT_ADAMW_CHUNK
 * elements). One build for every ISA (plain loop, compiler-vectorised). No allocation, no
 * printing.
 */
#ifndef LT_OPTIM_H
#define LT_OPTIM_H
#include <stdint.h>
#include "lt_runtime.h"
#ifdef __cplusplus
extern "C" {
#endif

/* Elements per OpenMP work item of lt_adamw_step. */
#define LT_ADAMW_CHUNK 4096

/* AdamW hyper-parameters (torch.optim.AdamW names: lr, betas=(beta1, beta2), eps, weight_decay). */
typedef struct lt_adamw_hparams {
    double lr;            /* learning rate of this step, finite, >= 0 */
    double beta1;         /* in [0, 1) */
    double beta2;         /* in [0, 1) */
    double eps;           /* finite, > 0 (rounded to float) */
    double weight_decay;  /* finite, >= 0 */
} lt_adamw_hparams;

/* One AdamW update of n elements: param, m (exp_avg), v (exp_avg_sq) read and written; grad
 * read. `step` >= 1 is the 1-based update count (torch's state["step"] after incrementing).
 * The arrays must not overlap each other (grad may not alias param, m or v).
 * LT_ERR_NULL_POINTER for a NULL array or hparams when n > 0; LT_ERR_INVALID_ARGUMENT for
 * n < 0, step < 1, or a hyper-parameter out of range. Gradients are not checked for NaN/Inf
 * (see lt_all_finite): a non-finite gradient propagates into param, m and v. */
lt_status lt_adamw_step(float *param, const float *grad, float *m, float *v, int64_t n,
                        int64_t step, const lt_adamw_hparams *hparams);

/* *first_bad = index of the first element of x[0..n) that is NaN or ±Inf, or -1 when all
 * are finite. LT_ERR_NULL_POINTER for NULL first_bad (or NULL x when n > 0);
 * LT_ERR_INVALID_ARGUMENT for n < 0. */
lt_status lt_all_finite(const float *x, int64_t n, int64_t *first_bad);

#ifdef __cplusplus
}
#endif
#endif
