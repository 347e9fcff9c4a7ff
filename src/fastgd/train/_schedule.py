"""How `fastgd.fit` drives a learning-rate schedule: once an epoch, or once a step.

Once a step, the per-step loop calls ``scheduler.step()`` after every update. The fused
epoch loop cannot return to Python between steps, so before each chunk of steps the
schedule is stepped ahead in Python and what it sets (each group's learning rate, and the
momentum or beta1 a cycling schedule sets) is written into a table that the C loop hands to
the bound updates step by step (``fastgd._optim.ScheduleTable``): the same values, read at
the same points, as the per-step loop, so both take the same steps bit for bit.

When training stops early inside a chunk (a non-finite loss) or `fit` restores its back-up,
the schedule is put back to where the kept steps leave it: from a snapshot taken at the
start of the chunk (or the one before), stepped forward again.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from .. import _optim
from ..optim import lr_scheduler as _lrs
from ..optim.optimizer import Optimizer

INTERVALS = ("epoch", "step")


def _copied(state: Any) -> Any:
    """A copy of a schedule's state dict deep enough that later steps leave it as it is:
    its dicts and lists copied (nested ones too), everything else shared."""
    if isinstance(state, dict):
        return {k: _copied(v) for k, v in state.items()}
    if isinstance(state, list):
        return [_copied(v) for v in state]
    return state


def check(scheduler: Any, interval: Any, optimizer: Optimizer) -> Optional["Driver"]:
    """The driver of fit's ``scheduler`` and ``scheduler_interval`` arguments, checked."""
    if interval not in INTERVALS:
        raise ValueError(f"scheduler_interval must be 'epoch' or 'step', got {interval!r}")
    if scheduler is None:
        return None
    if not isinstance(scheduler, _lrs.LRScheduler):
        raise TypeError("scheduler must be a fastgd.optim.lr_scheduler schedule, got "
                        f"{type(scheduler).__name__}")
    if scheduler.optimizer is not optimizer:
        raise ValueError("scheduler must be built on fit's optimizer")
    if interval == "step" and isinstance(scheduler, _lrs.ReduceLROnPlateau):
        raise ValueError("ReduceLROnPlateau steps on a metric once an epoch: use "
                         "scheduler_interval='epoch'")
    return Driver(scheduler, interval, optimizer)


