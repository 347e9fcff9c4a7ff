# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython bindings of the neural-network kernels (csrc/kernels/fastgd_nn.h) and BLAS.

Matrix products call scipy's ``cython_blas`` (sgemm/dgemm), the route scikit-learn takes:
no BLAS is linked at build time, the one scipy ships is used at run time. Row-major products
are column-major products with the operands swapped: C = A B  <=>  C^T = B^T A^T.

Two levels:

* single operations (``linear_forward``, ``linear_backward``, ``activation_forward``, ...)
  validate their arrays and run one kernel; the layer objects of ``fastgd.nn`` use them;
* ``Program``: a whole ``Sequential`` model compiled to a list of ops with preallocated
  buffers, whose ``forward``/``backward``/``train_batch`` run every layer without returning
  to Python and allocate nothing once the buffers have grown to the batch size.

The dtype (float32 or float64) is chosen once per call; the kernels never upcast.
"""
cimport numpy as cnp
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_IsValid
from libc.math cimport isfinite
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport dgemm, sgemm

import numpy as np

cnp.import_array()

ctypedef fused floating:
    float
    double


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


cdef extern from "fgd_hook.h" nogil:
    ctypedef struct fgd_hook:
        void (*run)(void *ctx) noexcept nogil
        void *ctx
    const char *FGD_HOOK_NAME


ACTIVATIONS = {"identity": FGD_ACT_IDENTITY, "relu": FGD_ACT_RELU,
               "leaky_relu": FGD_ACT_LEAKY_RELU, "sigmoid": FGD_ACT_SIGMOID, "tanh": FGD_ACT_TANH}
LOSSES = {"mse": 0, "cross_entropy": 1, "bce_with_logits": 2}
DEF LOSS_MSE = 0
DEF LOSS_CE = 1
DEF LOSS_BCE = 2
DEF OP_LINEAR = 0
DEF OP_ACT = 1
DEF OP_SOFTMAX = 2


# ----------------------------------------------------------------------------- BLAS

cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                      const floating *a, int lda, const floating *b, int ldb, floating beta,
                      floating *c, int ldc) noexcept nogil:
    """Row-major C (m x n) = alpha op(A) op(B) + beta C, through column-major BLAS."""
    cdef char ta = b'T' if trans_b else b'N'
    cdef char tb = b'T' if trans_a else b'N'
    if m == 0 or n == 0:
        return
    if floating is float:
        sgemm(&ta, &tb, &n, &m, &k, &alpha, <float *>b, &ldb, <float *>a, &lda, &beta, c, &ldc)
    else:
        dgemm(&ta, &tb, &n, &m, &k, &alpha, <double *>b, &ldb, <double *>a, &lda, &beta, c, &ldc)


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


# ----------------------------------------------------------------------------- checks

cdef inline bint _float_type(int tn):
    return tn == cnp.NPY_FLOAT32 or tn == cnp.NPY_FLOAT64


cdef cnp.ndarray _arr(str name, object obj, int typenum, int ndim, bint writeable):
    """A C-contiguous array of the given dtype and ndim (the caller checks the shape)."""
    if not isinstance(obj, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(obj).__name__}")
    cdef cnp.ndarray a = <cnp.ndarray>obj
    if cnp.PyArray_TYPE(a) != typenum or not cnp.PyArray_ISNOTSWAPPED(a):
        raise TypeError(f"{name} has dtype {a.dtype}, expected "
                        f"{cnp.PyArray_DescrFromType(typenum)}")
    if cnp.PyArray_NDIM(a) != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {(<object>a).shape}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError(f"{name} must be C-contiguous")
    if writeable and not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"{name} is read-only")
    if not cnp.PyArray_ISALIGNED(a):
        if writeable:
            raise ValueError(f"{name} is not aligned to its {a.dtype} elements (flags.aligned "
                             "is False); pass np.require(a, requirements='A')")
        a = np.array(a)    # an input: read from an aligned copy
    return a


cdef inline Py_ssize_t _dim(cnp.ndarray a, int k):
    return cnp.PyArray_DIMS(a)[k]


cdef int _dtype_of(str name, object x) except -1:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    cdef int tn = cnp.PyArray_TYPE(<cnp.ndarray>x)
    if not _float_type(tn) or not cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>x):
        raise TypeError(f"{name} must have dtype float32 or float64, got {x.dtype}")
    return tn


cdef int _blas_int(Py_ssize_t v, str what) except -1:
    if v > 2147483647:
        raise ValueError(f"{what} ({v}) exceeds the BLAS 32-bit index range")
    return <int>v


# ----------------------------------------------------------------------------- single operations

def linear_forward(X, W, b, Z):
    """Z = X @ W (+ b): X (n, in), W (in, out), b (out,) or None, Z (n, out) written."""
    cdef int tn = _dtype_of("X", X)
    cdef cnp.ndarray x = _arr("X", X, tn, 2, False)
    cdef cnp.ndarray w = _arr("W", W, tn, 2, False)
    cdef cnp.ndarray z = _arr("Z", Z, tn, 2, True)
    cdef cnp.ndarray bb = None
    cdef Py_ssize_t n = _dim(x, 0), fin = _dim(x, 1), fout = _dim(w, 1)
    if _dim(w, 0) != fin:
        raise ValueError(f"X has {fin} features but W has shape {W.shape}")
    if _dim(z, 0) != n or _dim(z, 1) != fout:
        raise ValueError(f"Z must have shape {(n, fout)}, got {Z.shape}")
    if b is not None:
        bb = _arr("b", b, tn, 1, False)
        if _dim(bb, 0) != fout:
            raise ValueError(f"b must have shape {(fout,)}, got {b.shape}")
    cdef int m_ = _blas_int(n, "rows"), k_ = _blas_int(fin, "in_features")
    cdef int n_ = _blas_int(fout, "out_features")
    cdef void *bp = NULL if bb is None else cnp.PyArray_DATA(bb)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            gemm[float](False, False, m_, n_, k_, 1, <float *>cnp.PyArray_DATA(x), k_,
                        <float *>cnp.PyArray_DATA(w), n_, 0, <float *>cnp.PyArray_DATA(z), n_)
            bias_act[float](<float *>cnp.PyArray_DATA(z), <float *>bp, <float *>cnp.PyArray_DATA(z),
                            n, fout, FGD_ACT_IDENTITY, 0)
        else:
            gemm[double](False, False, m_, n_, k_, 1, <double *>cnp.PyArray_DATA(x), k_,
                         <double *>cnp.PyArray_DATA(w), n_, 0, <double *>cnp.PyArray_DATA(z), n_)
            bias_act[double](<double *>cnp.PyArray_DATA(z), <double *>bp,
                             <double *>cnp.PyArray_DATA(z), n, fout, FGD_ACT_IDENTITY, 0)


def linear_backward(X, W, dZ, dW, db, dX):
    """dW = X^T dZ, db = sum_rows dZ (if db is not None), dX = dZ W^T (if dX is not None)."""
    cdef int tn = _dtype_of("X", X)
    cdef cnp.ndarray x = _arr("X", X, tn, 2, False)
    cdef cnp.ndarray w = _arr("W", W, tn, 2, False)
    cdef cnp.ndarray dz = _arr("grad_output", dZ, tn, 2, False)
    cdef cnp.ndarray dw = _arr("dW", dW, tn, 2, True)
    cdef cnp.ndarray dbb = None, dx = None
    cdef Py_ssize_t n = _dim(x, 0), fin = _dim(x, 1), fout = _dim(w, 1)
    if _dim(w, 0) != fin:
        raise ValueError(f"X has {fin} features but W has shape {W.shape}")
    if _dim(dz, 0) != n or _dim(dz, 1) != fout:
        raise ValueError(f"grad_output must have shape {(n, fout)}, got {dZ.shape}")
    if _dim(dw, 0) != fin or _dim(dw, 1) != fout:
        raise ValueError(f"dW must have shape {(fin, fout)}, got {dW.shape}")
    if db is not None:
        dbb = _arr("db", db, tn, 1, True)
        if _dim(dbb, 0) != fout:
            raise ValueError(f"db must have shape {(fout,)}, got {db.shape}")
    if dX is not None:
        dx = _arr("dX", dX, tn, 2, True)
        if _dim(dx, 0) != n or _dim(dx, 1) != fin:
            raise ValueError(f"dX must have shape {(n, fin)}, got {dX.shape}")
    cdef int m_ = _blas_int(n, "rows"), k_ = _blas_int(fin, "in_features")
    cdef int n_ = _blas_int(fout, "out_features")
    cdef void *dbp = NULL if dbb is None else cnp.PyArray_DATA(dbb)
    cdef void *dxp = NULL if dx is None else cnp.PyArray_DATA(dx)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            _linear_backward[float](<float *>cnp.PyArray_DATA(x), <float *>cnp.PyArray_DATA(w),
                                    <float *>cnp.PyArray_DATA(dz), <float *>cnp.PyArray_DATA(dw),
                                    <float *>dbp, <float *>dxp, m_, k_, n_)
        else:
            _linear_backward[double](<double *>cnp.PyArray_DATA(x), <double *>cnp.PyArray_DATA(w),
                                     <double *>cnp.PyArray_DATA(dz), <double *>cnp.PyArray_DATA(dw),
                                     <double *>dbp, <double *>dxp, m_, k_, n_)


cdef inline void _linear_backward(const floating *x, const floating *w, const floating *dz,
                                  floating *dw, floating *db, floating *dx, int n, int fin,
                                  int fout) noexcept nogil:
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


def activation_forward(str kind, double slope, Z, A):
    """A = act(Z) element-wise (A may be Z)."""
    cdef int act = ACTIVATIONS[kind]
    cdef int tn = _dtype_of("input", Z)
    cdef cnp.ndarray z = _arr("input", Z, tn, cnp.PyArray_NDIM(<cnp.ndarray>Z), False)
    cdef cnp.ndarray a = _arr("output", A, tn, cnp.PyArray_NDIM(z), True)
    if (<object>a).shape != (<object>z).shape:
        raise ValueError(f"output must have shape {Z.shape}, got {A.shape}")
    cdef size_t n = <size_t>cnp.PyArray_SIZE(z)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            bias_act[float](<float *>cnp.PyArray_DATA(z), NULL, <float *>cnp.PyArray_DATA(a), 1, n, act, slope)
        else:
            bias_act[double](<double *>cnp.PyArray_DATA(z), NULL, <double *>cnp.PyArray_DATA(a), 1, n, act, slope)


def activation_backward(str kind, double slope, Z, A, dA, dZ):
    """dZ = dA * act'(Z) element-wise, from the stored input Z and output A."""
    cdef int act = ACTIVATIONS[kind]
    cdef int tn = _dtype_of("input", Z)
    cdef int nd = cnp.PyArray_NDIM(<cnp.ndarray>Z)
    cdef cnp.ndarray z = _arr("input", Z, tn, nd, False)
    cdef cnp.ndarray a = _arr("output", A, tn, nd, False)
    cdef cnp.ndarray da = _arr("grad_output", dA, tn, nd, False)
    cdef cnp.ndarray dz = _arr("grad_input", dZ, tn, nd, True)
    shape = (<object>z).shape
    if (<object>a).shape != shape or (<object>da).shape != shape or (<object>dz).shape != shape:
        raise ValueError(f"grad_output must have shape {shape}, got {dA.shape}")
    cdef size_t n = <size_t>cnp.PyArray_SIZE(z)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            act_backward[float](<float *>cnp.PyArray_DATA(dz), <float *>cnp.PyArray_DATA(da),
                                <float *>cnp.PyArray_DATA(z), <float *>cnp.PyArray_DATA(a), n, act, slope)
        else:
            act_backward[double](<double *>cnp.PyArray_DATA(dz), <double *>cnp.PyArray_DATA(da),
                                 <double *>cnp.PyArray_DATA(z), <double *>cnp.PyArray_DATA(a), n, act, slope)


