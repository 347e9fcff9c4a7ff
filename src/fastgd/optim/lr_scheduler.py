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
import types
import warnings
from bisect import bisect_right
from collections import Counter
from typing import Any, Callable, Sequence

import numpy as np

from .. import _checks
from .optimizer import Optimizer

__all__ = ["LRScheduler", "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR",
           "ConstantLR", "LinearLR", "ExponentialLR", "PolynomialLR", "CosineAnnealingLR",
           "CosineAnnealingWarmRestarts", "CyclicLR", "OneCycleLR", "SequentialLR",
           "ChainedScheduler", "ReduceLROnPlateau"]

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

    def _ahead(self, count: int, second: str | None
               ) -> tuple[list[list[float]], list[list[float]] | list[float]] | None:
        """Take ``count`` steps exactly as ``count`` calls of ``step()`` take them, with less
        Python around each (`fastgd.fit` fills a per-step table with them): the rates of
        every group after each step (a list of ``count`` lists), and with ``second``
        ("momentum" or "beta1") the momentum or beta1 of every group after each step (the
        same shape, or one list for all steps when the schedule leaves it alone; zeros
        without ``second``). None (and nothing done) for a schedule whose ``step`` is its
        own."""
        cls = type(self)
        if cls.step is not LRScheduler.step or cls._update_lr is not LRScheduler._update_lr:
            return None
        groups = self.optimizer.param_groups

        def seconds() -> list[float]:
            if second is None:
                return [0.0] * len(groups)
            if second == "momentum":
                return [g["momentum"] for g in groups]
            return [g["betas"][0] for g in groups]

        chain = getattr(self, "_chain", None)
        if chain is not None:       # in a loop of the schedule's own
            rows, momenta = chain(self.last_epoch + 1, count, self._lrs())
            self._step_count += count
            self.last_epoch += count
            for group, lr in zip(groups, rows[-1]):
                group["lr"] = lr
            if momenta is not None:
                for group, m in zip(groups, momenta[-1]):
                    _set_momentum(group, self.use_beta1, m)   # type: ignore[attr-defined]
            self._last_lr = self._lrs()
            return rows, (seconds() if momenta is None or second is None else momenta)
        get_lr = self.get_lr
        lrs: list[list[float]] = []
        others: list[list[float]] = []
        self._get_lr_called_within_step = True
        try:
            for _ in range(count):
                self._step_count += 1
                self.last_epoch += 1
                values = get_lr()
                for group, lr in zip(groups, values):
                    group["lr"] = lr
                lrs.append([g["lr"] for g in groups])
                others.append(seconds())
        finally:
            self._get_lr_called_within_step = False
            self._last_lr = self._lrs()
        return lrs, others

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

    def _chain(self, epoch: int, count: int, lrs: list[float]
               ) -> tuple[list[list[float]], None]:
        """get_lr's rates of ``count`` steps from ``epoch`` on, in one loop."""
        pairs = list(zip(self.lr_lambdas, self.base_lrs))
        return [[base * f(e) for f, base in pairs] for e in range(epoch, epoch + count)], None


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


class _ChainedFactor(LRScheduler):
    """A schedule whose ``step`` multiplies every rate by one factor of the epoch (torch's
    chainable form): `_factor` is that factor, None for "unchanged"; ``get_lr`` and the
    loop `fastgd.fit` steps it ahead with (`_chain`) both apply it, so they agree bit for
    bit."""

    def _factor(self, epoch: int) -> float | None:
        raise NotImplementedError

    def get_lr(self) -> list[float]:
        self._warn_outside_step()
        f = self._factor(self.last_epoch)
        lrs = self._lrs()
        return lrs if f is None else [lr * f for lr in lrs]

    def _chain(self, epoch: int, count: int, lrs: list[float]
               ) -> tuple[list[list[float]], None]:
        """The rates after each of ``count`` steps from epoch ``epoch`` on (for
        `LRScheduler._ahead`; no momentum)."""
        factor, rows = self._factor, []
        for e in range(epoch, epoch + count):
            f = factor(e)
            if f is not None:
                lrs = [lr * f for lr in lrs]
            rows.append(lrs)
        return rows, None


