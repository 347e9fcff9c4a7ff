# cython: language_level=3
"""fastgd's fused kernels for other Cython extensions: ``from fastgd.kernels cimport ...``.

Installed with the package (site-packages/fastgd/kernels.pxd). Every kernel of the C header
<fastgd/optim.h> (in the folder ``fastgd.get_include()``) is here under its C name without
the ``fgd_`` prefix, with the same arguments, documented in that header:

    from fastgd.kernels cimport fgd_adam_hparams, adam_f32

    cdef fgd_adam_hparams hp
    hp.lr = 1e-3; hp.beta1 = 0.9; hp.beta2 = 0.999; hp.eps = 1e-8; hp.weight_decay = 0
    hp.amsgrad = 0; hp.maximize = 0; hp.decoupled_weight_decay = 0
    with nogil:
        adam_f32(ntensors, param, grad, exp_avg, exp_avg_sq, NULL, numel, step, &hp, work, 0)

The functions are those of the compiled module fastgd.kernels and reach the importing
module through its C-API capsules (``fastgd.kernels.__pyx_capi__``), as scipy.linalg's
cython_blas does: the importing extension is built with ``fastgd.get_include()`` on its
include path (for the hyper-parameter structs) and links against nothing of fastgd.
Importing it imports fastgd.kernels, which checks each signature by name; the signatures
are the versioned contract of <fastgd/fastgd.h> (``fastgd.kernels.ABI_VERSION``).

All are ``noexcept nogil``: they need no GIL, raise nothing and keep no state between
calls, so threads may run them at once on disjoint arrays.
"""
from libc.stdint cimport int64_t


cdef extern from "fastgd/optim.h" nogil:
    ctypedef struct fgd_sgd_hparams:
        double lr, momentum, dampening, weight_decay
        int nesterov, maximize

    ctypedef struct fgd_adagrad_hparams:
        double lr, lr_decay, weight_decay, eps
        int maximize

    ctypedef struct fgd_rmsprop_hparams:
        double lr, alpha, eps, weight_decay, momentum
        int centered, maximize

    ctypedef struct fgd_adam_hparams:
        double lr, beta1, beta2, eps, weight_decay
        int amsgrad, maximize, decoupled_weight_decay

    ctypedef struct fgd_adamax_hparams:
        double lr, beta1, beta2, eps, weight_decay
        int maximize

    ctypedef struct fgd_lion_hparams:
        double lr, beta1, beta2, weight_decay
        int maximize

    ctypedef struct fgd_adadelta_hparams:
        double lr, rho, eps, weight_decay
        int maximize

    ctypedef struct fgd_radam_hparams:
        double lr, beta1, beta2, eps, weight_decay
        int maximize, decoupled_weight_decay

    ctypedef struct fgd_nadam_hparams:
        double lr, beta1, beta2, eps, weight_decay, momentum_decay
        int maximize, decoupled_weight_decay

    enum:
        FGD_AVG_COPY
        FGD_AVG_EMA
        FGD_AVG_EMA_SUM
        FGD_AVG_SWA
        FGD_AVG_SWA_LERP

    ctypedef struct fgd_average_hparams:
        int kind
        double decay
        int64_t n_averaged


# The kernels (fgd_<name> in <fastgd/optim.h>), in the order of <fastgd/fastgd.h>'s table.
cdef void sgd_f32(size_t ntensors, float *const *param, const float *const *grad,
        float *const *momentum_buffer, const unsigned char *buffer_is_new, const size_t *numel,
        const fgd_sgd_hparams *hp, int nthreads) noexcept nogil
cdef void sgd_f64(size_t ntensors, double *const *param, const double *const *grad,
        double *const *momentum_buffer, const unsigned char *buffer_is_new, const size_t *numel,
        const fgd_sgd_hparams *hp, int nthreads) noexcept nogil
cdef void adagrad_f32(size_t ntensors, float *const *param, const float *const *grad,
        float *const *state_sum, const size_t *numel, const int64_t *step,
        const fgd_adagrad_hparams *hp, double *work, int nthreads) noexcept nogil
cdef void adagrad_f64(size_t ntensors, double *const *param, const double *const *grad,
        double *const *state_sum, const size_t *numel, const int64_t *step,
        const fgd_adagrad_hparams *hp, double *work, int nthreads) noexcept nogil
cdef void rmsprop_f32(size_t ntensors, float *const *param, const float *const *grad,
        float *const *square_avg, float *const *grad_avg, float *const *momentum_buffer,
        const size_t *numel, const fgd_rmsprop_hparams *hp, int nthreads) noexcept nogil
