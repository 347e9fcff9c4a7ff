/* fastgd fused optimizer kernels: the C API.
 *
 * Every kernel updates a list of ntensors arrays in place: param[t], grad[t] and the state
 * arrays each point at numel[t] contiguous elements of one dtype (float: _f32, double: _f64).
 * Hyper-parameters are plain scalars; step-dependent factors (bias corrections, decayed
 * learning rates) are computed once per tensor, in double, from step[t] (the step number
 * after increment, >= 1). Nothing here knows about Python. The update rules are those of the
 * torch.optim documentation; src/fastgd/reference/ states each one in numpy.
 *
 * nthreads <= 0 means the default thread count. Kernels with step-dependent factors take a
 * caller-owned workspace `work` of 3 * ntensors doubles (RAdam and NAdam; the others use
 * 2 * ntensors), so no kernel allocates or fails.
 */
#ifndef FASTGD_OPTIM_H
#define FASTGD_OPTIM_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    double lr, momentum, dampening, weight_decay;
    int nesterov, maximize;
} fgd_sgd_hparams;

typedef struct {
    double lr, lr_decay, weight_decay, eps;
    int maximize;
} fgd_adagrad_hparams;

typedef struct {
    double lr, alpha, eps, weight_decay, momentum;
    int centered, maximize;
} fgd_rmsprop_hparams;

/* decoupled_weight_decay = 1 is AdamW: param *= 1 - lr * weight_decay before the Adam step. */
typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
    int amsgrad, maximize, decoupled_weight_decay;
} fgd_adam_hparams;

/* Adamax: the infinity-norm variant of Adam (torch.optim.Adamax). */
typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
    int maximize;
} fgd_adamax_hparams;

/* Lion (Chen et al. 2023, as optax.lion): the sign of an interpolated momentum, decoupled
 * weight decay. */
typedef struct {
    double lr, beta1, beta2, weight_decay;
    int maximize;
} fgd_lion_hparams;

/* Adadelta (torch.optim.Adadelta). */
typedef struct {
    double lr, rho, eps, weight_decay;
    int maximize;
} fgd_adadelta_hparams;

/* RAdam (torch.optim.RAdam); decoupled_weight_decay = 1: param *= 1 - lr * weight_decay
 * first, as AdamW. */
typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
    int maximize, decoupled_weight_decay;
} fgd_radam_hparams;

/* NAdam (torch.optim.NAdam): Adam with Nesterov momentum and the momentum schedule
 * mu_t = beta1 (1 - 0.5 * 0.96^(t * momentum_decay)); decoupled_weight_decay = 1: param *=
 * 1 - lr * weight_decay first, as AdamW. */
typedef struct {
    double lr, beta1, beta2, eps, weight_decay, momentum_decay;
    int maximize, decoupled_weight_decay;
} fgd_nadam_hparams;

#define FGD_DECLARE(T, SFX)                                                                   \
    /* momentum_buffer may be NULL when momentum == 0; buffer_is_new[t] != 0 sets            \
     * momentum_buffer[t] = grad (PyTorch's first step) instead of the momentum update. */   \
    void fgd_sgd_##SFX(size_t ntensors, T *const *param, const T *const *grad,                \
                       T *const *momentum_buffer, const unsigned char *buffer_is_new,         \
                       const size_t *numel, const fgd_sgd_hparams *hp, int nthreads);         \
    void fgd_adagrad_##SFX(size_t ntensors, T *const *param, const T *const *grad,            \
                           T *const *state_sum, const size_t *numel, const int64_t *step,     \
                           const fgd_adagrad_hparams *hp, double *work, int nthreads);        \
    /* grad_avg may be NULL unless centered; momentum_buffer may be NULL unless momentum > 0 */\
    void fgd_rmsprop_##SFX(size_t ntensors, T *const *param, const T *const *grad,            \
                           T *const *square_avg, T *const *grad_avg,                          \
                           T *const *momentum_buffer, const size_t *numel,                    \
                           const fgd_rmsprop_hparams *hp, int nthreads);                      \
    /* max_exp_avg_sq may be NULL unless amsgrad */                                           \
    void fgd_adam_##SFX(size_t ntensors, T *const *param, const T *const *grad,               \
                        T *const *exp_avg, T *const *exp_avg_sq, T *const *max_exp_avg_sq,    \
                        const size_t *numel, const int64_t *step, const fgd_adam_hparams *hp, \
                        double *work, int nthreads);                                       \
    void fgd_adamax_##SFX(size_t ntensors, T *const *param, const T *const *grad,             \
                          T *const *exp_avg, T *const *exp_inf, const size_t *numel,          \
                          const int64_t *step, const fgd_adamax_hparams *hp, double *work,    \
                          int nthreads);                                                      \
    void fgd_lion_##SFX(size_t ntensors, T *const *param, const T *const *grad,               \
                        T *const *exp_avg, const size_t *numel, const fgd_lion_hparams *hp,   \
                        int nthreads);                                                        \
    void fgd_adadelta_##SFX(size_t ntensors, T *const *param, const T *const *grad,           \
                            T *const *square_avg, T *const *acc_delta, const size_t *numel,   \
                            const fgd_adadelta_hparams *hp, int nthreads);                    \
    void fgd_radam_##SFX(size_t ntensors, T *const *param, const T *const *grad,              \
                         T *const *exp_avg, T *const *exp_avg_sq, const size_t *numel,        \
                         const int64_t *step, const fgd_radam_hparams *hp, double *work,      \
                         int nthreads);                                                       \
    /* mu_product[t]: the product of mu_1 .. mu_(step-1) of tensor t (1 before its first     \
     * step), read and replaced by the product up to mu_step; kept rounded to float32 for    \
     * both dtypes, as PyTorch keeps it in a float32 scalar tensor. */                        \
    void fgd_nadam_##SFX(size_t ntensors, T *const *param, const T *const *grad,              \
                         T *const *exp_avg, T *const *exp_avg_sq, double *mu_product,         \
                         const size_t *numel, const int64_t *step, const fgd_nadam_hparams *hp,\
                         double *work, int nthreads);

