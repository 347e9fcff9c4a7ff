r"""Weight averaging with the classes, functions and semantics of ``torch.optim.swa_utils``:
`AveragedModel` keeps a running average of a model's parameters (stochastic weight
averaging, SWA, or an exponential moving average, EMA), and `SWALR` anneals the learning
rate to a constant for the averaging phase.

>>> import numpy as np, fastgd
>>> from fastgd.optim import swa_utils
>>> model = fastgd.nn.Sequential(fastgd.nn.Linear(3, 1, init="zeros"))
>>> swa = swa_utils.AveragedModel(model)          # the equal-weight average (SWA)
>>> for value in (1.0, 2.0, 6.0):
...     model[0].W[...] = value                      # train ...
...     swa.update_parameters(model)                 # ... then average
>>> swa.module[0].W.ravel(), swa.n_averaged
(array([3., 3., 3.], dtype=float32), 3)
>>> swa(np.ones((1, 3), np.float32))               # the averaged model's output
array([[9.]], dtype=float32)

The averages (:math:`\bar w` the averaged parameter, :math:`w` the model's, :math:`n` the
models averaged so far; the first `AveragedModel.update_parameters` copies,
:math:`\bar w_1 = w_1`):

.. math::
    \text{SWA:}\quad \bar w_{n+1} = \bar w_n + \frac{w - \bar w_n}{n + 1}
    \qquad\qquad
    \text{EMA:}\quad \bar w_{n+1} = \text{decay}\,\bar w_n + (1 - \text{decay})\,w

The built-in averages (`get_swa_avg_fn`, `get_swa_multi_avg_fn`, `get_ema_avg_fn`,
`get_ema_multi_avg_fn`, and the default) run one native pass over all parameter arrays
(``fastgd._optim.Averager``) with torch's expressions, so float32 rounds as torch's CPU code
(``torch.lerp`` is fused there, a multiply-add: results within one unit in the last place).
``update_bn`` is not provided: fastgd has no batch normalisation, so there are no
statistics to recompute after averaging (and fastgd modules have no buffers: ``use_buffers``
changes nothing).
"""
from __future__ import annotations

import copy
import math
from typing import Any, Callable, Sequence

import numpy as np

from .. import _checks, _optim
from .._typing import FloatArray
from ..nn.module import Module
from ..reference import swa as _ref
from .lr_scheduler import LRScheduler
from .optimizer import Optimizer

__all__ = ["AveragedModel", "SWALR", "get_ema_multi_avg_fn", "get_swa_multi_avg_fn",
           "get_ema_avg_fn", "get_swa_avg_fn"]


class _BuiltinAverage:
    """A built-in averaging function: callable as torch's, and recognised by
    `AveragedModel`, which then runs it natively over all parameters at once."""

    def __init__(self, kind: str, decay: float, multi: bool, name: str) -> None:
        self.kind, self.decay, self.multi, self._name = kind, decay, multi, name

    def __call__(self, averaged: Any, current: Any, num_averaged: int) -> Any:
        n = _checks.integer(num_averaged, "num_averaged", low=0)
        if self.multi:  # lists of arrays, in place
            if not isinstance(averaged, (list, tuple)) or not isinstance(current, (list, tuple)):
                raise TypeError(f"{self._name} takes two lists of arrays and num_averaged")
            _optim.average_(list(averaged), list(current), self.kind, self.decay, n)
            return None
        # one array: the average as a new array, the arguments untouched
        out = np.array(averaged, order="C") if isinstance(averaged, np.ndarray) else averaged
        cur = np.ascontiguousarray(current) if isinstance(current, np.ndarray) else current
        _optim.average_([out], [cur], self.kind, self.decay, n)
        return out

    def __repr__(self) -> str:
        return self._name


def _decay(decay: Any) -> float:
    return _checks.real(decay, "decay", low=0.0, high=1.0)