cdef void rmsprop_f64(size_t ntensors, double *const *param, const double *const *grad,
        double *const *square_avg, double *const *grad_avg, double *const *momentum_buffer,
        const size_t *numel, const fgd_rmsprop_hparams *hp, int nthreads) noexcept nogil
cdef void adam_f32(size_t ntensors, float *const *param, const float *const *grad,
        float *const *exp_avg, float *const *exp_avg_sq, float *const *max_exp_avg_sq,
        const size_t *numel, const int64_t *step, const fgd_adam_hparams *hp, double *work,
        int nthreads) noexcept nogil
cdef void adam_f64(size_t ntensors, double *const *param, const double *const *grad,
        double *const *exp_avg, double *const *exp_avg_sq, double *const *max_exp_avg_sq,
        const size_t *numel, const int64_t *step, const fgd_adam_hparams *hp, double *work,
        int nthreads) noexcept nogil
cdef void adamax_f32(size_t ntensors, float *const *param, const float *const *grad,
        float *const *exp_avg, float *const *exp_inf, const size_t *numel, const int64_t *step,
        const fgd_adamax_hparams *hp, double *work, int nthreads) noexcept nogil
cdef void adamax_f64(size_t ntensors, double *const *param, const double *const *grad,
        double *const *exp_avg, double *const *exp_inf, const size_t *numel,
        const int64_t *step, const fgd_adamax_hparams *hp, double *work,
        int nthreads) noexcept nogil
cdef void lion_f32(size_t ntensors, float *const *param, const float *const *grad,
        float *const *exp_avg, const size_t *numel, const fgd_lion_hparams *hp,
        int nthreads) noexcept nogil
cdef void lion_f64(size_t ntensors, double *const *param, const double *const *grad,
        double *const *exp_avg, const size_t *numel, const fgd_lion_hparams *hp,
        int nthreads) noexcept nogil
cdef void adadelta_f32(size_t ntensors, float *const *param, const float *const *grad,
        float *const *square_avg, float *const *acc_delta, const size_t *numel,
        const fgd_adadelta_hparams *hp, int nthreads) noexcept nogil
cdef void adadelta_f64(size_t ntensors, double *const *param, const double *const *grad,
        double *const *square_avg, double *const *acc_delta, const size_t *numel,
        const fgd_adadelta_hparams *hp, int nthreads) noexcept nogil
cdef void radam_f32(size_t ntensors, float *const *param, const float *const *grad,
        float *const *exp_avg, float *const *exp_avg_sq, const size_t *numel,
        const int64_t *step, const fgd_radam_hparams *hp, double *work,
        int nthreads) noexcept nogil
cdef void radam_f64(size_t ntensors, double *const *param, const double *const *grad,
        double *const *exp_avg, double *const *exp_avg_sq, const size_t *numel,
        const int64_t *step, const fgd_radam_hparams *hp, double *work,
        int nthreads) noexcept nogil
cdef void nadam_f32(size_t ntensors, float *const *param, const float *const *grad,
        float *const *exp_avg, float *const *exp_avg_sq, double *mu_product,
        const size_t *numel, const int64_t *step, const fgd_nadam_hparams *hp, double *work,
        int nthreads) noexcept nogil
cdef void nadam_f64(size_t ntensors, double *const *param, const double *const *grad,
        double *const *exp_avg, double *const *exp_avg_sq, double *mu_product,
        const size_t *numel, const int64_t *step, const fgd_nadam_hparams *hp, double *work,
        int nthreads) noexcept nogil
cdef size_t norm_blocks(size_t ntensors, const size_t *numel) noexcept nogil
cdef double norm_f32(size_t ntensors, const float *const *x, const size_t *numel,
        double norm_type, double *partial, int nthreads) noexcept nogil
cdef double norm_f64(size_t ntensors, const double *const *x, const size_t *numel,
        double norm_type, double *partial, int nthreads) noexcept nogil
cdef void scale_f32(size_t ntensors, float *const *x, const size_t *numel, double factor,
        int nthreads) noexcept nogil
cdef void scale_f64(size_t ntensors, double *const *x, const size_t *numel, double factor,
        int nthreads) noexcept nogil
cdef void average_f32(size_t ntensors, float *const *avg, const float *const *cur,
        const size_t *numel, const fgd_average_hparams *hp, int nthreads) noexcept nogil
cdef void average_f64(size_t ntensors, double *const *avg, const double *const *cur,
        const size_t *numel, const fgd_average_hparams *hp, int nthreads) noexcept nogil
