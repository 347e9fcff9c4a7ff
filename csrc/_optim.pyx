# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython bindings of the fused optimizer kernels (csrc/kernels/fastgd_optim.h).

This layer does four things and nothing else:

1. ``TensorPlan`` validates a list of parameters and their state arrays once and caches
   their raw pointers, so that a step over many small arrays costs no Python per array;
2. ``TensorPlan.prepare`` validates a step's gradients against the cached parameters and
   sorts the active tensors into a float32 and a float64 batch (the dtype is chosen here,
   once per tensor, never inside the kernels);
3. ``sgd``/``adagrad``/``rmsprop``/``adam``/``adamax``/``lion``/``adadelta``/``radam``
   release the GIL and run one kernel per batch;
4. ``BoundUpdate`` binds one of them to fixed gradient arrays, validated once, so that C code
   (``fastgd._nn.Program.train_steps``) can take many steps without returning to Python.

Every step, from Python or from C, is one ``run_update`` over an ``Update``: the batches of
active tensors, the step counters and the hyper-parameters of one kernel call.

Every check happens before any memory is written: a bad gradient raises and leaves every
parameter and state untouched.
"""
cimport numpy as cnp
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.tuple cimport PyTuple_GET_ITEM
from libc.stdint cimport int64_t, intptr_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset
from libc.math cimport INFINITY, pow
from cpython.pycapsule cimport PyCapsule_GetContext, PyCapsule_New, PyCapsule_SetContext
from cpython.ref cimport Py_DECREF, Py_INCREF, PyObject

import numpy as np

cnp.import_array()


cdef extern from "parallel.h" nogil:
    int fgd_default_threads()
    int fgd_have_openmp()
    int fgd_pins_workers()
    int fgd_set_flush_denormal(int on)
    int fgd_get_flush_denormal()


cdef extern from "fastgd_blas.h" nogil:
    double FGD_GEMM_SPLIT
    int FGD_GEMM_MIN_PIECE
    int FGD_GEMM_MAX_PIECES
    int fgd_gemm_pieces(int m, int n, int k, int *along_n, int *width)
    ctypedef void (*fgd_sgemm64_fn)(int, int, int, int64_t, int64_t, int64_t, float,
                                    const float *, int64_t, const float *, int64_t, float,
                                    float *, int64_t)
    ctypedef void (*fgd_dgemm64_fn)(int, int, int, int64_t, int64_t, int64_t, double,
                                    const double *, int64_t, const double *, int64_t, double,
                                    double *, int64_t)
    ctypedef int (*fgd_local_threads_fn)(int)
    ctypedef struct fgd_blas_shared:
        int num_threads
        fgd_sgemm64_fn sgemm64
        fgd_dgemm64_fn dgemm64
        fgd_local_threads_fn set_local_threads
    void fgd_blas_use_shared(const fgd_blas_shared *s)
    void fgd_blas_keep_serial()
    int fgd_blas_get_num_threads()
    const char *fgd_blas_config()
    const char *fgd_blas_corename()
    const char *fgd_cpu_variant()


cdef extern from "fastgd_optim.h" nogil:
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

    void fgd_sgd_f32(size_t, float **, const float **, float **, const unsigned char *,
                     const size_t *, const fgd_sgd_hparams *, int)
    void fgd_sgd_f64(size_t, double **, const double **, double **, const unsigned char *,
                     const size_t *, const fgd_sgd_hparams *, int)
    void fgd_adagrad_f32(size_t, float **, const float **, float **, const size_t *,
                         const int64_t *, const fgd_adagrad_hparams *, double *, int)
    void fgd_adagrad_f64(size_t, double **, const double **, double **, const size_t *,
                         const int64_t *, const fgd_adagrad_hparams *, double *, int)
    void fgd_rmsprop_f32(size_t, float **, const float **, float **, float **, float **,
                         const size_t *, const fgd_rmsprop_hparams *, int)
    void fgd_rmsprop_f64(size_t, double **, const double **, double **, double **, double **,
                         const size_t *, const fgd_rmsprop_hparams *, int)
    void fgd_adam_f32(size_t, float **, const float **, float **, float **, float **,
                      const size_t *, const int64_t *, const fgd_adam_hparams *, double *, int)
    void fgd_adam_f64(size_t, double **, const double **, double **, double **, double **,
                      const size_t *, const int64_t *, const fgd_adam_hparams *, double *, int)
    void fgd_adamax_f32(size_t, float **, const float **, float **, float **, const size_t *,
                        const int64_t *, const fgd_adamax_hparams *, double *, int)
    void fgd_adamax_f64(size_t, double **, const double **, double **, double **,
                        const size_t *, const int64_t *, const fgd_adamax_hparams *, double *,
                        int)
    void fgd_lion_f32(size_t, float **, const float **, float **, const size_t *,
                      const fgd_lion_hparams *, int)
    void fgd_lion_f64(size_t, double **, const double **, double **, const size_t *,
                      const fgd_lion_hparams *, int)
    void fgd_adadelta_f32(size_t, float **, const float **, float **, float **,
                          const size_t *, const fgd_adadelta_hparams *, int)
    void fgd_adadelta_f64(size_t, double **, const double **, double **, double **,
                          const size_t *, const fgd_adadelta_hparams *, int)
    void fgd_radam_f32(size_t, float **, const float **, float **, float **, const size_t *,
                       const int64_t *, const fgd_radam_hparams *, double *, int)
    void fgd_radam_f64(size_t, double **, const double **, double **, double **,
                       const size_t *, const int64_t *, const fgd_radam_hparams *, double *, int)
    void fgd_nadam_f32(size_t, float **, const float **, float **, float **, double *,
                       const size_t *, const int64_t *, const fgd_nadam_hparams *, double *, int)
    void fgd_nadam_f64(size_t, double **, const double **, double **, double **, double *,
                       const size_t *, const int64_t *, const fgd_nadam_hparams *, double *, int)


cdef extern from "fastgd_optim.h" nogil:
    size_t fgd_norm_blocks(size_t ntensors, const size_t *numel)
    double fgd_norm_f32(size_t, const float **, const size_t *, double, double *, int)
    double fgd_norm_f64(size_t, const double **, const size_t *, double, double *, int)
    void fgd_scale_f32(size_t, float **, const size_t *, double, int)
    void fgd_scale_f64(size_t, double **, const size_t *, double, int)
    void fgd_stream_probe_f32(float *p, const float *g, float *m, float *v, size_t n,
                              int nthreads)


cdef tuple _flat_list(list arrays, str name, bint writeable):
    """(dtype, pointers, sizes) of a list of float32/float64 contiguous arrays of one dtype,
    checked; the caller frees the two C arrays."""
    cdef Py_ssize_t n = len(arrays), i
    cdef cnp.ndarray a
    dtype = None
    for i in range(n):
        if not isinstance(arrays[i], np.ndarray):
            raise TypeError(f"{name}[{i}] must be a numpy.ndarray, got {type(arrays[i]).__name__}")
        a = <cnp.ndarray>arrays[i]
        if a.dtype != np.float32 and a.dtype != np.float64:
            raise TypeError(f"{name}[{i}] must have dtype float32 or float64, got {a.dtype}")
        if dtype is None:
            dtype = a.dtype
        elif a.dtype != dtype:
            raise TypeError(f"{name}[{i}] has dtype {a.dtype}, {name}[0] has {dtype}")
        if not (cnp.PyArray_IS_C_CONTIGUOUS(a) or cnp.PyArray_IS_F_CONTIGUOUS(a)):
            raise ValueError(f"{name}[{i}] is not contiguous")
        if not cnp.PyArray_ISALIGNED(a):
            raise ValueError(f"{name}[{i}] is not aligned to its elements")
        if writeable and not cnp.PyArray_ISWRITEABLE(a):
            raise ValueError(f"{name}[{i}] is read-only")
    return dtype, n


cdef int _fill_pointers(list arrays, void **ptr, size_t *numel) except -1:
    """The data pointers and sizes of ``arrays`` (checked by `_flat_list`) into ``ptr`` and
    ``numel``, which the caller allocated (NULL: MemoryError) and frees."""
    cdef Py_ssize_t i
    if ptr == NULL or numel == NULL:
        raise MemoryError()
    for i in range(len(arrays)):
        ptr[i] = cnp.PyArray_DATA(<cnp.ndarray>arrays[i])
        numel[i] = <size_t>cnp.PyArray_SIZE(<cnp.ndarray>arrays[i])
    return 0


def norm(list arrays, double norm_type):
    """The ``norm_type``-norm (> 0, or inf) of every element of ``arrays`` (contiguous,
    all float32 or all float64) as one vector, accumulated in double, the same bits for any
    thread count; NaN propagates. 0.0 for no arrays."""
    dtype, count = _flat_list(arrays, "arrays", False)
    cdef size_t n = count
    if not (norm_type > 0):
        raise ValueError(f"norm_type must be > 0 or inf, got {norm_type}")
    if n == 0:
        return 0.0
    cdef void **ptr = <void **>malloc(n * sizeof(void *))
    cdef size_t *numel = <size_t *>malloc(n * sizeof(size_t))
    cdef double *partial = NULL
    cdef double out = 0
    cdef bint f32 = dtype == np.float32
    try:
        _fill_pointers(arrays, ptr, numel)
        partial = <double *>malloc((fgd_norm_blocks(n, numel) + 1) * sizeof(double))
        if partial == NULL:
            raise MemoryError()
        with nogil:
            if f32:
                out = fgd_norm_f32(n, <const float **>ptr, numel, norm_type, partial,
                                   _shared.num_threads)
            else:
                out = fgd_norm_f64(n, <const double **>ptr, numel, norm_type, partial,
                                   _shared.num_threads)
    finally:
        free(ptr)
        free(numel)
        free(partial)
    return out


def scale_(list arrays, double factor):
    """Multiply every element of ``arrays`` (contiguous, writeable, one float dtype) by
    ``factor`` (rounded to their dtype first) in place."""
    dtype, count = _flat_list(arrays, "arrays", True)
    cdef size_t n = count
    if n == 0:
        return
    cdef void **ptr = <void **>malloc(n * sizeof(void *))
    cdef size_t *numel = <size_t *>malloc(n * sizeof(size_t))
    cdef bint f32 = dtype == np.float32
    try:
        _fill_pointers(arrays, ptr, numel)
        with nogil:
            if f32:
                fgd_scale_f32(n, <float **>ptr, numel, factor, _shared.num_threads)
            else:
                fgd_scale_f64(n, <double **>ptr, numel, factor, _shared.num_threads)
    finally:
        free(ptr)
        free(numel)


def stream_probe(p, g, m, v):
    """For benchmarks: ``p += g; m += g; v += g`` on four C-contiguous float32 arrays of one
    size, threaded as the updates are: the memory traffic of an Adam step (four arrays read,
    three written) without its arithmetic, a bound no update of that size can beat."""
    arrays = (p, g, m, v)
    for name, a in zip("pgmv", arrays):
        if not isinstance(a, np.ndarray) or a.dtype != np.float32 or not a.flags.c_contiguous:
            raise TypeError(f"{name} must be a C-contiguous float32 numpy.ndarray")
        if name != "g" and not a.flags.writeable:
            raise ValueError(f"{name} is read-only")
        if a.size != p.size:
            raise ValueError(f"{name} has {a.size} elements, p has {p.size}")
    cdef float *pp = <float *>cnp.PyArray_DATA(<cnp.ndarray>p)
    cdef const float *gp = <const float *>cnp.PyArray_DATA(<cnp.ndarray>g)
    cdef float *mp = <float *>cnp.PyArray_DATA(<cnp.ndarray>m)
    cdef float *vp = <float *>cnp.PyArray_DATA(<cnp.ndarray>v)
    cdef size_t n = p.size
    with nogil:
        fgd_stream_probe_f32(pp, gp, mp, vp, n, _shared.num_threads)


cdef extern from "fgd_hook.h" nogil:
    ctypedef struct fgd_hook:
        void (*run)(void *ctx) noexcept nogil
        void *ctx
        void (*undo)(void *ctx) noexcept nogil
        void (*run_at)(void *ctx, Py_ssize_t k) noexcept nogil
    const char *FGD_HOOK_NAME


# ----------------------------------------------------------------------------- threads

# The thread count of every kernel and product, and the delegate for large products
# (fastgd/_blas.py sets it): one struct, which _nn and _nn_ops point their products at.
cdef fgd_blas_shared _shared
_shared.num_threads = 0  # 0: OpenMP's default (OMP_NUM_THREADS or the core count)
_shared.sgemm64 = NULL
_shared.dgemm64 = NULL
_shared.set_local_threads = NULL
fgd_blas_use_shared(&_shared)
# fastgd's OpenBLAS copy runs single-threaded (csrc/kernels/blas.c)
fgd_blas_keep_serial()

cdef const char *SHARED_NAME = "fastgd.blas_shared"

#: products of at least this many multiply-adds (m n k) are large: run on several threads
GEMM_SPLIT = int(FGD_GEMM_SPLIT)
GEMM_MIN_PIECE = FGD_GEMM_MIN_PIECE
GEMM_MAX_PIECES = FGD_GEMM_MAX_PIECES


def shared_capsule():
    """The address of the settings every module's products read, for the other modules."""
    return PyCapsule_New(&_shared, SHARED_NAME, NULL)


