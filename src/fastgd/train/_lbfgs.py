"""`fastgd.fit` with `fastgd.optim.LBFGS`: full-batch training, one ``step(closure)`` an
epoch.

The closure evaluates the mean loss over all training rows and the model's gradients (in
one call of the compiled program's ``train_batch`` when the model has one and the loss is
native, else a forward and a backward pass layer by layer) and returns ``(loss,
model.gradients())``: L-BFGS copies what it keeps (it concatenates the gradients into a
new flat vector), so the model's gradient arrays may be overwritten by the next call.

Divergence is handled with a `_Snapshot` of the parameters, the optimizer's
``state_dict()`` (its hyper-parameters and state) and a scheduler's state, taken before
each step: L-BFGS has no native back-up.
"""
from __future__ import annotations

import copy
import math
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, cast

import numpy as np

from .. import _checks
from .._typing import Array, ArrayLike, FloatArray, Real
from ..nn import losses as _losses
from ..nn.init import SeedLike
from ..nn.module import Module
from ..optim import lr_scheduler as _lrs
from .errors import DivergenceError
from .fit import _all_finite, _bar, _checked, _evaluate, _Training
from .history import History

if TYPE_CHECKING:
    from ..optim.lbfgs import LBFGS

__all__ = ["fit_lbfgs"]

_Closure = Callable[[], "tuple[float, list[FloatArray]]"]


def fit_lbfgs(model: Module, X: ArrayLike, y: ArrayLike, loss: str | _losses._Loss,
              optimizer: LBFGS, epochs: int, batch_size: int | None, shuffle: bool,
              seed: SeedLike, validation_data: Any, validation_split: Real,
              early_stopping: int | None, callbacks: Iterable[Any],
              accept_if_improves: bool, nonfinite_limit: int, clip_grad_norm: Real | None,
              scheduler: Any, scheduler_interval: str, fused: bool | None,
              progress: bool | None) -> History:
    """`fastgd.fit` with an L-BFGS optimizer (its arguments, checked here)."""
    if fused is not None and _checks.flag(fused, "fused"):
        raise ValueError("fused=True, but the fused epoch loop cannot be used: LBFGS steps "
                         "with a closure from Python (pass fused=None or False)")
    # fit's own checks, the scheduler's below (fit's schedule driver is for the other
    # optimizers)
    run = _checked(model, X, y, loss, optimizer, epochs, batch_size, shuffle, seed,
                   validation_data, validation_split, early_stopping, callbacks,
                   accept_if_improves, nonfinite_limit, clip_grad_norm, None, progress)
    n = len(run.X)
    if run.batch_size is not None and run.batch_size < n:
        raise ValueError(f"batch_size={run.batch_size}, but LBFGS trains full batch: pass "
                         f"batch_size=None (or at least the {n} training rows)")
    if run.accept_if_improves:
        raise ValueError("accept_if_improves is not supported with LBFGS: a rejected "
                         "full-batch step would be taken again, identically, the next epoch "
                         "(line_search_fn='strong_wolfe' makes every iteration decrease the "
                         "loss)")
    if run.clip_grad_norm is not None:
        raise ValueError("clip_grad_norm is not supported with LBFGS: clipping the gradients "
                         "would break the curvature pairs and the line search")
    _check_scheduler(scheduler, scheduler_interval, optimizer)
    return _LBFGSTraining(model, optimizer, run, scheduler).run()


def _check_scheduler(scheduler: Any, interval: Any, optimizer: LBFGS) -> None:
    if interval not in ("epoch", "step"):
        raise ValueError(f"scheduler_interval must be 'epoch' or 'step', got {interval!r}")
    if scheduler is None:
        return
    if not isinstance(scheduler, _lrs.LRScheduler):
        raise TypeError("scheduler must be a fastgd.optim.lr_scheduler schedule, got "
                        f"{type(scheduler).__name__}")
    if scheduler.optimizer is not optimizer:
        raise ValueError("scheduler must be built on fit's optimizer")
    if interval == "step" and isinstance(scheduler, _lrs.ReduceLROnPlateau):
        raise ValueError("ReduceLROnPlateau steps on a metric once an epoch: use "
                         "scheduler_interval='epoch'")


def closure_for(model: Module, loss: _losses._Loss, X: Array, y: Array) -> _Closure:
    """``closure() -> (mean loss over (X, y), model.gradients())``, the gradients computed
    into the model's arrays."""
    grads = model.gradients()
    program = getattr(model, "program", None)
    if program is not None and loss.backend == "native":
        train_batch, kind, n = program.train_batch, loss.kind, len(X)
        order = np.arange(n, dtype=np.int64)

        def closure() -> tuple[float, list[FloatArray]]:
            return train_batch(X, y, order, 0, n, kind), grads
    else:
        def closure() -> tuple[float, list[FloatArray]]:
            value = loss.forward(model.forward(X), y)
            model.backward(loss.backward())
            return value, grads
    return closure


