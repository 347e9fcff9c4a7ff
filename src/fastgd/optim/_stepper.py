"""A native optimizer step bound to one array: validated once, then one kernel call a step.

`fastgd.minimize` and `fastgd.linear_model` take thousands of steps on one small array.
`fastgd.functional` re-validates everything and builds a kernel plan on every call, and an
`fastgd.optim` optimizer re-checks its groups; here the hyper-parameters are checked and
the state allocated once (as the spec of the method's `fastgd.optim` class declares them:
checks, state arrays, initial values, kernel), the array's plan is built once, and
`Stepper.step` is ``prepare`` plus the kernel: the gradient's dtype, shape and memory are
still checked (in C) on every step.

The caller owns the state arrays, the step counter, the "momentum buffer is new" flag and
the scalar state (NAdam's ``mu_product``), so it can take a step back (`snapshot` / `restore`).
"""
import functools
from typing import Any, Callable, Mapping

import numpy as np
from numpy.typing import NDArray

from .. import _checks, _optim, optim
from .._typing import Array, FloatArray, Real

# method -> (optimizer class, fixed hyper-parameters, hyper-parameters a user may not set):
# plain, heavy-ball and Nesterov SGD, then every algorithm under its own name ("sgd": SGD
# with its own defaults, every hyper-parameter settable)
METHODS: dict[str, tuple[type[optim.Optimizer], dict[str, Any], tuple[str, ...]]] = {
    "gd": (optim.SGD, dict(momentum=0.0, dampening=0.0, nesterov=False),
           ("momentum", "dampening", "nesterov")),
    "momentum": (optim.SGD, dict(momentum=0.9, nesterov=False), ("nesterov",)),
    "nesterov": (optim.SGD, dict(momentum=0.9, dampening=0.0, nesterov=True),
                 ("dampening", "nesterov")),
    **{name: (cls, {}, ()) for name, cls in optim.ALGORITHMS.items()},
}

_NOT_HYPER = {"lr", "maximize"}  # set by minimize's own arguments

#: what `Stepper.snapshot` returns: the state arrays' copies, the step counter, the flag and
#: the scalar state (NAdam's mu_product; 0.0 for the algorithms without one)
Snapshot = tuple[list[FloatArray | None], int, int, float]


def defaults(method: str) -> tuple[float, dict[str, Any]]:
    """``(lr, {hyper-parameter: default})`` of ``method``, from its optimizer's spec."""
    lr, hyper = _defaults(method)
    return lr, dict(hyper)


@functools.lru_cache(maxsize=None)
def _defaults(method: str) -> tuple[float, dict[str, Any]]:
    cls, fixed, _ = METHODS[method]
    defaults = cls.spec.defaults
    hyper = {k: v for k, v in defaults.items() if k not in _NOT_HYPER}
    hyper.update(fixed)
    return defaults["lr"], hyper


def check_method(method: Any) -> str:
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

    def __init__(self, method: str, param: FloatArray, lr: Real, maximize: bool = False,
                 hyper: Mapping[str, Any] | None = None) -> None:
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
        spec = cls.spec
        self.hp = spec.kernel_args(group)
        needs = spec.needs(self.hp)
        self.method = method
        self.param = param
        self.states: list[FloatArray | None] = [
            np.full_like(param, spec.initial_value(s, group)) if n else None
            for s, n in zip(spec.states, needs)]
        self.steps: NDArray[np.int64] = np.zeros(1, np.int64)
        self.is_new: NDArray[np.uint8] = np.ones(1, np.uint8)
        self.scalars: NDArray[np.float64] | None = (
            None if spec.scalar is None else np.full(1, spec.scalar.initial))
        self._plan = _optim.TensorPlan([param], [None if s is None else [s] for s in self.states],
                                       self.steps, self.is_new, "x", spec.state_names,
                                       self.scalars)
        self._mask = sum(1 << i for i, n in enumerate(needs) if n)
        self._kernel = getattr(_optim, spec.kernel)
        self.step = self._bind()

    def _bind(self) -> Callable[[FloatArray], None]:
        """``step(grad)``: ``param ← update(param, grad)`` in place, one kernel call.

        ``grad`` has ``param``'s dtype and shape; the plan checks it (in C) before anything
        is written. A gradient that shares memory with ``param`` (``grad(x)`` returning
        ``x``) is copied. A closure over prebound callables, so a step costs a few hundred
        nanoseconds of Python.
        """
        grads: list[FloatArray | None] = [None]
        prepare, mask, param = self._plan.prepare, self._mask, self.param
        call = functools.partial(self._kernel, self._plan, **self.hp)
        may_share_memory = np.may_share_memory

        def step(grad: FloatArray) -> None:
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
    def lr(self) -> float:
        return self.hp["lr"]

    @lr.setter
    def lr(self, value: Real) -> None:
        self.hp["lr"] = _checks.real(value, "lr", low=0, low_open=True)
        self.step = self._bind()

    def snapshot(self) -> Snapshot:
        """Copies of everything a step changes besides ``param``."""
        return ([None if s is None else s.copy() for s in self.states], int(self.steps[0]),
                int(self.is_new[0]), 0.0 if self.scalars is None else float(self.scalars[0]))

    def restore(self, snap: Snapshot, rows: Array | None = None) -> None:
        """Put the state of ``snap`` back: all of it, or only ``rows`` (a boolean mask over the
        first axis) of the state arrays. The shared step counter and flag are restored only
        for a full restore."""
        states, step, new, scalar = snap
        for s, saved in zip(self.states, states):
            if s is None:
                continue
            if rows is None:
                s[...] = saved
            else:
                assert saved is not None  # a snapshot of these arrays: None where they are
                s[rows] = saved[rows]
        if rows is None:
            self.steps[0] = step
            self.is_new[0] = new
            if self.scalars is not None:
                self.scalars[0] = scalar