def set_large_blas(intptr_t sgemm64, intptr_t dgemm64, intptr_t set_local_threads):
    """Run large products on another OpenBLAS (the addresses of its ILP64 ``cblas_sgemm``,
    ``cblas_dgemm`` and ``openblas_set_num_threads_local``); all 0: on fastgd's own threads
    again. Internal: fastgd/_blas.py finds numpy's copy and checks it."""
    if (sgemm64 == 0) != (dgemm64 == 0) or (sgemm64 == 0) != (set_local_threads == 0):
        raise ValueError("give all three addresses or none")
    _shared.sgemm64 = <fgd_sgemm64_fn>sgemm64
    _shared.dgemm64 = <fgd_dgemm64_fn>dgemm64
    _shared.set_local_threads = <fgd_local_threads_fn>set_local_threads


def large_blas_delegated():
    """True while large products run on another OpenBLAS (see `set_large_blas`)."""
    return _shared.sgemm64 != NULL


def gemm_pieces(int m, int n, int k):
    """How a row-major (m x k)(k x n) product is cut: ``(count, "columns" or "rows",
    width)``; the same for every thread count."""
    cdef int along_n, width
    cdef int count = fgd_gemm_pieces(m, n, k, &along_n, &width)
    return count, "columns" if along_n else "rows", width


def set_num_threads(n):
    """Set the threads of fastgd's kernels and products (``None``: OpenMP's default)."""
    if n is None:
        _shared.num_threads = 0
        return
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int or None, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    _shared.num_threads = min(n, 1 << 16)


def get_num_threads():
    """Threads the kernels use for large updates and large matrix products."""
    return _shared.num_threads if _shared.num_threads > 0 else fgd_default_threads()


def set_flush_denormal(mode):
    """Flush subnormal numbers to zero in the optimizer updates (``True``) or not (``False``,
    the default: IEEE gradual underflow, as numpy and PyTorch compute).

    Returns True where it is supported (x86-64), False elsewhere, as
    ``torch.set_flush_denormal`` does. Unlike torch's, it applies to fastgd's optimizer
    kernels only, on every thread that runs them and only while they run: numpy and the
    rest of the process keep their own setting."""
    if not isinstance(mode, bool):
        raise TypeError(f"mode must be a bool, got {type(mode).__name__}")
    return bool(fgd_set_flush_denormal(mode))


def get_flush_denormal():
    """Whether the optimizer updates flush subnormal numbers to zero."""
    return bool(fgd_get_flush_denormal())


def native_config():
    """What the native layer runs on this machine: a dict of plain values."""
    return {
        "cpu_variant": fgd_cpu_variant().decode(),
        "openmp": bool(fgd_have_openmp()),
        "num_threads": get_num_threads(),
        "blas_config": fgd_blas_config().decode().strip(),
        "blas_corename": fgd_blas_corename().decode(),
        "blas_num_threads": fgd_blas_get_num_threads(),
        "pins_workers": bool(fgd_pins_workers()),
        "flush_denormal": bool(fgd_get_flush_denormal()),
        "large_products_delegated": _shared.sgemm64 != NULL,
    }


def have_openmp():
    return bool(fgd_have_openmp())


# ----------------------------------------------------------------------------- updates

cdef enum:
    MAX_STATES = 4          # state arrays a kernel takes, at most

# The kernels, by the name an optimizer spec gives (``fastgd.optim.<algorithm>.spec.kernel``).
cdef enum:
    ALGO_SGD = 0
    ALGO_ADAGRAD = 1
    ALGO_RMSPROP = 2
    ALGO_ADAM = 3
    ALGO_ADAMAX = 4
    ALGO_LION = 5
    ALGO_ADADELTA = 6
    ALGO_RADAM = 7
    ALGO_NADAM = 8

ALGORITHMS = {"sgd": ALGO_SGD, "adagrad": ALGO_ADAGRAD, "rmsprop": ALGO_RMSPROP, "adam": ALGO_ADAM,
              "adamax": ALGO_ADAMAX, "lion": ALGO_LION, "adadelta": ALGO_ADADELTA,
              "radam": ALGO_RADAM, "nadam": ALGO_NADAM}

cdef union HParams:
    fgd_sgd_hparams sgd
    fgd_adagrad_hparams adagrad
    fgd_rmsprop_hparams rmsprop
    fgd_adam_hparams adam
    fgd_adamax_hparams adamax
    fgd_lion_hparams lion
    fgd_adadelta_hparams adadelta
    fgd_radam_hparams radam
    fgd_nadam_hparams nadam


# Tensors of one dtype in the form the kernels take them: parallel arrays, entry k for the
# k-th tensor. ``s[j]`` is the j-th state array of the optimizer's spec, which is the j-th
# state argument of its C kernel (NULL where the hyper-parameters use no such state).
cdef struct Batch:
    size_t cnt              # tensors in the batch
    void **p                # parameters
    void **g                # gradients
    void **s[MAX_STATES]    # state arrays, in the spec's (= the kernel's) order
    size_t *numel           # elements per tensor
    int64_t *step           # step numbers of this call
    unsigned char *new      # "momentum buffer not yet initialised" flags of this call
    double *scal            # per-tensor scalar state of this call (NAdam's mu_product)
    Py_ssize_t *idx         # each tensor's index in its plan (for the counters below)


cdef void *_zeros(size_t count, size_t size) except NULL:
    """``count`` zeroed items of ``size`` bytes (room for one when ``count`` is 0)."""
    cdef void *a = calloc(count if count > 0 else 1, size)
    if a == NULL:
        raise MemoryError()
    return a


cdef int batch_alloc(Batch *b, size_t cap) except -1:
    """Give ``b`` zeroed arrays for up to ``cap`` tensors (`batch_free` frees them). Its
    pointer arrays are the rows of one table: ``p``, ``g``, then ``s[0]`` .. ``s[MAX_STATES - 1]``."""
    cdef int j
    cdef size_t m = cap if cap > 0 else 1
    memset(b, 0, sizeof(Batch))
    try:
        b.p = <void **>_zeros((2 + MAX_STATES) * m, sizeof(void *))
        b.g = b.p + m
        for j in range(MAX_STATES):
            b.s[j] = b.p + (2 + j) * m
        b.numel = <size_t *>_zeros(m, sizeof(size_t))
        b.step = <int64_t *>_zeros(m, sizeof(int64_t))
        b.new = <unsigned char *>_zeros(m, sizeof(unsigned char))
        b.scal = <double *>_zeros(m, sizeof(double))
        b.idx = <Py_ssize_t *>_zeros(m, sizeof(Py_ssize_t))
    except MemoryError:
        batch_free(b)
        raise
    return 0


cdef void batch_free(Batch *b) noexcept:
    free(b.p)               # the whole pointer table
    free(b.numel)
    free(b.step)
    free(b.new)
    free(b.scal)
    free(b.idx)
    memset(b, 0, sizeof(Batch))


cdef void batch_copy(Batch *dst, const Batch *src, size_t cap) noexcept:
    """Copy the first ``cap`` entries of every array of ``src`` into ``dst`` (both have room)."""
    cdef int j
    dst.cnt = src.cnt
    memcpy(dst.p, src.p, cap * sizeof(void *))
    memcpy(dst.g, src.g, cap * sizeof(void *))
    for j in range(MAX_STATES):
        memcpy(dst.s[j], src.s[j], cap * sizeof(void *))
    memcpy(dst.numel, src.numel, cap * sizeof(size_t))
    memcpy(dst.step, src.step, cap * sizeof(int64_t))
    memcpy(dst.new, src.new, cap * sizeof(unsigned char))
    memcpy(dst.scal, src.scal, cap * sizeof(double))
    memcpy(dst.idx, src.idx, cap * sizeof(Py_ssize_t))