class _Snapshot:
    """The training state before a step: the parameters, the optimizer's ``state_dict()``
    (hyper-parameters and state, as copies) and a scheduler's ``state_dict()``."""

    def __init__(self, params: list[FloatArray], optimizer: LBFGS, scheduler: Any) -> None:
        self.params, self.optimizer, self.scheduler = params, optimizer, scheduler
        self.values = [np.empty_like(p) for p in params]
        self.saved = False
        self.opt_state: dict[str, Any] = {}
        self.sched_state: Any = None

    def save(self) -> None:
        for v, p in zip(self.values, self.params):
            np.copyto(v, p)
        self.opt_state = self.optimizer.state_dict()
        if self.scheduler is not None:
            self.sched_state = copy.deepcopy(self.scheduler.state_dict())
        self.saved = True

    def restore(self) -> None:
        for p, v in zip(self.params, self.values):
            np.copyto(p, v)
        self.optimizer.load_state_dict(self.opt_state)   # copies: restorable again
        if self.scheduler is not None:
            self.scheduler.load_state_dict(copy.deepcopy(self.sched_state))


class _LBFGSTraining:
    """One `fit` call with LBFGS after its checks: per epoch one step over all rows, then
    the metrics, the scheduler, early stopping and the callbacks, as `fit`'s other loops."""

    def __init__(self, model: Module, optimizer: LBFGS, run: Any, scheduler: Any) -> None:
        self.model, self.optimizer, self.r, self.scheduler = model, optimizer, run, scheduler
        self.params = model.parameters()
        self.closure = closure_for(model, run.loss, run.X, run.y)
        # before the last step and before the one before (what a non-finite loss at the
        # start of a step restores: the state before the last step with a finite loss)
        self.before = _Snapshot(self.params, optimizer, scheduler)
        self.earlier = _Snapshot(self.params, optimizer, scheduler)
        self.history = History()
        self.best_params: list[FloatArray] | None = None
        self.best_val, self.wait = math.inf, 0

    def run(self) -> History:
        r, history = self.r, self.history
        bar = _bar(r.epochs, r.progress)
        try:
            for epoch in range(r.epochs):
                t0 = time.perf_counter()
                metrics = self.epoch(epoch)
                metrics["time"] = time.perf_counter() - t0
                history.record(**metrics)
                history.stopped_epoch = epoch
                if self.scheduler is not None:
                    if isinstance(self.scheduler, _lrs.ReduceLROnPlateau):
                        self.scheduler.step(metrics.get("val_loss", metrics["loss"]))
                    else:
                        self.scheduler.step()
                bar.update(1)
                if r.progress:
                    bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()
                                     if k in ("loss", "val_loss", "val_accuracy")})
                if self.stop(epoch, metrics):
                    break
        finally:
            bar.close()
        if self.best_params is not None:
            for p, b in zip(self.params, self.best_params):
                np.copyto(p, b)
        return history

    def epoch(self, epoch: int) -> dict[str, float]:
        """One L-BFGS step over all rows; the epoch's metrics."""
        r, opt = self.r, self.optimizer
        lr = opt.param_groups[0]["lr"]
        self.earlier, self.before = self.before, self.earlier
        self.before.save()
        value = opt.step(self.closure)
        if not math.isfinite(value):
            # the parameters the last step left give it (or the initial ones do)
            restore = self.earlier if self.earlier.saved else self.before
            restore.restore()
            raise self.diverged(epoch, f"the loss became {value}", self.earlier.saved)
        final = opt._final      # (loss, gradient) where the step ended, when it evaluated it
        if final is not None and not math.isfinite(final[0]):
            self.before.restore()
            raise self.diverged(epoch, f"the loss became {final[0]}", True)
        if not _all_finite(self.params):
            self.before.restore()
            raise self.diverged(epoch, "the parameters became non-finite", True)
        metrics = {"loss": value}
        if r.Xv is not None:
            metrics.update(_evaluate(self.model, r.loss, r.Xv, r.yv))
        metrics["lr"] = lr
        return metrics

    #: early stopping (keeping the best epoch's parameters) and the callbacks: fit's own,
    #: over the same attributes (r, history, best_val, wait, params, best_params)
    def stop(self, epoch: int, metrics: dict[str, float]) -> bool:
        return _Training.stop(cast(Any, self), epoch, metrics)

    def diverged(self, epoch: int, what: str, restored: bool) -> DivergenceError:
        if restored:
            state = ("The parameters, the optimizer state and hyper-parameters (and the "
                     "scheduler) were restored to those before the last step with a finite "
                     "loss.")
        else:
            state = "The initial parameters already give it; they were restored."
        group = self.optimizer.param_groups[0]
        hint = f"Try a smaller learning rate (lr={group['lr']})"
        if group["line_search_fn"] is None:
            hint += " or line_search_fn='strong_wolfe'"
        return DivergenceError(f"training diverged at epoch {epoch}, step 0: {what}. {state} "
                               f"{hint}.", epoch=epoch, step=0, history=self.history)