FGD_DECLARE(float, f32)
FGD_DECLARE(double, f64)
#undef FGD_DECLARE

/* Gradient clipping (fastgd.nn.utils): the p-norm (norm_type > 0, or infinite: the largest
 * magnitude; NaN propagates) of all elements of a list of arrays, accumulated in double over
 * fixed blocks (the same bits for any thread count); `partial` is a caller-owned workspace
 * of fgd_norm_blocks(ntensors, numel) doubles. fgd_scale multiplies every element by
 * (T)factor in place. */
size_t fgd_norm_blocks(size_t ntensors, const size_t *numel);
double fgd_norm_f32(size_t ntensors, const float *const *x, const size_t *numel,
                    double norm_type, double *partial, int nthreads);
double fgd_norm_f64(size_t ntensors, const double *const *x, const size_t *numel,
                    double norm_type, double *partial, int nthreads);
void fgd_scale_f32(size_t ntensors, float *const *x, const size_t *numel, double factor,
                   int nthreads);
void fgd_scale_f64(size_t ntensors, double *const *x, const size_t *numel, double factor,
                   int nthreads);

/* For benchmarks: p += g, m += g, v += g over n float32 elements (the memory traffic of an
 * Adam step, four arrays read and three written, none of its arithmetic), split over
 * threads exactly as the updates are. */
void fgd_stream_probe_f32(float *p, const float *g, float *m, float *v, size_t n,
                          int nthreads);

/* Weight averaging (fastgd.optim.swa_utils, as torch.optim.swa_utils): avg[t] is updated
 * in place from cur[t] (numel[t] elements of one dtype each; avg and cur never overlap),
 * one element at a time (the same bits for any thread count). The factors are computed once
 * per call from the hyper-parameters below, then cast to the arrays' dtype:
 *   FGD_AVG_COPY      avg = cur (the first update_parameters)
 *   FGD_AVG_EMA       avg = lerp(avg, cur, 1 - decay)        (get_ema_multi_avg_fn)
 *   FGD_AVG_EMA_SUM   avg = decay * avg + (1 - decay) * cur  (get_ema_avg_fn)
 *   FGD_AVG_SWA       avg = avg + (cur - avg) / (n_averaged + 1)  (get_swa_avg_fn, the default)
 *   FGD_AVG_SWA_LERP  avg = lerp(avg, cur, w), w = 1.0f / (float)(n_averaged + 1): torch's
 *                     weight, a float32 tensor whatever the arrays' dtype (get_swa_multi_avg_fn)
 * lerp rounds as torch.lerp: start + w (end - start) for |w| < 0.5, else
 * end - (end - start)(1 - w). */
enum { FGD_AVG_COPY = 0, FGD_AVG_EMA = 1, FGD_AVG_EMA_SUM = 2, FGD_AVG_SWA = 3,
       FGD_AVG_SWA_LERP = 4 };

typedef struct {
    int kind;           /* one of FGD_AVG_* */
    double decay;       /* the EMA kinds */
    int64_t n_averaged; /* the SWA kinds: the models averaged so far (>= 0) */
} fgd_average_hparams;

void fgd_average_f32(size_t ntensors, float *const *avg, const float *const *cur,
                     const size_t *numel, const fgd_average_hparams *hp, int nthreads);
void fgd_average_f64(size_t ntensors, double *const *avg, const double *const *cur,
                     const size_t *numel, const fgd_average_hparams *hp, int nthreads);

#endif
