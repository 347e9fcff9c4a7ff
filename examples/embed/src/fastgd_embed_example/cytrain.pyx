# cython: language_level=3, boundscheck=False, wraparound=False
"""fastgd's Adam from Cython: `from fastgd.kernels cimport ...`, then calls inside `nogil`.

The module is compiled with fastgd.get_include() on its include path and linked against
nothing of fastgd: importing it imports fastgd.kernels and takes adam_f32 and adam_f64 from
its C-API capsules (checking their signatures)."""
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free, malloc

from fastgd.kernels cimport adam_f32, adam_f64, fgd_adam_hparams


cdef struct Lists:
    # ntensors arrays per list, as the kernels take them (one dtype: float or double)
    size_t n
    void **param
    void **grad
    void **exp_avg
    void **exp_avg_sq
    void **max_exp_avg_sq
    size_t *numel
    int64_t *step
    double *work


cdef int lists_alloc(Lists *L, size_t n) except -1:
    L.n = n
    L.param = <void **>calloc(n + 1, sizeof(void *))
    L.grad = <void **>calloc(n + 1, sizeof(void *))
    L.exp_avg = <void **>calloc(n + 1, sizeof(void *))
    L.exp_avg_sq = <void **>calloc(n + 1, sizeof(void *))
    L.max_exp_avg_sq = <void **>calloc(n + 1, sizeof(void *))
    L.numel = <size_t *>calloc(n + 1, sizeof(size_t))
    L.step = <int64_t *>calloc(n + 1, sizeof(int64_t))
    L.work = <double *>calloc(2 * n + 1, sizeof(double))
    if not (L.param and L.grad and L.exp_avg and L.exp_avg_sq and L.max_exp_avg_sq
            and L.numel and L.step and L.work):
        lists_free(L)
        raise MemoryError()
    return 0


cdef void lists_free(Lists *L) noexcept:
    free(L.param); free(L.grad); free(L.exp_avg); free(L.exp_avg_sq)
    free(L.max_exp_avg_sq); free(L.numel); free(L.step); free(L.work)


cdef void run_adam(int dtype64, Lists *L, const fgd_adam_hparams *hp, int nthreads) noexcept nogil:
    if dtype64:
        adam_f64(L.n, <double **>L.param, <const double **>L.grad, <double **>L.exp_avg,
                 <double **>L.exp_avg_sq,
                 <double **>L.max_exp_avg_sq if hp.amsgrad else NULL,
                 L.numel, L.step, hp, L.work, nthreads)
    else:
        adam_f32(L.n, <float **>L.param, <const float **>L.grad, <float **>L.exp_avg,
                 <float **>L.exp_avg_sq,
                 <float **>L.max_exp_avg_sq if hp.amsgrad else NULL,
                 L.numel, L.step, hp, L.work, nthreads)


cdef double empty[1]   # the address given for arrays of no element (never read)


cdef void *address(object a, str fmt, Py_ssize_t numel, bint writable) except NULL:
    """The first element of a C-contiguous buffer of `numel` items of format `fmt`."""
    cdef const unsigned char[::1] bytes_view
    m = memoryview(a)
    if m.format != fmt or not m.c_contiguous or m.nbytes != numel * m.itemsize:
        raise ValueError(f"expected a contiguous array of {numel} '{fmt}' items, "
                         f"got format {m.format!r}, {m.nbytes} bytes")
    if writable and m.readonly:
        raise ValueError("the array must be writable")
    if numel == 0:
        return <void *>empty
    bytes_view = m.cast("B")
    return <void *>&bytes_view[0]


cdef fgd_adam_hparams make_hparams(double lr, double beta1, double beta2, double eps,
                                   double weight_decay, bint amsgrad, bint maximize,
                                   bint decoupled_weight_decay) noexcept:
    cdef fgd_adam_hparams hp
    hp.lr = lr
    hp.beta1 = beta1
    hp.beta2 = beta2
    hp.eps = eps
    hp.weight_decay = weight_decay
    hp.amsgrad = amsgrad
    hp.maximize = maximize
    hp.decoupled_weight_decay = decoupled_weight_decay
    return hp