# One kernel call: the active tensors sorted by dtype, the counters and the hyper-parameters.
cdef struct Update:
    int algo
    int nthreads
    bint increment          # advance the step counters of the active tensors
    bint clear_new          # SGD with momentum: the buffers are initialised after the call
    HParams hp
    Batch batch[2]          # batch[0]: the float32 tensors, batch[1]: the float64 ones
    int64_t *steps          # the plan's per-tensor step counters, by plan index
    unsigned char *is_new   # the plan's per-tensor "buffer is new" flags, by plan index
    double *scalars         # the plan's per-tensor scalar state, by plan index (or NULL)
    double *work            # 3 * (tensors in the plan) doubles of kernel workspace


cdef int update_alloc(Update *u, size_t cap) except -1:
    """Give ``u`` its two batches and its workspace for a plan of ``cap`` tensors."""
    memset(u, 0, sizeof(Update))
    try:
        batch_alloc(&u.batch[0], cap)
        batch_alloc(&u.batch[1], cap)
        u.work = <double *>_zeros(3 * cap, sizeof(double))
    except MemoryError:
        update_free(u)
        raise
    return 0


cdef void update_free(Update *u) noexcept:
    batch_free(&u.batch[0])
    batch_free(&u.batch[1])
    free(u.work)
    u.work = NULL


cdef void _kernel_f32(Update *u, Batch *t) noexcept nogil:
    """``u``'s kernel on the float32 batch ``t``."""
    cdef float **p = <float **>t.p
    cdef const float **g = <const float **>t.g
    cdef float **s0 = <float **>t.s[0]
    cdef float **s1 = <float **>t.s[1]
    cdef float **s2 = <float **>t.s[2]
    if u.algo == ALGO_SGD:
        fgd_sgd_f32(t.cnt, p, g, s0, t.new, t.numel, &u.hp.sgd, u.nthreads)
    elif u.algo == ALGO_ADAGRAD:
        fgd_adagrad_f32(t.cnt, p, g, s0, t.numel, t.step, &u.hp.adagrad, u.work, u.nthreads)
    elif u.algo == ALGO_RMSPROP:
        fgd_rmsprop_f32(t.cnt, p, g, s0, s1, s2, t.numel, &u.hp.rmsprop, u.nthreads)
    elif u.algo == ALGO_ADAM:
        fgd_adam_f32(t.cnt, p, g, s0, s1, s2, t.numel, t.step, &u.hp.adam, u.work, u.nthreads)
    elif u.algo == ALGO_ADAMAX:
        fgd_adamax_f32(t.cnt, p, g, s0, s1, t.numel, t.step, &u.hp.adamax, u.work, u.nthreads)
    elif u.algo == ALGO_LION:
        fgd_lion_f32(t.cnt, p, g, s0, t.numel, &u.hp.lion, u.nthreads)
    elif u.algo == ALGO_ADADELTA:
        fgd_adadelta_f32(t.cnt, p, g, s0, s1, t.numel, &u.hp.adadelta, u.nthreads)
    elif u.algo == ALGO_RADAM:
        fgd_radam_f32(t.cnt, p, g, s0, s1, t.numel, t.step, &u.hp.radam, u.work, u.nthreads)
    else:
        fgd_nadam_f32(t.cnt, p, g, s0, s1, t.scal, t.numel, t.step, &u.hp.nadam, u.work,
                      u.nthreads)


cdef void _kernel_f64(Update *u, Batch *t) noexcept nogil:
    """``u``'s kernel on the float64 batch ``t``."""
    cdef double **p = <double **>t.p
    cdef const double **g = <const double **>t.g
    cdef double **s0 = <double **>t.s[0]
    cdef double **s1 = <double **>t.s[1]
    cdef double **s2 = <double **>t.s[2]
    if u.algo == ALGO_SGD:
        fgd_sgd_f64(t.cnt, p, g, s0, t.new, t.numel, &u.hp.sgd, u.nthreads)
    elif u.algo == ALGO_ADAGRAD:
        fgd_adagrad_f64(t.cnt, p, g, s0, t.numel, t.step, &u.hp.adagrad, u.work, u.nthreads)
    elif u.algo == ALGO_RMSPROP:
        fgd_rmsprop_f64(t.cnt, p, g, s0, s1, s2, t.numel, &u.hp.rmsprop, u.nthreads)
    elif u.algo == ALGO_ADAM:
        fgd_adam_f64(t.cnt, p, g, s0, s1, s2, t.numel, t.step, &u.hp.adam, u.work, u.nthreads)
    elif u.algo == ALGO_ADAMAX:
        fgd_adamax_f64(t.cnt, p, g, s0, s1, t.numel, t.step, &u.hp.adamax, u.work, u.nthreads)
    elif u.algo == ALGO_LION:
        fgd_lion_f64(t.cnt, p, g, s0, t.numel, &u.hp.lion, u.nthreads)
    elif u.algo == ALGO_ADADELTA:
        fgd_adadelta_f64(t.cnt, p, g, s0, s1, t.numel, &u.hp.adadelta, u.nthreads)
    elif u.algo == ALGO_RADAM:
        fgd_radam_f64(t.cnt, p, g, s0, s1, t.numel, t.step, &u.hp.radam, u.work, u.nthreads)
    else:
        fgd_nadam_f64(t.cnt, p, g, s0, s1, t.scal, t.numel, t.step, &u.hp.nadam, u.work,
                      u.nthreads)


cdef void run_update(Update *u) noexcept nogil:
    """Advance the counters of the active tensors, run the kernel on each dtype batch."""
    cdef int b
    cdef size_t k
    cdef Py_ssize_t i
    cdef Batch *t
    for b in range(2):
        t = &u.batch[b]
        for k in range(t.cnt):
            i = t.idx[k]
            if u.increment:
                u.steps[i] += 1
            t.step[k] = u.steps[i]
            t.new[k] = u.is_new[i]
            if u.scalars != NULL:
                t.scal[k] = u.scalars[i]
    if u.batch[0].cnt:
        _kernel_f32(u, &u.batch[0])
    if u.batch[1].cnt:
        _kernel_f64(u, &u.batch[1])
    if u.scalars != NULL:
        for b in range(2):
            t = &u.batch[b]
            for k in range(t.cnt):
                u.scalars[t.idx[k]] = t.scal[k]
    if u.clear_new:
        for b in range(2):
            t = &u.batch[b]
            for k in range(t.cnt):
                u.is_new[t.idx[k]] = 0


cdef void _run_hook(void *ctx) noexcept nogil:
    run_update(<Update *>ctx)


cdef object _take(dict hp, str key):
    try:
        return hp.pop(key)
    except KeyError:
        raise TypeError(f"missing hyper-parameter {key!r}") from None


cdef int set_hparams(Update *u, str algo, dict hp) except -1:
    """Fill ``u``'s kernel choice and hyper-parameters from ``hp`` (the keyword arguments of
    the matching Python function below), which it empties."""
    if algo not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algo!r}")
    u.algo = ALGORITHMS[algo]
    u.clear_new = False
    if u.algo == ALGO_SGD:
        u.hp.sgd.lr = _take(hp, "lr"); u.hp.sgd.momentum = _take(hp, "momentum")
        u.hp.sgd.dampening = _take(hp, "dampening")
        u.hp.sgd.weight_decay = _take(hp, "weight_decay")
        u.hp.sgd.nesterov = _take(hp, "nesterov"); u.hp.sgd.maximize = _take(hp, "maximize")
        u.clear_new = u.hp.sgd.momentum != 0
    elif u.algo == ALGO_ADAGRAD:
        u.hp.adagrad.lr = _take(hp, "lr"); u.hp.adagrad.lr_decay = _take(hp, "lr_decay")
        u.hp.adagrad.weight_decay = _take(hp, "weight_decay")
        u.hp.adagrad.eps = _take(hp, "eps"); u.hp.adagrad.maximize = _take(hp, "maximize")
    elif u.algo == ALGO_RMSPROP:
        u.hp.rmsprop.lr = _take(hp, "lr"); u.hp.rmsprop.alpha = _take(hp, "alpha")
        u.hp.rmsprop.eps = _take(hp, "eps")
        u.hp.rmsprop.weight_decay = _take(hp, "weight_decay")
        u.hp.rmsprop.momentum = _take(hp, "momentum")
        u.hp.rmsprop.centered = _take(hp, "centered")
        u.hp.rmsprop.maximize = _take(hp, "maximize")
    elif u.algo == ALGO_RADAM:
        u.hp.radam.lr = _take(hp, "lr"); u.hp.radam.beta1 = _take(hp, "beta1")
        u.hp.radam.beta2 = _take(hp, "beta2"); u.hp.radam.eps = _take(hp, "eps")
        u.hp.radam.weight_decay = _take(hp, "weight_decay")
        u.hp.radam.maximize = _take(hp, "maximize")
        u.hp.radam.decoupled_weight_decay = _take(hp, "decoupled_weight_decay")
    elif u.algo == ALGO_NADAM:
        if u.scalars == NULL:
            raise ValueError("nadam needs the plan's scalar state (mu_product)")
        u.hp.nadam.lr = _take(hp, "lr"); u.hp.nadam.beta1 = _take(hp, "beta1")
        u.hp.nadam.beta2 = _take(hp, "beta2"); u.hp.nadam.eps = _take(hp, "eps")
        u.hp.nadam.weight_decay = _take(hp, "weight_decay")
        u.hp.nadam.momentum_decay = _take(hp, "momentum_decay")
        u.hp.nadam.maximize = _take(hp, "maximize")
        u.hp.nadam.decoupled_weight_decay = _take(hp, "decoupled_weight_decay")
    elif u.algo == ALGO_ADADELTA:
        u.hp.adadelta.lr = _take(hp, "lr"); u.hp.adadelta.rho = _take(hp, "rho")
        u.hp.adadelta.eps = _take(hp, "eps")
        u.hp.adadelta.weight_decay = _take(hp, "weight_decay")
        u.hp.adadelta.maximize = _take(hp, "maximize")
    elif u.algo == ALGO_LION:
        u.hp.lion.lr = _take(hp, "lr"); u.hp.lion.beta1 = _take(hp, "beta1")
        u.hp.lion.beta2 = _take(hp, "beta2")
        u.hp.lion.weight_decay = _take(hp, "weight_decay")
        u.hp.lion.maximize = _take(hp, "maximize")
    elif u.algo == ALGO_ADAMAX:
        u.hp.adamax.lr = _take(hp, "lr"); u.hp.adamax.beta1 = _take(hp, "beta1")
        u.hp.adamax.beta2 = _take(hp, "beta2"); u.hp.adamax.eps = _take(hp, "eps")
        u.hp.adamax.weight_decay = _take(hp, "weight_decay")
        u.hp.adamax.maximize = _take(hp, "maximize")
    else:
        u.hp.adam.lr = _take(hp, "lr"); u.hp.adam.beta1 = _take(hp, "beta1")
        u.hp.adam.beta2 = _take(hp, "beta2"); u.hp.adam.eps = _take(hp, "eps")
        u.hp.adam.weight_decay = _take(hp, "weight_decay")
        u.hp.adam.amsgrad = _take(hp, "amsgrad"); u.hp.adam.maximize = _take(hp, "maximize")
        u.hp.adam.decoupled_weight_decay = _take(hp, "decoupled_weight_decay")
    if hp:
        raise TypeError(f"unexpected hyper-parameter {next(iter(hp))!r} for {algo}")
    return 0