def softmax_forward(X, Y):
    """Y = softmax(X) over the last axis (2-D, C-contiguous)."""
    cdef int tn = _dtype_of("input", X)
    cdef cnp.ndarray x = _arr("input", X, tn, 2, False)
    cdef cnp.ndarray y = _arr("output", Y, tn, 2, True)
    if (<object>x).shape != (<object>y).shape:
        raise ValueError(f"output must have shape {X.shape}, got {Y.shape}")
    cdef size_t r = _dim(x, 0), c = _dim(x, 1)
    if c == 0:
        return
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            softmax_fwd[float](<float *>cnp.PyArray_DATA(x), <float *>cnp.PyArray_DATA(y), r, c)
        else:
            softmax_fwd[double](<double *>cnp.PyArray_DATA(x), <double *>cnp.PyArray_DATA(y), r, c)


def softmax_backward(Y, dY, dX):
    """dX = Y * (dY - sum(dY * Y, axis=-1))."""
    cdef int tn = _dtype_of("output", Y)
    cdef cnp.ndarray y = _arr("output", Y, tn, 2, False)
    cdef cnp.ndarray dy = _arr("grad_output", dY, tn, 2, False)
    cdef cnp.ndarray dx = _arr("grad_input", dX, tn, 2, True)
    if (<object>dy).shape != (<object>y).shape or (<object>dx).shape != (<object>y).shape:
        raise ValueError(f"grad_output must have shape {Y.shape}, got {dY.shape}")
    cdef size_t r = _dim(y, 0), c = _dim(y, 1)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            softmax_bwd[float](<float *>cnp.PyArray_DATA(y), <float *>cnp.PyArray_DATA(dy),
                                    <float *>cnp.PyArray_DATA(dx), r, c)
        else:
            softmax_bwd[double](<double *>cnp.PyArray_DATA(y), <double *>cnp.PyArray_DATA(dy),
                                     <double *>cnp.PyArray_DATA(dx), r, c)


