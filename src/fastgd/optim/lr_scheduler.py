"""Learning-rate schedules with the classes, arguments and semantics of
``torch.optim.lr_scheduler``: each sets ``group["lr"]`` of every parameter group of a fastgd
optimizer, one ``step()`` at a time, and yields the same learning rates as torch for the
same calls.

>>> import numpy as np, fastgd
>>> opt = fastgd.optim.SGD([np.zeros(2)], lr=0.1)
>>> sched = fastgd.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
>>> lrs = []
>>> for epoch in range(5):
...     opt.step([np.ones(2)])     # train ...
...     sched.step()                # ... then step the schedule
...     lrs.append(sched.get_last_lr()[0])
>>> lrs
[0.1, 0.05, 0.05, 0.025, 0.025]

As in torch, a scheduler's constructor takes one step (epoch 0), ``step()`` advances
``last_epoch`` by one and computes the new rates from the current ones ("chainable" form),
``step(epoch)`` (deprecated in torch) jumps to ``epoch`` through the closed form, and
``state_dict()`` is every attribute but the optimizer.
"""
from __future__ import annotations

import math
import warnings
from bisect import bisect_right
from collections import Counter
from typing import Any, Callable, Sequence

import numpy as np

from .. import _checks
from .optimizer import Optimizer

__all__ = ["LRScheduler", "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR",
           "ConstantLR", "LinearLR", "ExponentialLR", "PolynomialLR", "CosineAnnealingLR",
           "CosineAnnealingWarmRestarts", "SequentialLR", "ChainedScheduler",
           "ReduceLROnPlateau"]

_EPOCH_DEPRECATION = ("The epoch parameter in `scheduler.step()` is deprecated (as in "
                      "PyTorch): call `scheduler.step()` without it.")


class LRScheduler:
    """The base of the schedules: the bookkeeping of ``torch.optim.lr_scheduler.LRScheduler``.

    Parameters
    ----------
    optimizer : fastgd.optim.Optimizer
    last_epoch : int, default -1
        -1 starts a schedule (each group's ``initial_lr`` is set to its ``lr``); a value
        >= 0 resumes one, and needs ``initial_lr`` in every group.
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a fastgd.optim optimizer, got "
                            f"{type(optimizer).__name__}")
        last_epoch = _checks.integer(last_epoch, "last_epoch", low=-1)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] "
                                   "when resuming a schedule with last_epoch >= 0")
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._get_lr_called_within_step = False
        self._is_initial = False
        self._initial_step()

    def _initial_step(self) -> None:
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def _lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def get_lr(self) -> list[float]:
        """The next learning rates, from the current ones; ``step`` calls it."""
        raise NotImplementedError

    def get_last_lr(self) -> list[float]:
        """The learning rates the last ``step`` set, one per parameter group."""
        return list(self._last_lr)

    def step(self, epoch: int | None = None) -> None:
        """Advance the schedule by one (after ``optimizer.step``); ``epoch`` (deprecated, as
        in torch) jumps to that epoch through the closed form where there is one."""
        self._step_count += 1
        if epoch is not None:
            warnings.warn(_EPOCH_DEPRECATION, UserWarning, stacklevel=2)
            epoch = _checks.integer(epoch, "epoch", low=0)
        self._update_lr(epoch)

    def _update_lr(self, epoch: int | None = None) -> None:
        self._get_lr_called_within_step = True
        try:
            if epoch is None:
                self.last_epoch += 1
                values = self.get_lr()
            else:
                self.last_epoch = epoch
                closed = getattr(self, "_get_closed_form_lr", None)
                values = closed() if closed is not None else self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = self._lrs()

    def _warn_outside_step(self) -> None:
        if not self._get_lr_called_within_step:
            warnings.warn("To get the last learning rate computed by the scheduler, please "
                          "use `get_last_lr()`.", UserWarning, stacklevel=3)

    def state_dict(self) -> dict[str, Any]:
        """Every attribute but the optimizer (torch's format)."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take the attributes of ``state_dict`` (from `state_dict`)."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        self.__dict__.update(state_dict)


def _per_group(value: Any, optimizer: Optimizer, name: str) -> list[Any]:
    n = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"expected {n} {name}, got {len(value)}")
        items = list(value)
    else:
        items = [value] * n
    for i, f in enumerate(items):
        if not callable(f):
            raise TypeError(f"{name}[{i}] is not callable")
    return items