cdef inline bint _is_float(int typenum):
    return typenum == cnp.NPY_FLOAT32 or typenum == cnp.NPY_FLOAT64


cdef inline bint _same_layout(cnp.ndarray a, cnp.ndarray b):
    cdef int k
    if cnp.PyArray_NDIM(a) != cnp.PyArray_NDIM(b):
        return False
    for k in range(cnp.PyArray_NDIM(a)):
        if cnp.PyArray_DIMS(a)[k] != cnp.PyArray_DIMS(b)[k]:
            return False
        if cnp.PyArray_DIMS(a)[k] > 1 and cnp.PyArray_STRIDES(a)[k] != cnp.PyArray_STRIDES(b)[k]:
            return False
    return True


cdef inline bint _overlap(cnp.ndarray a, cnp.ndarray b):
    cdef intptr_t a0 = <intptr_t>cnp.PyArray_DATA(a)
    cdef intptr_t b0 = <intptr_t>cnp.PyArray_DATA(b)
    cdef intptr_t a1 = a0 + cnp.PyArray_NBYTES(a)
    cdef intptr_t b1 = b0 + cnp.PyArray_NBYTES(b)
    return a0 < b1 and b0 < a1 and a1 > a0 and b1 > b0


cdef int _check_plan_params(list params, str param_name) except -1:
    """Each parameter: an ndarray of float32/float64 in native byte order, writeable,
    contiguous (C or F) and aligned."""
    cdef Py_ssize_t i
    cdef cnp.ndarray p
    for i in range(len(params)):
        p = params[i] if isinstance(params[i], np.ndarray) else None
        if p is None:
            raise TypeError(f"{param_name}[{i}] must be a numpy.ndarray, got {type(params[i]).__name__}")
        if not _is_float(cnp.PyArray_TYPE(p)) or not cnp.PyArray_ISNOTSWAPPED(p):
            raise TypeError(f"{param_name}[{i}] must have dtype float32 or float64 in native "
                            f"byte order, got {p.dtype.str}")
        if not cnp.PyArray_ISWRITEABLE(p):
            raise ValueError(f"{param_name}[{i}] is read-only; parameters are updated in place")
        if not (cnp.PyArray_IS_C_CONTIGUOUS(p) or cnp.PyArray_IS_F_CONTIGUOUS(p)):
            raise ValueError(f"{param_name}[{i}] is not contiguous; pass np.ascontiguousarray(...) "
                             "and keep that array as the parameter")
        if not cnp.PyArray_ISALIGNED(p):
            raise ValueError(f"{param_name}[{i}] is not aligned to its {p.dtype} elements "
                             "(flags.aligned is False); pass np.require(a, requirements='A') "
                             "and keep that array as the parameter")
    return 0


cdef int _check_plan_states(list states, list params, tuple names, str param_name) except -1:
    """Each state list (or None): one array per parameter, of its parameter's dtype, shape and
    layout, writeable and aligned."""
    cdef Py_ssize_t i, k, n = len(params)
    cdef cnp.ndarray p, s
    for k in range(len(states)):
        if states[k] is None:
            continue
        if len(states[k]) != n:
            raise ValueError(f"{names[k]} has {len(states[k])} arrays for {n} parameters")
        for i in range(n):
            s = states[k][i] if isinstance(states[k][i], np.ndarray) else None
            p = params[i]
            if s is None:
                raise TypeError(f"{names[k]}[{i}] must be a numpy.ndarray, "
                                f"got {type(states[k][i]).__name__}")
            if cnp.PyArray_TYPE(s) != cnp.PyArray_TYPE(p) or not cnp.PyArray_ISNOTSWAPPED(s):
                raise TypeError(f"{names[k]}[{i}] has dtype {s.dtype} but "
                                f"{param_name}[{i}] has {p.dtype}")
            if not _same_layout(s, p):
                raise ValueError(f"{names[k]}[{i}] has shape {(<object>s).shape} (strides {(<object>s).strides}) "
                                 f"but {param_name}[{i}] has {(<object>p).shape} (strides {(<object>p).strides})")
            if not cnp.PyArray_ISWRITEABLE(s):
                raise ValueError(f"{names[k]}[{i}] is read-only")
            if not cnp.PyArray_ISALIGNED(s):
                raise ValueError(f"{names[k]}[{i}] is not aligned to its "
                                 f"{s.dtype} elements (flags.aligned is False)")
    return 0


cdef int _check_counter(cnp.ndarray a, object dtype, Py_ssize_t n, str name, str dtname) except -1:
    """A per-parameter counter vector: ``dtype``, one entry per parameter, C-contiguous and
    writeable (the kernels advance it in place)."""
    if a.dtype != dtype or a.ndim != 1 or a.shape[0] != n \
            or not a.flags.c_contiguous or not a.flags.writeable:
        raise ValueError(f"{name} must be a writeable {dtname} vector with one entry per parameter")
    return 0


class StaleParameter(ValueError):
    """Raised by `TensorPlan.prepare_tensors` when a tensor no longer lies where the plan's
    array views it; ``index`` is its position."""

    def __init__(self, index):
        super().__init__(f"tensor {index} was moved to other memory")
        self.index = index