class Driver:
    """A schedule stepped by `fit`: ``t`` counts its steps in this call."""

    def __init__(self, scheduler: Any, interval: str, optimizer: Optimizer) -> None:
        self.scheduler, self.interval, self.optimizer = scheduler, interval, optimizer
        self.per_step = interval == "step"
        self.plateau = isinstance(scheduler, _lrs.ReduceLROnPlateau)
        self.t = 0
        # (t, scheduler state, group values) at the start of the last two chunks
        self._marks: list[tuple[int, Any, list[tuple[Any, Any]]]] = []
        algo = optimizer.spec.kernel
        #: the second value a table carries: "momentum", "beta1" or None (lr only)
        self.second = _optim.SCHEDULED_MOMENTUM.get(algo)

    # ---------------------------------------------------------------- once an epoch
    def end_epoch(self, metrics: dict[str, float]) -> None:
        """After an epoch's metrics: step an epoch schedule (a plateau schedule on the
        validation loss, else the training loss)."""
        if self.per_step:
            return
        if self.plateau:
            self.scheduler.step(metrics.get("val_loss", metrics["loss"]))
        else:
            self.scheduler.step()
        self.t += 1

    # ---------------------------------------------------------------- once a step
    def mark(self) -> None:
        """Remember the schedule as it is (the start of a chunk of steps)."""
        groups = [(g["lr"], g.get("momentum", g.get("betas"))) for g in
                  self.optimizer.param_groups]
        self._marks = self._marks[-1:] + [(self.t, _copied(self.scheduler.state_dict()),
                                           groups)]

    def step(self) -> None:
        """After one update of the per-step loop."""
        self.scheduler.step()
        self.t += 1

    def table(self, count: int, momentum_on: Optional[list[bool]] = None) -> np.ndarray:
        """The values of the next ``count`` steps, shape (count, groups, 2): row k the
        (lr, momentum or beta1) each group has at step k. Steps the schedule ``count``
        times, as the per-step loop would over those steps (after each update).
        ``momentum_on``: which groups' updates were bound with a momentum buffer (SGD,
        RMSprop), which a scheduled momentum may not turn off or on."""
        self.mark()
        groups = self.optimizer.param_groups
        out = np.empty((count + 1, len(groups), 2))
        out[0] = [self._values(g) for g in groups]
        try:
            ahead = self.scheduler._ahead(count, self.second)
            if ahead is None:       # a schedule with a step() of its own: step by step
                for k in range(count):
                    self.scheduler.step()
                    out[k + 1] = [self._values(g) for g in groups]
            else:
                out[1:, :, 0], out[1:, :, 1] = ahead
            self.t += count
        except BaseException:
            self.rewind(self._marks[-1][0])
            raise
        # row k: the values of step k, which the schedule set after step k - 1
        out = out[:count]
        if not self._plain(out, momentum_on):
            self._check(out, momentum_on)       # raises, naming the first bad value
        return out

    def _plain(self, out: np.ndarray, momentum_on: Optional[list[bool]]) -> bool:
        """Whether every value of the table is one the bound updates take as they are: each
        lr finite and >= 0, each beta1 in [0, 1), each momentum finite and >= 0 and nonzero
        exactly where ``momentum_on`` says (NaN fails every comparison); `_check` names the
        first value that is not."""
        lo, hi = out.min(axis=(0, 1)), out.max(axis=(0, 1))    # (lr, second) each
        if not (lo[0] >= 0 and hi[0] < math.inf):
            return False
        if self.second == "beta1":
            return bool(lo[1] >= 0 and hi[1] < 1)
        if self.second == "momentum":
            if not (lo[1] >= 0 and hi[1] < math.inf):
                return False
            if momentum_on is not None and not (all(momentum_on) and lo[1] > 0):
                return bool(((out[:, :, 1] != 0) == np.array(momentum_on)).all())
        return True

    def _values(self, group: dict[str, Any]) -> tuple[float, float]:
        second = self.second
        if second is None:
            return group["lr"], 0.0
        if second == "momentum":
            return group["lr"], group["momentum"]
        return group["lr"], group["betas"][0]

    def _check(self, out: np.ndarray, momentum_on: Optional[list[bool]]) -> None:
        """The checks the optimizer would make of each step's values, before any is used."""
        lr, second = out[:, :, 0], out[:, :, 1]
        bad = ~(np.isfinite(lr) & (lr >= 0))
        what = "lr"
        if not bad.any() and self.second is not None:
            what = "betas'][0" if self.second == "beta1" else "momentum"
            bad = ~(np.isfinite(second) & (second >= 0)
                    & ((second < 1) if self.second == "beta1" else True))
            if not bad.any() and self.second == "momentum" and momentum_on is not None:
                # the bound updates keep their momentum buffer on (or off) for the epoch
                bad = (second != 0) != np.array(momentum_on, dtype=bool)[None, :]
        if bad.any():
            k, g = map(int, np.argwhere(bad)[0])
            value = float(out[k, g, 0 if what == "lr" else 1])
            self.rewind(self._marks[-1][0])
            raise ValueError(
                f"the scheduler sets param_groups[{g}]['{what}'] to {value!r} at step "
                f"{self.t + k} of this fit, which the fused epoch loop cannot take (a "
                "negative or non-finite value, or a momentum that turns on or off); pass "
                "fused=False to step from Python")

    def rewind(self, t: int) -> None:
        """Put the schedule back to its state after ``t`` steps (no earlier than the start
        of the chunk before the last)."""
        if t == self.t:
            return
        mark = next((m for m in reversed(self._marks) if m[0] <= t), None)
        if mark is None:
            raise RuntimeError(f"internal error: no schedule snapshot at or before step {t}")
        t0, state, groups = mark
        self.scheduler.load_state_dict(_copied(state))
        for g, (lr, second) in zip(self.optimizer.param_groups, groups):
            g["lr"] = lr
            if "momentum" in g:
                g["momentum"] = second
            elif "betas" in g:
                g["betas"] = second
        self.t = t0
        while self.t < t:
            self.step()

    def undo_one(self) -> None:
        """`fit` restored its back-up, taking back one update: take back its step."""
        if self.per_step and self.t > 0:
            self.rewind(self.t - 1)
