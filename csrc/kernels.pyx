# cython: language_level=3
"""fastgd.kernels: the fused kernels for other C and Cython extensions.

Two doors to the same functions (the kernels of csrc/kernels, linked into this module):

* Cython: the ``cdef ... noexcept nogil`` functions below, declared in kernels.pxd and
  exported in ``__pyx_capi__``, for ``from fastgd.kernels cimport adam_f32``;
* C: ``_C_API``, a capsule named "fastgd.kernels._C_API" holding the table of
  <fastgd/fastgd.h> (csrc/capi/capi.c), which that header's import_fastgd() takes.

Each wrapper only calls its kernel, so its updates are those of fastgd.functional and
fastgd.optim bit for bit. The only Python-level API here is informational: ABI_VERSION.
"""
from cpython.pycapsule cimport PyCapsule_New
from libc.stdint cimport int64_t


# capi.h, not <fastgd/fastgd.h>: its macros would send the kernel calls below to the table
cdef extern from "capi.h":
    int FASTGD_ABI_VERSION_MAJOR
    int FASTGD_ABI_VERSION_MINOR
    void *fgd_capi_table()


cdef extern from "parallel.h" nogil:
    int fgd_set_flush_denormal(int on)
    int fgd_get_flush_denormal()


cdef extern from "fastgd/optim.h" nogil:
    void fgd_sgd_f32(size_t ntensors, float *const *param, const float *const *grad,
        float *const *momentum_buffer, const unsigned char *buffer_is_new, const size_t *numel,
        const fgd_sgd_hparams *hp, int nthreads)
    void fgd_sgd_f64(size_t ntensors, double *const *param, const double *const *grad,
        double *const *momentum_buffer, const unsigned char *buffer_is_new, const size_t *numel,
        const fgd_sgd_hparams *hp, int nthreads)
    void fgd_adagrad_f32(size_t ntensors, float *const *param, const float *const *grad,
        float *const *state_sum, const size_t *numel, const int64_t *step,
        const fgd_adagrad_hparams *hp, double *work, int nthreads)
    void fgd_adagrad_f64(size_t ntensors, double *const *param, const double *const *grad,
        double *const *state_sum, const size_t *numel, const int64_t *step,
        const fgd_adagrad_hparams *hp, double *work, int nthreads)
    void fgd_rmsprop_f32(size_t ntensors, float *const *param, const float *const *grad,
        float *const *square_avg, float *const *grad_avg, float *const *momentum_buffer,
        const size_t *numel, const fgd_rmsprop_hparams *hp, int nthreads)
    void fgd_rmsprop_f64(size_t ntensors, double *const *param, const double *const *grad,
        double *const *square_avg, double *const *grad_avg, double *const *momentum_buffer,
        const size_t *numel, const fgd_rmsprop_hparams *hp, int nthreads)
    void fgd_adam_f32(size_t ntensors, float *const *param, const float *const *grad,
        float *const *exp_avg, float *const *exp_avg_sq, float *const *max_exp_avg_sq,
        const size_t *numel, const int64_t *step, const fgd_adam_hparams *hp, double *work,
        int nthreads)
    void fgd_adam_f64(size_t ntensors, double *const *param, const double *const *grad,
        double *const *exp_avg, double *const *exp_avg_sq, double *const *max_exp_avg_sq,
        const size_t *numel, const int64_t *step, const fgd_adam_hparams *hp, double *work,
        int nthreads)
    void fgd_adamax_f32(size_t ntensors, float *const *param, const float *const *grad,
        float *const *exp_avg, float *const *exp_inf, const size_t *numel, const int64_t *step,
        const fgd_adamax_hparams *hp, double *work, int nthreads)
    void fgd_adamax_f64(size_t ntensors, double *const *param, const double *const *grad,
        double *const *exp_avg, double *const *exp_inf, const size_t *numel,
        const int64_t *step, const fgd_adamax_hparams *hp, double *work, int nthreads)
    void fgd_lion_f32(size_t ntensors, float *const *param, const float *const *grad,
        float *const *exp_avg, const size_t *numel, const fgd_lion_hparams *hp, int nthreads)
    void fgd_lion_f64(size_t ntensors, double *const *param, const double *const *grad,
        double *const *exp_avg, const size_t *numel, const fgd_lion_hparams *hp, int nthreads)
    void fgd_adadelta_f32(size_t ntensors, float *const *param, const float *const *grad,
        float *const *square_avg, float *const *acc_delta, const size_t *numel,
        const fgd_adadelta_hparams *hp, int nthreads)
    void fgd_adadelta_f64(size_t ntensors, double *const *param, const double *const *grad,
        double *const *square_avg, double *const *acc_delta, const size_t *numel,
        const fgd_adadelta_hparams *hp, int nthreads)
    void fgd_radam_f32(size_t ntensors, float *const *param, const float *const *grad,
        float *const *exp_avg, float *const *exp_avg_sq, const size_t *numel,
        const int64_t *step, const fgd_radam_hparams *hp, double *work, int nthreads)
    void fgd_radam_f64(size_t ntensors, double *const *param, const double *const *grad,
        double *const *exp_avg, double *const *exp_avg_sq, const size_t *numel,
        const int64_t *step, const fgd_radam_hparams *hp, double *work, int nthreads)
    void fgd_nadam_f32(size_t ntensors, float *const *param, const float *const *grad,
        float *const *exp_avg, float *const *exp_avg_sq, double *mu_product,
        const size_t *numel, const int64_t *step, const fgd_nadam_hparams *hp, double *work,
        int nthreads)
    void fgd_nadam_f64(size_t ntensors, double *const *param, const double *const *grad,
        double *const *exp_avg, double *const *exp_avg_sq, double *mu_product,
        const size_t *numel, const int64_t *step, const fgd_nadam_hparams *hp, double *work,
        int nthreads)
    size_t fgd_norm_blocks(size_t ntensors, const size_t *numel)
    double fgd_norm_f32(size_t ntensors, const float *const *x, const size_t *numel,
        double norm_type, double *partial, int nthreads)
    double fgd_norm_f64(size_t ntensors, const double *const *x, const size_t *numel,
        double norm_type, double *partial, int nthreads)
    void fgd_scale_f32(size_t ntensors, float *const *x, const size_t *numel, double factor,
        int nthreads)
    void fgd_scale_f64(size_t ntensors, double *const *x, const size_t *numel, double factor,
        int nthreads)
    void fgd_average_f32(size_t ntensors, float *const *avg, const float *const *cur,
        const size_t *numel, const fgd_average_hparams *hp, int nthreads)
    void fgd_average_f64(size_t ntensors, double *const *avg, const double *const *cur,
        const size_t *numel, const fgd_average_hparams *hp, int nthreads)