class StepLR(_ChainedFactor):
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

    def _factor(self, epoch: int) -> float | None:
        return None if epoch == 0 or epoch % self.step_size != 0 else self.gamma

    def _get_closed_form_lr(self) -> list[float]:
        return [base * self.gamma ** (self.last_epoch // self.step_size)
                for base in self.base_lrs]


class MultiStepLR(_ChainedFactor):
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

    def _factor(self, epoch: int) -> float | None:
        if epoch not in self.milestones:
            return None
        return self.gamma ** self.milestones[epoch]

    def _get_closed_form_lr(self) -> list[float]:
        ms = sorted(self.milestones.elements())
        return [base * self.gamma ** bisect_right(ms, self.last_epoch) for base in self.base_lrs]


class ConstantLR(_ChainedFactor):
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

    def _factor(self, epoch: int) -> float | None:
        if epoch == 0:
            return self.factor
        if epoch != self.total_iters:
            return None
        return 1.0 / self.factor

    def _get_closed_form_lr(self) -> list[float]:
        return [base * (self.factor + (self.last_epoch >= self.total_iters) * (1 - self.factor))
                for base in self.base_lrs]


class LinearLR(_ChainedFactor):
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

    def _factor(self, epoch: int) -> float | None:
        if epoch == 0:
            return self.start_factor
        if self._is_initial or epoch > self.total_iters:
            return None
        d = self.end_factor - self.start_factor
        return 1.0 + d / (self.total_iters * self.start_factor + (epoch - 1) * d)

    def _get_closed_form_lr(self) -> list[float]:
        d = self.end_factor - self.start_factor
        return [base * (self.start_factor + d * min(self.total_iters, self.last_epoch)
                        / self.total_iters) for base in self.base_lrs]


class ExponentialLR(_ChainedFactor):
    r"""``lr = base_lr * gamma ** epoch``, as ``torch.optim.lr_scheduler.ExponentialLR``."""

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = _checks.real(gamma, "gamma")
        super().__init__(optimizer, last_epoch)

    def _factor(self, epoch: int) -> float | None:
        return None if self._is_initial else self.gamma

    def _get_closed_form_lr(self) -> list[float]:
        return [base * self.gamma ** self.last_epoch for base in self.base_lrs]


class PolynomialLR(_ChainedFactor):
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

    def _factor(self, epoch: int) -> float | None:
        if self._is_initial or epoch > self.total_iters:
            return None
        return ((1.0 - epoch / self.total_iters)
                / (1.0 - (epoch - 1) / self.total_iters)) ** self.power

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

    def _chain(self, epoch: int, count: int, lrs: list[float]
               ) -> tuple[list[list[float]], None]:
        """get_lr's rates after each of ``count`` steps from ``epoch`` on (a schedule under
        way: neither its first step nor a resumed one's), in one loop."""
        T, lo, cos, pi = self.T_max, self.eta_min, math.cos, math.pi
        half = [(base - lo) * (1 - cos(pi / T)) / 2 for base in self.base_lrs]
        rows = []
        for e in range(epoch, epoch + count):
            if (e - 1 - T) % (2 * T) == 0:
                lrs = [lr + h for lr, h in zip(lrs, half)]
            else:
                r = (1 + cos(pi * e / T)) / (1 + cos(pi * (e - 1) / T))
                lrs = [r * (lr - lo) + lo for lr in lrs]
            rows.append(lrs)
        return rows, None

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


def _check_optimizer(optimizer: Any) -> Optimizer:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a fastgd.optim optimizer, got "
                        f"{type(optimizer).__name__}")
    return optimizer