cdef int _check_labels(str name, const int64_t *lab, const int64_t *idx, Py_ssize_t n,
                       Py_ssize_t classes) except -1:
    """Labels ``lab[idx[i]]`` (``lab[i]`` when idx is NULL), i < n, must be in 0..classes-1."""
    cdef Py_ssize_t i
    cdef int64_t v
    for i in range(n):
        v = lab[idx[i] if idx != NULL else i]
        if v < 0 or v >= classes:
            raise ValueError(f"{name} holds the label {v}, outside 0..{classes - 1} "
                             f"for {classes} classes")
    return 0


def loss(str kind, pred, target, grad):
    """Mean loss of ``pred`` against ``target``; writes d(loss)/d(pred) into ``grad`` if given.

    kind: "mse" (target like pred), "cross_entropy" (pred (n, C) logits, target int64 (n,)
    labels), "bce_with_logits" (target like pred, in [0, 1]).
    """
    cdef int k = LOSSES[kind]
    cdef int tn = _dtype_of("input", pred)
    cdef int nd = cnp.PyArray_NDIM(<cnp.ndarray>pred)
    cdef cnp.ndarray p = _arr("input", pred, tn, nd, False)
    cdef cnp.ndarray t, g = None
    cdef Py_ssize_t rows, cols, count
    if k == LOSS_CE:
        if nd != 2:
            raise ValueError(f"input must be 2-D logits (batch, classes), got shape {pred.shape}")
        t = _arr("target", target, cnp.NPY_INT64, 1, False)
        rows, cols = _dim(p, 0), _dim(p, 1)
        if _dim(t, 0) != rows:
            raise ValueError(f"target has {_dim(t, 0)} labels for {rows} rows of input")
        _check_labels("target", <int64_t *>cnp.PyArray_DATA(t), NULL, rows, cols)
        count = rows
    else:
        t = _arr("target", target, tn, nd, False)
        if (<object>t).shape != (<object>p).shape:
            raise ValueError(f"target has shape {target.shape} but input has {pred.shape}")
        rows, cols = 1, cnp.PyArray_SIZE(p)
        count = cols
    if grad is not None:
        g = _arr("grad", grad, tn, nd, True)
        if (<object>g).shape != (<object>p).shape:
            raise ValueError(f"grad must have shape {pred.shape}")
    if count == 0:
        raise ValueError("input is empty: the mean loss is undefined")
    cdef double scale = 1.0 / count, total
    cdef void *gp = NULL if g is None else cnp.PyArray_DATA(g)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            total = loss_kernel[float](k, <float *>cnp.PyArray_DATA(p), cnp.PyArray_DATA(t),
                                       rows, cols, <float *>gp, scale)
        else:
            total = loss_kernel[double](k, <double *>cnp.PyArray_DATA(p), cnp.PyArray_DATA(t),
                                        rows, cols, <double *>gp, scale)
    return total * scale