#: (major, minor) of the C API in <fastgd/fastgd.h> and of the signatures of kernels.pxd.
ABI_VERSION = (FASTGD_ABI_VERSION_MAJOR, FASTGD_ABI_VERSION_MINOR)

_C_API = PyCapsule_New(fgd_capi_table(), b"fastgd.kernels._C_API", NULL)


def _set_flush_denormal(mode):
    """This module's copy of the kernels' flush-to-zero switch (fastgd.set_flush_denormal
    sets it together with the one of fastgd's own updates)."""
    return bool(fgd_set_flush_denormal(bool(mode)))


def _get_flush_denormal():
    return bool(fgd_get_flush_denormal())


cdef void sgd_f32(size_t ntensors, float *const *param, const float *const *grad,
        float *const *momentum_buffer, const unsigned char *buffer_is_new, const size_t *numel,
        const fgd_sgd_hparams *hp, int nthreads) noexcept nogil:
    fgd_sgd_f32(ntensors, param, grad, momentum_buffer, buffer_is_new, numel, hp, nthreads)

cdef void sgd_f64(size_t ntensors, double *const *param, const double *const *grad,
        double *const *momentum_buffer, const unsigned char *buffer_is_new, const size_t *numel,
        const fgd_sgd_hparams *hp, int nthreads) noexcept nogil:
    fgd_sgd_f64(ntensors, param, grad, momentum_buffer, buffer_is_new, numel, hp, nthreads)

