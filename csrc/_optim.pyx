# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython bindings of the fused optimizer kernels (csrc/kernels/fastgd_optim.h).

This layer does three things and nothing else:

1. ``TensorPlan`` validates a list of parameters and their state arrays once and caches
   their raw pointers, so that a step over many small arrays costs no Python per array;
2. ``TensorPlan.prepare`` validates a step's gradients against the cached parameters and
   sorts the active tensors into a float32 and a float64 batch (the dtype is chosen here,
   once per tensor, never inside the kernels);
3. ``sgd``/``adagrad``/``rmsprop``/``adam`` release the GIL and run one kernel per batch.

Every check happens before any memory is written: a bad gradient raises and leaves every
parameter and state untouched.
"""
cimport numpy as cnp
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.ref cimport PyObject
from libc.stdint cimport int64_t, intptr_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

import numpy as np

cnp.import_array()


cdef extern from "parallel.h" nogil:
    int fgd_default_threads()
    int fgd_have_openmp()


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


# ----------------------------------------------------------------------------- threads

cdef int _num_threads = 0  # 0: OpenMP's default (OMP_NUM_THREADS or the core count)


def set_num_threads(n):
    """Set the threads the kernels may use (``None`` restores the default)."""
    global _num_threads
    if n is None:
        _num_threads = 0
        return
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int or None, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    _num_threads = min(n, 1 << 16)


def get_num_threads():
    """Threads the kernels use for large updates."""
    return _num_threads if _num_threads > 0 else fgd_default_threads()


def have_openmp():
    return bool(fgd_have_openmp())


# ----------------------------------------------------------------------------- plans

DEF MAX_STATES = 4

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


cdef str _dtname(cnp.ndarray a):
    return str(a.dtype)


cdef class TensorPlan:
    """Parameters and their state arrays, validated once, as raw pointers.

    Parameters
    ----------
    params : list of ndarray
        float32/float64, writeable, C- or F-contiguous, pairwise non-overlapping.
    states : list of (list of ndarray or None)
        Up to four state lists, each aligned with ``params`` (same dtype, shape, layout);
        ``None`` for a state the current hyper-parameters do not use.
    steps : ndarray of int64, shape (len(params),)
        Per-parameter step counters, read (and advanced by each kernel call) in place.
    is_new : ndarray of uint8, shape (len(params),)
        Per-parameter "momentum buffer not yet initialised" flags (SGD).
    param_name, state_names : str
        Names used in error messages.
    """
    cdef readonly Py_ssize_t n
    cdef readonly int nstates
    cdef tuple params
    cdef tuple states
    cdef object steps_arr, new_arr
    cdef int64_t *steps
    cdef unsigned char *is_new
    cdef str param_name
    cdef tuple state_names
    # per-tensor cached facts
    cdef void **pp
    cdef void **sp          # nstates * n pointers, state k of tensor i at sp[k * n + i]
    cdef size_t *numel
    cdef int *typenum
    # per-step scratch, one batch per dtype (0: float32, 1: float64)
    cdef size_t cnt[2]
    cdef void **bp[2]
    cdef void **bg[2]
    cdef void **bs[2][MAX_STATES]
    cdef size_t *bn[2]
    cdef int64_t *bstep[2]
    cdef unsigned char *bnew[2]
    cdef Py_ssize_t *bidx[2]
    cdef double *work       # 2 * n doubles of kernel workspace
    cdef void *block
    cdef list keep          # gradients copied to the parameter's layout during a step
    cdef bint ready         # prepare() succeeded and no kernel has consumed it yet

    def __cinit__(self):
        self.block = NULL

    def __dealloc__(self):
        free(self.block)

    def __init__(self, list params, list states, cnp.ndarray steps, cnp.ndarray is_new,
                 str param_name="params", tuple state_names=()):
        cdef Py_ssize_t n = len(params), i, j, k
        cdef cnp.ndarray p, s
        if len(states) > MAX_STATES:
            raise ValueError("at most 4 state lists")
        self.n = n
        self.nstates = len(states)
        self.param_name = param_name
        self.state_names = state_names + tuple(f"state{k}" for k in range(len(state_names), len(states)))
        for i in range(n):
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
        for k in range(self.nstates):
            if states[k] is None:
                continue
            if len(states[k]) != n:
                raise ValueError(f"{self.state_names[k]} has {len(states[k])} arrays for {n} parameters")
            for i in range(n):
                s = states[k][i] if isinstance(states[k][i], np.ndarray) else None
                p = params[i]
                if s is None:
                    raise TypeError(f"{self.state_names[k]}[{i}] must be a numpy.ndarray, "
                                    f"got {type(states[k][i]).__name__}")
                if cnp.PyArray_TYPE(s) != cnp.PyArray_TYPE(p) or not cnp.PyArray_ISNOTSWAPPED(s):
                    raise TypeError(f"{self.state_names[k]}[{i}] has dtype {s.dtype} but "
                                    f"{param_name}[{i}] has {p.dtype}")
                if not _same_layout(s, p):
                    raise ValueError(f"{self.state_names[k]}[{i}] has shape {(<object>s).shape} (strides {(<object>s).strides}) "
                                     f"but {param_name}[{i}] has {(<object>p).shape} (strides {(<object>p).strides})")
                if not cnp.PyArray_ISWRITEABLE(s):
                    raise ValueError(f"{self.state_names[k]}[{i}] is read-only")
        _check_disjoint([params[i] for i in range(n)]
                        + [a for lst in states if lst is not None for a in lst],
                        [f"{param_name}[{i}]" for i in range(n)]
                        + [f"{self.state_names[k]}[{i}]" for k in range(self.nstates)
                           if states[k] is not None for i in range(n)])
        if steps.dtype != np.int64 or steps.ndim != 1 or steps.shape[0] != n \
                or not steps.flags.c_contiguous or not steps.flags.writeable:
            raise ValueError("steps must be a writeable int64 vector with one entry per parameter")
        if is_new.dtype != np.uint8 or is_new.ndim != 1 or is_new.shape[0] != n \
                or not is_new.flags.c_contiguous or not is_new.flags.writeable:
            raise ValueError("is_new must be a writeable uint8 vector with one entry per parameter")

        self.params = tuple(params)
        self.states = tuple(None if lst is None else tuple(lst) for lst in states)
        self.steps_arr = steps
        self.new_arr = is_new
        self.steps = <int64_t *>cnp.PyArray_DATA(steps)
        self.is_new = <unsigned char *>cnp.PyArray_DATA(is_new)

        # one allocation for every per-tensor array
        cdef size_t m = n if n > 0 else 1
        cdef size_t nptr = m * (1 + MAX_STATES) + 2 * m * (2 + MAX_STATES)
        cdef size_t nbytes = 2 * m * sizeof(double) + nptr * sizeof(void *) \
            + m * (sizeof(size_t) + sizeof(int)) \
            + 2 * m * (sizeof(size_t) + sizeof(int64_t) + sizeof(Py_ssize_t) + 1)
        self.block = malloc(nbytes)
        if self.block == NULL:
            raise MemoryError()
        memset(self.block, 0, nbytes)
        self.work = <double *>self.block
        cdef void **ptrs = <void **>(self.work + 2 * m)
        self.pp = ptrs; ptrs += m
        self.sp = ptrs; ptrs += MAX_STATES * m
        for j in range(2):
            self.bp[j] = ptrs; ptrs += m
            self.bg[j] = ptrs; ptrs += m
            for k in range(MAX_STATES):
                self.bs[j][k] = ptrs; ptrs += m
        cdef size_t *sizes = <size_t *>ptrs
        self.numel = sizes; sizes += m
        for j in range(2):
            self.bn[j] = sizes; sizes += m
        cdef int64_t *st = <int64_t *>sizes
        for j in range(2):
            self.bstep[j] = st; st += m
        cdef Py_ssize_t *ix = <Py_ssize_t *>st
        for j in range(2):
            self.bidx[j] = ix; ix += m
        cdef int *tn = <int *>ix
        self.typenum = tn; tn += m
        cdef unsigned char *nw = <unsigned char *>tn
        for j in range(2):
            self.bnew[j] = nw; nw += m

        for i in range(n):
            p = params[i]
            self.pp[i] = cnp.PyArray_DATA(p)
            self.numel[i] = <size_t>cnp.PyArray_SIZE(p)
            self.typenum[i] = cnp.PyArray_TYPE(p)
            for k in range(self.nstates):
                if states[k] is not None:
                    self.sp[k * n + i] = cnp.PyArray_DATA(<cnp.ndarray>states[k][i])
        self.keep = []
        self.ready = False

    def same_params(self, list params):
        """True when ``params`` holds exactly this plan's arrays, in order."""
        cdef Py_ssize_t i
        if PyList_GET_SIZE(params) != self.n:
            return False
        for i in range(self.n):
            if PyList_GET_ITEM(params, i) != <PyObject *>self.params[i]:
                return False
        return True

    def prepare(self, grads, Py_ssize_t offset, int need):
        """Validate ``grads[offset:offset + n]`` and sort the tensors into dtype batches.

        ``None`` gradients skip their parameter (its state and step stay as they are).
        ``need`` is a bit mask of the state lists the coming kernel reads. Nothing is
        written here; the next kernel call on this plan consumes the batches.
        """
        cdef Py_ssize_t i, k, b, gi
        cdef object go
        cdef cnp.ndarray g, p
        cdef int tn
        for k in range(MAX_STATES):
            if need & (1 << k) and (k >= self.nstates or self.states[k] is None):
                raise RuntimeError(f"internal error: state list {k} is needed but missing")
        if len(grads) < offset + self.n:
            raise ValueError(f"expected at least {offset + self.n} gradients, got {len(grads)}")
        self.ready = False
        self.cnt[0] = 0
        self.cnt[1] = 0
        self.keep.clear()
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
            g = <cnp.ndarray>go
            tn = cnp.PyArray_TYPE(g)
            if tn != self.typenum[i] or not cnp.PyArray_ISNOTSWAPPED(g):
                raise TypeError(f"grads[{gi}] has dtype {g.dtype.str} but {self.param_name}[{gi}] "
                                f"has {p.dtype.str}")
            if not _same_layout(g, p):
                if (<object>g).shape != (<object>p).shape:
                    raise ValueError(f"grads[{gi}] has shape {(<object>g).shape} but {self.param_name}[{gi}] "
                                     f"has shape {(<object>p).shape}")
                # same shape, another memory layout: copy to the parameter's layout
                g = np.asarray(g, order="C" if cnp.PyArray_IS_C_CONTIGUOUS(p) else "F")
                self.keep.append(g)
            if _overlap(g, p):
                raise ValueError(f"grads[{gi}] shares memory with {self.param_name}[{gi}]")
            for k in range(self.nstates):
                if self.states[k] is not None and _overlap(g, <cnp.ndarray>self.states[k][i]):
                    raise ValueError(f"grads[{gi}] shares memory with optimizer state "
                                     f"{self.state_names[k]}[{gi}]")
            b = 0 if tn == cnp.NPY_FLOAT32 else 1
            k = <Py_ssize_t>self.cnt[b]
            self.bp[b][k] = self.pp[i]
            self.bg[b][k] = cnp.PyArray_DATA(g)
            self.bn[b][k] = self.numel[i]
            self.bidx[b][k] = i
            for tn in range(MAX_STATES):
                self.bs[b][tn][k] = self.sp[tn * self.n + i]
            self.cnt[b] += 1
        self.ready = True

    cdef int begin(self, bint increment) except -1:
        """Consume the prepared batches: advance the step counters of the active tensors."""
        cdef Py_ssize_t b, k, i
        if not self.ready:
            raise RuntimeError("TensorPlan.prepare() must run before each kernel call")
        self.ready = False
        for b in range(2):
            for k in range(<Py_ssize_t>self.cnt[b]):
                i = self.bidx[b][k]
                if increment:
                    self.steps[i] += 1
                self.bstep[b][k] = self.steps[i]
                self.bnew[b][k] = self.is_new[i]
        return 0

    cdef void finish(self, bint clear_new):
        cdef Py_ssize_t b, k
        if clear_new:
            for b in range(2):
                for k in range(<Py_ssize_t>self.cnt[b]):
                    self.is_new[self.bidx[b][k]] = 0
        self.keep.clear()


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
# Each runs on the batches of the last TensorPlan.prepare(), with the GIL released.
# State lists by position: SGD (momentum_buffer); Adagrad (sum); RMSprop (square_avg,
# momentum_buffer, grad_avg); Adam (exp_avg, exp_avg_sq, max_exp_avg_sq).

