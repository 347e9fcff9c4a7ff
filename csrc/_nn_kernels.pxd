"""BLAS and the layer kernels of csrc/kernels/fastgd_nn.h over Cython's ``floating`` type.

Shared by ``_nn_ops.pyx`` (the checked single operations) and ``_nn.pyx`` (``Program``).
One inline routine per operation, as scikit-learn's ``sklearn/utils/_cython_blas.pyx``:
``floating`` is float or double, and each routine picks the float32 or float64 kernel at
compile time. A caller chooses the dtype once per call, calls a ``floating`` function with
pointers of that type, and every routine below it is that dtype's without a further branch.

Matrix products go through ``csrc/kernels/fastgd_blas.h`` (row-major, over the OpenBLAS of
the ``scipy-openblas32`` wheel that the modules link, large ones cut into pieces over
fastgd's threads).
"""
from cpython.pycapsule cimport PyCapsule_GetPointer
from cython cimport floating
from libc.stdint cimport int64_t


cdef extern from "fastgd_blas.h" nogil:
    ctypedef struct fgd_blas_shared:
        pass
    void fgd_blas_use_shared(const fgd_blas_shared *s)
    void fgd_gemm_f32(int, int, int, int, int, float, const float *, int, const float *, int,
                      float, float *, int)
    void fgd_gemm_f64(int, int, int, int, int, double, const double *, int, const double *, int,
                      double, double *, int)


cdef extern from "fastgd_nn.h" nogil:
    enum:
        FGD_ACT_IDENTITY
        FGD_ACT_RELU
        FGD_ACT_LEAKY_RELU
        FGD_ACT_SIGMOID
        FGD_ACT_TANH
    void fgd_bias_act_f32(float *, const float *, float *, size_t, size_t, int, double)
    void fgd_bias_act_f64(double *, const double *, double *, size_t, size_t, int, double)
    void fgd_act_backward_f32(float *, const float *, const float *, const float *, size_t, int, double)
    void fgd_act_backward_f64(double *, const double *, const double *, const double *, size_t, int, double)
    void fgd_colsum_f32(const float *, size_t, size_t, float *)
    void fgd_colsum_f64(const double *, size_t, size_t, double *)
    void fgd_softmax_f32(const float *, float *, size_t, size_t)
    void fgd_softmax_f64(const double *, double *, size_t, size_t)
    void fgd_softmax_backward_f32(const float *, const float *, float *, size_t, size_t)
    void fgd_softmax_backward_f64(const double *, const double *, double *, size_t, size_t)
    double fgd_cross_entropy_f32(const float *, const int64_t *, size_t, size_t, float *, double)
    double fgd_cross_entropy_f64(const double *, const int64_t *, size_t, size_t, double *, double)
    double fgd_mse_f32(const float *, const float *, size_t, float *, double)
    double fgd_mse_f64(const double *, const double *, size_t, double *, double)
    double fgd_bce_logits_f32(const float *, const float *, size_t, float *, double)
    double fgd_bce_logits_f64(const double *, const double *, size_t, double *, double)
    void fgd_gather_rows_f32(const float *, const int64_t *, size_t, size_t, float *)
    void fgd_gather_rows_f64(const double *, const int64_t *, size_t, size_t, double *)
    void fgd_gather_i64(const int64_t *, const int64_t *, size_t, int64_t *)


cdef enum:
    # the loss kinds (the values of fastgd._nn.LOSSES)
    LOSS_MSE = 0
    LOSS_CE = 1
    LOSS_BCE = 2


# ----------------------------------------------------------------------------- BLAS

cdef inline int share_blas_settings(object capsule) except -1:
    """Point this module's products at the settings of ``fastgd._optim`` (the thread count
    ``fastgd.set_num_threads`` writes, the pool of large products); ``capsule``:
    ``fastgd._optim.shared_capsule()``."""
    fgd_blas_use_shared(<const fgd_blas_shared *>PyCapsule_GetPointer(capsule,
                                                                     "fastgd.blas_shared"))
    return 0


cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                      const floating *a, int lda, const floating *b, int ldb, floating beta,
                      floating *c, int ldc) noexcept nogil:
    """Row-major C (m x n) = alpha op(A) op(B) + beta C."""
    if floating is float:
        fgd_gemm_f32(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    else:
        fgd_gemm_f64(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)


# ----------------------------------------------------------------------------- kernels by dtype

cdef inline void bias_act(floating *z, const floating *b, floating *a, size_t rows, size_t cols,
                          int act, double slope) noexcept nogil:
    if floating is float:
        fgd_bias_act_f32(z, b, a, rows, cols, act, slope)
    else:
        fgd_bias_act_f64(z, b, a, rows, cols, act, slope)


cdef inline void act_backward(floating *dz, const floating *da, const floating *z,
                              const floating *a, size_t n, int act, double slope) noexcept nogil:
    if floating is float:
        fgd_act_backward_f32(dz, da, z, a, n, act, slope)
    else:
        fgd_act_backward_f64(dz, da, z, a, n, act, slope)


cdef inline void colsum(const floating *x, size_t rows, size_t cols, floating *out) noexcept nogil:
    if floating is float:
        fgd_colsum_f32(x, rows, cols, out)
    else:
        fgd_colsum_f64(x, rows, cols, out)


cdef inline void softmax_fwd(const floating *x, floating *y, size_t rows, size_t cols) noexcept nogil:
    if floating is float:
        fgd_softmax_f32(x, y, rows, cols)
    else:
        fgd_softmax_f64(x, y, rows, cols)


cdef inline void softmax_bwd(const floating *y, const floating *dy, floating *dx,
                             size_t rows, size_t cols) noexcept nogil:
    if floating is float:
        fgd_softmax_backward_f32(y, dy, dx, rows, cols)
    else:
        fgd_softmax_backward_f64(y, dy, dx, rows, cols)


cdef inline double loss_kernel(int kind, const floating *pred, const void *target, size_t rows,
                               size_t cols, floating *grad, double scale) noexcept nogil:
    """The summed loss (``kind`` a LOSS_*); ``grad`` (may be NULL) gets scale * d(sum)/d(pred).
    ``target``: int64 labels (rows,) for LOSS_CE, else ``rows * cols`` values like pred."""
    if kind == LOSS_CE:
        if floating is float:
            return fgd_cross_entropy_f32(pred, <const int64_t *>target, rows, cols, grad, scale)
        else:
            return fgd_cross_entropy_f64(pred, <const int64_t *>target, rows, cols, grad, scale)
    elif kind == LOSS_MSE:
        if floating is float:
            return fgd_mse_f32(pred, <const float *>target, rows * cols, grad, scale)
        else:
            return fgd_mse_f64(pred, <const double *>target, rows * cols, grad, scale)
    else:
        if floating is float:
            return fgd_bce_logits_f32(pred, <const float *>target, rows * cols, grad, scale)
        else:
            return fgd_bce_logits_f64(pred, <const double *>target, rows * cols, grad, scale)


cdef inline void gather_rows(const floating *x, const int64_t *idx, size_t rows, size_t cols,
                             floating *out) noexcept nogil:
    if floating is float:
        fgd_gather_rows_f32(x, idx, rows, cols, out)
    else:
        fgd_gather_rows_f64(x, idx, rows, cols, out)


# ----------------------------------------------------------------------------- the linear layer

cdef inline void linear_fwd(const floating *x, const floating *w, const floating *b, floating *z,
                            floating *a, Py_ssize_t rows, int fin, int fout, int act,
                            double slope) noexcept nogil:
    """Z = X W (rows x fout), then A = act(Z + b) (b may be NULL; A may be Z)."""
    gemm[floating](False, False, <int>rows, fout, fin, 1, x, fin, w, fout, 0, z, fout)
    bias_act[floating](z, b, a, rows, fout, act, slope)


cdef inline void linear_bwd(const floating *x, const floating *w, const floating *dz,
                            floating *dw, floating *db, floating *dx, int n, int fin,
                            int fout) noexcept nogil:
    """dW = X^T dZ, db = sum_rows dZ (db may be NULL), dX = dZ W^T (dx may be NULL)."""
    cdef Py_ssize_t i
    if n == 0:
        # an empty batch contributes nothing
        for i in range(<Py_ssize_t>fin * fout):
            dw[i] = 0
        if db != NULL:
            for i in range(fout):
                db[i] = 0
        return
    gemm[floating](True, False, fin, fout, n, 1, x, fin, dz, fout, 0, dw, fout)
    if db != NULL:
        colsum[floating](dz, n, fout, db)
    if dx != NULL:
        gemm[floating](False, True, n, fin, fout, 1, dz, fout, w, fout, 0, dx, fin)