cdef void adagrad_f32(size_t ntensors, float *const *param, const float *const *grad,
        float *const *state_sum, const size_t *numel, const int64_t *step,
        const fgd_adagrad_hparams *hp, double *work, int nthreads) noexcept nogil:
    fgd_adagrad_f32(ntensors, param, grad, state_sum, numel, step, hp, work, nthreads)

cdef void adagrad_f64(size_t ntensors, double *const *param, const double *const *grad,
        double *const *state_sum, const size_t *numel, const int64_t *step,
        const fgd_adagrad_hparams *hp, double *work, int nthreads) noexcept nogil:
    fgd_adagrad_f64(ntensors, param, grad, state_sum, numel, step, hp, work, nthreads)

cdef void rmsprop_f32(size_t ntensors, float *const *param, const float *const *grad,
        float *const *square_avg, float *const *grad_avg, float *const *momentum_buffer,
        const size_t *numel, const fgd_rmsprop_hparams *hp, int nthreads) noexcept nogil:
    fgd_rmsprop_f32(ntensors, param, grad, square_avg, grad_avg, momentum_buffer, numel, hp,
        nthreads)

cdef void rmsprop_f64(size_t ntensors, double *const *param, const double *const *grad,
        double *const *square_avg, double *const *grad_avg, double *const *momentum_buffer,
        const size_t *numel, const fgd_rmsprop_hparams *hp, int nthreads) noexcept nogil:
    fgd_rmsprop_f64(ntensors, param, grad, square_avg, grad_avg, momentum_buffer, numel, hp,
        nthreads)

cdef void adam_f32(size_t ntensors, float *const *param, const float *const *grad,
        float *const *exp_avg, float *const *exp_avg_sq, float *const *max_exp_avg_sq,
        const size_t *numel, const int64_t *step, const fgd_adam_hparams *hp, double *work,
        int nthreads) noexcept nogil:
    fgd_adam_f32(ntensors, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, numel, step, hp,
        work, nthreads)

cdef void adam_f64(size_t ntensors, double *const *param, const double *const *grad,
        double *const *exp_avg, double *const *exp_avg_sq, double *const *max_exp_avg_sq,
        const size_t *numel, const int64_t *step, const fgd_adam_hparams *hp, double *work,
        int nthreads) noexcept nogil:
    fgd_adam_f64(ntensors, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, numel, step, hp,
        work, nthreads)

cdef void adamax_f32(size_t ntensors, float *const *param, const float *const *grad,
        float *const *exp_avg, float *const *exp_inf, const size_t *numel, const int64_t *step,
        const fgd_adamax_hparams *hp, double *work, int nthreads) noexcept nogil:
    fgd_adamax_f32(ntensors, param, grad, exp_avg, exp_inf, numel, step, hp, work, nthreads)

cdef void adamax_f64(size_t ntensors, double *const *param, const double *const *grad,
        double *const *exp_avg, double *const *exp_inf, const size_t *numel,
        const int64_t *step, const fgd_adamax_hparams *hp, double *work,
        int nthreads) noexcept nogil:
    fgd_adamax_f64(ntensors, param, grad, exp_avg, exp_inf, numel, step, hp, work, nthreads)

cdef void lion_f32(size_t ntensors, float *const *param, const float *const *grad,
        float *const *exp_avg, const size_t *numel, const fgd_lion_hparams *hp,
        int nthreads) noexcept nogil:
    fgd_lion_f32(ntensors, param, grad, exp_avg, numel, hp, nthreads)

cdef void lion_f64(size_t ntensors, double *const *param, const double *const *grad,
        double *const *exp_avg, const size_t *numel, const fgd_lion_hparams *hp,
        int nthreads) noexcept nogil:
    fgd_lion_f64(ntensors, param, grad, exp_avg, numel, hp, nthreads)

