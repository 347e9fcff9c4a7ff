# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The compiled ``Program`` of the neural-network kernels; ``fastgd._nn`` also re-exports the
checked single operations of ``_nn_ops.pyx`` (``linear_forward``, ``loss``, ...), which the
layer objects of ``fastgd.nn`` use.

``Program``: a whole ``Sequential`` model compiled to a list of ops with preallocated
buffers, whose ``forward``/``backward``/``train_batch`` run every layer without returning
to Python and allocate nothing once the buffers have grown to the batch size.

The dtype (float32 or float64) is chosen once per call: each entry point calls one
``floating`` routine (``run_forward``, ``run_backward``, ``Program._step``,
``Program._steps``) with pointers of the model's dtype, which calls the ``floating``
kernels of ``_nn_kernels.pxd``. The kernels never upcast.
"""
cimport numpy as cnp
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.pycapsule cimport (PyCapsule_GetContext, PyCapsule_GetPointer, PyCapsule_IsValid,
                                PyCapsule_New, PyCapsule_SetContext)
from cpython.ref cimport Py_DECREF, Py_INCREF
from cython cimport floating
from libc.math cimport isfinite
from libc.limits cimport INT_MAX
from libc.stdint cimport int64_t, intptr_t
from libc.string cimport memcpy, memset

from _nn_checks cimport _arr, _blas_int, _check_labels, _dim
from _nn_kernels cimport (share_blas_settings, FGD_ACT_IDENTITY, LOSS_CE, act_backward, bias_act, fgd_gather_i64,
                          gather_rows, linear_bwd, linear_fwd, loss_kernel, softmax_bwd,
                          softmax_fwd)

import numpy as np

from fastgd._nn_ops import (ACTIVATIONS, LOSSES, activation_backward, activation_forward,
                            linear_backward, linear_forward, loss, softmax_backward,
                            softmax_forward)

cnp.import_array()

# products follow the settings of fastgd._optim (thread count, pool of the large ones)
from . import _optim as _optim_module
share_blas_settings(_optim_module.shared_capsule())


#: train_steps saves its back-up at least this often (in steps): a non-finite loss then
#: takes at most this many steps again to rebuild the state before the last finite one
cdef Py_ssize_t CHECKPOINT_EVERY = 32
TRAIN_CHECKPOINT_EVERY = CHECKPOINT_EVERY


cdef extern from "fgd_hook.h" nogil:
    ctypedef struct fgd_hook:
        void (*run)(void *ctx) noexcept nogil
        void *ctx
        void (*undo)(void *ctx) noexcept nogil
        void (*run_at)(void *ctx, Py_ssize_t k) noexcept nogil
    const char *FGD_HOOK_NAME
    ctypedef struct fgd_reduce:
        void (*run)(void *ctx) noexcept nogil
        void *ctx
        void *buf
        Py_ssize_t count
        int typenum
        int rank, size
    const char *FGD_REDUCE_NAME


cdef enum:
    # Op.kind
    OP_LINEAR = 0
    OP_ACT = 1
    OP_SOFTMAX = 2


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
            linear_fwd[floating](inp, <floating *>o.W, <floating *>o.b, z, a, rows, o.fin,
                                 o.fout, o.act, o.slope)
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
            linear_bwd[floating](inp, <floating *>o.W, g, <floating *>o.dW,
                                 <floating *>o.db, gin, <int>rows, o.fin, o.fout)
        elif gin == NULL:
            return
        elif o.kind == OP_ACT:
            act_backward[floating](gin, g, inp, <floating *>o.out, rows * o.fout, o.act, o.slope)
        else:
            softmax_bwd[floating](<floating *>o.out, g, gin, rows, o.fout)
        g = gin


cdef void accumulate_grads(Op *ops, int nops, floating *acc, int mode) noexcept nogil:
    """Gradient accumulation over every parameter gradient (dW, db of each linear op, in op
    order, back to back in ``acc``), in the dtype: ``mode`` 0 copies the gradients into
    ``acc``, 1 adds them to it (``acc = acc + g``), 2 adds ``acc`` to them (``g = g + acc``,
    the last micro-batch of a group: the gradients then hold the group's sum)."""
    cdef int i
    cdef Py_ssize_t off = 0, n
    cdef Op *o
    for i in range(nops):
        o = &ops[i]
        if o.kind != OP_LINEAR:
            continue
        n = <Py_ssize_t>o.fin * o.fout
        _accumulate_one(<floating *>o.dW, acc + off, n, mode)
        off += n
        if o.db != NULL:
            _accumulate_one(<floating *>o.db, acc + off, o.fout, mode)
            off += o.fout


cdef inline void _accumulate_one(floating *g, floating *acc, Py_ssize_t n,
                                 int mode) noexcept nogil:
    cdef Py_ssize_t j
    if mode == 0:
        memcpy(acc, g, n * sizeof(floating))
    elif mode == 1:
        for j in range(n):
            acc[j] = acc[j] + g[j]
    else:
        for j in range(n):
            g[j] = g[j] + acc[j]


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
    cdef readonly Py_ssize_t grad_size     # elements of all parameter gradients
    cdef object accbuf                     # train_steps' accumulation buffer (grad_size)

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
        self.grad_size = 0
        self.accbuf = None
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
                self.grad_size += <Py_ssize_t>o.fin * o.fout + (o.fout if b is not None else 0)
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
            if self.typenum == cnp.NPY_FLOAT32:
                run_forward(self.ops, self.nops, <const float *>self.x_ptr, rows)
            else:
                run_forward(self.ops, self.nops, <const double *>self.x_ptr, rows)
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
        memcpy(self.lossgrad_ptr, cnp.PyArray_DATA(g), cnp.PyArray_NBYTES(g))
        with nogil:
            self._backward(rows, input_grad)
        if not input_grad:
            return None
        cdef cnp.ndarray res = np.empty((rows, self.in_features), self.dt)
        memcpy(cnp.PyArray_DATA(res), self.ops[0].gin, cnp.PyArray_NBYTES(res))
        return res

    def train_batch(self, X, y, idx, Py_ssize_t start, Py_ssize_t stop, str loss_kind,
                    Py_ssize_t grad_rows=0):
        """Gather rows ``idx[start:stop]`` of X and y, run forward, the fused loss and
        backward (parameter gradients only). Returns the mean batch loss.

        X (n, in_features) C-contiguous in the model dtype; y int64 labels (n,) for
        "cross_entropy", else (n, out_features) in the model dtype; idx int64 (m,).
        ``grad_rows`` (0: the batch's own rows): the gradients are those of the loss summed
        over the batch and divided by ``grad_rows`` rows (times out_features, but for
        cross-entropy) instead of the batch's mean, the batch's share of the mean over a
        group of ``grad_rows`` rows (``train_steps``' gradient accumulation).
        """
        if grad_rows < 0:
            raise ValueError(f"grad_rows must be >= 0, got {grad_rows}")
        return self._batch(X, y, idx, start, stop, LOSSES[loss_kind], True, grad_rows)

    def loss_batch(self, X, y, idx, Py_ssize_t start, Py_ssize_t stop, str loss_kind):
        """The mean loss of rows ``idx[start:stop]``, forward only."""
        return self._batch(X, y, idx, start, stop, LOSSES[loss_kind], False, 0)

    def train_steps(self, X, y, idx, Py_ssize_t start, Py_ssize_t stop,
                    Py_ssize_t batch_size, str loss_kind, backup, list hooks,
                    double[::1] losses, Py_ssize_t accumulate=1, reduce=None):
        """Training steps over rows ``idx[start:stop]``, ``batch_size`` rows a batch (the
        last may be shorter), all in C without the GIL.

        Each step: gather the batch, forward, fused loss; if the loss is finite, backward
        (parameter gradients only), then every hook of ``hooks``
        (``fastgd._optim.BoundUpdate.hook()`` capsules: optimizer updates bound to this
        program's gradients; a hook with ``run_at`` is given the step's index k from
        ``start``, so a ``fastgd._optim.ScheduleTable`` sets step k's learning rates), in
        order. The mean loss of step k goes to ``losses[k]``. Stops
        after the first non-finite loss, which is left in ``losses``. Returns the number of
        steps taken (losses written).

        ``backup`` (``fastgd._optim.Backup.hook()``, or None) is the optimizer's back-up of
        the parameters and its state. When the call returns, it holds the state from before
        the update of the last step with a finite loss (the last step taken, or the one
        before a non-finite loss), exactly as if it had been saved before every update. It
        is saved only at checkpoints (the first step, every ``TRAIN_CHECKPOINT_EVERY`` steps and
        the last step), which costs a copy of the state every few dozen steps instead of
        every step: after a non-finite loss, the state of the last checkpoint is put back
        and the steps since are taken again (training is deterministic: the same bits), up
        to the start of the last finite step, which is saved. The parameters are then left
        at that state too, so ``backup.restore()`` finds them already there.

        ``accumulate`` > 1: gradient accumulation. The batches form groups of ``accumulate``
        from ``start`` (the last group may have fewer) and the hooks run once a group, after
        its last batch, with the group's index from ``start`` as the step index k; every
        "step" above (the back-up, its checkpoints, the replay) is then a group's update,
        while ``losses`` still gets each batch's mean loss. A group of R rows over batches
        of r_i rows updates with sum_i (r_i / R) g_i, g_i the gradient of batch i's mean
        loss, the gradient of the mean loss over the group's R rows: each batch's loss
        gradient is computed with the scale 1 / R (1 / (R out_features) but for
        cross-entropy), which gives every row the very value the whole group in one batch
        would, and the backward passes' gradients are summed in the dtype in batch order,
        ((g_0 + g_1) + g_2) + ..., in a buffer the program allocates at the first such call.
        A non-finite loss in a group stops the call before that group's update.

        ``reduce`` (a ``GradientReducer.hook()`` capsule over this program's gradients, or
        None): data-parallel training. Every rank of the reducer's communicator calls
        train_steps with the same arguments; step k's batch of r rows is split over the
        ``size`` ranks, rank q taking its rows ``r q // size`` to ``r (q + 1) // size``, whose
        loss gradient is computed with the scale of the whole batch, 1 / r (1 / (r
        out_features) but for cross-entropy). After the backward pass (gradients zero on a
        rank without rows) the reducer sums the gradients over the ranks in one in-place
        allreduce, together with a flag of the ranks whose loss was not finite: the
        gradients are then those of the whole batch's mean loss, and every rank decides
        alike. ``losses[k]`` gets this rank's share of the batch's mean loss (its rows' loss
        sum over r; summed over the ranks, the batch's mean loss). A step whose loss is not
        finite on any rank stops the call on every rank, as above (the replay reduces
        again). Not with ``accumulate`` > 1.
        """
        cdef int kind = LOSSES[loss_kind]
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if accumulate < 1:
            raise ValueError(f"accumulate must be >= 1, got {accumulate}")
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
        cdef const int64_t *ip
        cdef tuple checked = self._check_batch(X, y, idx, start, stop, kind, batch_size, &xp,
                                               &tp, &ip)   # alive while xp, tp, ip are read
        cdef void *acc = NULL
        if accumulate > 1:
            if self.accbuf is None:
                self.accbuf = np.empty(max(self.grad_size, 1), self.dt)
            acc = cnp.PyArray_DATA(<cnp.ndarray>self.accbuf)
        if nh:
            hk = <fgd_hook **>PyMem_Malloc(nh * sizeof(fgd_hook *))
            if hk == NULL:
                raise MemoryError()
        cdef fgd_reduce *red = NULL
        if reduce is not None:
            if not PyCapsule_IsValid(reduce, FGD_REDUCE_NAME):
                raise TypeError("reduce is not a reduction hook (a capsule from "
                                "fastgd._nn.GradientReducer.hook()) or None")
            if accumulate > 1:
                raise ValueError("reduce cannot be combined with accumulate > 1")
            red = <fgd_reduce *>PyCapsule_GetPointer(reduce, FGD_REDUCE_NAME)
            self._check_arena(red)
        cdef double *out = &losses[0]   # nsteps >= 1 here: _check_batch refuses no rows
        cdef Py_ssize_t k
        try:
            for h in range(nh):
                hk[h] = <fgd_hook *>PyCapsule_GetPointer(keep[h], FGD_HOOK_NAME)
            with nogil:
                if accumulate > 1:
                    if self.typenum == cnp.NPY_FLOAT32:
                        k = self._steps_accumulated(kind, <const float *>xp, tp, ip, nsteps,
                                                    rows_all, batch_size, accumulate, save, hk,
                                                    nh, out, <float *>acc)
                    else:
                        k = self._steps_accumulated(kind, <const double *>xp, tp, ip, nsteps,
                                                    rows_all, batch_size, accumulate, save, hk,
                                                    nh, out, <double *>acc)
                elif self.typenum == cnp.NPY_FLOAT32:
                    k = self._steps(kind, <const float *>xp, tp, ip, nsteps, rows_all,
                                    batch_size, save, hk, nh, out, red)
                else:
                    k = self._steps(kind, <const double *>xp, tp, ip, nsteps, rows_all,
                                    batch_size, save, hk, nh, out, red)
        finally:
            PyMem_Free(hk)
        return k

    cdef Py_ssize_t _steps(self, int kind, const floating *x, const void *t, const int64_t *ip,
                           Py_ssize_t nsteps, Py_ssize_t rows_all, Py_ssize_t batch_size,
                           fgd_hook *save, fgd_hook **hk, Py_ssize_t nh,
                           double *losses, fgd_reduce *red) noexcept nogil:
        """train_steps' loop, once its arguments are checked: up to ``nsteps`` steps over
        ``ip[:rows_all]``; the number taken (losses written). With ``red`` (data-parallel
        training) each step is this rank's rows of its batch and the reduction over the
        ranks, and the decisions are the same on every rank: the same reductions follow."""
        cdef Py_ssize_t k = 0, mark = -1, j
        cdef double value
        cdef bint bad = False
        while k < nsteps:
            value = self._loss_at(kind, x, t, ip, k, rows_all, batch_size, red, &bad)
            losses[k] = value
            k += 1
            if bad:
                if save != NULL and mark >= 0:
                    # back to the checkpoint, then again up to the last finite step
                    save.undo(save.ctx)
                    for j in range(mark, k - 2):
                        self._loss_at(kind, x, t, ip, j, rows_all, batch_size, red, &bad)
                        self._finish_at(ip, j, rows_all, batch_size, hk, nh, red)
                    if mark < k - 2:
                        save.run(save.ctx)
                break
            if save != NULL and (mark < 0 or k - 1 - mark >= CHECKPOINT_EVERY or k == nsteps):
                save.run(save.ctx)
                mark = k - 1
            self._finish_at(ip, k - 1, rows_all, batch_size, hk, nh, red)
        return k

    cdef double _loss_at(self, int kind, const floating *x, const void *t, const int64_t *ip,
                         Py_ssize_t k, Py_ssize_t rows_all, Py_ssize_t batch_size,
                         fgd_reduce *red, bint *bad) noexcept nogil:
        """Step ``k`` up to its gradient (`_forward_at`, or `_reduced_at` with ``red``): its
        loss, and in ``bad`` whether it (any rank's, with ``red``) was not finite."""
        cdef double value
        if red != NULL:
            return self._reduced_at(kind, x, t, ip, k, rows_all, batch_size, red, bad)
        value = self._forward_at(kind, x, t, ip, k, rows_all, batch_size)
        bad[0] = not isfinite(value)
        return value

    cdef void _finish_at(self, const int64_t *ip, Py_ssize_t k, Py_ssize_t rows_all,
                         Py_ssize_t batch_size, fgd_hook **hk, Py_ssize_t nh,
                         fgd_reduce *red) noexcept nogil:
        """Step ``k``'s updates after `_loss_at` (its backward first, unless `_reduced_at`
        has run it before the reduction)."""
        if red != NULL:
            self._hooks_at(k, hk, nh)
        else:
            self._update_at(ip, k, rows_all, batch_size, hk, nh)

    cdef int _check_arena(self, fgd_reduce *red) except -1:
        """That ``red``'s buffer is this program's gradients back to back, then the flag."""
        if red.typenum != self.typenum or red.count != self.grad_size + 1:
            raise ValueError("reduce's buffer is not this program's gradient arena (its dtype "
                             f"or its size, {red.count} elements for {self.grad_size} "
                             "gradient elements and the flag)")
        cdef char *at = <char *>red.buf
        cdef Py_ssize_t item = self.dt.itemsize
        cdef int i
        cdef Op *o
        for i in range(self.nops):
            o = &self.ops[i]
            if o.kind != OP_LINEAR:
                continue
            if <char *>o.dW != at:
                raise ValueError(f"op {i}'s dW is not where the gradient arena has it: the "
                                 "program's gradients must be views of the arena")
            at += <Py_ssize_t>o.fin * o.fout * item
            if o.db != NULL:
                if <char *>o.db != at:
                    raise ValueError(f"op {i}'s db is not where the gradient arena has it")
                at += o.fout * item
        return 0

    cdef double _reduced_at(self, int kind, const floating *x, const void *t,
                            const int64_t *ip, Py_ssize_t k, Py_ssize_t rows_all,
                            Py_ssize_t batch_size, fgd_reduce *red,
                            bint *bad) noexcept nogil:
        """Step ``k`` on this rank's rows of its batch: gather, forward, loss, backward with
        the batch's scale, then the reduction; this rank's share of the batch's mean loss,
        and in ``bad`` whether any rank's loss was not finite."""
        cdef Py_ssize_t a = k * batch_size
        cdef Py_ssize_t nb = min(batch_size, rows_all - a)
        cdef Py_ssize_t lo = nb * red.rank // red.size
        cdef Py_ssize_t hi = nb * (red.rank + 1) // red.size
        cdef floating *buf = <floating *>red.buf
        cdef double value = 0.0
        if hi > lo:
            value = self._step(kind, x, t, ip + a + lo, hi - lo, nb, True, True)
            value = value * (<double>(hi - lo) / <double>nb)
        else:       # no rows here: this rank adds nothing
            memset(buf, 0, (red.count - 1) * sizeof(floating))
        buf[red.count - 1] = 0 if isfinite(value) else 1
        red.run(red.ctx)
        bad[0] = buf[red.count - 1] != 0
        return value

    cdef Py_ssize_t _steps_accumulated(self, int kind, const floating *x, const void *t,
                                       const int64_t *ip, Py_ssize_t nsteps,
                                       Py_ssize_t rows_all, Py_ssize_t batch_size,
                                       Py_ssize_t accumulate, fgd_hook *save, fgd_hook **hk,
                                       Py_ssize_t nh, double *losses,
                                       floating *acc) noexcept nogil:
        """`_steps` with gradient accumulation (``accumulate`` > 1): groups of
        ``accumulate`` batches, one update (hooks run with the group's index) a group; the
        back-up's checkpoints and the replay count groups. The number of batches taken
        (losses written)."""
        cdef Py_ssize_t ngroups = (nsteps + accumulate - 1) // accumulate
        cdef Py_ssize_t g = 0, mark = -1, j, h, first, last, rows
        cdef double value
        while g < ngroups:
            first = g * accumulate
            last = min(first + accumulate, nsteps)
            rows = min(last * batch_size, rows_all) - first * batch_size
            for j in range(first, last):
                value = self._step(kind, x, t, ip + j * batch_size,
                                   min(batch_size, rows_all - j * batch_size), rows, True,
                                   False)
                losses[j] = value
                if not isfinite(value):
                    if save != NULL and mark >= 0:
                        # back to the checkpoint, then again up to the last finite group
                        save.undo(save.ctx)
                        for h in range(mark, g - 1):
                            self._group_at(kind, x, t, ip, h, nsteps, rows_all, batch_size,
                                           accumulate, hk, nh, acc)
                        if mark < g - 1:
                            save.run(save.ctx)
                    return j + 1
                self._accumulate_at(j, first, last, rows_all, batch_size, acc)
            if save != NULL and (mark < 0 or g - mark >= CHECKPOINT_EVERY or g == ngroups - 1):
                save.run(save.ctx)
                mark = g
            self._hooks_at(g, hk, nh)
            g += 1
        return nsteps

    cdef void _accumulate_at(self, Py_ssize_t j, Py_ssize_t first, Py_ssize_t last,
                             Py_ssize_t rows_all, Py_ssize_t batch_size,
                             floating *acc) noexcept nogil:
        """Batch ``j``'s backward (after its forward) in its group ``first:last``, and its
        gradients into the group's sum (the last batch's gradients end up holding it)."""
        self._backward(min(batch_size, rows_all - j * batch_size), False)
        if last - first > 1:
            accumulate_grads(self.ops, self.nops, acc,
                             0 if j == first else (2 if j == last - 1 else 1))

    cdef void _group_at(self, int kind, const floating *x, const void *t, const int64_t *ip,
                        Py_ssize_t g, Py_ssize_t nsteps, Py_ssize_t rows_all,
                        Py_ssize_t batch_size, Py_ssize_t accumulate, fgd_hook **hk,
                        Py_ssize_t nh, floating *acc) noexcept nogil:
        """Group ``g`` again (its losses were finite): its batches and its update."""
        cdef Py_ssize_t first = g * accumulate, last = min(first + accumulate, nsteps), j
        cdef Py_ssize_t rows = min(last * batch_size, rows_all) - first * batch_size
        for j in range(first, last):
            self._step(kind, x, t, ip + j * batch_size,
                       min(batch_size, rows_all - j * batch_size), rows, True, False)
            self._accumulate_at(j, first, last, rows_all, batch_size, acc)
        self._hooks_at(g, hk, nh)

    cdef void _hooks_at(self, Py_ssize_t k, fgd_hook **hk, Py_ssize_t nh) noexcept nogil:
        """Every hook of update ``k``, in order."""
        cdef Py_ssize_t h
        for h in range(nh):
            if hk[h].run_at != NULL:
                hk[h].run_at(hk[h].ctx, k)
            else:
                hk[h].run(hk[h].ctx)

    cdef double _forward_at(self, int kind, const floating *x, const void *t,
                            const int64_t *ip, Py_ssize_t k, Py_ssize_t rows_all,
                            Py_ssize_t batch_size) noexcept nogil:
        """Step ``k``'s gather, forward and loss (its gradient kept for `_update_at`)."""
        cdef Py_ssize_t a = k * batch_size
        return self._step(kind, x, t, ip + a, min(batch_size, rows_all - a), 0, True, False)

    cdef void _update_at(self, const int64_t *ip, Py_ssize_t k, Py_ssize_t rows_all,
                         Py_ssize_t batch_size, fgd_hook **hk, Py_ssize_t nh) noexcept nogil:
        """Step ``k``'s backward (after its `_forward_at`) and updates."""
        self._backward(min(batch_size, rows_all - k * batch_size), False)
        self._hooks_at(k, hk, nh)

    cdef void _backward(self, Py_ssize_t rows, bint input_grad) noexcept nogil:
        """The backward pass of the last forward over ``rows`` rows, from the loss gradient
        in ``lossgrad`` (the input's gradient too when ``input_grad``), in the dtype of this
        program."""
        if self.typenum == cnp.NPY_FLOAT32:
            run_backward(self.ops, self.nops, <const float *>self.x_ptr,
                         <float *>self.lossgrad_ptr, rows, input_grad)
        else:
            run_backward(self.ops, self.nops, <const double *>self.x_ptr,
                         <double *>self.lossgrad_ptr, rows, input_grad)

    cdef tuple _check_batch(self, X, y, idx, Py_ssize_t start, Py_ssize_t stop, int kind,
                            Py_ssize_t batch_size, void **xp, void **tp, const int64_t **ip):
        """Check X, y and the indices ``idx[start:stop]`` (and the labels they pick), grow
        the buffers to ``batch_size`` rows; X's and y's data go to ``xp`` and ``tp``, the
        indices to ``ip``. Everything is checked before anything is written.

        Returns the checked arrays, which the caller keeps while it reads the pointers: a
        misaligned X, y or idx is read from an aligned copy that only they hold."""
        cdef cnp.ndarray x = _arr("X", X, self.typenum, 2, False)
        cdef cnp.ndarray ix = _arr("idx", idx, cnp.NPY_INT64, 1, False)
        cdef cnp.ndarray t
        cdef Py_ssize_t n = _dim(x, 0), rows = stop - start, i
        cdef const int64_t *sel
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
        sel = <const int64_t *>cnp.PyArray_DATA(ix) + start
        for i in range(rows):
            if sel[i] < 0 or sel[i] >= n:
                raise ValueError(f"idx holds {sel[i]}, outside 0..{n - 1}")
        if kind == LOSS_CE:
            _check_labels("y", <const int64_t *>cnp.PyArray_DATA(t), sel, rows, self.out_features)
        _blas_int(min(rows, batch_size), "rows")
        self.reserve(min(rows, batch_size))
        self.last_input = self.xbuf
        self.x_ptr = cnp.PyArray_DATA(self.xbuf)
        xp[0] = cnp.PyArray_DATA(x)
        tp[0] = cnp.PyArray_DATA(t)
        ip[0] = sel
        return (x, ix, t)

    cdef double _step(self, int kind, const floating *x, const void *t, const int64_t *ip,
                      Py_ssize_t rows, Py_ssize_t grad_rows, bint with_grad,
                      bint backward) noexcept nogil:
        """Gather rows ``ip[:rows]`` of x and t, forward, the loss (its gradient in
        ``lossgrad`` when ``with_grad``: that of the summed loss over ``grad_rows`` rows,
        times out_features but for cross-entropy; ``grad_rows`` 0 or ``rows``: of the mean
        loss), and backward when ``backward``. The mean loss."""
        cdef double total
        cdef double scale = 1.0 / (rows if kind == LOSS_CE else rows * self.out_features)
        cdef double grad_scale = scale
        if grad_rows > 0 and grad_rows != rows:
            grad_scale = 1.0 / (grad_rows if kind == LOSS_CE else grad_rows * self.out_features)
        cdef floating *xb = <floating *>self.x_ptr
        cdef void *tb = self.tbuf_ptr if kind != LOSS_CE else self.ibuf_ptr
        cdef floating *gb = NULL
        cdef Op *last = &self.ops[self.nops - 1]
        if with_grad:
            gb = <floating *>self.lossgrad_ptr
        self.rows = rows
        if kind == LOSS_CE:
            fgd_gather_i64(<const int64_t *>t, ip, rows, <int64_t *>tb)
        gather_rows(x, ip, rows, self.in_features, xb)
        if kind != LOSS_CE:
            gather_rows(<const floating *>t, ip, rows, self.out_features, <floating *>tb)
        run_forward(self.ops, self.nops, <const floating *>xb, rows)
        total = loss_kernel(kind, <const floating *>last.out, tb, rows, self.out_features, gb,
                            grad_scale)
        if backward:
            run_backward(self.ops, self.nops, <const floating *>xb, gb, rows, False)
        return total * scale

    cdef double _batch(self, X, y, idx, Py_ssize_t start, Py_ssize_t stop, int kind,
                       bint train, Py_ssize_t grad_rows) except? -1:
        cdef void *xp
        cdef void *tp
        cdef const int64_t *ip
        cdef tuple checked = self._check_batch(X, y, idx, start, stop, kind, stop - start, &xp,
                                               &tp, &ip)   # alive while xp, tp, ip are read
        cdef double value
        with nogil:
            if self.typenum == cnp.NPY_FLOAT32:
                value = self._step(kind, <const float *>xp, tp, ip, stop - start, grad_rows,
                                   train, train)
            else:
                value = self._step(kind, <const double *>xp, tp, ip, stop - start, grad_rows,
                                   train, train)
        return value


# ----------------------------------------------------------------------------- data parallel

ctypedef int (*allreduce_ptr_t)(const void *, void *, int, void *, void *, void *) noexcept nogil
ctypedef int (*allreduce_int_t)(const void *, void *, int, int, int, int) noexcept nogil
ctypedef int (*abort_ptr_t)(void *, int) noexcept nogil
ctypedef int (*abort_int_t)(int, int) noexcept nogil


cdef struct ReduceCtx:
    void *allreduce         # MPI_Allreduce
    void *abort             # MPI_Abort
    intptr_t comm, dtype, op, in_place   # MPI_Comm, MPI_Datatype, MPI_SUM, MPI_IN_PLACE
    int pointer_handles     # the handles are pointers (Open MPI), else int (MPICH)
    char *buf
    Py_ssize_t count        # elements of buf
    Py_ssize_t item         # bytes an element


cdef void _reduce_run(void *ctx) noexcept nogil:
    """Sum ``buf`` over the ranks in place: one MPI_Allreduce (more only for more than
    INT_MAX elements, MPI's count); on an error, MPI_Abort."""
    cdef ReduceCtx *c = <ReduceCtx *>ctx
    cdef Py_ssize_t done = 0, n
    cdef int rc = 0
    while done < c.count and rc == 0:
        n = min(c.count - done, <Py_ssize_t>INT_MAX)
        if c.pointer_handles:
            rc = (<allreduce_ptr_t>c.allreduce)(<const void *>c.in_place, c.buf + done * c.item,
                                                <int>n, <void *>c.dtype, <void *>c.op,
                                                <void *>c.comm)
        else:
            rc = (<allreduce_int_t>c.allreduce)(<const void *>c.in_place, c.buf + done * c.item,
                                                <int>n, <int>c.dtype, <int>c.op, <int>c.comm)
        done += n
    if rc != 0:
        if c.pointer_handles:
            (<abort_ptr_t>c.abort)(<void *>c.comm, 1)
        else:
            (<abort_int_t>c.abort)(<int>c.comm, 1)


cdef class GradientReducer:
    """The reduction of data-parallel training over MPI, for `Program.train_steps`.

    Sums ``arena`` (the program's gradients back to back, then a flag element) over the
    ranks of an MPI communicator with one in-place ``MPI_Allreduce`` a step, called from C
    without the GIL through function pointers of the MPI library mpi4py loaded
    (``fastgd.train._mpi`` finds them; this module never links MPI).

    Parameters
    ----------
    arena : numpy.ndarray
        1-D, C-contiguous, float32 or float64: the buffer summed in place.
    allreduce, abort : int
        The addresses of ``MPI_Allreduce`` and ``MPI_Abort``.
    comm, dtype, op, in_place : int
        The handles of the communicator, of MPI_FLOAT or MPI_DOUBLE (the arena's dtype), of
        MPI_SUM, and the value of MPI_IN_PLACE.
    pointer_handles : bool
        The MPI library's handles are pointers (Open MPI), else ints (MPICH and its kin).
    rank, size : int
        This process's rank in ``comm`` and the number of ranks.
    """
    cdef fgd_reduce r
    cdef ReduceCtx c
    cdef cnp.ndarray arena

    def __init__(self, arena, intptr_t allreduce, intptr_t abort, intptr_t comm,
                 intptr_t dtype, intptr_t op, intptr_t in_place, bint pointer_handles,
                 int rank, int size):
        if not isinstance(arena, np.ndarray):
            raise TypeError(f"arena must be a numpy.ndarray, got {type(arena).__name__}")
        if arena.dtype != np.float32 and arena.dtype != np.float64:
            raise TypeError(f"arena must be float32 or float64, got {arena.dtype}")
        if arena.ndim != 1 or not arena.flags.c_contiguous or not arena.flags.writeable:
            raise ValueError("arena must be 1-D, C-contiguous and writeable")
        if arena.shape[0] < 1:
            raise ValueError("arena must hold at least the flag element")
        if allreduce == 0 or abort == 0:
            raise ValueError("allreduce and abort must be the addresses of MPI_Allreduce "
                             "and MPI_Abort")
        if size < 1 or not 0 <= rank < size:
            raise ValueError(f"rank must be in 0..size-1 and size >= 1, got {rank}, {size}")
        self.arena = arena
        self.c.allreduce = <void *>allreduce
        self.c.abort = <void *>abort
        self.c.comm, self.c.dtype, self.c.op, self.c.in_place = comm, dtype, op, in_place
        self.c.pointer_handles = pointer_handles
        self.c.buf = <char *>cnp.PyArray_DATA(arena)
        self.c.count = arena.shape[0]
        self.c.item = arena.dtype.itemsize
        self.r.run = _reduce_run
        self.r.ctx = &self.c
        self.r.buf = self.c.buf
        self.r.count = self.c.count
        self.r.typenum = cnp.PyArray_TYPE(arena)
        self.r.rank, self.r.size = rank, size

    def run(self):
        """One reduction, from Python (every rank must call it)."""
        with nogil:
            _reduce_run(&self.c)

    def hook(self):
        """A PyCapsule (named ``FGD_REDUCE_NAME``) holding this reducer's ``fgd_reduce``;
        it keeps the reducer alive."""
        cap = PyCapsule_New(&self.r, FGD_REDUCE_NAME, _release_reducer)
        PyCapsule_SetContext(cap, <void *>self)
        Py_INCREF(self)
        return cap


cdef void _release_reducer(object capsule) noexcept:
    Py_DECREF(<object>PyCapsule_GetContext(capsule))
