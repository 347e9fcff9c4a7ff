# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The checked single operations of the neural-network kernels (``fastgd._nn`` re-exports them).

``linear_forward``, ``linear_backward``, ``activation_forward``, ... validate their arrays
(``_nn_checks.pxd``), choose the dtype once and run one ``floating`` routine of
``_nn_kernels.pxd`` without the GIL; the layer objects of ``fastgd.nn`` use them. The kernels
never upcast.
"""
cimport numpy as cnp
from libc.stdint cimport int64_t

from _nn_checks cimport _arr, _blas_int, _check_labels, _dim, _dtype_of
from libc.stdint cimport intptr_t
from libc.stdlib cimport free, malloc

from _nn_kernels cimport (share_blas_settings, gemm, FGD_ACT_IDENTITY, FGD_ACT_LEAKY_RELU, FGD_ACT_RELU, FGD_ACT_SIGMOID,
                          FGD_ACT_TANH, LOSS_BCE, LOSS_CE, LOSS_MSE, act_backward, bias_act,
                          linear_bwd, linear_fwd, loss_kernel, softmax_bwd, softmax_fwd)

cnp.import_array()

# products follow the settings of fastgd._optim (thread count, pool of the large ones)
from . import _optim as _optim_module
share_blas_settings(_optim_module.shared_capsule())

ACTIVATIONS = {"identity": FGD_ACT_IDENTITY, "relu": FGD_ACT_RELU,
               "leaky_relu": FGD_ACT_LEAKY_RELU, "sigmoid": FGD_ACT_SIGMOID, "tanh": FGD_ACT_TANH}
LOSSES = {"mse": LOSS_MSE, "cross_entropy": LOSS_CE, "bce_with_logits": LOSS_BCE}


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
    _blas_int(n, "rows")
    cdef int k_ = _blas_int(fin, "in_features"), n_ = _blas_int(fout, "out_features")
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *wp = cnp.PyArray_DATA(w)
    cdef void *bp = NULL if bb is None else cnp.PyArray_DATA(bb)
    cdef void *zp = cnp.PyArray_DATA(z)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            linear_fwd(<float *>xp, <float *>wp, <float *>bp, <float *>zp, <float *>zp, n, k_,
                       n_, FGD_ACT_IDENTITY, 0)
        else:
            linear_fwd(<double *>xp, <double *>wp, <double *>bp, <double *>zp, <double *>zp, n,
                       k_, n_, FGD_ACT_IDENTITY, 0)


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
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *wp = cnp.PyArray_DATA(w)
    cdef void *dzp = cnp.PyArray_DATA(dz)
    cdef void *dwp = cnp.PyArray_DATA(dw)
    cdef void *dbp = NULL if dbb is None else cnp.PyArray_DATA(dbb)
    cdef void *dxp = NULL if dx is None else cnp.PyArray_DATA(dx)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            linear_bwd(<float *>xp, <float *>wp, <float *>dzp, <float *>dwp, <float *>dbp,
                       <float *>dxp, m_, k_, n_)
        else:
            linear_bwd(<double *>xp, <double *>wp, <double *>dzp, <double *>dwp, <double *>dbp,
                       <double *>dxp, m_, k_, n_)


def activation_forward(str kind, double slope, Z, A):
    """A = act(Z) element-wise (A may be Z)."""
    cdef int act = ACTIVATIONS[kind]
    cdef int tn = _dtype_of("input", Z)
    cdef cnp.ndarray z = _arr("input", Z, tn, cnp.PyArray_NDIM(<cnp.ndarray>Z), False)
    cdef cnp.ndarray a = _arr("output", A, tn, cnp.PyArray_NDIM(z), True)
    if (<object>a).shape != (<object>z).shape:
        raise ValueError(f"output must have shape {Z.shape}, got {A.shape}")
    cdef size_t n = <size_t>cnp.PyArray_SIZE(z)
    cdef void *zp = cnp.PyArray_DATA(z)
    cdef void *ap = cnp.PyArray_DATA(a)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            bias_act(<float *>zp, <float *>NULL, <float *>ap, 1, n, act, slope)
        else:
            bias_act(<double *>zp, <double *>NULL, <double *>ap, 1, n, act, slope)


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
    cdef void *dzp = cnp.PyArray_DATA(dz)
    cdef void *dap = cnp.PyArray_DATA(da)
    cdef void *zp = cnp.PyArray_DATA(z)
    cdef void *ap = cnp.PyArray_DATA(a)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            act_backward(<float *>dzp, <float *>dap, <float *>zp, <float *>ap, n, act, slope)
        else:
            act_backward(<double *>dzp, <double *>dap, <double *>zp, <double *>ap, n, act, slope)


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
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *yp = cnp.PyArray_DATA(y)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            softmax_fwd(<float *>xp, <float *>yp, r, c)
        else:
            softmax_fwd(<double *>xp, <double *>yp, r, c)


def softmax_backward(Y, dY, dX):
    """dX = Y * (dY - sum(dY * Y, axis=-1))."""
    cdef int tn = _dtype_of("output", Y)
    cdef cnp.ndarray y = _arr("output", Y, tn, 2, False)
    cdef cnp.ndarray dy = _arr("grad_output", dY, tn, 2, False)
    cdef cnp.ndarray dx = _arr("grad_input", dX, tn, 2, True)
    if (<object>dy).shape != (<object>y).shape or (<object>dx).shape != (<object>y).shape:
        raise ValueError(f"grad_output must have shape {Y.shape}, got {dY.shape}")
    cdef size_t r = _dim(y, 0), c = _dim(y, 1)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *dyp = cnp.PyArray_DATA(dy)
    cdef void *dxp = cnp.PyArray_DATA(dx)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            softmax_bwd(<float *>yp, <float *>dyp, <float *>dxp, r, c)
        else:
            softmax_bwd(<double *>yp, <double *>dyp, <double *>dxp, r, c)


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
    cdef void *pp = cnp.PyArray_DATA(p)
    cdef void *tp = cnp.PyArray_DATA(t)
    cdef void *gp = NULL if g is None else cnp.PyArray_DATA(g)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            total = loss_kernel(k, <float *>pp, tp, rows, cols, <float *>gp, scale)
        else:
            total = loss_kernel(k, <double *>pp, tp, rows, cols, <double *>gp, scale)
    return total * scale


ctypedef void (*sgemm32_fn)(int, int, int, int, int, int, float, const float *, int,
                            const float *, int, float, float *, int) noexcept nogil
ctypedef void (*sgemm64_fn)(int, int, int, int64_t, int64_t, int64_t, float, const float *,
                            int64_t, const float *, int64_t, float, float *, int64_t) noexcept nogil

cdef struct Product:
    int ta, tb, m, n, k
    const float *a
    const float *b
    float *c


def products(list specs, Py_ssize_t repeats, intptr_t cblas_sgemm=0, bint ilp64=False):
    """Run float32 products ``repeats`` times in C, for timing a BLAS alone.

    ``specs``: ``(trans_a, trans_b, A, B, C)`` tuples, C (m, n) = op(A) op(B) row-major
    (A, B, C C-contiguous float32; C written). With ``cblas_sgemm`` 0 they go through
    fastgd's own BLAS layer (as the layers call it); otherwise ``cblas_sgemm`` is the
    address of another library's CBLAS ``cblas_sgemm`` (64-bit integers when ``ilp64``),
    called row-major with that library's own thread setting. Everything is checked before
    the first product."""
    cdef Py_ssize_t n = len(specs), i, r
    cdef list keep = []
    cdef cnp.ndarray A, B, C
    cdef int m_, n_, k_, ka, kb
    if repeats < 0:
        raise ValueError(f"repeats must be >= 0, got {repeats}")
    cdef Product *p = <Product *>malloc((n if n else 1) * sizeof(Product))
    if p == NULL:
        raise MemoryError()
    try:
        for i in range(n):
            ta, tb, a, b, c = specs[i]
            A = _arr(f"specs[{i}] A", a, cnp.NPY_FLOAT32, 2, False)
            B = _arr(f"specs[{i}] B", b, cnp.NPY_FLOAT32, 2, False)
            C = _arr(f"specs[{i}] C", c, cnp.NPY_FLOAT32, 2, True)
            keep += [A, B, C]
            m_ = _blas_int(_dim(A, 1) if ta else _dim(A, 0), "m")
            ka = _blas_int(_dim(A, 0) if ta else _dim(A, 1), "k")
            kb = _blas_int(_dim(B, 1) if tb else _dim(B, 0), "k")
            n_ = _blas_int(_dim(B, 0) if tb else _dim(B, 1), "n")
            if ka != kb or _dim(C, 0) != m_ or _dim(C, 1) != n_:
                raise ValueError(f"specs[{i}]: shapes {a.shape}, {b.shape}, {c.shape} do not "
                                 "make a product")
            p[i].ta, p[i].tb, p[i].m, p[i].n, p[i].k = bool(ta), bool(tb), m_, n_, ka
            p[i].a = <const float *>cnp.PyArray_DATA(A)
            p[i].b = <const float *>cnp.PyArray_DATA(B)
            p[i].c = <float *>cnp.PyArray_DATA(C)
        with nogil:
            for r in range(repeats):
                for i in range(n):
                    _one_product(&p[i], cblas_sgemm, ilp64)
    finally:
        free(p)


cdef void _one_product(Product *q, intptr_t fn, bint ilp64) noexcept nogil:
    cdef int lda = q.m if q.ta else q.k
    cdef int ldb = q.k if q.tb else q.n
    if fn == 0:
        gemm[float](q.ta, q.tb, q.m, q.n, q.k, 1, q.a, lda, q.b, ldb, 0, q.c, q.n)
    elif ilp64:
        (<sgemm64_fn>fn)(101, 112 if q.ta else 111, 112 if q.tb else 111, q.m, q.n, q.k, 1,
                         q.a, lda, q.b, ldb, 0, q.c, q.n)
    else:
        (<sgemm32_fn>fn)(101, 112 if q.ta else 111, 112 if q.tb else 111, q.m, q.n, q.k, 1,
                         q.a, lda, q.b, ldb, 0, q.c, q.n)
