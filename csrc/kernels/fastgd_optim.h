/* fastgd fused optimizer kernels: the C API.
 *
 * Installed with the package as <fastgd/optim.h> under fastgd.get_include() (this file is
 * csrc/kernels/fastgd_optim.h in the source tree). The declarations below are a public,
 * versioned contract (FASTGD_ABI_VERSION_* in <fastgd/fastgd.h>): other extensions call
 * these functions through that header's import_fastgd() (C) or through
 * `from fastgd.kernels cimport ...` (Cython, the same names without the fgd_ prefix),
 * without linking against fastgd. A signature or struct here changes only with a new ABI
 * major version; additions bump the minor version.
 *
 * Conventions shared by every kernel
 * ----------------------------------
 * - A kernel updates a list of `ntensors` arrays in place. param[t], grad[t] and each state
 *   array [t] point at numel[t] contiguous elements of one dtype: float for the _f32
 *   kernels, double for _f64. Any alignment of that type is fine; numel[t] may be 0 and
 *   ntensors may be 0 (nothing is read or written). The arrays of one tensor must not
 *   overlap one another (param, grad and the states are `restrict` in the loops), nor those
 *   of another tensor of the same call.
 * - The pointer arrays (param, grad, the states, numel, step, ...) hold ntensors entries
 *   each and are only read. A state list documented as "may be NULL" is not read at all in
 *   that case; no other pointer may be NULL unless ntensors == 0.
 * - Hyper-parameters come in a struct of plain doubles and int flags (0 or 1), read once per
 *   call and cast to the element type once. Flags are tested as `!= 0`. No hyper-parameter
 *   is checked here: fastgd's Python layer (fastgd.optim, fastgd.functional) validates them;
 *   embedded callers pass values that class would accept.
 * - step[t] is tensor t's step number after the increment (1 for the first update, >= 1).
 *   The step-dependent factors (bias corrections, decayed learning rates) are computed once
 *   per tensor, in double; consecutive tensors with equal steps share them.
 * - `work` is a caller-owned scratch array of doubles (its content on entry is ignored and
 *   on return is unspecified): 2 * ntensors for Adagrad, Adam/AdamW and Adamax, 3 * ntensors
 *   for RAdam and NAdam. SGD, RMSprop, Lion and Adadelta take none. No kernel allocates,
 *   fails or reports an error.
 * - nthreads: the number of OpenMP threads for this call; <= 0 means OpenMP's default
 *   (OMP_NUM_THREADS; fastgd.set_num_threads() does not reach embedded calls, which pass
 *   their own count). Updates under 65536 elements in all run on the calling thread. Every
 *   update is element-wise, so the result has the same bits for any nthreads and equals
 *   fastgd.functional's (and fastgd.optim's) update of the same arrays bit for bit.
 * - Threads: the kernels touch no Python object and need no GIL (call them inside
 *   `with nogil:`); they keep no state between calls, so any number of threads may run them
 *   at once on disjoint arrays. Two calls that write the same array at once race.
 * - Subnormals: IEEE gradual underflow (as numpy and PyTorch) unless fastgd's flush-to-zero
 *   switch (fastgd.set_flush_denormal) is on; the embedded kernels follow that switch too.
 *
 * In the rules below, d is the gradient (-grad when maximize), plus weight_decay * param
 * where the decay is an L2 term (every rule but Lion and the decoupled variants), and
 * lerp(a, b, w) rounds as torch.lerp.
 *
 * The update rules are those of the torch.optim documentation, element for element in the
 * order of torch's single-tensor code (so float32 rounds as PyTorch does);
 * src/fastgd/reference/optim.py (fastgd.reference.optim) states each one in numpy.
 */
#ifndef FASTGD_OPTIM_H
#define FASTGD_OPTIM_H
#include <stddef.h>
#include <stdint.h>

/* SGD (torch.optim.SGD), fgd_sgd_f32/_f64:
 *   with momentum != 0: buf = buffer_is_new[t] ? d : momentum * buf + (1 - dampening) * d,
 *                       d = nesterov ? d + momentum * buf : buf
 *   param -= lr * d
 * momentum_buffer (state, one per tensor) and buffer_is_new (one flag per tensor) may be
 * NULL when momentum == 0. buffer_is_new[t] != 0 is PyTorch's first step with momentum
 * (the buffer is set to d, not read); the caller clears its flag afterwards. */
typedef struct {
    double lr, momentum, dampening, weight_decay;
    int nesterov, maximize;
} fgd_sgd_hparams;

/* Adagrad (torch.optim.Adagrad), fgd_adagrad_f32/_f64: state_sum (torch's "sum",
 * initial_accumulator_value to start with) is updated; clr = lr / (1 + (step - 1) lr_decay);
 * sum += d * d; param -= clr * d / (sqrt(sum) + eps).
 * work: 2 * ntensors doubles (the first ntensors are used). */
typedef struct {
    double lr, lr_decay, weight_decay, eps;
    int maximize;
} fgd_adagrad_hparams;