def sgd(TensorPlan plan, *, double lr, double momentum, double dampening, double weight_decay,
        bint nesterov, bint maximize, bint increment=True):
    cdef fgd_sgd_hparams hp
    hp.lr = lr; hp.momentum = momentum; hp.dampening = dampening
    hp.weight_decay = weight_decay; hp.nesterov = nesterov; hp.maximize = maximize
    plan.begin(increment)
    cdef int nt = _num_threads
    with nogil:
        if plan.cnt[0]:
            fgd_sgd_f32(plan.cnt[0], <float **>plan.bp[0], <const float **>plan.bg[0],
                        <float **>plan.bs[0][0], plan.bnew[0], plan.bn[0], &hp, nt)
        if plan.cnt[1]:
            fgd_sgd_f64(plan.cnt[1], <double **>plan.bp[1], <const double **>plan.bg[1],
                        <double **>plan.bs[1][0], plan.bnew[1], plan.bn[1], &hp, nt)
    plan.finish(momentum != 0)


def adagrad(TensorPlan plan, *, double lr, double lr_decay, double weight_decay, double eps,
            bint maximize, bint increment=True):
    cdef fgd_adagrad_hparams hp
    hp.lr = lr; hp.lr_decay = lr_decay; hp.weight_decay = weight_decay; hp.eps = eps
    hp.maximize = maximize
    plan.begin(increment)
    cdef int nt = _num_threads
    with nogil:
        if plan.cnt[0]:
            fgd_adagrad_f32(plan.cnt[0], <float **>plan.bp[0], <const float **>plan.bg[0],
                            <float **>plan.bs[0][0], plan.bn[0], plan.bstep[0], &hp,
                            plan.work, nt)
        if plan.cnt[1]:
            fgd_adagrad_f64(plan.cnt[1], <double **>plan.bp[1], <const double **>plan.bg[1],
                            <double **>plan.bs[1][0], plan.bn[1], plan.bstep[1], &hp,
                            plan.work, nt)
    plan.finish(False)