# ----------------------------------------------------------------------------- Program

cdef struct Op:
    int kind            # OP_LINEAR, OP_ACT, OP_SOFTMAX
    int act             # activation (fused into LINEAR's epilogue, or the ACT op itself)
    double slope
    int fin, fout       # features in and out
    void *W
    void *b             # NULL: no bias
    void *dW
    void *db
    void *pre           # LINEAR with an activation: pre-activation Z (capacity, fout)
    void *out           # output (capacity, fout)
    void *gin           # gradient with respect to the input (capacity, fin)


cdef void run_forward(Op *ops, int nops, const floating *x, Py_ssize_t rows) noexcept nogil:
    """Every op in order: the input of op i is the output of op i - 1."""
    cdef int i
    cdef Op *o
    cdef const floating *inp = x
    cdef floating *a
    cdef floating *z
    for i in range(nops):
        o = &ops[i]
        a = <floating *>o.out
        if o.kind == OP_LINEAR:
            z = <floating *>o.pre if o.pre != NULL else a
            gemm[floating](False, False, <int>rows, o.fout, o.fin, 1, inp, o.fin,
                           <floating *>o.W, o.fout, 0, z, o.fout)
            bias_act[floating](z, <floating *>o.b, a, rows, o.fout, o.act, o.slope)
        elif o.kind == OP_ACT:
            bias_act[floating](<floating *>inp, NULL, a, 1, rows * o.fout, o.act, o.slope)
        elif o.fout > 0:
            softmax_fwd[floating](inp, a, rows, o.fout)
        inp = a