cdef class TensorPlan:
    """Parameters and their state arrays, validated once, as raw pointers.

    Parameters
    ----------
    params : list of ndarray
        float32/float64, writeable, C- or F-contiguous, pairwise non-overlapping.
    states : list of (list of ndarray or None)
        Up to four state lists, in the order the kernel takes them (the order of the
        optimizer's spec), each aligned with ``params`` (same dtype, shape, layout);
        ``None`` for a state the current hyper-parameters do not use.
    steps : ndarray of int64, shape (len(params),)
        Per-parameter step counters, read (and advanced by each kernel call) in place.
    is_new : ndarray of uint8, shape (len(params),)
        Per-parameter "momentum buffer not yet initialised" flags (SGD).
    param_name, state_names : str
        Names used in error messages.
    scalars : ndarray of float64, shape (len(params),), optional
        Per-parameter scalar state, read and replaced in place by each kernel call (NAdam's
        ``mu_product``); None for the kernels that keep none.
    """
    cdef readonly Py_ssize_t n
    cdef readonly int nstates
    cdef tuple params
    cdef tuple states
    cdef object steps_arr, new_arr, scalars_arr
    cdef int64_t *steps
    cdef unsigned char *is_new
    cdef double *scalars
    cdef str param_name
    cdef tuple state_names
    # per-tensor cached facts: entry i of ``tensors`` (p, s[j], numel) is tensor i
    cdef Batch tensors
    cdef int *typenum
    # the next kernel call: prepare() fills its batches, one per dtype
    cdef Update u
    cdef list keep          # gradients copied to the parameter's layout during a step
    cdef bint ready         # prepare() succeeded and no kernel has consumed it yet
    # the memory every kernel call writes (parameters, states, counters), as byte ranges
    # [span_lo[k], span_hi[k]) sorted by start: a gradient must overlap none of them
    cdef intptr_t *span_lo
    cdef intptr_t *span_hi
    cdef Py_ssize_t nspans

    def __dealloc__(self):
        self._free()

    cdef void _free(self) noexcept:
        update_free(&self.u)
        batch_free(&self.tensors)
        free(self.typenum)
        self.typenum = NULL
        free(self.span_lo)
        free(self.span_hi)
        self.span_lo = self.span_hi = NULL
        self.nspans = 0

    cdef int _set_spans(self, list arrays) except -1:
        """Record the byte ranges of ``arrays`` (pairwise disjoint), sorted by start."""
        spans = sorted((<intptr_t>cnp.PyArray_DATA(<cnp.ndarray>a),
                        <intptr_t>cnp.PyArray_DATA(<cnp.ndarray>a) + cnp.PyArray_NBYTES(<cnp.ndarray>a))
                       for a in arrays if cnp.PyArray_NBYTES(<cnp.ndarray>a) > 0)
        cdef Py_ssize_t k, m = len(spans)
        self.span_lo = <intptr_t *>_zeros(m, sizeof(intptr_t))
        self.span_hi = <intptr_t *>_zeros(m, sizeof(intptr_t))
        for k in range(m):
            self.span_lo[k], self.span_hi[k] = spans[k]
        self.nspans = m
        return 0

    cdef bint _writes_into(self, cnp.ndarray g) noexcept:
        """Whether the bytes ``g`` spans overlap memory a kernel call writes."""
        cdef intptr_t g0 = <intptr_t>cnp.PyArray_DATA(g), g1 = g0
        cdef Py_ssize_t k, step
        if cnp.PyArray_SIZE(g) == 0:
            return False
        for k in range(cnp.PyArray_NDIM(g)):   # the bytes any element lies in (any strides)
            step = cnp.PyArray_STRIDES(g)[k] * (cnp.PyArray_DIMS(g)[k] - 1)
            if step > 0:
                g1 += step
            else:
                g0 += step
        return self._range_written(g0, g1 + cnp.PyArray_ITEMSIZE(g))

    cdef bint _range_written(self, intptr_t g0, intptr_t g1) noexcept:
        """Whether the bytes [g0, g1) overlap memory a kernel call writes (a binary search:
        the last range starting before g1 is the only candidate, the ranges being
        disjoint)."""
        cdef Py_ssize_t lo = 0, hi = self.nspans, mid
        while lo < hi:  # first range starting at or after g1
            mid = (lo + hi) // 2
            if self.span_lo[mid] < g1:
                lo = mid + 1
            else:
                hi = mid
        return lo > 0 and self.span_hi[lo - 1] > g0

    def written_memory_shared_by(self, g, Py_ssize_t offset=0):
        """None, or the name of a parameter or state array (numbered from ``offset``) whose
        memory the array ``g`` overlaps: what a gradient must never do."""
        if not isinstance(g, np.ndarray):
            raise TypeError(f"g must be a numpy.ndarray, got {type(g).__name__}")
        return self._shared_with(g, offset) if self._writes_into(g) else None

    cdef str _shared_with(self, cnp.ndarray g, Py_ssize_t offset):
        """The name of an array ``g`` overlaps (for the error message)."""
        cdef Py_ssize_t i, k
        for i in range(self.n):
            if _overlap(g, <cnp.ndarray>self.params[i]):
                return f"{self.param_name}[{offset + i}]"
            for k in range(self.nstates):
                if self.states[k] is not None and _overlap(g, <cnp.ndarray>self.states[k][i]):
                    return f"optimizer state {self.state_names[k]}[{offset + i}]"
        return "the optimizer's step counters"

    def __init__(self, list params, list states, cnp.ndarray steps, cnp.ndarray is_new,
                 str param_name="params", tuple state_names=(), scalars=None):
        cdef Py_ssize_t n = len(params)
        if len(states) > MAX_STATES:
            raise ValueError("at most 4 state lists")
        names = state_names + tuple(f"state{k}" for k in range(len(state_names), len(states)))
        _check_plan_params(params, param_name)
        _check_plan_states(states, params, names, param_name)
        _check_disjoint(params + [a for lst in states if lst is not None for a in lst],
                        [f"{param_name}[{i}]" for i in range(n)]
                        + [f"{names[k]}[{i}]" for k in range(len(states))
                           if states[k] is not None for i in range(n)])
        _check_counter(steps, np.int64, n, "steps", "int64")
        _check_counter(is_new, np.uint8, n, "is_new", "uint8")
        if scalars is not None:
            if not isinstance(scalars, np.ndarray):
                raise TypeError(f"scalars must be a numpy.ndarray or None, got "
                                f"{type(scalars).__name__}")
            _check_counter(<cnp.ndarray>scalars, np.float64, n, "scalars", "float64")
        # everything is checked: from here on nothing can fail but an allocation
        self.n = n
        self.nstates = len(states)
        self.param_name = param_name
        self.state_names = names
        self.params = tuple(params)
        self.states = tuple(None if lst is None else tuple(lst) for lst in states)
        self.steps_arr = steps
        self.new_arr = is_new
        self.steps = <int64_t *>cnp.PyArray_DATA(steps)
        self.is_new = <unsigned char *>cnp.PyArray_DATA(is_new)
        self.scalars_arr = scalars
        self.scalars = (NULL if scalars is None
                        else <double *>cnp.PyArray_DATA(<cnp.ndarray>scalars))
        self._point_at(params, states)
        self._set_spans(params + [steps, is_new] + ([] if scalars is None else [scalars])
                        + [a for lst in states if lst is not None for a in lst])
        self.keep = []
        self.ready = False

    cdef int _point_at(self, list params, list states) except -1:
        """The per-tensor pointers, sizes and dtypes of the checked arrays."""
        cdef Py_ssize_t i, k, n = self.n
        cdef cnp.ndarray p
        self._free()
        update_alloc(&self.u, n)
        self.u.steps = self.steps
        self.u.is_new = self.is_new
        self.u.scalars = self.scalars
        batch_alloc(&self.tensors, n)
        self.typenum = <int *>_zeros(n, sizeof(int))
        self.tensors.cnt = n
        for i in range(n):
            p = params[i]
            self.tensors.p[i] = cnp.PyArray_DATA(p)
            self.tensors.numel[i] = <size_t>cnp.PyArray_SIZE(p)
            self.typenum[i] = cnp.PyArray_TYPE(p)
            for k in range(self.nstates):
                if states[k] is not None:
                    self.tensors.s[k][i] = cnp.PyArray_DATA(<cnp.ndarray>states[k][i])
        return 0

    def same_params(self, list params):
        """True when ``params`` holds exactly this plan's arrays, in order."""
        cdef Py_ssize_t i
        if PyList_GET_SIZE(params) != self.n:
            return False
        for i in range(self.n):
            if PyList_GET_ITEM(params, i) != <PyObject *>self.params[i]:
                return False
        return True

    cdef int _begin(self, int need) except -1:
        """Start a step's batches: nothing is written, the previous batches are dropped."""
        cdef int k
        for k in range(MAX_STATES):
            if need & (1 << k) and (k >= self.nstates or self.states[k] is None):
                raise RuntimeError(f"internal error: state list {k} is needed but missing")
        self.ready = False
        self.u.batch[0].cnt = 0
        self.u.batch[1].cnt = 0
        self.keep.clear()
        return 0

    cdef void _push(self, Py_ssize_t i, void *g) noexcept:
        """Put tensor ``i`` with its gradient's data ``g`` into its dtype's batch."""
        cdef Batch *t = &self.u.batch[0 if self.typenum[i] == cnp.NPY_FLOAT32 else 1]
        cdef size_t k = t.cnt
        cdef int j
        t.p[k] = self.tensors.p[i]
        t.g[k] = g
        t.numel[k] = self.tensors.numel[i]
        t.idx[k] = i
        for j in range(MAX_STATES):
            t.s[j][k] = self.tensors.s[j][i]
        t.cnt += 1

    cdef int _add_array(self, Py_ssize_t i, cnp.ndarray g, str gname, str pname,
                        Py_ssize_t offset) except -1:
        """Check the gradient array ``g`` of tensor ``i`` (named ``gname``; its parameter
        ``pname``) and batch it, copied to the parameter's layout if it has another one."""
        cdef cnp.ndarray p = <cnp.ndarray>self.params[i]
        if cnp.PyArray_TYPE(g) != self.typenum[i] or not cnp.PyArray_ISNOTSWAPPED(g):
            raise TypeError(f"{gname} has dtype {g.dtype.str} but {pname} has {p.dtype.str}")
        if not _same_layout(g, p) or not cnp.PyArray_ISALIGNED(g):
            if (<object>g).shape != (<object>p).shape:
                raise ValueError(f"{gname} has shape {(<object>g).shape} but {pname} "
                                 f"has shape {(<object>p).shape}")
            # same shape, another memory layout (or misaligned): an aligned copy in the
            # parameter's layout
            g = np.array(g, order="C" if cnp.PyArray_IS_C_CONTIGUOUS(p) else "F")
            self.keep.append(g)
        if self._writes_into(g):   # any parameter or state, not only its own
            raise ValueError(f"{gname} shares memory with {self._shared_with(g, offset)}")
        self._push(i, cnp.PyArray_DATA(g))
        return 0

    def prepare(self, grads, Py_ssize_t offset, int need):
        """Validate ``grads[offset:offset + n]`` and sort the tensors into dtype batches.

        ``None`` gradients skip their parameter (its state and step stay as they are).
        ``need`` is a bit mask of the state lists the coming kernel reads. Nothing is
        written here; the next kernel call on this plan consumes the batches.
        """
        cdef Py_ssize_t i, gi
        cdef object go
        cdef cnp.ndarray p
        if len(grads) < offset + self.n:
            raise ValueError(f"expected at least {offset + self.n} gradients, got {len(grads)}")
        self._begin(need)
        for i in range(self.n):
            gi = offset + i
            go = grads[gi]
            if go is None:
                continue
            p = <cnp.ndarray>self.params[i]
            if not cnp.PyArray_ISWRITEABLE(p):
                raise ValueError(f"{self.param_name}[{gi}] is read-only; parameters are updated in place")
            if not isinstance(go, np.ndarray):
                raise TypeError(f"grads[{gi}] must be a numpy.ndarray or None, got {type(go).__name__}")
            self._add_array(i, <cnp.ndarray>go, f"grads[{gi}]", f"{self.param_name}[{gi}]",
                            offset)
        self.ready = True

    def prepare_tensors(self, list tensors, tuple dtypes, str where, int need, view):
        """Like `prepare`, with the gradients read from ``tensors[i].grad``: the tensors (of
        a framework such as PyTorch, exposing ``grad``, ``data_ptr()``, ``dtype``,
        ``is_contiguous()`` and ``numel()``, whose gradients lie on their device) whose
        memory this plan's parameter arrays view, in order.

        A gradient of the parameter's dtype (``dtypes[i]``), dense, contiguous and of the
        parameter's size is used where it lies; any other goes through
        ``view(grad, name)`` (an ndarray viewing it, or an error naming it) and the checks
        of `prepare`. ``where`` names the list in messages (``param_groups[0]['params']``).
        Returns the list of tensors that have a gradient (the ones the step will update).

        Raises `StaleParameter` when ``tensors[i]`` no longer lies where its array views
        (its storage was replaced, as ``module.to()`` does): the caller views it again.
        """
        cdef Py_ssize_t i, n = self.n
        cdef object t, g
        cdef intptr_t ptr
        cdef size_t nbytes
        if PyList_GET_SIZE(tensors) != n or len(dtypes) != n:
            raise ValueError(f"{where} has {len(tensors)} tensors, the plan {n}")
        self._begin(need)
        stepped = []
        for i in range(n):
            t = <object>PyList_GET_ITEM(tensors, i)
            g = t.grad
            if g is None:
                continue
            if <intptr_t>t.data_ptr() != <intptr_t>self.tensors.p[i]:
                raise StaleParameter(i)
            if not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>self.params[i]):
                raise ValueError(f"{where}[{i}] is read-only; parameters are updated in place")
            # (the device needs no check: the parameter's memory is the CPU's, and torch
            # refuses a gradient, or a .data swap, on another device; size and dtype it
            # allows to change through grad.data, so they are checked)
            if (g.dtype is <object>PyTuple_GET_ITEM(dtypes, i)
                    and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>self.params[i])
                    and g.is_contiguous() and <size_t>g.numel() == self.tensors.numel[i]):
                ptr = <intptr_t>g.data_ptr()
                nbytes = self.tensors.numel[i] * (4 if self.typenum[i] == cnp.NPY_FLOAT32 else 8)
                if nbytes and self._range_written(ptr, ptr + <intptr_t>nbytes):
                    raise ValueError(f"{where}[{i}].grad shares memory with "
                                     f"{self._shared_with(view(g, f'{where}[{i}].grad'), 0)}")
                self._push(i, <void *>ptr)
            else:
                self._add_array(i, view(g, f"{where}[{i}].grad"), f"{where}[{i}].grad",
                                f"{where}[{i}]", 0)
            self.keep.append(g)     # alive until the kernel has run, whatever other threads do
            stepped.append(t)
        self.ready = True
        return stepped

    cdef int run(self, str algo, dict hp, bint increment) except -1:
        """Run one kernel on the batches of the last prepare(), without the GIL."""
        if not self.ready:
            raise RuntimeError("TensorPlan.prepare() must run before each kernel call")
        set_hparams(&self.u, algo, hp)
        self.ready = False
        self.u.increment = increment
        self.u.nthreads = _shared.num_threads
        with nogil:
            run_update(&self.u)
        self.keep.clear()
        return 0