/* RMSprop (torch.optim.RMSprop), fgd_rmsprop_f32/_f64: square_avg = alpha * square_avg +
 * (1 - alpha) d^2; centered: grad_avg = lerp(grad_avg, d, 1 - alpha) and the denominator is
 * sqrt(square_avg - grad_avg^2) + eps, else sqrt(square_avg) + eps; momentum > 0:
 * buf = momentum * buf + d / denom, param -= lr * buf, else param -= lr * d / denom.
 * grad_avg may be NULL unless centered; momentum_buffer may be NULL unless momentum > 0.
 * No step and no work: the rule does not depend on the step number. */
typedef struct {
    double lr, alpha, eps, weight_decay, momentum;
    int centered, maximize;
} fgd_rmsprop_hparams;

/* Adam and AdamW (torch.optim.Adam, torch.optim.AdamW), fgd_adam_f32/_f64:
 *   decoupled_weight_decay = 1 (AdamW): param *= 1 - lr * weight_decay first;
 *   else weight_decay is an L2 term (in d)
 *   exp_avg = lerp(exp_avg, d, 1 - beta1); exp_avg_sq = beta2 exp_avg_sq + (1 - beta2) d^2
 *   amsgrad: max_exp_avg_sq = max(max_exp_avg_sq, exp_avg_sq), used in place of exp_avg_sq
 *   param -= lr / (1 - beta1^step) * exp_avg / (sqrt(v) / sqrt(1 - beta2^step) + eps)
 * max_exp_avg_sq may be NULL unless amsgrad. work: 2 * ntensors doubles.
 * Example, one float32 tensor of n elements at step k (zeroed states before step 1):
 *   float *p[1] = {w}, *m[1] = {m1}, *v[1] = {v1}; const float *g[1] = {grad};
 *   size_t numel[1] = {n}; int64_t step[1] = {k}; double work[2];
 *   fgd_adam_hparams hp = {1e-3, 0.9, 0.999, 1e-8, 0.0, 0, 0, 0};
 *   fgd_adam_f32(1, p, g, m, v, NULL, numel, step, &hp, work, 1); */
typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
    int amsgrad, maximize, decoupled_weight_decay;
} fgd_adam_hparams;

/* Adamax, the infinity-norm variant of Adam (torch.optim.Adamax), fgd_adamax_f32/_f64:
 * exp_avg = lerp(exp_avg, d, 1 - beta1); exp_inf = max(beta2 exp_inf, |d| + eps) (NaN
 * propagates); param -= lr / (1 - beta1^step) * exp_avg / exp_inf.
 * work: 2 * ntensors doubles (the first ntensors are used). */
typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
    int maximize;
} fgd_adamax_hparams;

/* Lion (Chen et al. 2023, as optax.lion), fgd_lion_f32/_f64: the sign of an interpolated
 * momentum, decoupled weight decay: c = beta1 exp_avg + (1 - beta1) d;
 * exp_avg = beta2 exp_avg + (1 - beta2) d; param -= lr * (sign(c) + weight_decay * param).
 * No step and no work. */
typedef struct {
    double lr, beta1, beta2, weight_decay;
    int maximize;
} fgd_lion_hparams;

/* Adadelta (torch.optim.Adadelta), fgd_adadelta_f32/_f64: square_avg = rho square_avg +
 * (1 - rho) d^2; delta = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * d;
 * acc_delta = rho acc_delta + (1 - rho) delta^2; param -= lr * delta. No step and no work. */
typedef struct {
    double lr, rho, eps, weight_decay;
    int maximize;
} fgd_adadelta_hparams;

/* RAdam (torch.optim.RAdam), fgd_radam_f32/_f64: Adam's moments, with the rectification
 * term of torch's rule when rho_t > 5 and the plain bias-corrected momentum step otherwise;
 * decoupled_weight_decay = 1: param *= 1 - lr * weight_decay first, as AdamW.
 * work: 3 * ntensors doubles. */
typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
    int maximize, decoupled_weight_decay;
} fgd_radam_hparams;

/* NAdam (torch.optim.NAdam), fgd_nadam_f32/_f64: Adam with Nesterov momentum and the
 * momentum schedule mu_t = beta1 (1 - 0.5 * 0.96^(t * momentum_decay));
 * decoupled_weight_decay = 1: param *= 1 - lr * weight_decay first, as AdamW.
 * mu_product: one double per tensor, scalar state (see the prototype). work: 3 * ntensors
 * doubles. */
typedef struct {
    double lr, beta1, beta2, eps, weight_decay, momentum_decay;
    int maximize, decoupled_weight_decay;
} fgd_nadam_hparams;

/* The kernels, declared once per element type T (float: _f32, double: _f64). The argument
 * order is: ntensors, param, grad, the state lists in the order of the optimizer's
 * state_dict, numel, step (when the rule depends on it), hp, work (when needed), nthreads. */
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

/* For benchmarks (not part of the embedding API: not in <fastgd/fastgd.h>'s table nor in
 * fastgd.kernels): p += g, m += g, v += g over n float32 elements (the memory traffic of an
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