def rmsprop(TensorPlan plan, *, double lr, double alpha, double eps, double weight_decay,
            double momentum, bint centered, bint maximize, bint increment=True):
    cdef fgd_rmsprop_hparams hp
    hp.lr = lr; hp.alpha = alpha; hp.eps = eps; hp.weight_decay = weight_decay
    hp.momentum = momentum; hp.centered = centered; hp.maximize = maximize
    plan.begin(increment)
    cdef int nt = _num_threads
    with nogil:
        if plan.cnt[0]:
            fgd_rmsprop_f32(plan.cnt[0], <float **>plan.bp[0], <const float **>plan.bg[0],
                            <float **>plan.bs[0][0], <float **>plan.bs[0][2],
                            <float **>plan.bs[0][1], plan.bn[0], &hp, nt)
        if plan.cnt[1]:
            fgd_rmsprop_f64(plan.cnt[1], <double **>plan.bp[1], <const double **>plan.bg[1],
                            <double **>plan.bs[1][0], <double **>plan.bs[1][2],
                            <double **>plan.bs[1][1], plan.bn[1], &hp, nt)
    plan.finish(False)


def adam(TensorPlan plan, *, double lr, double beta1, double beta2, double eps,
         double weight_decay, bint amsgrad, bint maximize, bint decoupled_weight_decay,
         bint increment=True):
    cdef fgd_adam_hparams hp
    hp.lr = lr; hp.beta1 = beta1; hp.beta2 = beta2; hp.eps = eps
    hp.weight_decay = weight_decay; hp.amsgrad = amsgrad; hp.maximize = maximize
    hp.decoupled_weight_decay = decoupled_weight_decay
    plan.begin(increment)
    cdef int nt = _num_threads
    with nogil:
        if plan.cnt[0]:
            fgd_adam_f32(plan.cnt[0], <float **>plan.bp[0], <const float **>plan.bg[0],
                         <float **>plan.bs[0][0], <float **>plan.bs[0][1],
                         <float **>plan.bs[0][2], plan.bn[0], plan.bstep[0], &hp,
                         plan.work, nt)
        if plan.cnt[1]:
            fgd_adam_f64(plan.cnt[1], <double **>plan.bp[1], <const double **>plan.bg[1],
                         <double **>plan.bs[1][0], <double **>plan.bs[1][1],
                         <double **>plan.bs[1][2], plan.bn[1], plan.bstep[1], &hp,
                         plan.work, nt)
    plan.finish(False)