def _check_disjoint(list arrays, list names):
    """Raise ValueError naming the first two arrays whose memory overlaps."""
    cdef Py_ssize_t i, j, n = len(arrays)
    spans = []
    for i in range(n):
        a = arrays[i]
        lo = <intptr_t>cnp.PyArray_DATA(<cnp.ndarray>a)
        spans.append((lo, lo + cnp.PyArray_NBYTES(<cnp.ndarray>a), i))
    spans.sort()
    cdef intptr_t end = 0
    cdef Py_ssize_t owner = -1
    seen = {}
    for i in range(n):
        j = seen.setdefault(id(arrays[i]), i)
        if j != i:
            raise ValueError(f"{names[i]} and {names[j]} are the same array")
    for lo, hi, i in spans:
        if hi == lo:
            continue
        if owner >= 0 and lo < end:
            if arrays[i] is arrays[owner]:
                raise ValueError(f"{names[i]} and {names[owner]} are the same array")
            raise ValueError(f"{names[i]} and {names[owner]} share memory")
        if hi > end or owner < 0:
            end = hi
            owner = i
    return None


def check_disjoint(arrays, names):
    _check_disjoint(list(arrays), list(names))


# ----------------------------------------------------------------------------- kernels
# Each runs on the batches of the last TensorPlan.prepare(), with the GIL released. The
# plan's state lists are in the order of the optimizer's spec (``<Class>.spec.state_names``),
# which is the order of the C kernel's state arguments.

def _kernel_function(str algo):
    def kernel(TensorPlan plan, *, bint increment=True, **hp):
        plan.run(algo, hp, increment)
    kernel.__name__ = kernel.__qualname__ = algo
    kernel.__doc__ = (f"One {algo} step over the batches of the plan's last prepare(); hp: the "
                      f"kernel arguments of its spec (fastgd.optim.by_name({algo!r}).spec).")
    return kernel


# one function per algorithm, named as ALGORITHMS names it: sgd(plan, **hp), adam(plan, **hp), ...
for _algo in ALGORITHMS:
    globals()[_algo] = _kernel_function(_algo)


# ----------------------------------------------------------------------------- clipping

cdef struct ClipData:
    size_t n[2]             # float32 arrays, float64 arrays
    void **ptr[2]
    size_t *numel[2]
    double *partial
    double max_norm, norm_type
    int nthreads


cdef double _combine(double a, double b, double p) noexcept nogil:
    """The norm of two groups' norms, as fastgd.nn.utils.get_total_norm combines them."""
    if p == INFINITY:
        if a != a or b != b:
            return a if a != a else b
        return a if a >= b else b
    return pow(pow(a, p) + pow(b, p), 1.0 / p)


cdef void clip_run(void *ctx) noexcept nogil:
    cdef ClipData *d = <ClipData *>ctx
    cdef double total = 0, t32 = 0, t64 = 0
    cdef float c32
    cdef double c64
    if d.n[0]:
        t32 = fgd_norm_f32(d.n[0], <const float **>d.ptr[0], d.numel[0], d.norm_type,
                           d.partial, d.nthreads)
    if d.n[1]:
        t64 = fgd_norm_f64(d.n[1], <const double **>d.ptr[1], d.numel[1], d.norm_type,
                           d.partial, d.nthreads)
    if d.n[0] and d.n[1]:
        total = _combine(t32, t64, d.norm_type)
    else:
        total = t32 if d.n[0] else t64
    # fastgd.nn.utils.clip_grads_with_norm_: the factor in each dtype, clamped at 1
    if d.n[0]:
        c32 = <float>d.max_norm / (<float>total + <float>1e-6)
        if not (c32 != c32 or c32 < 1):
            c32 = 1
        fgd_scale_f32(d.n[0], <float **>d.ptr[0], d.numel[0], c32, d.nthreads)
    if d.n[1]:
        c64 = d.max_norm / (total + 1e-6)
        if not (c64 != c64 or c64 < 1):
            c64 = 1
        fgd_scale_f64(d.n[1], <double **>d.ptr[1], d.numel[1], c64, d.nthreads)


cdef class GradClipper:
    """``fastgd.nn.utils.clip_grad_norm_(grads, max_norm, norm_type)`` bound to fixed
    gradient arrays, checked once: ``run()`` from Python, ``hook()`` for C loops
    (`fastgd._nn.Program.train_steps` runs it between the backward pass and the update).
    It computes exactly what ``clip_grad_norm_`` computes (the same native norm and scaling).

    Parameters
    ----------
    grads : list of ndarray
        Contiguous, aligned, writeable float32/float64 arrays (kept alive).
    max_norm : float
    norm_type : float
        > 0, or inf.
    """
    cdef ClipData d
    cdef fgd_hook h
    cdef tuple arrays

    def __cinit__(self):
        self.d.ptr[0] = self.d.ptr[1] = NULL
        self.d.numel[0] = self.d.numel[1] = NULL
        self.d.partial = NULL

    def __dealloc__(self):
        for k in range(2):
            free(self.d.ptr[k])
            free(self.d.numel[k])
        free(self.d.partial)

    def __init__(self, list grads, double max_norm, double norm_type=2.0):
        if not (norm_type > 0):
            raise ValueError(f"norm_type must be > 0 or inf, got {norm_type}")
        groups = ([g for g in grads if isinstance(g, np.ndarray) and g.dtype == np.float32],
                  [g for g in grads if isinstance(g, np.ndarray) and g.dtype == np.float64])
        if len(groups[0]) + len(groups[1]) != len(grads):
            _flat_list(list(grads), "grads", True)   # names the offending array
        cdef size_t most = 1, k
        for k in range(2):
            _flat_list(groups[k], "grads", True)
            free(self.d.ptr[k])
            free(self.d.numel[k])
            self.d.n[k] = len(groups[k])
            self.d.ptr[k] = <void **>malloc((self.d.n[k] + 1) * sizeof(void *))
            self.d.numel[k] = <size_t *>malloc((self.d.n[k] + 1) * sizeof(size_t))
            _fill_pointers(groups[k], self.d.ptr[k], self.d.numel[k])
            most = max(most, fgd_norm_blocks(self.d.n[k], self.d.numel[k]) + 1)
        free(self.d.partial)
        self.d.partial = <double *>malloc(most * sizeof(double))
        if self.d.partial == NULL:
            raise MemoryError()
        self.d.max_norm = max_norm
        self.d.norm_type = norm_type
        self.d.nthreads = _shared.num_threads
        self.arrays = tuple(grads)
        self.h.run = clip_run
        self.h.ctx = &self.d
        self.h.undo = NULL
        self.h.run_at = NULL

    def run(self):
        """Clip the gradients once."""
        with nogil:
            clip_run(&self.d)

    def hook(self):
        """A PyCapsule (named ``FGD_HOOK_NAME``) whose ``run(ctx)`` is `run`; it keeps this
        object alive."""
        return _hook_capsule(self, &self.h)


# ----------------------------------------------------------------------------- averaging
# fastgd.optim.swa_utils: the running averages of AveragedModel (EMA and SWA, as torch's)
# in one native pass over every averaged array, float32 and float64 each in its own group.

cdef extern from "fastgd_optim.h" nogil:
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
    void fgd_average_f32(size_t, float **, const float **, const size_t *,
                         const fgd_average_hparams *, int)
    void fgd_average_f64(size_t, double **, const double **, const size_t *,
                         const fgd_average_hparams *, int)

#: the averages by name: "ema" lerp(avg, cur, 1 - decay); "ema_sum" decay avg + (1 - decay)
#: cur; "swa" avg + (cur - avg) / (n + 1); "swa_lerp" lerp(avg, cur, 1 / (n + 1) in float32)
AVERAGES = {"ema": FGD_AVG_EMA, "ema_sum": FGD_AVG_EMA_SUM, "swa": FGD_AVG_SWA,
            "swa_lerp": FGD_AVG_SWA_LERP}


cdef struct AvgData:
    size_t n[2]             # float32 arrays, float64 arrays
    void **avg[2]
    void **cur[2]
    size_t *numel[2]
    int kind                # FGD_AVG_*, used once n_averaged > 0
    double decay
    int64_t n_averaged      # of this update (average_run reads it from *count)
    int64_t *count          # an Averager's count: its counter array's one element


cdef void _average(AvgData *d, int kind) noexcept nogil:
    cdef fgd_average_hparams hp
    hp.kind = kind
    hp.decay = d.decay
    hp.n_averaged = d.n_averaged
    if d.n[0]:
        fgd_average_f32(d.n[0], <float **>d.avg[0], <const float **>d.cur[0], d.numel[0], &hp,
                        _shared.num_threads)
    if d.n[1]:
        fgd_average_f64(d.n[1], <double **>d.avg[1], <const double **>d.cur[1], d.numel[1],
                        &hp, _shared.num_threads)


cdef void average_run(void *ctx) noexcept nogil:
    """One update_parameters: a copy the first time, then the average; the count advances."""
    cdef AvgData *d = <AvgData *>ctx
    d.n_averaged = d.count[0]
    _average(d, FGD_AVG_COPY if d.n_averaged == 0 else d.kind)
    d.count[0] = d.n_averaged + 1


cdef int _average_kind(str kind, double decay) except -1:
    if kind not in AVERAGES:
        raise ValueError(f"kind must be one of {sorted(AVERAGES)}, got {kind!r}")
    if not (0.0 <= decay <= 1.0):
        raise ValueError(f"decay must be in [0, 1], got {decay}")
    return AVERAGES[kind]