cdef void adadelta_f32(size_t ntensors, float *const *param, const float *const *grad,
        float *const *square_avg, float *const *acc_delta, const size_t *numel,
        const fgd_adadelta_hparams *hp, int nthreads) noexcept nogil:
    fgd_adadelta_f32(ntensors, param, grad, square_avg, acc_delta, numel, hp, nthreads)

cdef void adadelta_f64(size_t ntensors, double *const *param, const double *const *grad,
        double *const *square_avg, double *const *acc_delta, const size_t *numel,
        const fgd_adadelta_hparams *hp, int nthreads) noexcept nogil:
    fgd_adadelta_f64(ntensors, param, grad, square_avg, acc_delta, numel, hp, nthreads)

cdef void radam_f32(size_t ntensors, float *const *param, const float *const *grad,
        float *const *exp_avg, float *const *exp_avg_sq, const size_t *numel,
        const int64_t *step, const fgd_radam_hparams *hp, double *work,
        int nthreads) noexcept nogil:
    fgd_radam_f32(ntensors, param, grad, exp_avg, exp_avg_sq, numel, step, hp, work, nthreads)

cdef void radam_f64(size_t ntensors, double *const *param, const double *const *grad,
        double *const *exp_avg, double *const *exp_avg_sq, const size_t *numel,
        const int64_t *step, const fgd_radam_hparams *hp, double *work,
        int nthreads) noexcept nogil:
    fgd_radam_f64(ntensors, param, grad, exp_avg, exp_avg_sq, numel, step, hp, work, nthreads)

cdef void nadam_f32(size_t ntensors, float *const *param, const float *const *grad,
        float *const *exp_avg, float *const *exp_avg_sq, double *mu_product,
        const size_t *numel, const int64_t *step, const fgd_nadam_hparams *hp, double *work,
        int nthreads) noexcept nogil:
    fgd_nadam_f32(ntensors, param, grad, exp_avg, exp_avg_sq, mu_product, numel, step, hp, work,
        nthreads)

cdef void nadam_f64(size_t ntensors, double *const *param, const double *const *grad,
        double *const *exp_avg, double *const *exp_avg_sq, double *mu_product,
        const size_t *numel, const int64_t *step, const fgd_nadam_hparams *hp, double *work,
        int nthreads) noexcept nogil:
    fgd_nadam_f64(ntensors, param, grad, exp_avg, exp_avg_sq, mu_product, numel, step, hp, work,
        nthreads)

cdef size_t norm_blocks(size_t ntensors, const size_t *numel) noexcept nogil:
    return fgd_norm_blocks(ntensors, numel)

cdef double norm_f32(size_t ntensors, const float *const *x, const size_t *numel,
        double norm_type, double *partial, int nthreads) noexcept nogil:
    return fgd_norm_f32(ntensors, x, numel, norm_type, partial, nthreads)

cdef double norm_f64(size_t ntensors, const double *const *x, const size_t *numel,
        double norm_type, double *partial, int nthreads) noexcept nogil:
    return fgd_norm_f64(ntensors, x, numel, norm_type, partial, nthreads)

cdef void scale_f32(size_t ntensors, float *const *x, const size_t *numel, double factor,
        int nthreads) noexcept nogil:
    fgd_scale_f32(ntensors, x, numel, factor, nthreads)

cdef void scale_f64(size_t ntensors, double *const *x, const size_t *numel, double factor,
        int nthreads) noexcept nogil:
    fgd_scale_f64(ntensors, x, numel, factor, nthreads)

cdef void average_f32(size_t ntensors, float *const *avg, const float *const *cur,
        const size_t *numel, const fgd_average_hparams *hp, int nthreads) noexcept nogil:
    fgd_average_f32(ntensors, avg, cur, numel, hp, nthreads)

cdef void average_f64(size_t ntensors, double *const *avg, const double *const *cur,
        const size_t *numel, const fgd_average_hparams *hp, int nthreads) noexcept nogil:
    fgd_average_f64(ntensors, avg, cur, numel, hp, nthreads)
