"""A native optimizer step bound to one array: validated once, then one kernel call a step.

`fastgd.minimize` and `fastgd.linear_model` take thousands of steps on one small array.
`fastgd.functional` re-validates everything and builds a kernel plan on every call, and an
`fastgd.optim` optimizer re-checks its groups; here the hyper-parameters are checked and
the state allocated once (with the same ``hyper`` functions and state layout as
`fastgd.optim`), the array's plan is built once, and `Stepper.step` is ``prepare`` plus the
kernel: the gradient's dtype, shape and memory are still checked (in C) on every step.

The caller owns the state arrays, the step counter and the "momentum buffer is new" flag,
so it can take a step back (`snapshot` / `restore`).
"""
import functools
import inspect

import numpy as np

from . import _checks, _optim, optim
from .optim import adagrad as _adagrad, adam as _adam, rmsprop as _rmsprop, sgd as _sgd

# method -> (optimizer class, fixed hyper-parameters, hyper-parameters a user may not set)
METHODS = {
    "gd": (optim.SGD, dict(momentum=0.0, dampening=0.0, nesterov=False),
           ("momentum", "dampening", "nesterov")),
    "momentum": (optim.SGD, dict(momentum=0.9, nesterov=False), ("nesterov",)),
    "nesterov": (optim.SGD, dict(momentum=0.9, dampening=0.0, nesterov=True),
                 ("dampening", "nesterov")),
    "adagrad": (optim.Adagrad, {}, ()),
    "rmsprop": (optim.RMSprop, {}, ()),
    "adam": (optim.Adam, {}, ()),
    "adamw": (optim.AdamW, {}, ()),
}

_NOT_HYPER = {"self", "params", "lr", "maximize", "backend"}


def defaults(method):
    """``(lr, {hyper-parameter: default})`` of ``method``, from its optimizer's signature."""
    lr, hyper = _defaults(method)
    return lr, dict(hyper)


@functools.lru_cache(maxsize=None)
def _defaults(method):
    cls, fixed, _ = METHODS[method]
    sig = inspect.signature(cls.__init__).parameters
    hyper = {k: p.default for k, p in sig.items() if k not in _NOT_HYPER}
    hyper.update(fixed)
    return sig["lr"].default, hyper


def check_method(method):
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    return method


class Stepper:
    """``method``'s native update of ``param`` (updated in place), one kernel call a step.

    Parameters
    ----------
    method : str
        A key of `METHODS`.
    param : ndarray
        float32/float64, writeable, C-contiguous; any shape (a batch of points is one array).
    lr : float
        The learning rate (> 0).
    maximize : bool
    hyper : dict
        Other hyper-parameters of the method's optimizer (e.g. ``betas``, ``momentum``).
    """

    def __init__(self, method, param, lr, maximize=False, hyper=None):
        check_method(method)
        cls, fixed, locked = METHODS[method]
        hyper = dict(hyper or {})
        default_lr, group = defaults(method)
        allowed = sorted(k for k in group if k not in locked)
        for k in hyper:
            if k not in group or k in locked:
                raise ValueError(f"unknown hyper-parameter {k!r} for method={method!r}; "
                                 f"expected some of {allowed}")
        group.update(hyper)
        group["lr"] = _checks.real(lr, "lr", low=0, low_open=True)
        group["maximize"] = _checks.flag(maximize, "maximize")
        _checks.parameter(param, "x")
        if not param.flags.c_contiguous:
            raise ValueError("x must be C-contiguous")
        if cls is optim.SGD:
            self.hp = _sgd.hyper(group)
            kernel, names = _optim.sgd, ("momentum_buffer",)
            needs = (self.hp["momentum"] != 0,)
            init = (0.0,)
        elif cls is optim.Adagrad:
            self.hp = _adagrad.hyper(group)
            kernel, names = _optim.adagrad, ("sum",)
            needs = (True,)
            init = (float(group["initial_accumulator_value"]),)
        elif cls is optim.RMSprop:
            self.hp = _rmsprop.hyper(group)
            kernel, names = _optim.rmsprop, ("square_avg", "momentum_buffer", "grad_avg")
            needs = (True, self.hp["momentum"] > 0, self.hp["centered"])
            init = (0.0, 0.0, 0.0)
        else:
            self.hp = _adam.hyper(group, "", cls is optim.AdamW)
            kernel, names = _optim.adam, ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
            needs = (True, True, self.hp["amsgrad"])
            init = (0.0, 0.0, 0.0)
        assert names == cls.state_names, (names, cls.state_names)
        self.method = method
        self.param = param
        self.states = [np.full_like(param, v) if n else None for n, v in zip(needs, init)]
        self.steps = np.zeros(1, np.int64)
        self.is_new = np.ones(1, np.uint8)
        self._plan = _optim.TensorPlan([param], [None if s is None else [s] for s in self.states],
                                       self.steps, self.is_new, "x", names)
        self._mask = sum(1 << i for i, n in enumerate(needs) if n)
        self._kernel = kernel
        self.step = self._bind()

    def _bind(self):
        """``step(grad)``: ``param ← update(param, grad)`` in place, one kernel call.

        ``grad`` has ``param``'s dtype and shape; the plan checks it (in C) before anything
        is written. A gradient that shares memory with ``param`` (``grad(x)`` returning
        ``x``) is copied. A closure over prebound callables, so a step costs a few hundred
        nanoseconds of Python.
        """
        grads = [None]
        prepare, mask, param = self._plan.prepare, self._mask, self.param
        call = functools.partial(self._kernel, self._plan, **self.hp)
        may_share_memory = np.may_share_memory

        def step(grad):
            grads[0] = grad
            try:
                prepare(grads, 0, mask)
            except ValueError:
                if not may_share_memory(grad, param):
                    raise
                grads[0] = grad.copy()
                prepare(grads, 0, mask)
            call()

        return step

    @property
    def lr(self):
        return self.hp["lr"]

    @lr.setter
    def lr(self, value):
        self.hp["lr"] = _checks.real(value, "lr", low=0, low_open=True)
        self.step = self._bind()

    def snapshot(self):
        """Copies of everything a step changes besides ``param``."""
        return ([None if s is None else s.copy() for s in self.states], int(self.steps[0]),
                int(self.is_new[0]))

    def restore(self, snap, rows=None):
        """Put the state of ``snap`` back: all of it, or only ``rows`` (a boolean mask over the
        first axis) of the state arrays. The shared step counter and flag are restored only
        for a full restore."""
        states, step, new = snap
        for s, saved in zip(self.states, states):
            if s is None:
                continue
            if rows is None:
                s[...] = saved
            else:
                s[rows] = saved[rows]
        if rows is None:
            self.steps[0] = step
            self.is_new[0] = new