def _per_group_real(value: Any, optimizer: Optimizer, name: str, *,
                    low: float | None = None) -> list[float]:
    """``value`` (a number, or a list or tuple of one per group) as one float per group."""
    n = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"expected {n} {name} (one per parameter group), got {len(value)}")
        return [_checks.real(v, f"{name}[{i}]", low=low) for i, v in enumerate(value)]
    return [_checks.real(value, name, low=low)] * n


def _uses_beta1(optimizer: Optimizer, kind: str) -> bool:
    """Whether momentum is cycled through ``betas[0]`` (the Adam family) rather than
    ``momentum`` (SGD, RMSprop), as torch's ``use_beta1``."""
    if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
        raise ValueError(f"{kind}: cycle_momentum=True needs an optimizer with a 'momentum' or "
                         f"'betas' hyper-parameter, and {type(optimizer).__name__} has neither; "
                         "pass cycle_momentum=False")
    return "betas" in optimizer.defaults


def _set_momentum(group: dict[str, Any], use_beta1: bool, value: float) -> None:
    if use_beta1:
        group["betas"] = (value, *group["betas"][1:])
    else:
        group["momentum"] = value


def _momenta(optimizer: Optimizer, use_beta1: bool, value: Any, name: str) -> list[float]:
    """One momentum per group (``value`` as `_per_group_real` takes it), each checked to be
    one that its group's optimizer accepts (SGD's Nesterov momentum > 0, Adam's beta1 < 1)."""
    values = _per_group_real(value, optimizer, name)
    key = "betas[0]" if use_beta1 else "momentum"
    for i, (group, v) in enumerate(zip(optimizer.param_groups, values)):
        trial = dict(group)
        _set_momentum(trial, use_beta1, v)
        try:
            optimizer.spec.kernel_args(trial, f"param_groups[{i}]")
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{name}={v} cannot be the {key} of param_groups[{i}]: "
                            f"{exc}") from None
    return values


def _cycle_momentum_setup(sched: Any, optimizer: Optimizer, kind: str, cycle_momentum: Any,
                          base_momentum: Any, max_momentum: Any
                          ) -> tuple[list[float], list[float]] | None:
    """The momentum arguments of CyclicLR and OneCycleLR, checked: torch's attributes
    ``cycle_momentum`` (and with it ``use_beta1``) set, and the base and max momentum of
    every group returned (None without ``cycle_momentum``)."""
    sched.cycle_momentum = _checks.flag(cycle_momentum, "cycle_momentum")
    if not sched.cycle_momentum:
        return None
    sched.use_beta1 = _uses_beta1(optimizer, kind)
    return (_momenta(optimizer, sched.use_beta1, base_momentum, "base_momentum"),
            _momenta(optimizer, sched.use_beta1, max_momentum, "max_momentum"))


def _start_momentum(optimizer: Optimizer, use_beta1: bool, base: list[float],
                    top: list[float]) -> None:
    """A new schedule's momentum: ``max_momentum`` in every group, which also carries
    ``base_momentum`` and ``max_momentum`` (as torch's do)."""
    for group, lo, hi in zip(optimizer.param_groups, base, top):
        _set_momentum(group, use_beta1, hi)
        group["max_momentum"] = hi
        group["base_momentum"] = lo