cdef int _check_average_arrays(list averaged, list current) except -1:
    """averaged: float32/float64 arrays, native byte order, writeable, contiguous, aligned;
    current[i]: averaged[i]'s dtype, shape and layout, aligned; no two arrays share memory."""
    cdef Py_ssize_t i, n = len(averaged)
    cdef cnp.ndarray a, c
    if len(current) != n:
        raise ValueError(f"current has {len(current)} arrays but averaged has {n}")
    _check_plan_params(averaged, "averaged")
    for i in range(n):
        c = current[i] if isinstance(current[i], np.ndarray) else None
        a = averaged[i]
        if c is None:
            raise TypeError(f"current[{i}] must be a numpy.ndarray, got {type(current[i]).__name__}")
        if cnp.PyArray_TYPE(c) != cnp.PyArray_TYPE(a) or not cnp.PyArray_ISNOTSWAPPED(c):
            raise TypeError(f"current[{i}] has dtype {c.dtype.str} but averaged[{i}] has "
                            f"{a.dtype.str}")
        if not _same_layout(c, a):
            raise ValueError(f"current[{i}] has shape {(<object>c).shape} (strides "
                             f"{(<object>c).strides}) but averaged[{i}] has {(<object>a).shape} "
                             f"(strides {(<object>a).strides})")
        if not cnp.PyArray_ISALIGNED(c):
            raise ValueError(f"current[{i}] is not aligned to its {c.dtype} elements")
    _check_disjoint(averaged + current, [f"averaged[{i}]" for i in range(n)]
                    + [f"current[{i}]" for i in range(n)])
    return 0


cdef int _bind_average(AvgData *d, list averaged, list current) except -1:
    """Check the arrays and fill ``d``'s two dtype groups (the caller frees them)."""
    _check_average_arrays(averaged, current)
    cdef Py_ssize_t i, n = len(averaged), k
    cdef size_t j
    for k in range(2):
        d.n[k] = 0
        d.avg[k] = <void **>malloc((n + 1) * sizeof(void *))
        d.cur[k] = <void **>malloc((n + 1) * sizeof(void *))
        d.numel[k] = <size_t *>malloc((n + 1) * sizeof(size_t))
        if d.avg[k] == NULL or d.cur[k] == NULL or d.numel[k] == NULL:
            raise MemoryError()
    for i in range(n):
        k = 0 if cnp.PyArray_TYPE(<cnp.ndarray>averaged[i]) == cnp.NPY_FLOAT32 else 1
        j = d.n[k]
        d.avg[k][j] = cnp.PyArray_DATA(<cnp.ndarray>averaged[i])
        d.cur[k][j] = cnp.PyArray_DATA(<cnp.ndarray>current[i])
        d.numel[k][j] = <size_t>cnp.PyArray_SIZE(<cnp.ndarray>averaged[i])
        d.n[k] = j + 1
    return 0


cdef void _unbind_average(AvgData *d) noexcept:
    cdef int k
    for k in range(2):
        free(d.avg[k])
        free(d.cur[k])
        free(d.numel[k])
        d.avg[k] = d.cur[k] = NULL
        d.numel[k] = NULL
        d.n[k] = 0


def average_(list averaged, list current, str kind, double decay=0.999, n_averaged=0):
    """One average of ``kind`` (a key of `AVERAGES`) into ``averaged`` from ``current`` in
    place: the formula alone (no first-call copy, no count), with the GIL released.

    ``averaged``: float32/float64 arrays, writeable, contiguous and aligned; ``current[i]``
    of ``averaged[i]``'s dtype and layout; no two arrays share memory. ``decay`` (in [0, 1])
    is read by the EMA kinds, ``n_averaged`` (>= 0) by the SWA kinds."""
    cdef AvgData d
    cdef int k = _average_kind(kind, decay)
    if isinstance(n_averaged, bool) or not isinstance(n_averaged, (int, np.integer)) \
            or n_averaged < 0:
        raise ValueError(f"n_averaged must be an int >= 0, got {n_averaged!r}")
    memset(&d, 0, sizeof(d))
    try:
        _bind_average(&d, averaged, current)
        d.kind = k
        d.decay = decay
        d.n_averaged = n_averaged
        with nogil:
            _average(&d, k)
    finally:
        _unbind_average(&d)


cdef class Averager:
    """``AveragedModel.update_parameters`` bound to fixed arrays, checked once: the averaged
    arrays and the model's arrays they average. ``run()`` from Python, ``hook()`` for C
    loops: each is one update (the first, while ``n_averaged`` is 0, copies ``current``
    into ``averaged``; every later one applies the average of ``kind``), and advances
    ``n_averaged``, in C.

    Parameters
    ----------
    averaged : list of ndarray
        float32/float64 arrays, native byte order, writeable, contiguous and aligned (kept
        alive).
    current : list of ndarray
        ``current[i]`` has ``averaged[i]``'s dtype, shape and layout (kept alive); no two
        arrays of either list share memory.
    kind : {"ema", "ema_sum", "swa", "swa_lerp"}
        A key of `AVERAGES`.
    decay : float, default 0.999
        In [0, 1]; read by the EMA kinds.
    n_averaged : int, optional
        The models averaged so far (default: ``counter``'s count, 0 for a new one).
    counter : ndarray of int64, shape (1,), optional
        Where the count lives (read and advanced in place, so that a ``Backup`` over it
        takes it back with the arrays); by default an array of the averager's own.
    """
    cdef AvgData d
    cdef fgd_hook h
    cdef tuple arrays
    cdef readonly str kind
    #: the count of updates done, in an array (``counter[0] == n_averaged``)
    cdef readonly object counter

    def __cinit__(self):
        memset(&self.d, 0, sizeof(self.d))

    def __dealloc__(self):
        _unbind_average(&self.d)

    def __init__(self, list averaged, list current, str kind="swa", double decay=0.999,
                 n_averaged=None, counter=None):
        cdef int k = _average_kind(kind, decay)
        if counter is None:
            counter = np.zeros(1, np.int64)
        elif not isinstance(counter, np.ndarray):
            raise TypeError(f"counter must be a numpy.ndarray or None, got "
                            f"{type(counter).__name__}")
        _check_counter(<cnp.ndarray>counter, np.int64, 1, "counter", "int64")
        _unbind_average(&self.d)
        _bind_average(&self.d, averaged, current)
        self.d.kind = k
        self.d.decay = decay
        self.kind = kind
        self.counter = counter
        self.d.count = <int64_t *>cnp.PyArray_DATA(<cnp.ndarray>counter)
        if n_averaged is not None:
            self.n_averaged = n_averaged
        self.arrays = (tuple(averaged), tuple(current))
        self.h.run = average_run
        self.h.ctx = &self.d
        self.h.undo = NULL

    @property
    def decay(self):
        return self.d.decay

    @property
    def n_averaged(self):
        """The updates done so far (0: the next one copies)."""
        return self.d.count[0]

    @n_averaged.setter
    def n_averaged(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"n_averaged must be an int >= 0, got {value!r}")
        self.d.count[0] = value

    def bound_to(self, list averaged, list current):
        """True when this averager is over exactly these arrays (the same objects, in order)."""
        cdef Py_ssize_t i
        mine_a, mine_c = self.arrays
        if len(averaged) != len(mine_a) or len(current) != len(mine_c):
            return False
        for i in range(len(averaged)):
            if averaged[i] is not mine_a[i] or current[i] is not mine_c[i]:
                return False
        return True

    def run(self):
        """One update (a copy while ``n_averaged`` is 0), then ``n_averaged += 1``."""
        with nogil:
            average_run(&self.d)

    def hook(self):
        """A PyCapsule (named ``FGD_HOOK_NAME``) whose ``run(ctx)`` is `run`; it keeps this
        object alive."""
        return _hook_capsule(self, &self.h)


# ----------------------------------------------------------------------------- bound updates

cdef class BoundUpdate:
    """One kernel over a plan's parameters, bound to fixed gradient arrays.

    The gradients are validated once, here (``TensorPlan.prepare``); they must already have
    their parameters' memory layout, since nothing is copied later. Then every ``run()``,
    or every call of the C hook in ``hook()``, is one step: counters, kernel, flags, with no
    Python in between. The caller must keep the gradient arrays' memory as it is (the object
    holds references to them and to the plan) and must not run two steps at once.

    Parameters
    ----------
    plan : TensorPlan
    grads : list of ndarray or None
        ``grads[offset:offset + plan.n]`` are the plan's gradients (None skips a parameter).
    offset : int
    need : int
        Bit mask of the state lists the kernel reads (as for ``prepare``).
    algo : {"sgd", "adagrad", "rmsprop", "adam", "adamax", "lion", "adadelta", "radam"}
    hp : dict
        The keyword arguments of the function of that name.
    """
    cdef Update u
    cdef fgd_hook h
    cdef readonly TensorPlan plan
    cdef tuple grads

    def __dealloc__(self):
        update_free(&self.u)

    def __init__(self, TensorPlan plan, list grads, Py_ssize_t offset, int need, str algo,
                 dict hp):
        update_free(&self.u)
        update_alloc(&self.u, plan.n)
        self.u.scalars = plan.scalars
        set_hparams(&self.u, algo, dict(hp))
        plan.prepare(grads, offset, need)
        plan.ready = False
        if plan.keep:
            plan.keep.clear()
            raise ValueError("a bound update needs gradients in their parameters' memory "
                             "layout, aligned to their elements")
        # the batches prepare() sorted, kept: each run() steps the same tensors
        batch_copy(&self.u.batch[0], &plan.u.batch[0], plan.n)
        batch_copy(&self.u.batch[1], &plan.u.batch[1], plan.n)
        self.u.steps = plan.steps
        self.u.is_new = plan.is_new
        self.u.increment = True
        self.u.nthreads = _shared.num_threads
        self.plan = plan
        self.grads = tuple(grads[offset:offset + plan.n])
        self.h.run = _run_hook
        self.h.ctx = &self.u
        self.h.undo = NULL
        self.h.run_at = NULL

    def run(self):
        """Take one step."""
        with nogil:
            run_update(&self.u)

    def hook(self):
        """A PyCapsule (named ``FGD_HOOK_NAME``) holding an ``fgd_hook`` whose ``run(ctx)``
        takes one step. The capsule keeps this object alive."""
        return _hook_capsule(self, &self.h)