cdef void run_backward(Op *ops, int nops, const floating *x, floating *g, Py_ssize_t rows,
                       bint input_grad) noexcept nogil:
    """Backpropagate ``g`` (d loss / d output, overwritten) through every op, last to first.

    Parameter gradients are overwritten, not accumulated. The gradient with respect to the
    model's input is computed only when ``input_grad``.
    """
    cdef int i
    cdef Op *o
    cdef const floating *inp
    cdef floating *gin
    for i in range(nops - 1, -1, -1):
        o = &ops[i]
        inp = x if i == 0 else <floating *>ops[i - 1].out
        gin = <floating *>o.gin if (i > 0 or input_grad) else NULL
        if o.kind == OP_LINEAR:
            if o.act != FGD_ACT_IDENTITY:   # dZ = dA * act'(Z), in place
                act_backward[floating](g, g, <floating *>o.pre, <floating *>o.out,
                                       rows * o.fout, o.act, o.slope)
            _linear_backward[floating](inp, <floating *>o.W, g, <floating *>o.dW,
                                       <floating *>o.db, gin, <int>rows, o.fin, o.fout)
        elif gin == NULL:
            return
        elif o.kind == OP_ACT:
            act_backward[floating](gin, g, inp, <floating *>o.out, rows * o.fout, o.act, o.slope)
        else:
            softmax_bwd[floating](<floating *>o.out, g, gin, rows, o.fout)
        g = gin