class CyclicLR(LRScheduler):
    r"""The cyclical learning rate policy (CLR, Smith 2017): the rate goes up and down
    between ``base_lr`` and ``max_lr`` (and the momentum the other way), one step per
    batch, as ``torch.optim.lr_scheduler.CyclicLR``:

    .. math::
        c &= \lfloor 1 + t / (u + d) \rfloor, \qquad x = 1 + t / (u + d) - c, \qquad
        r = u / (u + d)\\
        h_t &= \begin{cases} x / r & x \le r\\ (1 - x) / (1 - r) & x > r \end{cases}\\
        \eta_t &= \eta_{base} + (\eta_{max} - \eta_{base})\, h_t\, s, \qquad
        m_t = m_{max} - (m_{max} - m_{base})\, h_t\, s

    for step :math:`t`, ``step_size_up`` :math:`u` and ``step_size_down`` :math:`d`. The
    amplitude's scale :math:`s` is 1 ("triangular"), :math:`2^{1-c}` ("triangular2", halved
    every cycle), :math:`\gamma^t` ("exp_range"), or ``scale_fn`` of the cycle :math:`c`
    (``scale_mode="cycle"``) or of the step :math:`t` (``scale_mode="iterations"``).

    Parameters
    ----------
    optimizer : fastgd.optim.Optimizer
    base_lr, max_lr : float or list of float
        The lower and upper rates, for all groups or one per group (>= 0). A new schedule
        (``last_epoch=-1``) sets each group's ``lr`` to its ``base_lr``.
    step_size_up : int, default 2000
        Steps of the rising half of a cycle (>= 1).
    step_size_down : int, optional
        Steps of the falling half (>= 0); by default ``step_size_up``.
    mode : {"triangular", "triangular2", "exp_range"}, default "triangular"
        Ignored when ``scale_fn`` is given (as in torch).
    gamma : float, default 1.0
        The base of "exp_range" (> 0).
    scale_fn : callable, optional
        ``x -> scale``, in [0, 1] for x >= 0, instead of ``mode``. The state dict saves the
        attributes of a callable object, not a function (as torch).
    scale_mode : {"cycle", "iterations"}, default "cycle"
        What ``scale_fn`` is given; the modes set their own.
    cycle_momentum : bool, default True
        Cycle the groups' ``momentum`` (SGD, RMSprop) or ``betas[0]`` (Adam family: the
        optimizer has ``betas``) from ``max_momentum`` down to ``base_momentum`` and back.
        A new schedule puts ``base_momentum`` and ``max_momentum`` in every group.
    base_momentum, max_momentum : float or list of float, default 0.8, 0.9
        For all groups or one per group; each must be a value the optimizer accepts.
    last_epoch : int, default -1
        The index of the last batch: -1 starts a schedule.

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> opt = fastgd.optim.SGD([np.zeros(1)], lr=0.1, momentum=0.9)
    >>> s = CyclicLR(opt, base_lr=0.1, max_lr=0.5, step_size_up=2)
    >>> lrs = [s.get_last_lr()[0]]
    >>> for _ in range(5):
    ...     s.step(); lrs.append(round(s.get_last_lr()[0], 6))
    >>> lrs
    [0.1, 0.3, 0.5, 0.3, 0.1, 0.3]
    >>> round(opt.param_groups[0]["momentum"], 6)   # down from 0.9 as the rate goes up
    0.85
    """

    cycle_momentum: bool
    use_beta1: bool  # set with cycle_momentum only, as torch's

    def __init__(self, optimizer: Optimizer, base_lr: float | Sequence[float],
                 max_lr: float | Sequence[float], step_size_up: int = 2000,
                 step_size_down: int | None = None, mode: str = "triangular",
                 gamma: float = 1.0, scale_fn: Callable[[float], float] | None = None,
                 scale_mode: str = "cycle", cycle_momentum: bool = True,
                 base_momentum: float | Sequence[float] = 0.8,
                 max_momentum: float | Sequence[float] = 0.9, last_epoch: int = -1) -> None:
        # every argument is checked before the optimizer changes
        _check_optimizer(optimizer)
        last_epoch = _checks.integer(last_epoch, "last_epoch", low=-1)
        base_lrs = _per_group_real(base_lr, optimizer, "base_lr", low=0)
        self.max_lrs = _per_group_real(max_lr, optimizer, "max_lr", low=0)
        up = _checks.integer(step_size_up, "step_size_up", low=1)
        down = up if step_size_down is None else _checks.integer(step_size_down,
                                                                 "step_size_down", low=0)
        self.total_size = float(up + down)
        self.step_ratio = up / self.total_size
        if scale_fn is not None and not callable(scale_fn):
            raise TypeError(f"scale_fn must be callable or None, got {type(scale_fn).__name__}")
        if scale_fn is None:
            mode = _checks.choice(mode, "mode", ("triangular", "triangular2", "exp_range"))
        scale_mode = _checks.choice(scale_mode, "scale_mode", ("cycle", "iterations"))
        self.mode = mode
        self.gamma = _checks.real(gamma, "gamma", low=0, low_open=True)
        self._scale_fn_custom = scale_fn
        if scale_fn is None:  # the modes' own (torch's)
            scale_mode = "iterations" if mode == "exp_range" else "cycle"
        self.scale_mode = scale_mode
        momenta = _cycle_momentum_setup(self, optimizer, "CyclicLR", cycle_momentum,
                                        base_momentum, max_momentum)
        if momenta is not None:
            self.base_momentums, self.max_momentums = momenta
        self.optimizer = optimizer
        if last_epoch == -1:
            for group, lr in zip(optimizer.param_groups, base_lrs):
                group["lr"] = lr
            if momenta is not None:
                _start_momentum(optimizer, self.use_beta1, *momenta)
        # As torch: the constructor's step takes the groups' initial_lr as the lower rates
        # (the same as base_lr unless a group had an initial_lr already), later steps base_lr.
        super().__init__(optimizer, last_epoch)
        self.base_lrs = base_lrs

    def scale_fn(self, x: float) -> float:
        """The amplitude's scale at ``x`` (a cycle or a step, as ``scale_mode`` says)."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** (x - 1))
        return self.gamma ** x

    def _chain(self, epoch: int, count: int, lrs: list[float]
               ) -> tuple[list[list[float]], list[list[float]] | None]:
        """get_lr's rates (and momenta) of ``count`` steps from ``epoch`` on, in one loop,
        for `LRScheduler._ahead`."""
        size, ratio, floor = self.total_size, self.step_ratio, math.floor
        by_cycle, scale_fn = self.scale_mode == "cycle", self.scale_fn
        lr_ends = list(zip(self.base_lrs, self.max_lrs))
        m_ends = list(zip(self.base_momentums, self.max_momentums)) if self.cycle_momentum \
            else None
        rows: list[list[float]] = []
        momenta: list[list[float]] = []
        for t in range(epoch, epoch + count):
            cycle = floor(1 + t / size)
            x = 1.0 + t / size - cycle
            h = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
            scale = scale_fn(cycle if by_cycle else t)
            rows.append([base + (top - base) * h * scale for base, top in lr_ends])
            if m_ends is not None:
                momenta.append([top - (top - lo) * h * scale for lo, top in m_ends])
        return rows, (momenta if m_ends is not None else None)

    def get_lr(self) -> list[float]:
        """The rates of step ``last_epoch`` (and, with ``cycle_momentum``, its momentum is
        set in every group)."""
        self._warn_outside_step()
        t = self.last_epoch
        cycle = math.floor(1 + t / self.total_size)
        x = 1.0 + t / self.total_size - cycle
        h = x / self.step_ratio if x <= self.step_ratio else (x - 1) / (self.step_ratio - 1)
        scale = self.scale_fn(cycle if self.scale_mode == "cycle" else t)
        lrs = [base + (top - base) * h * scale for base, top in zip(self.base_lrs, self.max_lrs)]
        if self.cycle_momentum:
            for group, lo, hi in zip(self.optimizer.param_groups, self.base_momentums,
                                     self.max_momentums):
                _set_momentum(group, self.use_beta1, hi - (hi - lo) * h * scale)
        return lrs

    def state_dict(self) -> dict[str, Any]:
        """Every attribute but the optimizer; of a custom ``scale_fn``, the attributes of a
        callable object (None for a function, which is not saved), as torch."""
        state = {k: v for k, v in self.__dict__.items()
                 if k not in ("optimizer", "_scale_fn_custom")}
        fn = self._scale_fn_custom
        state["_scale_fn_custom"] = None if fn is None or isinstance(
            fn, (types.FunctionType, types.MethodType, types.BuiltinFunctionType)) \
            or not hasattr(fn, "__dict__") else dict(fn.__dict__)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take the attributes of ``state_dict`` (from `state_dict`); this scheduler's own
        ``scale_fn`` takes the saved attributes of one."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        state = dict(state_dict)
        saved = state.pop("_scale_fn_custom", None)
        if saved is not None and self._scale_fn_custom is None:
            raise ValueError("state_dict holds the attributes of a custom scale_fn, and this "
                             "CyclicLR has none: build it with that scale_fn")
        self.__dict__.update(state)
        if saved is not None:
            self._scale_fn_custom.__dict__.update(saved)


def _anneal_cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def _anneal_linear(start: float, end: float, pct: float) -> float:
    return (end - start) * pct + start


class OneCycleLR(LRScheduler):
    r"""The 1cycle policy (Smith and Topin 2017): the rate rises from ``max_lr /
    div_factor`` to ``max_lr`` over the first ``pct_start`` of ``total_steps`` and then
    anneals to far below where it started, one step per batch (the momentum goes the other
    way), as ``torch.optim.lr_scheduler.OneCycleLR``:

    .. math::
        \eta_0 &= \eta_{max} / D, \qquad \eta_{min} = \eta_0 / D_f, \qquad t_1 = p T - 1\\
        \eta_t &= \begin{cases}
            a(\eta_0, \eta_{max}, t / t_1) & t \le t_1\\
            a(\eta_{max}, \eta_{min}, (t - t_1) / (T - 1 - t_1)) & t > t_1
        \end{cases}\\
        a_{cos}(u, v, q) &= v + (u - v)\frac{1 + \cos(\pi q)}{2}, \qquad
        a_{linear}(u, v, q) = u + (v - u) q

    for step :math:`t`, ``total_steps`` :math:`T`, ``pct_start`` :math:`p`, ``div_factor``
    :math:`D` and ``final_div_factor`` :math:`D_f`; the momentum follows the same phases
    from ``max_momentum`` to ``base_momentum`` and back. With ``three_phase=True`` the rate comes back down to :math:`\eta_0` at :math:`2pT - 2` (the
    momentum to ``max_momentum``) and only then anneals to :math:`\eta_{min}` at
    :math:`T - 1`.

    Parameters
    ----------
    optimizer : fastgd.optim.Optimizer
    max_lr : float or list of float
        The peak rate, for all groups or one per group (>= 0).
    total_steps : int, optional
        The steps of the cycle (>= 1); or give ``epochs`` and ``steps_per_epoch``.
        Stepping past it is an error.
    epochs, steps_per_epoch : int, optional
        ``total_steps = epochs * steps_per_epoch`` when ``total_steps`` is not given.
    pct_start : float, default 0.3
        The share of the steps spent rising, in [0, 1].
    anneal_strategy : {"cos", "linear"}, default "cos"
    cycle_momentum : bool, default True
        Cycle the groups' ``momentum`` (SGD, RMSprop) or ``betas[0]`` (Adam family) between
        ``max_momentum`` and ``base_momentum``.
    base_momentum, max_momentum : float or list of float, default 0.85, 0.95
        For all groups or one per group; each must be a value the optimizer accepts.
    div_factor : float, default 25.0
        The first rate is ``max_lr / div_factor`` (> 0).
    final_div_factor : float, default 1e4
        The last rate is the first divided by this (> 0).
    three_phase : bool, default False
    last_epoch : int, default -1
        The index of the last batch: -1 starts a schedule, which puts ``initial_lr``,
        ``max_lr`` and ``min_lr`` (and with ``cycle_momentum``, ``base_momentum`` and
        ``max_momentum``) in every group, as torch; resuming reads them from the groups.

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> opt = fastgd.optim.Adam([np.zeros(1)])
    >>> s = OneCycleLR(opt, max_lr=1.0, total_steps=5, pct_start=0.4,
    ...                anneal_strategy="linear", div_factor=10, final_div_factor=100)
    >>> lrs = [s.get_last_lr()[0]]
    >>> for _ in range(4):
    ...     s.step(); lrs.append(round(s.get_last_lr()[0], 6))
    >>> lrs
    [0.1, 1.0, 0.667, 0.334, 0.001]
    >>> opt.param_groups[0]["betas"]                 # beta1 back at max_momentum
    (0.95, 0.999)
    """

    cycle_momentum: bool
    use_beta1: bool  # set with cycle_momentum only, as torch's
    _schedule_phases: list[dict[str, Any]]

    def __init__(self, optimizer: Optimizer, max_lr: float | Sequence[float],
                 total_steps: int | None = None, epochs: int | None = None,
                 steps_per_epoch: int | None = None, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", cycle_momentum: bool = True,
                 base_momentum: float | Sequence[float] = 0.85,
                 max_momentum: float | Sequence[float] = 0.95, div_factor: float = 25.0,
                 final_div_factor: float = 1e4, three_phase: bool = False,
                 last_epoch: int = -1) -> None:
        # every argument is checked before the optimizer changes
        _check_optimizer(optimizer)
        last_epoch = _checks.integer(last_epoch, "last_epoch", low=-1)
        if epochs is not None:
            epochs = _checks.integer(epochs, "epochs", low=1)
        if steps_per_epoch is not None:
            steps_per_epoch = _checks.integer(steps_per_epoch, "steps_per_epoch", low=1)
        if total_steps is not None:
            self.total_steps = _checks.integer(total_steps, "total_steps", low=1)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("OneCycleLR needs total_steps, or epochs and steps_per_epoch")
        pct = _checks.real(pct_start, "pct_start", low=0, high=1)
        self._anneal_func_type = _checks.choice(anneal_strategy, "anneal_strategy",
                                                ("cos", "linear"))
        max_lrs = _per_group_real(max_lr, optimizer, "max_lr", low=0)
        div = _checks.real(div_factor, "div_factor", low=0, low_open=True)
        final_div = _checks.real(final_div_factor, "final_div_factor", low=0, low_open=True)
        T = self.total_steps
        up = {"end_step": float(pct * T) - 1, "start_lr": "initial_lr", "end_lr": "max_lr",
              "start_momentum": "max_momentum", "end_momentum": "base_momentum"}
        if _checks.flag(three_phase, "three_phase"):
            self._schedule_phases = [
                up,
                {"end_step": float(2 * pct * T) - 2, "start_lr": "max_lr",
                 "end_lr": "initial_lr", "start_momentum": "base_momentum",
                 "end_momentum": "max_momentum"},
                {"end_step": T - 1, "start_lr": "initial_lr", "end_lr": "min_lr",
                 "start_momentum": "max_momentum", "end_momentum": "max_momentum"}]
        else:
            self._schedule_phases = [
                up,
                {"end_step": T - 1, "start_lr": "max_lr", "end_lr": "min_lr",
                 "start_momentum": "base_momentum", "end_momentum": "max_momentum"}]
        momenta = _cycle_momentum_setup(self, optimizer, "OneCycleLR", cycle_momentum,
                                        base_momentum, max_momentum)
        if last_epoch >= 0:  # resuming: the groups must hold what a new schedule put there
            keys = ["initial_lr", "max_lr", "min_lr"]
            keys += ["base_momentum", "max_momentum"] if self.cycle_momentum else []
            for i, group in enumerate(optimizer.param_groups):
                for key in keys:
                    if key not in group:
                        raise KeyError(f"param {key!r} is not specified in param_groups[{i}] "
                                       "when resuming a schedule with last_epoch >= 0")
                    _checks.real(group[key], f"param_groups[{i}][{key!r}]")
        self._phase(last_epoch + 1)  # the constructor's step: not in an empty phase
        self.optimizer = optimizer
        if last_epoch == -1:
            for group, top in zip(optimizer.param_groups, max_lrs):
                group["initial_lr"] = top / div
                group["max_lr"] = top
                group["min_lr"] = group["initial_lr"] / final_div
            if momenta is not None:
                _start_momentum(optimizer, self.use_beta1, *momenta)
        super().__init__(optimizer, last_epoch)

    def _phase(self, step: int) -> tuple[dict[str, Any], float]:
        """The phase of ``step`` and how far into it ``step`` is (0 at its start, 1 at its
        end); an empty phase (torch would divide by zero) is an error."""
        start = 0.0
        last = len(self._schedule_phases) - 1
        for i, phase in enumerate(self._schedule_phases):
            end = phase["end_step"]
            if step <= end or i == last:
                if end == start:
                    raise ValueError(
                        f"OneCycleLR: step {step} is in phase {i + 1} of "
                        f"{len(self._schedule_phases)}, which has no steps (it starts and ends "
                        f"at step {end:g}); choose another pct_start for total_steps="
                        f"{self.total_steps}")
                return phase, (step - start) / (end - start)
            start = end
        raise AssertionError("unreachable: the last phase takes every later step")

    def _chain(self, epoch: int, count: int, lrs: list[float]
               ) -> tuple[list[list[float]], list[list[float]] | None]:
        """get_lr's rates (and momenta) of ``count`` steps from ``epoch`` on, in one loop,
        for `LRScheduler._ahead`; stepping past ``total_steps`` raises before anything
        changes."""
        if epoch + count - 1 > self.total_steps:
            step = max(epoch, self.total_steps + 1)
            raise ValueError(f"OneCycleLR was stepped {step} times, past its total_steps="
                             f"{self.total_steps}")
        groups, cycle = self.optimizer.param_groups, self.cycle_momentum
        cosine, cos, pi = self._anneal_func_type == "cos", math.cos, math.pi
        phases = self._schedule_phases
        rows: list[list[float]] = []
        momenta: list[list[float]] = []
        e, stop = epoch, epoch + count
        while e < stop:
            phase, _ = self._phase(e)       # (an empty phase raises, as get_lr would)
            i = phases.index(phase)
            begin = 0.0 if i == 0 else phases[i - 1]["end_step"]
            width = phase["end_step"] - begin
            hi = stop if i == len(phases) - 1 else min(stop, math.floor(phase["end_step"]) + 1)
            # _anneal_cos and _anneal_linear of get_lr, their cosine shared by lr and momentum
            lr_ends = [(g[phase["start_lr"]], g[phase["end_lr"]]) for g in groups]
            m_ends = ([(g[phase["start_momentum"]], g[phase["end_momentum"]]) for g in groups]
                      if cycle else [])
            for k in range(e, hi):
                pct = (k - begin) / width
                if cosine:
                    c = cos(pi * pct) + 1
                    rows.append([b + (a - b) / 2.0 * c for a, b in lr_ends])
                    if cycle:
                        momenta.append([b + (a - b) / 2.0 * c for a, b in m_ends])
                else:
                    rows.append([(b - a) * pct + a for a, b in lr_ends])
                    if cycle:
                        momenta.append([(b - a) * pct + a for a, b in m_ends])
            e = hi
        return rows, (momenta if cycle else None)

    def get_lr(self) -> list[float]:
        """The rates of step ``last_epoch`` (and, with ``cycle_momentum``, its momentum is
        set in every group); a step past ``total_steps`` is an error."""
        self._warn_outside_step()
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR was stepped {step} times, past its total_steps="
                             f"{self.total_steps}")
        phase, pct = self._phase(step)
        anneal = _anneal_cos if self._anneal_func_type == "cos" else _anneal_linear
        lrs = []
        for group in self.optimizer.param_groups:
            lrs.append(anneal(group[phase["start_lr"]], group[phase["end_lr"]], pct))
            if self.cycle_momentum:
                _set_momentum(group, self.use_beta1,
                              anneal(group[phase["start_momentum"]],
                                     group[phase["end_momentum"]], pct))
        return lrs


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