def get_ema_multi_avg_fn(decay: float = 0.999) -> Callable[..., None]:
    r"""The exponential moving average over lists of arrays, in place, as torch's
    ``get_ema_multi_avg_fn``: ``torch.lerp`` of each averaged array towards the model's.

    .. math:: \bar w \leftarrow \operatorname{lerp}(\bar w, w, 1 - \text{decay})
              = \text{decay}\,\bar w + (1 - \text{decay})\,w

    Parameters
    ----------
    decay : float, default 0.999
        In [0, 1].

    Returns
    -------
    callable
        ``fn(averaged_list, current_list, num_averaged)``, for ``AveragedModel(model,
        multi_avg_fn=fn)``.

    Examples
    --------
    >>> import numpy as np
    >>> avg = [np.zeros(2)]
    >>> get_ema_multi_avg_fn(0.75)(avg, [np.ones(2)], 1)
    >>> avg[0]
    array([0.25, 0.25])
    """
    d = _decay(decay)
    return _BuiltinAverage("ema", d, True, f"get_ema_multi_avg_fn({d})")


def get_ema_avg_fn(decay: float = 0.999) -> Callable[..., FloatArray]:
    r"""The exponential moving average of one array, as torch's ``get_ema_avg_fn``:

    .. math:: \bar w \leftarrow \text{decay}\,\bar w + (1 - \text{decay})\,w

    Parameters
    ----------
    decay : float, default 0.999
        In [0, 1].

    Returns
    -------
    callable
        ``fn(averaged, current, num_averaged)`` returning the new average (a new array),
        for ``AveragedModel(model, avg_fn=fn)``.

    Examples
    --------
    >>> import numpy as np
    >>> get_ema_avg_fn(0.5)(np.zeros(2), np.ones(2), 1)
    array([0.5, 0.5])
    """
    d = _decay(decay)
    return _BuiltinAverage("ema_sum", d, False, f"get_ema_avg_fn({d})")


def get_swa_multi_avg_fn() -> Callable[..., None]:
    r"""The equal-weight average over lists of arrays, in place, as torch's
    ``get_swa_multi_avg_fn``: ``torch.lerp`` with weight :math:`1 / (n + 1)`.

    .. math:: \bar w \leftarrow \operatorname{lerp}\bigl(\bar w, w,
              \operatorname{fl}_{32}(1 / (n + 1))\bigr)

    The weight is rounded to float32 whatever the arrays' dtype, as torch computes it (a
    float32 tensor); a float64 average then differs from the exact mean by about 1e-8
    relative. The default of `AveragedModel` (`get_swa_avg_fn`) divides by :math:`n + 1`
    in the arrays' dtype instead.

    Returns
    -------
    callable
        ``fn(averaged_list, current_list, num_averaged)``.

    Examples
    --------
    >>> import numpy as np
    >>> avg = [np.zeros(2, np.float32)]
    >>> get_swa_multi_avg_fn()(avg, [np.full(2, 3, np.float32)], 2)
    >>> avg[0]
    array([1., 1.], dtype=float32)
    """
    return _BuiltinAverage("swa_lerp", 0.0, True, "get_swa_multi_avg_fn()")


def get_swa_avg_fn() -> Callable[..., FloatArray]:
    r"""The equal-weight average of one array, as torch's ``get_swa_avg_fn`` (and the
    default of `AveragedModel`):

    .. math:: \bar w \leftarrow \bar w + \frac{w - \bar w}{n + 1}

    with :math:`n + 1` in the arrays' dtype.

    Returns
    -------
    callable
        ``fn(averaged, current, num_averaged)`` returning the new average (a new array).

    Examples
    --------
    >>> import numpy as np
    >>> get_swa_avg_fn()(np.zeros(2), np.full(2, 3.0), 2)
    array([1., 1.])
    """
    return _BuiltinAverage("swa", 0.0, False, "get_swa_avg_fn()")