cdef class Program:
    """A Sequential model compiled to ops over preallocated buffers (not thread-safe).

    Parameters
    ----------
    ops : list of tuples
        ``("linear", W, b, dW, db, act, slope)`` (b and db may be None; ``act`` is fused into
        the epilogue), ``("act", act, slope, features)`` or ``("softmax", features)``.
    dtype : numpy dtype (float32 or float64)
    """
    cdef Op *ops
    cdef readonly int nops
    cdef readonly int typenum
    cdef readonly int in_features, out_features
    cdef readonly Py_ssize_t capacity
    cdef readonly Py_ssize_t rows          # rows of the last forward
    cdef list keep                         # parameter arrays (kept alive)
    cdef list bufs                         # the buffers behind ops[i].pre/out/gin
    cdef cnp.ndarray xbuf, lossgrad, ibuf, tbuf
    cdef void *lossgrad_ptr
    cdef void *ibuf_ptr
    cdef void *tbuf_ptr
    cdef object dt
    cdef object last_input                 # the array the last forward read (kept alive)
    cdef const void *x_ptr

    def __cinit__(self):
        self.ops = NULL

    def __dealloc__(self):
        PyMem_Free(self.ops)

    def __init__(self, list ops, dtype):
        dt = np.dtype(dtype)
        if dt != np.float32 and dt != np.float64:
            raise TypeError(f"dtype must be float32 or float64, got {dt}")
        self.dt = dt
        self.typenum = dt.num
        if len(ops) == 0:
            raise ValueError("a Program needs at least one op")
        self.ops = <Op *>PyMem_Malloc(len(ops) * sizeof(Op))
        if self.ops == NULL:
            raise MemoryError()
        memset(self.ops, 0, len(ops) * sizeof(Op))
        self.nops = len(ops)
        self.keep = []
        cdef int i, width = -1
        cdef Op *o
        cdef cnp.ndarray w, dw, bb, dbb
        for i, spec in enumerate(ops):
            o = &self.ops[i]
            o.act = FGD_ACT_IDENTITY
            if spec[0] == "linear":
                _, W, b, dW, db, act, slope = spec
                w = _arr("W", W, self.typenum, 2, True)
                dw = _arr("dW", dW, self.typenum, 2, True)
                if (<object>dw).shape != (<object>w).shape:
                    raise ValueError("dW must have W's shape")
                o.kind = OP_LINEAR
                o.fin = _blas_int(_dim(w, 0), "in_features")
                o.fout = _blas_int(_dim(w, 1), "out_features")
                o.W = cnp.PyArray_DATA(w)
                o.dW = cnp.PyArray_DATA(dw)
                self.keep += [w, dw]
                if b is not None:
                    bb = _arr("b", b, self.typenum, 1, True)
                    dbb = _arr("db", db, self.typenum, 1, True)
                    if _dim(bb, 0) != o.fout or _dim(dbb, 0) != o.fout:
                        raise ValueError("b and db must have shape (out_features,)")
                    o.b = cnp.PyArray_DATA(bb)
                    o.db = cnp.PyArray_DATA(dbb)
                    self.keep += [bb, dbb]
                o.act = ACTIVATIONS[act]
                o.slope = slope
            elif spec[0] == "act":
                o.kind = OP_ACT
                o.act = ACTIVATIONS[spec[1]]
                o.slope = spec[2]
                o.fin = o.fout = spec[3]
            elif spec[0] == "softmax":
                o.kind = OP_SOFTMAX
                o.fin = o.fout = spec[1]
            else:
                raise ValueError(f"unknown op {spec[0]!r}")
            if width >= 0 and o.fin != width:
                raise ValueError(f"op {i} takes {o.fin} features but op {i - 1} gives {width}")
            width = o.fout
        self.in_features = self.ops[0].fin
        self.out_features = self.ops[self.nops - 1].fout
        self.capacity = 0
        self.rows = 0
        self.last_input = None

    def parameters(self):
        """The parameter and gradient arrays the program reads and writes."""
        return list(self.keep)

    cdef int reserve(self, Py_ssize_t rows) except -1:
        """Grow the buffers to hold ``rows`` rows; they never shrink, so a training loop
        allocates only in its first steps. Allocated even for 0 rows, so that no buffer
        pointer is ever NULL."""
        if rows <= self.capacity and self.capacity > 0:
            return 0
        cdef Py_ssize_t cap = max(rows, self.capacity + self.capacity // 2, 16)
        cdef int i
        cdef Op *o
        self.bufs = []
        for i in range(self.nops):
            o = &self.ops[i]
            out = np.empty((cap, o.fout), self.dt)
            gin = np.empty((cap, o.fin), self.dt)
            o.out = cnp.PyArray_DATA(out)
            o.gin = cnp.PyArray_DATA(gin)
            self.bufs += [out, gin]
            if o.kind == OP_LINEAR and o.act != FGD_ACT_IDENTITY:
                pre = np.empty((cap, o.fout), self.dt)
                o.pre = cnp.PyArray_DATA(pre)
                self.bufs.append(pre)
            else:
                o.pre = NULL
        self.xbuf = np.empty((cap, self.in_features), self.dt)
        self.lossgrad = np.empty((cap, self.out_features), self.dt)
        self.ibuf = np.empty(cap, np.int64)
        self.tbuf = np.empty((cap, self.out_features), self.dt)
        self.lossgrad_ptr = cnp.PyArray_DATA(self.lossgrad)
        self.ibuf_ptr = cnp.PyArray_DATA(self.ibuf)
        self.tbuf_ptr = cnp.PyArray_DATA(self.tbuf)
        self.capacity = cap
        return 0

    cdef cnp.ndarray _input(self, X):
        if not isinstance(X, np.ndarray):
            raise TypeError(f"X must be a numpy.ndarray, got {type(X).__name__}")
        cdef cnp.ndarray x = <cnp.ndarray>X
        if cnp.PyArray_TYPE(x) != self.typenum:
            raise TypeError(f"X has dtype {X.dtype} but the model is {self.dt}")
        if cnp.PyArray_NDIM(x) != 2 or _dim(x, 1) != self.in_features:
            raise ValueError(f"X must have shape (n, {self.in_features}), got {X.shape}")
        if not (cnp.PyArray_IS_C_CONTIGUOUS(x) and cnp.PyArray_ISALIGNED(x)
                and cnp.PyArray_ISNOTSWAPPED(x)):
            x = np.array(x, dtype=self.dt, order="C")   # a C-contiguous, aligned copy
        return x

    cdef void _fwd(self, const void *x, Py_ssize_t rows) noexcept nogil:
        if self.typenum == cnp.NPY_FLOAT32:
            run_forward[float](self.ops, self.nops, <const float *>x, rows)
        else:
            run_forward[double](self.ops, self.nops, <const double *>x, rows)

    cdef void _bwd(self, void *g, Py_ssize_t rows, bint input_grad) noexcept nogil:
        if self.typenum == cnp.NPY_FLOAT32:
            run_backward[float](self.ops, self.nops, <const float *>self.x_ptr, <float *>g,
                                rows, input_grad)
        else:
            run_backward[double](self.ops, self.nops, <const double *>self.x_ptr, <double *>g,
                                 rows, input_grad)

    cdef object _out_view(self):
        """A copy of the last forward's output."""
        cdef Op *o = &self.ops[self.nops - 1]
        cdef cnp.ndarray res = np.empty((self.rows, o.fout), self.dt)
        memcpy(cnp.PyArray_DATA(res), o.out, cnp.PyArray_NBYTES(res))
        return res

    def forward(self, X):
        """Run every op on ``X`` (n, in_features); returns a copy of the output."""
        cdef cnp.ndarray x = self._input(X)
        cdef Py_ssize_t rows = _dim(x, 0)
        _blas_int(rows, "rows")
        self.reserve(rows)
        self.last_input = x
        self.x_ptr = cnp.PyArray_DATA(x)
        self.rows = rows
        with nogil:
            self._fwd(self.x_ptr, rows)
        return self._out_view()

    def backward(self, grad_output, bint input_grad=True):
        """Backpropagate ``grad_output`` (rows, out_features) from the last forward.

        Overwrites the parameter gradients; returns d loss / d input (a new array) when
        ``input_grad``, else None.
        """
        if self.last_input is None:
            raise RuntimeError("backward() needs a forward() first")
        if not isinstance(grad_output, np.ndarray):
            raise TypeError(f"grad_output must be a numpy.ndarray, got {type(grad_output).__name__}")
        if grad_output.dtype != self.dt:
            raise TypeError(f"grad_output has dtype {grad_output.dtype} but the model is {self.dt}")
        cdef cnp.ndarray g = np.ascontiguousarray(grad_output, dtype=self.dt)
        if cnp.PyArray_NDIM(g) != 2 or _dim(g, 0) != self.rows or _dim(g, 1) != self.out_features:
            raise ValueError(f"grad_output must have shape {(self.rows, self.out_features)}, "
                             f"got {grad_output.shape}")
        cdef Py_ssize_t rows = self.rows
        memcpy(cnp.PyArray_DATA(self.lossgrad), cnp.PyArray_DATA(g), cnp.PyArray_NBYTES(g))
        with nogil:
            self._bwd(cnp.PyArray_DATA(self.lossgrad), rows, input_grad)
        if not input_grad:
            return None
        cdef cnp.ndarray res = np.empty((rows, self.in_features), self.dt)
        memcpy(cnp.PyArray_DATA(res), self.ops[0].gin, cnp.PyArray_NBYTES(res))
        return res

    def train_batch(self, X, y, idx, Py_ssize_t start, Py_ssize_t stop, str loss_kind):
        """Gather rows ``idx[start:stop]`` of X and y, run forward, the fused loss and
        backward (parameter gradients only). Returns the mean batch loss.

        X (n, in_features) C-contiguous in the model dtype; y int64 labels (n,) for
        "cross_entropy", else (n, out_features) in the model dtype; idx int64 (m,).
        """
        return self._batch(X, y, idx, start, stop, LOSSES[loss_kind], True)

    def loss_batch(self, X, y, idx, Py_ssize_t start, Py_ssize_t stop, str loss_kind):
        """The mean loss of rows ``idx[start:stop]``, forward only."""
        return self._batch(X, y, idx, start, stop, LOSSES[loss_kind], False)

    def train_steps(self, X, y, idx, Py_ssize_t start, Py_ssize_t stop,
                    Py_ssize_t batch_size, str loss_kind, backup, list hooks,
                    double[::1] losses):
        """Training steps over rows ``idx[start:stop]``, ``batch_size`` rows a batch (the
        last may be shorter), all in C without the GIL.

        Each step: gather the batch, forward, fused loss; if the loss is finite, run the
        ``backup`` hook (``fastgd._optim.Backup.hook()``, or None: the optimizer's back-up of
        the parameters and its state, so that a later non-finite loss can undo this step),
        backward (parameter gradients only), then every hook of ``hooks``
        (``fastgd._optim.BoundUpdate.hook()`` capsules: optimizer updates bound to this
        program's gradients), in order. The mean loss of step k goes to ``losses[k]``. Stops
        after the first non-finite loss, which is left in ``losses`` with the parameters of
        that step untouched. Returns the number of steps taken (losses written).
        """
        cdef int kind = LOSSES[loss_kind]
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        cdef Py_ssize_t rows_all = stop - start
        cdef Py_ssize_t nsteps = (rows_all + batch_size - 1) // batch_size if rows_all > 0 else 0
        if losses.shape[0] < nsteps:
            raise ValueError(f"losses has room for {losses.shape[0]} steps, {nsteps} are needed")
        cdef list keep = list(hooks)   # the capsules stay alive during the loop
        cdef Py_ssize_t nh = len(keep), h
        cdef fgd_hook **hk = NULL
        cdef fgd_hook *save = NULL
        for h in range(nh):
            if not PyCapsule_IsValid(keep[h], FGD_HOOK_NAME):
                raise TypeError(f"hooks[{h}] is not an optimizer hook (a capsule from "
                                "fastgd._optim.BoundUpdate.hook())")
        if backup is not None:
            if not PyCapsule_IsValid(backup, FGD_HOOK_NAME):
                raise TypeError("backup is not a back-up hook (a capsule from "
                                "fastgd._optim.Backup.hook()) or None")
            save = <fgd_hook *>PyCapsule_GetPointer(backup, FGD_HOOK_NAME)
        cdef void *xp
        cdef void *tp
        cdef const int64_t *ip = self._check_batch(X, y, idx, start, stop, kind, batch_size,
                                                   &xp, &tp)
        if nh:
            hk = <fgd_hook **>PyMem_Malloc(nh * sizeof(fgd_hook *))
            if hk == NULL:
                raise MemoryError()
        cdef Py_ssize_t k = 0, a, rows
        cdef double value
        try:
            for h in range(nh):
                hk[h] = <fgd_hook *>PyCapsule_GetPointer(keep[h], FGD_HOOK_NAME)
            with nogil:
                while k < nsteps:
                    a = k * batch_size
                    rows = min(batch_size, rows_all - a)
                    value = self._step(kind, xp, tp, ip + a, rows, True, False)
                    losses[k] = value
                    k += 1
                    if not isfinite(value):
                        break
                    if save != NULL:
                        save.run(save.ctx)
                    self._bwd(self.lossgrad_ptr, rows, False)
                    for h in range(nh):
                        hk[h].run(hk[h].ctx)
        finally:
            PyMem_Free(hk)
        return k

    cdef const int64_t *_check_batch(self, X, y, idx, Py_ssize_t start, Py_ssize_t stop,
                                     int kind, Py_ssize_t batch_size, void **xp,
                                     void **tp) except NULL:
        """Check X, y and the indices ``idx[start:stop]`` (and the labels they pick), grow
        the buffers to ``batch_size`` rows; returns the indices, with X's and y's data in
        ``xp`` and ``tp``. Everything is checked before anything is written."""
        cdef cnp.ndarray x = _arr("X", X, self.typenum, 2, False)
        cdef cnp.ndarray ix = _arr("idx", idx, cnp.NPY_INT64, 1, False)
        cdef cnp.ndarray t
        cdef Py_ssize_t n = _dim(x, 0), rows = stop - start, i
        cdef const int64_t *ip
        if _dim(x, 1) != self.in_features:
            raise ValueError(f"X must have {self.in_features} columns, got {X.shape[1]}")
        if start < 0 or stop > _dim(ix, 0) or rows <= 0:
            raise ValueError(f"bad batch range {start}:{stop} for {_dim(ix, 0)} indices")
        if kind == LOSS_CE:
            t = _arr("y", y, cnp.NPY_INT64, 1, False)
        else:
            t = _arr("y", y, self.typenum, 2, False)
            if _dim(t, 1) != self.out_features:
                raise ValueError(f"y must have {self.out_features} columns, got {y.shape[1]}")
        if _dim(t, 0) != n:
            raise ValueError(f"y has {_dim(t, 0)} rows but X has {n}")
        ip = <const int64_t *>cnp.PyArray_DATA(ix) + start
        for i in range(rows):
            if ip[i] < 0 or ip[i] >= n:
                raise ValueError(f"idx holds {ip[i]}, outside 0..{n - 1}")
        if kind == LOSS_CE:
            _check_labels("y", <const int64_t *>cnp.PyArray_DATA(t), ip, rows, self.out_features)
        _blas_int(min(rows, batch_size), "rows")
        self.reserve(min(rows, batch_size))
        self.last_input = self.xbuf
        self.x_ptr = cnp.PyArray_DATA(self.xbuf)
        xp[0] = cnp.PyArray_DATA(x)
        tp[0] = cnp.PyArray_DATA(t)
        return ip

    cdef double _step(self, int kind, const void *x, const void *t, const int64_t *ip,
                      Py_ssize_t rows, bint with_grad, bint backward) noexcept nogil:
        """Gather rows ``ip[:rows]`` of x and t, forward, the loss (its gradient in
        ``lossgrad`` when ``with_grad``), and backward when ``backward``. The mean loss."""
        cdef double total
        cdef double scale = 1.0 / (rows if kind == LOSS_CE else rows * self.out_features)
        cdef void *xb = <void *>self.x_ptr
        cdef void *tb = self.tbuf_ptr if kind != LOSS_CE else self.ibuf_ptr
        cdef void *gb = self.lossgrad_ptr if with_grad else NULL
        cdef Op *last = &self.ops[self.nops - 1]
        self.rows = rows
        if kind == LOSS_CE:
            fgd_gather_i64(<const int64_t *>t, ip, rows, <int64_t *>tb)
        if self.typenum == cnp.NPY_FLOAT32:
            fgd_gather_rows_f32(<const float *>x, ip, rows, self.in_features, <float *>xb)
            if kind != LOSS_CE:
                fgd_gather_rows_f32(<const float *>t, ip, rows, self.out_features, <float *>tb)
            run_forward[float](self.ops, self.nops, <const float *>xb, rows)
            total = loss_kernel[float](kind, <const float *>last.out, tb, rows,
                                       self.out_features, <float *>gb, scale)
        else:
            fgd_gather_rows_f64(<const double *>x, ip, rows, self.in_features, <double *>xb)
            if kind != LOSS_CE:
                fgd_gather_rows_f64(<const double *>t, ip, rows, self.out_features,
                                    <double *>tb)
            run_forward[double](self.ops, self.nops, <const double *>xb, rows)
            total = loss_kernel[double](kind, <const double *>last.out, tb, rows,
                                        self.out_features, <double *>gb, scale)
        if backward:
            self._bwd(gb, rows, False)
        return total * scale

    cdef double _batch(self, X, y, idx, Py_ssize_t start, Py_ssize_t stop, int kind,
                       bint train) except? -1:
        cdef void *xp
        cdef void *tp
        cdef const int64_t *ip = self._check_batch(X, y, idx, start, stop, kind, stop - start,
                                                   &xp, &tp)
        cdef double value
        with nogil:
            value = self._step(kind, xp, tp, ip, stop - start, train, train)
        return value