def adam_step(params, grads, exp_avgs, exp_avg_sqs, long long step, *, double lr=1e-3,
              double beta1=0.9, double beta2=0.999, double eps=1e-8, double weight_decay=0.0,
              bint amsgrad=False, bint maximize=False, bint decoupled_weight_decay=False,
              max_exp_avg_sqs=None, int nthreads=0):
    """One Adam step over lists of float32 or float64 arrays, with the GIL released."""
    cdef Py_ssize_t n = len(params)
    cdef size_t t
    cdef Lists L
    cdef fgd_adam_hparams hp = make_hparams(lr, beta1, beta2, eps, weight_decay, amsgrad,
                                            maximize, decoupled_weight_decay)
    if not (len(grads) == len(exp_avgs) == len(exp_avg_sqs) == n):
        raise ValueError("params, grads, exp_avgs and exp_avg_sqs differ in length")
    if amsgrad and (max_exp_avg_sqs is None or len(max_exp_avg_sqs) != n):
        raise ValueError("amsgrad needs one max_exp_avg_sq per parameter")
    if step < 1:
        raise ValueError("step must be >= 1")
    fmt = memoryview(params[0]).format if n else "f"
    if fmt not in ("f", "d"):
        raise TypeError("the arrays must be float32 or float64")
    cdef int dtype64 = fmt == "d"
    lists_alloc(&L, <size_t>n)
    try:
        # the memoryviews of `address` may go: the arrays themselves stay alive (the lists
        # hold them) and numpy arrays do not move
        for t in range(<size_t>n):
            numel = memoryview(params[t]).nbytes // memoryview(params[t]).itemsize
            L.numel[t] = numel
            L.step[t] = step
            L.param[t] = address(params[t], fmt, numel, True)
            L.grad[t] = address(grads[t], fmt, numel, False)
            L.exp_avg[t] = address(exp_avgs[t], fmt, numel, True)
            L.exp_avg_sq[t] = address(exp_avg_sqs[t], fmt, numel, True)
            if amsgrad:
                L.max_exp_avg_sq[t] = address(max_exp_avg_sqs[t], fmt, numel, True)
        with nogil:
            run_adam(dtype64, &L, &hp, nthreads)
    finally:
        lists_free(&L)


def fit(params, targets, long long steps, *, double lr=1e-3, double beta1=0.9,
        double beta2=0.999, double eps=1e-8, double weight_decay=0.0, int nthreads=0):
    """Minimise sum(0.5 (param - target)^2) with `steps` Adam steps from zero moments; the
    gradients and moments live in buffers of this module, the loop runs without the GIL.
    Returns the loss before the last step (0.0 for steps == 0)."""
    cdef Py_ssize_t n = len(params)
    cdef size_t t, i, size
    cdef Lists L
    cdef void **target
    cdef long long k
    cdef double loss = 0.0, diff
    cdef fgd_adam_hparams hp = make_hparams(lr, beta1, beta2, eps, weight_decay, False, False,
                                            False)
    if len(targets) != n:
        raise ValueError("params and targets differ in length")
    fmt = memoryview(params[0]).format if n else "f"
    if fmt not in ("f", "d"):
        raise TypeError("the arrays must be float32 or float64")
    cdef int dtype64 = fmt == "d"
    size = sizeof(double) if dtype64 else sizeof(float)
    lists_alloc(&L, <size_t>n)
    target = <void **>calloc(n + 1, sizeof(void *))
    try:
        if target == NULL:
            raise MemoryError()
        for t in range(<size_t>n):
            numel = memoryview(params[t]).nbytes // memoryview(params[t]).itemsize
            L.numel[t] = numel
            L.param[t] = address(params[t], fmt, numel, True)
            target[t] = address(targets[t], fmt, numel, False)
            # the extension's own buffers: gradient and zeroed moments
            L.grad[t] = calloc(numel + 1, size)
            L.exp_avg[t] = calloc(numel + 1, size)
            L.exp_avg_sq[t] = calloc(numel + 1, size)
            if not (L.grad[t] and L.exp_avg[t] and L.exp_avg_sq[t]):
                raise MemoryError()
        with nogil:
            for k in range(1, steps + 1):
                loss = 0.0
                for t in range(L.n):
                    L.step[t] = k
                    for i in range(L.numel[t]):
                        if dtype64:
                            diff = (<double *>L.param[t])[i] - (<double *>target[t])[i]
                            (<double *>L.grad[t])[i] = diff
                        else:
                            (<float *>L.grad[t])[i] = ((<float *>L.param[t])[i]
                                                       - (<float *>target[t])[i])
                            diff = (<float *>L.grad[t])[i]
                        loss += 0.5 * diff * diff
                run_adam(dtype64, &L, &hp, nthreads)
    finally:
        for t in range(<size_t>n):
            free(L.grad[t]); free(L.exp_avg[t]); free(L.exp_avg_sq[t])
        free(target)
        lists_free(&L)
    return loss