class _LambdaState:
    """state_dict of the lambda schedules: a function is not saved (None), a callable
    object's attributes are, as torch does."""

    lr_lambdas: list[Callable[[int], float]]

    def state_dict(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}
        state["lr_lambdas"] = [None if isinstance(f, type(lambda: 0)) else dict(f.__dict__)
                               for f in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        state = dict(state_dict)
        lambdas = state.pop("lr_lambdas", [None] * len(self.lr_lambdas))
        self.__dict__.update(state)
        for f, saved in zip(self.lr_lambdas, lambdas):
            if saved is not None:
                f.__dict__.update(saved)


class LambdaLR(_LambdaState, LRScheduler):
    r"""``lr = base_lr * lr_lambda(epoch)``, as ``torch.optim.lr_scheduler.LambdaLR``.

    Parameters
    ----------
    optimizer : fastgd.optim.Optimizer
    lr_lambda : callable or list of callables
        ``epoch -> factor``, one for all groups or one per group.
    last_epoch : int, default -1

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> opt = fastgd.optim.SGD([np.zeros(1)], lr=1.0)
    >>> s = LambdaLR(opt, lambda e: 0.5 ** e)
    >>> s.step(); s.step(); s.get_last_lr()
    [0.25]
    """

    def __init__(self, optimizer: Optimizer, lr_lambda: Any, last_epoch: int = -1) -> None:
        self.optimizer = optimizer
        self.lr_lambdas = _per_group(lr_lambda, optimizer, "lr_lambda") \
            if isinstance(optimizer, Optimizer) else []
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        self._warn_outside_step()
        return [base * f(self.last_epoch) for f, base in zip(self.lr_lambdas, self.base_lrs)]


class MultiplicativeLR(_LambdaState, LRScheduler):
    r"""``lr *= lr_lambda(epoch)`` at every step after the first, as
    ``torch.optim.lr_scheduler.MultiplicativeLR``.

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> opt = fastgd.optim.SGD([np.zeros(1)], lr=1.0)
    >>> s = MultiplicativeLR(opt, lambda e: 0.9)
    >>> s.step(); s.step(); [round(v, 6) for v in s.get_last_lr()]
    [0.81]
    """

    def __init__(self, optimizer: Optimizer, lr_lambda: Any, last_epoch: int = -1) -> None:
        self.optimizer = optimizer
        self.lr_lambdas = _per_group(lr_lambda, optimizer, "lr_lambda") \
            if isinstance(optimizer, Optimizer) else []
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        self._warn_outside_step()
        if self._is_initial:
            return self._lrs()
        return [group["lr"] * f(self.last_epoch)
                for f, group in zip(self.lr_lambdas, self.optimizer.param_groups)]


class StepLR(LRScheduler):
    r"""``lr = base_lr * gamma ** (epoch // step_size)``, as
    ``torch.optim.lr_scheduler.StepLR``.

    Parameters
    ----------
    optimizer : fastgd.optim.Optimizer
    step_size : int
        >= 1.
    gamma : float, default 0.1
    last_epoch : int, default -1
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        self.step_size = _checks.integer(step_size, "step_size", low=1)
        self.gamma = _checks.real(gamma, "gamma")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        self._warn_outside_step()
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._lrs()
        return [lr * self.gamma for lr in self._lrs()]

    def _get_closed_form_lr(self) -> list[float]:
        return [base * self.gamma ** (self.last_epoch // self.step_size)
                for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    r"""``lr = base_lr * gamma ** (milestones passed)``, as
    ``torch.optim.lr_scheduler.MultiStepLR``.

    Parameters
    ----------
    optimizer : fastgd.optim.Optimizer
    milestones : sequence of int
        Epochs, in increasing order (a repeated one applies ``gamma`` twice, as in torch).
    gamma : float, default 0.1
    last_epoch : int, default -1
    """

    def __init__(self, optimizer: Optimizer, milestones: Sequence[int], gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        if isinstance(milestones, (str, bytes)) or not hasattr(milestones, "__iter__"):
            raise TypeError("milestones must be a sequence of ints")
        ms = [_checks.integer(m, f"milestones[{i}]", low=0) for i, m in enumerate(milestones)]
        if any(b < a for a, b in zip(ms, ms[1:])):
            raise ValueError(f"milestones must be in increasing order, got {ms}")
        self.milestones = Counter(ms)
        self.gamma = _checks.real(gamma, "gamma")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        self._warn_outside_step()
        if self.last_epoch not in self.milestones:
            return self._lrs()
        return [lr * self.gamma ** self.milestones[self.last_epoch] for lr in self._lrs()]

    def _get_closed_form_lr(self) -> list[float]:
        ms = sorted(self.milestones.elements())
        return [base * self.gamma ** bisect_right(ms, self.last_epoch) for base in self.base_lrs]


class ConstantLR(LRScheduler):
    r"""``lr = base_lr * factor`` until ``total_iters``, then ``base_lr``, as
    ``torch.optim.lr_scheduler.ConstantLR``.

    Parameters
    ----------
    optimizer : fastgd.optim.Optimizer
    factor : float, default 1/3
        In [0, 1].
    total_iters : int, default 5
    last_epoch : int, default -1
    """

    def __init__(self, optimizer: Optimizer, factor: float = 1.0 / 3, total_iters: int = 5,
                 last_epoch: int = -1) -> None:
        self.factor = _checks.real(factor, "factor", low=0, high=1)
        self.total_iters = _checks.integer(total_iters, "total_iters", low=0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        self._warn_outside_step()
        if self.last_epoch == 0:
            return [lr * self.factor for lr in self._lrs()]
        if self.last_epoch != self.total_iters:
            return self._lrs()
        return [lr * (1.0 / self.factor) for lr in self._lrs()]

    def _get_closed_form_lr(self) -> list[float]:
        return [base * (self.factor + (self.last_epoch >= self.total_iters) * (1 - self.factor))
                for base in self.base_lrs]


class LinearLR(LRScheduler):
    r"""The factor goes linearly from ``start_factor`` to ``end_factor`` over
    ``total_iters`` steps, as ``torch.optim.lr_scheduler.LinearLR``.

    Parameters
    ----------
    optimizer : fastgd.optim.Optimizer
    start_factor : float, default 1/3
        In (0, 1].
    end_factor : float, default 1.0
        In [0, 1].
    total_iters : int, default 5
    last_epoch : int, default -1
    """

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3,
                 end_factor: float = 1.0, total_iters: int = 5, last_epoch: int = -1) -> None:
        self.start_factor = _checks.real(start_factor, "start_factor", low=0, high=1,
                                         low_open=True)
        self.end_factor = _checks.real(end_factor, "end_factor", low=0, high=1)
        self.total_iters = _checks.integer(total_iters, "total_iters", low=1)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        self._warn_outside_step()
        if self.last_epoch == 0:
            return [lr * self.start_factor for lr in self._lrs()]
        if self._is_initial or self.last_epoch > self.total_iters:
            return self._lrs()
        d = self.end_factor - self.start_factor
        ratio = 1.0 + d / (self.total_iters * self.start_factor + (self.last_epoch - 1) * d)
        return [lr * ratio for lr in self._lrs()]

    def _get_closed_form_lr(self) -> list[float]:
        d = self.end_factor - self.start_factor
        return [base * (self.start_factor + d * min(self.total_iters, self.last_epoch)
                        / self.total_iters) for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    r"""``lr = base_lr * gamma ** epoch``, as ``torch.optim.lr_scheduler.ExponentialLR``."""

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = _checks.real(gamma, "gamma")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        self._warn_outside_step()
        if self._is_initial:
            return self._lrs()
        return [lr * self.gamma for lr in self._lrs()]

    def _get_closed_form_lr(self) -> list[float]:
        return [base * self.gamma ** self.last_epoch for base in self.base_lrs]


class PolynomialLR(LRScheduler):
    r"""``lr = base_lr * (1 - min(epoch, total_iters) / total_iters) ** power``, as
    ``torch.optim.lr_scheduler.PolynomialLR``.

    Parameters
    ----------
    optimizer : fastgd.optim.Optimizer
    total_iters : int, default 5
    power : float, default 1.0
    last_epoch : int, default -1
    """

    def __init__(self, optimizer: Optimizer, total_iters: int = 5, power: float = 1.0,
                 last_epoch: int = -1) -> None:
        self.total_iters = _checks.integer(total_iters, "total_iters", low=1)
        self.power = _checks.real(power, "power")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        self._warn_outside_step()
        if self._is_initial or self.last_epoch > self.total_iters:
            return self._lrs()
        factor = ((1.0 - self.last_epoch / self.total_iters)
                  / (1.0 - (self.last_epoch - 1) / self.total_iters)) ** self.power
        return [lr * factor for lr in self._lrs()]

    def _get_closed_form_lr(self) -> list[float]:
        return [base * (1.0 - min(self.total_iters, self.last_epoch) / self.total_iters)
                ** self.power for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    r"""Cosine annealing from ``base_lr`` to ``eta_min`` over ``T_max`` steps (and back,
    periodically), in torch's recursive form, as
    ``torch.optim.lr_scheduler.CosineAnnealingLR``:

    .. math:: \eta_t = \eta_{min} + (\eta_{t-1} - \eta_{min})
              \frac{1 + \cos(\pi t / T_{max})}{1 + \cos(\pi (t-1) / T_{max})}

    Parameters
    ----------
    optimizer : fastgd.optim.Optimizer
    T_max : int
        >= 1.
    eta_min : float, default 0.0
    last_epoch : int, default -1
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        self.T_max = _checks.integer(T_max, "T_max", low=1)
        self.eta_min = _checks.real(eta_min, "eta_min")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        self._warn_outside_step()
        groups, T, lo = self.optimizer.param_groups, self.T_max, self.eta_min
        if self._is_initial:
            return self._lrs()
        if self._step_count == 1 and self.last_epoch > 0:
            return [lo + (base - lo) * (1 + math.cos(self.last_epoch * math.pi / T)) / 2
                    for base in self.base_lrs]
        if (self.last_epoch - 1 - T) % (2 * T) == 0:
            return [g["lr"] + (base - lo) * (1 - math.cos(math.pi / T)) / 2
                    for base, g in zip(self.base_lrs, groups)]
        return [(1 + math.cos(math.pi * self.last_epoch / T))
                / (1 + math.cos(math.pi * (self.last_epoch - 1) / T)) * (g["lr"] - lo) + lo
                for g in groups]

    def _get_closed_form_lr(self) -> list[float]:
        return [self.eta_min + (base - self.eta_min)
                * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base in self.base_lrs]


class CosineAnnealingWarmRestarts(LRScheduler):
    r"""Cosine annealing with warm restarts (SGDR), as
    ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts``:

    .. math:: \eta_t = \eta_{min} + (\eta_{base} - \eta_{min})
              \frac{1 + \cos(\pi T_{cur} / T_i)}{2}

    where :math:`T_{cur}` counts the steps since the last restart and the period
    :math:`T_i` starts at ``T_0`` and is multiplied by ``T_mult`` at each restart.

    Parameters
    ----------
    optimizer : fastgd.optim.Optimizer
    T_0 : int
        >= 1.
    T_mult : int, default 1
        >= 1.
    eta_min : float, default 0.0
    last_epoch : int, default -1
    """

    def __init__(self, optimizer: Optimizer, T_0: int, T_mult: int = 1, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        self.T_0 = _checks.integer(T_0, "T_0", low=1)
        self.T_i = self.T_0
        self.T_mult = _checks.integer(T_mult, "T_mult", low=1)
        self.eta_min = _checks.real(eta_min, "eta_min")
        self.T_cur: float = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        self._warn_outside_step()
        return [self.eta_min + (base - self.eta_min)
                * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2 for base in self.base_lrs]

    def step(self, epoch: float | None = None) -> None:
        """One step, or (as torch allows here, fractional epochs included) to ``epoch``."""
        self._step_count += 1
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            if isinstance(epoch, bool) or not isinstance(epoch, (int, float)):
                raise TypeError(f"epoch must be a number, got {type(epoch).__name__}")
            if epoch < 0:
                raise ValueError(f"epoch must be >= 0, got {epoch}")
            if epoch >= self.T_0:
                if self.T_mult == 1:
                    self.T_cur = epoch % self.T_0
                else:
                    n = int(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1, self.T_mult))
                    self.T_cur = epoch - self.T_0 * (self.T_mult ** n - 1) / (self.T_mult - 1)
                    self.T_i = self.T_0 * self.T_mult ** n
            else:
                self.T_i = self.T_0
                self.T_cur = epoch
        self.last_epoch = math.floor(epoch)
        self._get_lr_called_within_step = True
        try:
            values = self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = self._lrs()


def _check_children(kind: str, schedulers: Any, optimizer: Optimizer) -> list[LRScheduler]:
    if isinstance(schedulers, (str, bytes)) or not hasattr(schedulers, "__iter__"):
        raise TypeError(f"{kind}: schedulers must be a sequence of schedulers")
    out = list(schedulers)
    if not out:
        raise ValueError(f"{kind} expects at least one scheduler")
    for i, s in enumerate(out):
        if not isinstance(s, LRScheduler):
            raise TypeError(f"{kind}: schedulers[{i}] is not a fastgd.optim.lr_scheduler "
                            f"scheduler, got {type(s).__name__}")
        if s.optimizer is not optimizer:
            raise ValueError(f"{kind} expects every scheduler on the same optimizer; "
                             f"schedulers[{i}] has another one")
    return out


class _Composite(LRScheduler):
    """state_dict and load_state_dict of the schedules made of others."""

    _schedulers: list[LRScheduler]

    def state_dict(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        state = dict(state_dict)
        children = state.pop("_schedulers")
        self.__dict__.update(state)
        for s, saved in zip(self._schedulers, children):
            s.load_state_dict(saved)


class SequentialLR(_Composite):
    """The schedulers one after the other, switching at ``milestones``, as
    ``torch.optim.lr_scheduler.SequentialLR``.

    Parameters
    ----------
    optimizer : fastgd.optim.Optimizer
    schedulers : sequence of schedulers
        Built on ``optimizer``.
    milestones : sequence of int
        One fewer than the schedulers, in increasing order.
    last_epoch : int, default -1

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> opt = fastgd.optim.SGD([np.zeros(1)], lr=1.0)
    >>> warm = LinearLR(opt, start_factor=0.5, total_iters=2)
    >>> decay = ExponentialLR(opt, gamma=0.5)
    >>> s = SequentialLR(opt, [warm, decay], milestones=[2])
    >>> lrs = [s.get_last_lr()[0]]
    >>> for _ in range(4):
    ...     s.step(); lrs.append(s.get_last_lr()[0])
    >>> lrs
    [0.5, 0.75, 1.0, 0.5, 0.25]
    """

    def __init__(self, optimizer: Optimizer, schedulers: Sequence[LRScheduler],
                 milestones: Sequence[int], last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a fastgd.optim optimizer, got "
                            f"{type(optimizer).__name__}")
        children = _check_children("SequentialLR", schedulers, optimizer)
        if isinstance(milestones, (str, bytes)) or not hasattr(milestones, "__iter__"):
            raise TypeError("milestones must be a sequence of ints")
        ms = [_checks.integer(m, f"milestones[{i}]", low=0) for i, m in enumerate(milestones)]
        if len(ms) != len(children) - 1:
            raise ValueError(f"SequentialLR expects one milestone fewer than schedulers, got "
                             f"{len(children)} schedulers and {len(ms)} milestones")
        if any(b < a for a, b in zip(ms, ms[1:])):
            raise ValueError(f"milestones must be in increasing order, got {ms}")
        last_epoch = _checks.integer(last_epoch, "last_epoch", low=-1)
        self._schedulers = children
        self._milestones = ms
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        self._undo(self)
        idx = bisect_right(ms, 0)
        children[idx]._initial_step()
        self._last_lr = children[idx].get_last_lr()

    def _undo(self, sched: LRScheduler) -> None:
        """Take back the first step of every scheduler inside (their constructors took one)."""
        inner = getattr(sched, "_schedulers", None)
        if inner is not None:
            for s in inner:
                self._undo(s)
        else:
            sched.last_epoch -= 1

    def step(self, epoch: int | None = None) -> None:
        if epoch is not None:
            raise TypeError("SequentialLR.step() takes no epoch")
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()


class ChainedScheduler(_Composite):
    """Every scheduler stepped in turn at each step (their factors multiply), as
    ``torch.optim.lr_scheduler.ChainedScheduler``.

    Parameters
    ----------
    schedulers : sequence of schedulers
        All on one optimizer.
    optimizer : fastgd.optim.Optimizer, optional
        Their optimizer (default: the first scheduler's).
    """

    def __init__(self, schedulers: Sequence[LRScheduler],
                 optimizer: Optimizer | None = None) -> None:
        first = list(schedulers)[:1] if hasattr(schedulers, "__iter__") else []
        if optimizer is None and first and isinstance(first[0], LRScheduler):
            optimizer = first[0].optimizer
        if not isinstance(optimizer, Optimizer):
            raise TypeError("ChainedScheduler needs schedulers on a fastgd.optim optimizer")
        self._schedulers = _check_children("ChainedScheduler", schedulers, optimizer)
        self.optimizer = optimizer
        self._last_lr = self._lrs()

    def step(self, epoch: int | None = None) -> None:
        if epoch is not None:
            raise TypeError("ChainedScheduler.step() takes no epoch")
        for s in self._schedulers:
            s.step()
        self._last_lr = self._lrs()


class ReduceLROnPlateau(LRScheduler):
    """Multiply the learning rates by ``factor`` once a metric has stopped improving for
    ``patience`` steps, as ``torch.optim.lr_scheduler.ReduceLROnPlateau``; ``step(metric)``.

    Parameters
    ----------
    optimizer : fastgd.optim.Optimizer
    mode : {"min", "max"}, default "min"
    factor : float, default 0.1
        In [0, 1).
    patience : int, default 10
    threshold : float, default 1e-4
    threshold_mode : {"rel", "abs"}, default "rel"
        "Better" is below ``best * (1 - threshold)`` ("rel", mode "min") or
        ``best - threshold`` ("abs"); mirrored for mode "max".
    cooldown : int, default 0
        Steps to wait after a reduction before counting bad steps again.
    min_lr : float or list of float, default 0
        A floor, for all groups or one per group.
    eps : float, default 1e-8
        A reduction smaller than this is not made.

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> opt = fastgd.optim.SGD([np.zeros(1)], lr=1.0)
    >>> s = ReduceLROnPlateau(opt, patience=1, factor=0.5)
    >>> for loss in [1.0, 0.9, 0.9, 0.9, 0.9]:
    ...     s.step(loss)
    >>> s.get_last_lr()
    [0.5]
    """

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel",
                 cooldown: int = 0, min_lr: float | Sequence[float] = 0,
                 eps: float = 1e-8) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a fastgd.optim optimizer, got "
                            f"{type(optimizer).__name__}")
        self.factor = _checks.real(factor, "factor", low=0, high=1, high_open=True)
        n = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n:
                raise ValueError(f"expected {n} min_lrs, got {len(min_lr)}")
            self.default_min_lr: float | None = None
            self.min_lrs = [_checks.real(v, f"min_lr[{i}]", low=0) for i, v in enumerate(min_lr)]
        else:
            self.default_min_lr = _checks.real(min_lr, "min_lr", low=0)
            self.min_lrs = [self.default_min_lr] * n
        self.patience = _checks.integer(patience, "patience", low=0)
        self.cooldown = _checks.integer(cooldown, "cooldown", low=0)
        self.eps = _checks.real(eps, "eps", low=0)
        self.threshold = _checks.real(threshold, "threshold", low=0)
        self.mode = _checks.choice(mode, "mode", ("min", "max"))
        self.threshold_mode = _checks.choice(threshold_mode, "threshold_mode", ("rel", "abs"))
        self.optimizer = optimizer
        self.last_epoch = 0
        self._last_lr = self._lrs()
        self.mode_worse = math.inf if self.mode == "min" else -math.inf
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def _is_better(self, a: float, best: float) -> bool:
        if self.mode == "min":
            return a < (best * (1.0 - self.threshold) if self.threshold_mode == "rel"
                        else best - self.threshold)
        return a > (best * (self.threshold + 1.0) if self.threshold_mode == "rel"
                    else best + self.threshold)

    def step(self, metrics: Any, epoch: int | None = None) -> None:  # type: ignore[override]
        """One step with this step's value of the monitored metric (a real number)."""
        if isinstance(metrics, bool) or not isinstance(metrics, (int, float, np.number)):
            raise TypeError(f"metrics must be a real number, got {type(metrics).__name__}")
        current = float(metrics)
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            warnings.warn(_EPOCH_DEPRECATION, UserWarning, stacklevel=2)
            epoch = _checks.integer(epoch, "epoch", low=0)
        self.last_epoch = epoch
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = self._lrs()

    def _reduce_lr(self) -> None:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise ValueError(f"the optimizer has {len(groups)} parameter groups but min_lr "
                                 f"gave {len(self.min_lrs)}: set min_lrs for every group")
            self.min_lrs = [self.default_min_lr] * len(groups)
        for i, group in enumerate(groups):
            old = float(group["lr"])
            new = max(old * self.factor, self.min_lrs[i])
            if old - new > self.eps:
                group["lr"] = new

    @property
    def in_cooldown(self) -> bool:
        """Whether reductions are paused (``cooldown`` steps after the last one)."""
        return self.cooldown_counter > 0