cdef void _set_scheduled(Update *u, double lr, double momentum) noexcept nogil:
    """Put a scheduled learning rate, and momentum (SGD, RMSprop) or beta1 (the Adam family,
    Lion), into ``u``'s hyper-parameters."""
    if u.algo == ALGO_SGD:
        u.hp.sgd.lr = lr; u.hp.sgd.momentum = momentum
    elif u.algo == ALGO_ADAGRAD:
        u.hp.adagrad.lr = lr
    elif u.algo == ALGO_RMSPROP:
        u.hp.rmsprop.lr = lr; u.hp.rmsprop.momentum = momentum
    elif u.algo == ALGO_ADAM:
        u.hp.adam.lr = lr; u.hp.adam.beta1 = momentum
    elif u.algo == ALGO_ADAMAX:
        u.hp.adamax.lr = lr; u.hp.adamax.beta1 = momentum
    elif u.algo == ALGO_LION:
        u.hp.lion.lr = lr; u.hp.lion.beta1 = momentum
    elif u.algo == ALGO_ADADELTA:
        u.hp.adadelta.lr = lr
    elif u.algo == ALGO_RADAM:
        u.hp.radam.lr = lr; u.hp.radam.beta1 = momentum
    else:
        u.hp.nadam.lr = lr; u.hp.nadam.beta1 = momentum


#: the algorithms whose scheduled second value is a momentum / a beta1 (the others: none)
SCHEDULED_MOMENTUM = {"sgd": "momentum", "rmsprop": "momentum", "adam": "beta1",
                      "adamax": "beta1", "lion": "beta1", "radam": "beta1", "nadam": "beta1"}


cdef struct TableData:
    Py_ssize_t nupdates
    Update **updates        # the bound updates' own structs, one per parameter group
    const double *values    # rows x nupdates x 2: (lr, momentum or beta1) of each step
    Py_ssize_t rows


cdef void _table_run_at(void *ctx, Py_ssize_t k) noexcept nogil:
    cdef TableData *d = <TableData *>ctx
    cdef Py_ssize_t g
    cdef const double *row
    if k < 0 or k >= d.rows:    # (set() sized the table for the call: never here)
        return
    row = d.values + 2 * k * d.nupdates
    for g in range(d.nupdates):
        _set_scheduled(d.updates[g], row[2 * g], row[2 * g + 1])


cdef void _table_run(void *ctx) noexcept nogil:
    pass


cdef class ScheduleTable:
    """Per-step hyper-parameters for bound updates inside a C loop: a per-step learning-rate
    schedule (and momentum cycling) without a return to Python per step.

    Its hook runs before the updates; at step k of a ``fastgd._nn.Program.train_steps`` call
    it writes row k of the table into each bound update: the learning rate and, for the
    algorithms that have one (`SCHEDULED_MOMENTUM`), the momentum or beta1. Every other
    hyper-parameter stays as bound.

    Parameters
    ----------
    updates : list of BoundUpdate
        One per parameter group, in order; kept alive.
    """
    cdef TableData d
    cdef fgd_hook h
    cdef tuple updates
    cdef object values

    def __cinit__(self):
        self.d.updates = NULL

    def __dealloc__(self):
        free(self.d.updates)

    def __init__(self, list updates):
        cdef Py_ssize_t g, n = len(updates)
        for g in range(n):
            if not isinstance(updates[g], BoundUpdate):
                raise TypeError(f"updates[{g}] must be a BoundUpdate, got "
                                f"{type(updates[g]).__name__}")
        free(self.d.updates)
        self.d.updates = <Update **>_zeros(n, sizeof(Update *))
        for g in range(n):
            self.d.updates[g] = &(<BoundUpdate>updates[g]).u
        self.d.nupdates = n
        self.d.rows = 0
        self.d.values = NULL
        self.updates = tuple(updates)
        self.h.run = _table_run
        self.h.ctx = &self.d
        self.h.undo = NULL
        self.h.run_at = _table_run_at

    def set(self, values):
        """The table of the next train_steps call: a C-contiguous float64 array of shape
        (steps, len(updates), 2), row k the (lr, momentum or beta1) of each group at step k;
        held, not copied."""
        if not isinstance(values, np.ndarray) or values.dtype != np.float64 \
                or values.ndim != 3 or values.shape[1] != self.d.nupdates \
                or values.shape[2] != 2 or not values.flags.c_contiguous:
            raise ValueError(f"values must be a C-contiguous float64 array of shape "
                             f"(steps, {self.d.nupdates}, 2)")
        self.values = values
        self.d.values = <const double *>cnp.PyArray_DATA(<cnp.ndarray>values)
        self.d.rows = values.shape[0]

    def hook(self):
        """A PyCapsule (named ``FGD_HOOK_NAME``) whose ``run_at(ctx, k)`` sets step k's
        values; it keeps this object alive."""
        return _hook_capsule(self, &self.h)


cdef object _hook_capsule(object owner, fgd_hook *h):
    """A PyCapsule (named ``FGD_HOOK_NAME``) holding ``h``, which ``owner`` holds; the
    capsule keeps ``owner`` alive until it is released."""
    cap = PyCapsule_New(h, FGD_HOOK_NAME, _release_hook)
    PyCapsule_SetContext(cap, <void *>owner)
    Py_INCREF(owner)
    return cap


cdef void _release_hook(object capsule) noexcept:
    Py_DECREF(<object>PyCapsule_GetContext(capsule))


# ----------------------------------------------------------------------------- backups

cdef struct BackupData:
    Py_ssize_t n
    void **ptr              # the arrays' data
    size_t *nbytes          # their sizes in bytes
    char *buf               # the copies, back to back
    bint saved              # save() has run since the last discard()


cdef void backup_save(void *ctx) noexcept nogil:
    cdef BackupData *d = <BackupData *>ctx
    cdef Py_ssize_t i
    cdef size_t off = 0
    for i in range(d.n):
        if d.nbytes[i]:
            memcpy(d.buf + off, d.ptr[i], d.nbytes[i])
        off += d.nbytes[i]
    d.saved = True


cdef void backup_restore_hook(void *ctx) noexcept nogil:
    backup_restore(<BackupData *>ctx)


cdef void backup_restore(BackupData *d) noexcept nogil:
    cdef Py_ssize_t i
    cdef size_t off = 0
    for i in range(d.n):
        if d.nbytes[i]:
            memcpy(d.ptr[i], d.buf + off, d.nbytes[i])
        off += d.nbytes[i]


cdef class Backup:
    """A copy of a fixed list of contiguous arrays, taken and put back in C.

    `fastgd.optim.Optimizer.backup` builds one over everything a training step changes: the
    parameters, every state array, the step counters and the "buffer is new" flags, so that
    restoring it undoes a step completely. ``save()`` copies all of them into one buffer
    owned by the backup; ``restore()`` copies them back. ``hook()`` hands ``save`` to C
    loops (`fastgd._nn.Program.train_steps` calls it before each update).

    Parameters
    ----------
    arrays : list of ndarray
        C- or F-contiguous arrays of any dtype; they are kept alive and must keep their
        memory while the backup is in use.
    """
    cdef BackupData d
    cdef fgd_hook h
    cdef tuple arrays
    cdef object buffer

    def __cinit__(self):
        self.d.ptr = NULL
        self.d.nbytes = NULL

    def __dealloc__(self):
        free(self.d.ptr)
        free(self.d.nbytes)

    def __init__(self, list arrays):
        cdef Py_ssize_t n = len(arrays), i
        cdef size_t total = 0
        cdef cnp.ndarray a
        for i in range(n):
            if not isinstance(arrays[i], np.ndarray):
                raise TypeError(f"arrays[{i}] must be a numpy.ndarray, got {type(arrays[i]).__name__}")
            a = <cnp.ndarray>arrays[i]
            if not (cnp.PyArray_IS_C_CONTIGUOUS(a) or cnp.PyArray_IS_F_CONTIGUOUS(a)):
                raise ValueError(f"arrays[{i}] is not contiguous")
            if not cnp.PyArray_ISWRITEABLE(a):
                raise ValueError(f"arrays[{i}] is read-only")
            total += <size_t>cnp.PyArray_NBYTES(a)
        free(self.d.ptr)
        free(self.d.nbytes)
        self.d.ptr = <void **>malloc((n if n > 0 else 1) * sizeof(void *))
        self.d.nbytes = <size_t *>malloc((n if n > 0 else 1) * sizeof(size_t))
        if self.d.ptr == NULL or self.d.nbytes == NULL:
            raise MemoryError()
        for i in range(n):
            a = <cnp.ndarray>arrays[i]
            self.d.ptr[i] = cnp.PyArray_DATA(a)
            self.d.nbytes[i] = <size_t>cnp.PyArray_NBYTES(a)
        self.buffer = np.empty(total, np.uint8)
        self.d.buf = <char *>cnp.PyArray_DATA(<cnp.ndarray>self.buffer)
        self.d.n = n
        self.d.saved = False
        self.arrays = tuple(arrays)
        self.h.run = backup_save
        self.h.ctx = &self.d
        self.h.undo = backup_restore_hook
        self.h.run_at = NULL

    def covers(self, list arrays):
        """True when this backup is over exactly ``arrays`` (the same objects, in order)."""
        cdef Py_ssize_t i
        if len(arrays) != len(self.arrays):
            return False
        for i in range(len(arrays)):
            if arrays[i] is not self.arrays[i]:
                return False
        return True

    @property
    def saved(self):
        """Whether ``save()`` (or the hook) has run since the backup was made or discarded."""
        return bool(self.d.saved)

    @property
    def nbytes(self):
        """Bytes one copy takes."""
        return self.buffer.nbytes

    def save(self):
        """Copy every array into the backup."""
        with nogil:
            backup_save(&self.d)

    def restore(self):
        """Copy the last ``save()`` back into the arrays; False (and nothing written) when
        there is none since the backup was made or discarded."""
        if not self.d.saved:
            return False
        with nogil:
            backup_restore(&self.d)
        return True

    def discard(self):
        """Forget the last ``save()``: ``restore()`` does nothing until the next one."""
        self.d.saved = False

    def hook(self):
        """A PyCapsule (named ``FGD_HOOK_NAME``) holding an ``fgd_hook`` whose ``run(ctx)`` is
        ``save()`` and ``undo(ctx)`` puts the copy back (``restore()`` without its check).
        The capsule keeps this object alive."""
        return _hook_capsule(self, &self.h)