class AveragedModel(Module):
    r"""A running average of a model's parameters, as ``torch.optim.swa_utils.AveragedModel``.

    It holds a deep copy of ``model`` (`module`) whose parameters `update_parameters` averages:
    the first call copies the model's parameters, every later one applies the averaging
    function (see the module for the rules). Calling it (``averaged(X)``,
    ``averaged.forward(X)``, ``averaged.predict(X)``) runs the averaged copy.

    Parameters
    ----------
    model : fastgd.nn.Module
        A `fastgd.nn.Sequential` or any other fastgd module.
    avg_fn : callable, optional
        ``avg_fn(averaged, current, num_averaged) -> array``, per parameter array:
        `get_ema_avg_fn`, `get_swa_avg_fn` or your own.
    multi_avg_fn : callable, optional
        ``multi_avg_fn(averaged_list, current_list, num_averaged)``, in place, once per
        dtype of the parameters: `get_ema_multi_avg_fn`, `get_swa_multi_avg_fn` or your own.
        At most one of ``avg_fn`` and ``multi_avg_fn``; with neither, the equal-weight
        average `get_swa_avg_fn` (torch's default on the CPU).
    use_buffers : bool, default False
        Accepted for torch's signature; fastgd modules have no buffers.
    backend : {"native", "reference"}, default "native"
        Who computes the built-in averages: one native pass over every parameter
        (``fastgd._optim.Averager``, threads over large models, the same bits for any
        thread count) or the numpy twin (`fastgd.reference.swa`). Your own functions run as
        they are on either.

    Attributes
    ----------
    module : fastgd.nn.Module
        The averaged copy.
    n_averaged : int
        The models averaged so far (torch's ``n_averaged`` buffer).

    Raises
    ------
    TypeError, ValueError
        For an argument of the wrong type or value, naming it.

    Examples
    --------
    An exponential moving average of a model being trained:

    >>> import numpy as np, fastgd
    >>> from fastgd.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
    >>> model = fastgd.nn.MLP([4, 8, 2], seed=0)
    >>> ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))
    >>> opt = fastgd.optim.SGD(model.parameters(), lr=0.1)
    >>> for step in range(5):
    ...     opt.step([np.full_like(p, 0.1) for p in model.parameters()])
    ...     ema.update_parameters(model)
    >>> ema.n_averaged
    5
    """

    def __init__(self, model: Module, avg_fn: Callable[..., Any] | None = None,
                 multi_avg_fn: Callable[..., Any] | None = None, use_buffers: bool = False,
                 *, backend: str = "native") -> None:
        super().__init__(backend)
        _check_model(model, "model")
        if avg_fn is not None and multi_avg_fn is not None:
            raise ValueError("only one of avg_fn and multi_avg_fn may be given")
        for name, fn, multi in (("avg_fn", avg_fn, False), ("multi_avg_fn", multi_avg_fn, True)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
            if isinstance(fn, _BuiltinAverage) and fn.multi != multi:
                other = "multi_avg_fn" if fn.multi else "avg_fn"
                raise TypeError(f"{name} is {fn!r}, which averages "
                                f"{'lists of arrays' if fn.multi else 'one array'}: pass it "
                                f"as {other}")
        self.use_buffers = _checks.flag(use_buffers, "use_buffers")
        self.module = copy.deepcopy(model)
        self.avg_fn = avg_fn
        self.multi_avg_fn = multi_avg_fn
        # the count, in an array: the native averager advances it in place, and fit's
        # back-up (its divergence restore) covers it with the averaged parameters
        self._count = np.zeros(1, np.int64)
        self._averager: Any = None

    @property
    def _n(self) -> int:
        return int(self._count[0])

    @_n.setter
    def _n(self, value: int) -> None:
        self._count[0] = value

    @property
    def n_averaged(self) -> int:
        return self._n

    def _native_averager(self, model: Module) -> Any:
        """The native averager of ``model``'s parameters into `module`'s (bound once, kept
        while the arrays stay the same), or None when the average is a function of the
        caller's own or the backend is the reference."""
        builtin = self._builtin()
        if builtin is None or self.backend != "native":
            return None
        ours, theirs = self.module.parameters(), model.parameters()
        av = self._averager
        if av is None or av.kind != builtin.kind or av.decay != builtin.decay \
                or not av.bound_to(ours, theirs):
            av = self._averager = _optim.Averager(ours, theirs, builtin.kind, builtin.decay,
                                                  counter=self._count)
        return av

    def _arrays(self) -> list[np.ndarray[Any, Any]]:
        """Everything `update_parameters` changes: the averaged parameters and the count."""
        return [*self.module.parameters(), self._count]

    def _builtin(self) -> _BuiltinAverage | None:
        """The built-in average to run natively, or None for the caller's own function."""
        fn = self.avg_fn if self.avg_fn is not None else self.multi_avg_fn
        if fn is None:
            return _DEFAULT
        return fn if isinstance(fn, _BuiltinAverage) else None

    def update_parameters(self, model: Module) -> None:
        """Average ``model``'s parameters into `module`'s (the first call copies them) and
        advance `n_averaged`.

        ``model`` must have the parameters of the model this average was made from: as many
        arrays, each of the same dtype and shape (checked before anything is written).
        """
        _check_model(model, "model")
        ours, theirs = self.module.parameters(), model.parameters()
        if len(theirs) != len(ours):
            raise ValueError(f"model has {len(theirs)} parameter arrays but the averaged "
                             f"model has {len(ours)}")
        for i, (a, p) in enumerate(zip(ours, theirs)):
            _checks.like(p, a, f"model.parameters()[{i}]", f"module.parameters()[{i}]")
        builtin = self._builtin()
        av = self._native_averager(model)
        if av is not None:
            av.run()           # advances self._count
            return
        theirs = [np.asarray(p) for p in theirs]
        if self._n == 0:
            for a, p in zip(ours, theirs):
                _ref.copy_(a, p)
        elif builtin is not None:
            for a, p in zip(ours, theirs):
                _ref.average_(a, p, builtin.kind, builtin.decay, self._n)
        elif self.multi_avg_fn is not None:
            # once per dtype, as torch groups the tensors by device and dtype
            groups: dict[np.dtype[Any], tuple[list[FloatArray], list[FloatArray]]] = {}
            for a, p in zip(ours, theirs):
                g = groups.setdefault(a.dtype, ([], []))
                g[0].append(a)
                g[1].append(p)
            for avg_list, cur_list in groups.values():
                self.multi_avg_fn(avg_list, cur_list, self._n)
        else:
            assert self.avg_fn is not None
            for i, (a, p) in enumerate(zip(ours, theirs)):
                out = np.asarray(self.avg_fn(a, p, self._n))
                if out.shape != a.shape:
                    raise ValueError(f"avg_fn returned shape {out.shape} for "
                                     f"module.parameters()[{i}] of shape {a.shape}")
                a[...] = out
        self._n += 1

    # the averaged copy, used as the model
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """``module(*args, **kwargs)``: the averaged model's output."""
        return self.module(*args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def backward(self, grad_output: FloatArray) -> FloatArray:
        """`module`'s backward."""
        return self.module.backward(grad_output)

    def predict(self, X: FloatArray, batch_size: int = 1024) -> FloatArray:
        """`module`'s outputs for all rows of ``X``, in batches."""
        return self.module.predict(X, batch_size)

    def parameters(self) -> list[FloatArray]:
        """The averaged parameters (`module`'s arrays)."""
        return self.module.parameters()

    def gradients(self) -> list[FloatArray]:
        return self.module.gradients()

    def state_dict(self) -> dict[str, Any]:
        """``{"parameters": [copies of the averaged arrays], "n_averaged": int}`` (the
        averaging functions are not saved, as in torch)."""
        return {"parameters": [a.copy() for a in self.module.parameters()],
                "n_averaged": self._n}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take the averaged parameters and `n_averaged` of ``state_dict`` (from
        `state_dict`); every entry is checked before any is written."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        for key in ("parameters", "n_averaged"):
            if key not in state_dict:
                raise KeyError(f"state_dict has no {key!r}")
        extra = sorted(set(state_dict) - {"parameters", "n_averaged"}, key=str)
        if extra:
            raise ValueError(f"state_dict has an unexpected entry {extra[0]!r}")
        n = _checks.integer(state_dict["n_averaged"], "state_dict['n_averaged']", low=0)
        values = state_dict["parameters"]
        ours = self.module.parameters()
        if not isinstance(values, (list, tuple)):
            raise TypeError(f"state_dict['parameters'] must be a list of arrays, got "
                            f"{type(values).__name__}")
        if len(values) != len(ours):
            raise ValueError(f"state_dict['parameters'] has {len(values)} arrays but the "
                             f"averaged model has {len(ours)}")
        for i, (v, a) in enumerate(zip(values, ours)):
            _checks.like(v, a, f"state_dict['parameters'][{i}]", f"module.parameters()[{i}]")
        for v, a in zip(values, ours):
            a[...] = v
        self._n = n

    def __repr__(self) -> str:
        return f"AveragedModel(n_averaged={self._n}, module={self.module!r})"


_DEFAULT = _BuiltinAverage("swa", 0.0, False, "get_swa_avg_fn()")


def _check_model(model: Any, name: str) -> None:
    if not isinstance(model, Module):
        raise TypeError(f"{name} must be a fastgd.nn.Module (e.g. fastgd.nn.Sequential), got "
                        f"{type(model).__name__}")


class SWALR(LRScheduler):
    r"""Anneals each parameter group's learning rate to a constant ``swa_lr`` over
    ``anneal_epochs`` steps and keeps it there, as ``torch.optim.swa_utils.SWALR``:

    .. math::
        \eta_t = \alpha_t\,\eta_{swa} + (1 - \alpha_t)\,\eta_0,\qquad
        \alpha_t = a\bigl(\min(1, t / \max(1, T))\bigr),\quad
        a(s) = \frac{1 - \cos(\pi s)}{2}\ \text{(cos) or } s\ \text{(linear)}

    in torch's recursive form (:math:`\eta_0` recovered from the current rate at each step).

    Parameters
    ----------
    optimizer : fastgd.optim.Optimizer
    swa_lr : float or sequence of float
        The final learning rate, for every group or one per group (>= 0); stored as each
        group's ``"swa_lr"``.
    anneal_epochs : int, default 10
        Steps of the annealing (>= 0; 0 switches to ``swa_lr`` at once).
    anneal_strategy : {"cos", "linear"}, default "cos"
    last_epoch : int, default -1

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> from fastgd.optim.swa_utils import SWALR
    >>> opt = fastgd.optim.SGD([np.zeros(2)], lr=1.0)
    >>> sched = SWALR(opt, swa_lr=0.1, anneal_epochs=2, anneal_strategy="linear")
    >>> for epoch in range(3):
    ...     sched.step()
    ...     print(round(sched.get_last_lr()[0], 6))
    0.55
    0.1
    0.1
    """

    def __init__(self, optimizer: Optimizer, swa_lr: float | Sequence[float],
                 anneal_epochs: int = 10, anneal_strategy: str = "cos",
                 last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a fastgd.optim optimizer, got "
                            f"{type(optimizer).__name__}")
        groups = optimizer.param_groups
        if isinstance(swa_lr, (list, tuple)):
            if len(swa_lr) != len(groups):
                raise ValueError(f"swa_lr has {len(swa_lr)} values but the optimizer has "
                                 f"{len(groups)} parameter groups")
            swa_lrs = [_checks.real(v, f"swa_lr[{i}]", low=0) for i, v in enumerate(swa_lr)]
        else:
            swa_lrs = [_checks.real(swa_lr, "swa_lr", low=0)] * len(groups)
        self._anneal_strategy = _checks.choice(anneal_strategy, "anneal_strategy",
                                               ("cos", "linear"))
        self.anneal_epochs = _checks.integer(anneal_epochs, "anneal_epochs", low=0)
        for value, group in zip(swa_lrs, groups):
            group["swa_lr"] = value
        super().__init__(optimizer, last_epoch)

    def _anneal(self, t: float) -> float:
        return (1 - math.cos(math.pi * t)) / 2 if self._anneal_strategy == "cos" else t

    @staticmethod
    def _initial_lr(lr: float, swa_lr: float, alpha: float) -> float:
        return swa_lr if alpha == 1 else (lr - alpha * swa_lr) / (1 - alpha)

    def get_lr(self) -> list[float]:
        self._warn_outside_step()
        step = self._step_count - 1
        if self.anneal_epochs == 0:
            step = max(1, step)
        span = max(1, self.anneal_epochs)
        prev_alpha = self._anneal(max(0, min(1, (step - 1) / span)))
        alpha = self._anneal(max(0, min(1, step / span)))
        return [g["swa_lr"] * alpha
                + self._initial_lr(g["lr"], g["swa_lr"], prev_alpha) * (1 - alpha)
                for g in self.optimizer.param_groups]
