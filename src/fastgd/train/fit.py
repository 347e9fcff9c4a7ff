"""The training loop: batch, mini-batch or stochastic gradient descent over a dataset."""
from __future__ import annotations

import math
import sys
import time
import warnings
from typing import TYPE_CHECKING, Any, Callable, Iterable, NamedTuple, Optional, cast

import numpy as np

from .. import _checks, _optim
from .._typing import Array, ArrayLike, FloatArray, Real
from ..nn import losses as _losses
from ..nn.init import SeedLike
from ..nn.module import Module
from ..optim.lbfgs import LBFGS
from ..optim.optimizer import Optimizer, _frozen
from . import _inputs as data
from . import _schedule
from .errors import DivergenceError
from .history import History

if TYPE_CHECKING:
    from .. import _nn
    from .._optim import Backup
    from ..nn.sequential import Sequential

#: ``callback(epoch, logs)`` after each epoch; returning True stops training
Callback = Callable[[int, dict[str, float]], object]
#: a batch's loss (and gradients, for training): ``(X, y, order, start, stop) -> loss``;
#: training takes a sixth argument too, ``grad_rows`` (see `StepLoop`)
_BatchLoss = Callable[..., float]


def fit(model: Module, X: ArrayLike, y: ArrayLike, *, loss: str | _losses._Loss,
        optimizer: Optimizer, epochs: int = 1, batch_size: int | None = None,
        shuffle: bool = True, seed: SeedLike = None,
        validation_data: tuple[ArrayLike, ArrayLike] | list[ArrayLike] | None = None,
        validation_split: Real = 0.0, early_stopping: int | None = None,
        callbacks: Iterable[Callback] = (), accept_if_improves: bool = False,
        nonfinite_limit: int = 3, clip_grad_norm: Real | None = None,
        scheduler: Any = None, scheduler_interval: str = "epoch",
        fused: bool | None = None, progress: bool | None = None,
        accumulate_steps: int = 1, average: Any = None, comm: Any = None) -> History:
    r"""Train ``model`` on ``(X, y)`` by gradient descent.

    Each step takes a batch :math:`B`, computes the mean loss
    :math:`L_B(\theta) = \frac{1}{|B|}\sum_{i \in B} \ell(f_\theta(x_i), y_i)` and its gradient
    by backpropagation, and lets ``optimizer`` update :math:`\theta` (for plain SGD,
    :math:`\theta \leftarrow \theta - \gamma \nabla L_B(\theta)`).

    Parameters
    ----------
    model : fastgd.nn.Sequential (or any fastgd.nn.Module)
    X : array-like, shape (n, in_features)
        Converted to the model's dtype; must be finite.
    y : array-like
        Integer class labels (n,) for ``CrossEntropyLoss``; targets (n, out_features) (or (n,)
        for one output) otherwise.
    loss : loss object or {"mse", "cross_entropy", "bce_with_logits"}
    optimizer : fastgd.optim.Optimizer over ``model.parameters()``
        `fastgd.optim.LBFGS` trains full batch: see "L-BFGS" in the Notes.
    epochs : int, default 1
    batch_size : int or None, default None
        None: full-batch gradient descent; 1: stochastic; k: mini-batches of k rows.
    shuffle : bool, default True
        Draw a new order of the rows every epoch.
    seed : int, numpy.random.Generator or SeedSequence, optional
        Seeds the shuffling. Same seed and thread count: bit-identical results.
    validation_data : (X_val, y_val), optional
    validation_split : float, default 0
        Hold out the last fraction of the rows (before shuffling) as validation data.
    early_stopping : int, optional
        Stop after this many epochs without a lower validation loss and end with the
        parameters of the best epoch.
    callbacks : sequence of callables
        ``callback(epoch, logs)`` after every epoch, ``logs`` the epoch's metrics;
        returning True stops training.
    accept_if_improves : bool, default False
        Keep a step only if it lowers the loss of the batch it was computed on,
        :math:`L_B(\theta + \Delta\theta) < L_B(\theta)`; otherwise undo it (parameters and
        optimizer state). A trial step whose loss is NaN or infinite is undone too, but it
        is not merely "a step that did not improve": it is counted in the History
        (``"nonfinite_steps"``, beside ``"rejected_steps"``), a ``RuntimeWarning`` names the
        epoch, and ``nonfinite_limit`` consecutive ones raise `DivergenceError`.
    nonfinite_limit : int, default 3
        With ``accept_if_improves``, how many consecutive non-finite trial steps end
        training with `DivergenceError` (the state is then that of the last accepted step).
    clip_grad_norm : float, optional
        Clip the gradients' total 2-norm to this value before every update, as
        ``fastgd.nn.utils.clip_grad_norm_(model.gradients(), clip_grad_norm)`` (and
        ``torch.nn.utils.clip_grad_norm_``) would; inside the fused epoch loop it runs in C
        between the backward pass and the update.
    scheduler : fastgd.optim.lr_scheduler schedule, optional
        A schedule over ``optimizer`` (``StepLR``, ``OneCycleLR``, ``ReduceLROnPlateau``,
        ...), stepped as ``torch.optim.lr_scheduler`` documents: after every epoch
        (``ReduceLROnPlateau`` on the epoch's validation loss, else its training loss), or
        after every update with ``scheduler_interval="step"``. The History's ``"lr"`` is the
        learning rate of each epoch's first step (of the first parameter group).
    scheduler_interval : {"epoch", "step"}, default "epoch"
        When ``scheduler`` steps. Per step, the fused epoch loop stays in C: before each
        chunk of steps the schedule is stepped ahead in Python and the learning rates (and
        the momentum or beta1 a cycling schedule sets) of every step go to the C loop in a
        table, so it takes the same steps as the per-step loop, bit for bit.
    fused : bool, optional
        The loop: None (default) takes the fused epoch loop (see Notes) whenever it takes
        exactly the steps of the per-step loop; False always steps from Python (for
        debugging, or to watch each step); True requires the fused loop and raises
        ``ValueError`` saying why when it cannot be used.
    progress : bool, optional
        A tqdm progress bar with the running loss; default: on when stderr is a terminal.
    average : fastgd.optim.swa_utils.AveragedModel, optional
        A running average of ``model``'s weights (an EMA or SWA, as
        ``torch.optim.swa_utils.AveragedModel``), updated after every optimizer step
        (``average.update_parameters(model)``); the built-in averages run in C inside the
        fused epoch loop, after the update. With validation data the History also records
        ``"avg_val_loss"`` (and ``"avg_val_accuracy"``) of the averaged model; save it with
        ``average.module.save(path)``. A divergence restores it with the optimizer.
    accumulate_steps : int, default 1
        Gradient accumulation: the optimizer steps once every ``accumulate_steps``
        consecutive mini-batches (micro-batches), on their gradients averaged with weights
        by rows. A group of micro-batches :math:`B_1, \dots, B_k` (consecutive in the
        epoch's order; groups never span epochs, and the epoch's last group may have fewer,
        with one step at the end of the epoch, as PyTorch Lightning's
        ``accumulate_grad_batches``) takes one step on

        .. math:: g = \sum_{i=1}^{k} \frac{|B_i|}{R} \nabla L_{B_i}(\theta)
                    = \nabla L_{B_1 \cup \dots \cup B_k}(\theta),
                  \qquad R = \sum_i |B_i|,

        the gradient of the mean loss over all :math:`R` rows of the group: one step on a
        batch of ``accumulate_steps * batch_size`` rows in the same order, up to float
        rounding. Each micro-batch's loss gradient is computed with the factor
        :math:`1/R` (times :math:`1/\text{out\_features}`, but for cross-entropy) instead
        of :math:`1/|B_i|`, so every row gets the very value the large batch would give it,
        and the micro-batches' parameter gradients are summed in the model's dtype in
        their order, :math:`((g_1 + g_2) + g_3) + \dots`: the only difference from the
        large batch is where the sum over its rows is split. ``clip_grad_norm`` and a
        per-step ``scheduler`` act on the accumulated gradient, once per optimizer step. A
        non-finite loss in any micro-batch stops training with `DivergenceError` before its
        group's step (its ``step`` counts micro-batches), the state restored to that before
        the last optimizer step, the last whose micro-batch losses were all finite.
        The History's losses stay the per-row means over each epoch. Both loops (the fused
        one in C) take the same steps, bit for bit. Not with ``accept_if_improves``.
    comm : mpi4py.MPI.Intracomm, optional
        Data-parallel training over the ranks of an MPI communicator (e.g.
        ``mpi4py.MPI.COMM_WORLD`` under ``mpiexec -n K``; needs ``fastgd[mpi]``). Every rank
        calls `fit` with the same model, optimizer, data and arguments (checked: a
        difference raises ``ValueError`` on every rank; ``seed=None`` draws one seed on rank
        0 for all). Every global mini-batch :math:`B` (the same order on every rank) is
        split evenly over the :math:`K` ranks, rank :math:`q` taking
        :math:`B_q`, rows :math:`\lfloor |B| q / K \rfloor` to
        :math:`\lfloor |B| (q+1) / K \rfloor`; its loss gradient is scaled by
        :math:`1/|B|`, and after the backward pass the fused epoch loop (in C, no Python a
        step) sums the gradients over the ranks with one in-place ``MPI_Allreduce`` over
        the model's gradients laid out in one flat buffer:

        .. math:: g = \sum_{q=0}^{K-1} \frac{1}{|B|} \sum_{i \in B_q}
                     \nabla \ell_i(\theta) = \nabla L_B(\theta),

        the gradient of the whole batch's mean loss (also for a short last batch, and a
        rank with no rows of it adds zeros), so every rank takes the step one process
        would take on :math:`B`, up to where the sum over its rows is split, and all ranks
        hold the same bits. Every decision is collective: a non-finite loss on any rank
        raises the same `DivergenceError` on all of them, the validation metrics (computed
        on every rank), early stopping and a callback's stop (True on any rank) are the
        same on every rank, checked after every epoch with a checksum of the parameters.
        The progress bar is on rank 0; the History is the same on every rank. Any other
        exception on a rank (or a rank that dies) ends every rank with ``MPI_Abort``
        instead of leaving them waiting. ``model.save(path, comm=comm)`` on every rank
        writes the file once (rank 0, atomically); it holds nothing about the ranks, so
        training resumes on any number of them. With the fused loop's
        requirements met (a native optimizer, no ``accept_if_improves``) the reduction runs
        inside the C epoch loop; otherwise (``accept_if_improves``, ``fused=False``, an
        optimizer or weight average with Python steps) the per-step loop reduces the
        gradients the same way and sums the batch's loss (and, with ``accept_if_improves``,
        the loss after the trial step) over the ranks, so that every rank accepts or undoes
        the same steps. Needs a compiled native Sequential and a native loss; not with
        ``accumulate_steps`` > 1 (use a larger batch) nor L-BFGS. The model's gradient
        arrays become views of the flat buffer (and its program is compiled again over
        them).

    Returns
    -------
    History

    Notes
    -----
    A compiled model (a native ``Sequential``) with a native loss and a native optimizer
    trains each epoch in one C call: batch gather, forward, fused loss, the divergence
    back-up, backward and the optimizer's fused update, step after step, with no Python in
    between (the optimizer's hyper-parameters are read at the start of each epoch, so a
    callback may change them). With ``accept_if_improves``, a reference optimizer, or an
    optimizer class that overrides ``step`` (its override must run), each step returns to
    Python. Both loops take the same steps, bit for bit.

    **L-BFGS.** With a `fastgd.optim.LBFGS` optimizer each epoch is one
    ``optimizer.step(closure)`` (up to ``max_iter`` L-BFGS iterations) over the whole training
    set, as a ``torch.optim.LBFGS`` loop over the epochs does: the closure computes the mean
    loss of all training rows (in their order: ``shuffle`` and ``seed`` change nothing) and
    the model's gradients (one call of the compiled program for a native model and loss,
    else forward and backward layer by layer). ``batch_size`` must be None or at least the
    number of training rows; ``accept_if_improves``, ``clip_grad_norm`` and ``fused=True``
    are refused. The History's ``"loss"`` is what ``step`` returns, as in torch: the loss
    at the start of the epoch's step (the validation metrics are after it). A ``scheduler``
    steps after every epoch, which is also every L-BFGS step (``scheduler_interval`` "step"
    and "epoch" are the same; ``ReduceLROnPlateau`` needs "epoch"). A non-finite loss at
    the start of a step, or where the step ended (when the step evaluated it there), or
    non-finite parameters after it raise `DivergenceError` after restoring the parameters,
    the optimizer's state and hyper-parameters and the scheduler to those before the last
    step with a finite loss.

    Raises
    ------
    DivergenceError
        When the loss (or, after an epoch's last step, a parameter) becomes NaN or
        infinite. Training state is first restored completely to what it was before the
        last step whose loss was finite: the parameters and the optimizer's state arrays,
        step counters and flags, so that training again with a smaller learning rate, or
        a different one, starts from a clean state. On every path: fused or per-step,
        native or reference. A per-step ``scheduler`` is put back with them (to its state
        after the kept steps).

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((200, 2)).astype(np.float32)
    >>> y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    >>> model = fastgd.nn.MLP([2, 16, 2], seed=0)
    >>> opt = fastgd.optim.Adam(model.parameters(), lr=0.05)
    >>> h = fastgd.fit(model, X, y, loss="cross_entropy", optimizer=opt, epochs=30,
    ...                batch_size=32, seed=0, progress=False)
    >>> h["loss"][-1] < h["loss"][0]
    True
    """
    if comm is not None:
        if isinstance(optimizer, LBFGS):
            raise ValueError("comm is not supported with LBFGS (full batch, one step an "
                             "epoch): use a first-order optimizer")
        from . import _mpi

        def checked() -> _Run:
            run = _checked(model, X, y, loss, optimizer, epochs, batch_size, shuffle, seed,
                           validation_data, validation_split, early_stopping, callbacks,
                           accept_if_improves, nonfinite_limit, clip_grad_norm, fused,
                           progress, scheduler, scheduler_interval, accumulate_steps)
            if average is not None:
                run = run._replace(average=_checked_average(average, model, run.fused))
            return run
        return _mpi.fit_distributed(model, optimizer, comm, checked)
    if isinstance(optimizer, LBFGS):    # full batch, one step(closure) an epoch
        if average is not None:
            raise ValueError("average is not supported with LBFGS (one step an epoch): "
                             "update an AveragedModel from a callback instead")
        from ._lbfgs import fit_lbfgs
        return fit_lbfgs(model, X, y, loss, optimizer, epochs, batch_size, shuffle, seed,
                         validation_data, validation_split, early_stopping, callbacks,
                         accept_if_improves, nonfinite_limit, clip_grad_norm, scheduler,
                         scheduler_interval, fused, progress)
    # every check first: nothing is touched before the arguments are known to be good
    run = _checked(model, X, y, loss, optimizer, epochs, batch_size, shuffle, seed,
                   validation_data, validation_split, early_stopping, callbacks,
                   accept_if_improves, nonfinite_limit, clip_grad_norm, fused, progress,
                   scheduler, scheduler_interval, accumulate_steps)
    if average is not None:
        run = run._replace(average=_checked_average(average, model, run.fused))
    return _Training(model, optimizer, run).run()


def _checked_average(average: Any, model: Module, fused: bool | None) -> Any:
    """fit's ``average``: an AveragedModel over arrays like ``model``'s."""
    from ..optim.swa_utils import AveragedModel
    if not isinstance(average, AveragedModel):
        raise TypeError("average must be a fastgd.optim.swa_utils.AveragedModel, got "
                        f"{type(average).__name__}")
    ours, theirs = average.module.parameters(), model.parameters()
    if len(ours) != len(theirs) or any(a.shape != p.shape or a.dtype != p.dtype
                                       for a, p in zip(ours, theirs)):
        raise ValueError("average must be an AveragedModel of model (the same parameter "
                         "shapes and dtypes)")
    if fused and average._native_averager(model) is None:
        raise ValueError("fused=True, but the fused epoch loop cannot be used: average has "
                         "an averaging function of its own (Python), which runs per step")
    return average


class _Run(NamedTuple):
    """fit's arguments, checked and converted."""
    loss: Any
    X: np.ndarray
    y: np.ndarray
    Xv: Optional[np.ndarray]
    yv: Optional[np.ndarray]
    epochs: int
    batch_size: Optional[int]
    shuffle: bool
    seed: Any
    early_stopping: Optional[int]
    callbacks: list
    accept_if_improves: bool
    nonfinite_limit: int
    fused: Optional[bool]
    progress: bool
    clip_grad_norm: Optional[float]
    schedule: Optional[_schedule.Driver]
    accumulate_steps: int = 1
    average: Any = None


def _checked(model: Module, X: ArrayLike, y: ArrayLike, loss: str | _losses._Loss,
             optimizer: Optimizer, epochs: int, batch_size: int | None, shuffle: bool,
             seed: SeedLike, validation_data: Any, validation_split: Real,
             early_stopping: int | None, callbacks: Iterable[Callback],
             accept_if_improves: bool, nonfinite_limit: int, clip_grad_norm: Real | None,
             fused: bool | None, progress: bool | None, scheduler: Any = None,
             scheduler_interval: str = "epoch", accumulate_steps: int = 1) -> _Run:
    """Every argument of `fit`, checked (named in the error) before anything is touched."""
    if not isinstance(model, Module):
        raise TypeError(f"model must be a fastgd.nn module, got {type(model).__name__}")
    if isinstance(loss, str):
        loss = _losses.by_name(loss)(backend=model.backend)
    elif not isinstance(loss, _losses._Loss):
        raise TypeError(f"loss must be a fastgd.nn loss or its name, got {type(loss).__name__}")
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a fastgd.optim optimizer, got {type(optimizer).__name__}")
    params = model.parameters()
    held = [p for g in optimizer.param_groups for p in g["params"]]
    if len(held) != len(params) or any(a is not b for a, b in zip(held, params)):
        raise ValueError("optimizer must be built on model.parameters(), in that order")
    epochs = _checks.integer(epochs, "epochs", low=0)
    nonfinite_limit = _checks.integer(nonfinite_limit, "nonfinite_limit", low=1)
    clip = None if clip_grad_norm is None else _checks.real(clip_grad_norm, "clip_grad_norm",
                                                            low=0)
    schedule = _schedule.check(scheduler, scheduler_interval, optimizer)
    if batch_size is not None:
        batch_size = _checks.integer(batch_size, "batch_size", low=1)
    if early_stopping is not None:
        early_stopping = _checks.integer(early_stopping, "early_stopping", low=1)
    seed = _checks.seed(seed)
    shuffle = _checks.flag(shuffle, "shuffle")
    accept_if_improves = _checks.flag(accept_if_improves, "accept_if_improves")
    accumulate_steps = _checks.integer(accumulate_steps, "accumulate_steps", low=1)
    if accept_if_improves and accumulate_steps > 1:
        raise ValueError("accept_if_improves cannot be combined with accumulate_steps > 1 "
                         "(a step would have to be judged on the loss of its whole group of "
                         "micro-batches): pass one of them")
    if fused is not None:
        fused = _checks.flag(fused, "fused")
    if fused:
        why = FusedLoop.refusal(model, loss, optimizer, accept_if_improves)
        if why:
            raise ValueError(f"fused=True, but the fused epoch loop cannot be used: {why}")
    validation_split = _checks.real(validation_split, "validation_split", low=0, high=1,
                                    high_open=True)
    if isinstance(callbacks, (str, bytes)) or not hasattr(callbacks, "__iter__"):
        raise TypeError("callbacks must be a sequence of callables")
    callbacks = list(callbacks)
    for i, cb in enumerate(callbacks):
        if not callable(cb):
            raise TypeError(f"callbacks[{i}] is not callable")
    progress = _checks.flag(sys.stderr.isatty() if progress is None else progress, "progress")
    X, y, Xv, yv = _checked_data(model, params, loss, X, y, validation_data, validation_split)
    if early_stopping is not None and Xv is None:
        raise ValueError("early_stopping needs validation_data or validation_split")
    return _Run(loss, X, y, Xv, yv, epochs, batch_size, shuffle, seed, early_stopping,
                callbacks, accept_if_improves, nonfinite_limit, fused, progress, clip, schedule,
                accumulate_steps)


def _checked_data(model: Any, params: list[FloatArray], loss: _losses._Loss, X: ArrayLike,
                  y: ArrayLike, validation_data: Any, validation_split: Real
                  ) -> tuple[Array, Array, Array | None, Array | None]:
    """The training and validation arrays in the model's dtype, checked (``model``: a
    Linear or a Sequential, which have ``in_features`` and ``out_features``)."""
    dtype = getattr(model, "dtype", None) or params[0].dtype
    X = data.features(X, "X", dtype, model.in_features)
    y = data.targets(y, "y", len(X), loss.kind, model.out_features, dtype)
    if validation_data is not None and validation_split:
        raise ValueError("give validation_data or validation_split, not both")
    if validation_split:
        return data.split(X, y, validation_split)
    if validation_data is None:
        return X, y, None, None
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise TypeError("validation_data must be a pair (X_val, y_val)")
    Xv = data.features(validation_data[0], "validation_data[0]", dtype, model.in_features)
    yv = data.targets(validation_data[1], "validation_data[1]", len(Xv), loss.kind,
                      model.out_features, dtype)
    return X, y, Xv, yv


class _Training:
    """One `fit` call after its checks: the epochs, their metrics, early stopping and the
    divergence checks, over the loop `loop_for` picks."""

    def __init__(self, model: Module, optimizer: Optimizer, run: _Run) -> None:
        self.model, self.optimizer, self.r = model, optimizer, run
        self.params = model.parameters()
        # what a step changes (the parameters, the optimizer state, a weight average),
        # saved before each step
        extra = [] if run.average is None else run.average._arrays()
        backup = optimizer.backup(extra)
        backup.discard()               # never restore what an earlier call saved
        native_average = run.average is None or run.average._native_averager(model) is not None
        self.loop = loop_for(model, run.loss, optimizer, backup, run.accept_if_improves,
                             run.nonfinite_limit,
                             fused=run.fused is not False and native_average,
                             clip=run.clip_grad_norm, schedule=run.schedule,
                             accumulate=run.accumulate_steps)
        self.n = len(run.X)
        self.bs = self.n if run.batch_size is None else min(run.batch_size, self.n)
        self.nsteps = -(-self.n // self.bs)
        # the rows of each step (the last may be short)
        self.rows = [self.bs] * (self.nsteps - 1) + [self.n - (self.nsteps - 1) * self.bs]
        self.history = History()
        if run.average is not None:
            self.loop.set_average(run.average, model)
        self.best_params: list[FloatArray] | None = None
        self.best_val, self.wait = math.inf, 0

    def run(self) -> History:
        r, history = self.r, self.history
        rng = np.random.default_rng(r.seed)
        order = np.arange(self.n, dtype=np.int64)
        chunk, bar = self.chunks(), _bar(r.epochs * self.nsteps, r.progress)
        try:
            for epoch in range(r.epochs):
                t0 = time.perf_counter()
                if r.shuffle:
                    order = rng.permutation(self.n).astype(np.int64, copy=False)
                metrics = self.epoch(epoch, order, chunk, bar)
                metrics["time"] = time.perf_counter() - t0
                history.record(**metrics)
                history.stopped_epoch = epoch
                if r.schedule is not None:
                    r.schedule.end_epoch(metrics)
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

    def chunks(self) -> Chunks:
        """What sizes the calls of the loop (data-parallel training shares one)."""
        return Chunks()

    def epoch(self, epoch: int, order: Array, chunk: Chunks, bar: Any) -> dict[str, float]:
        """Train one epoch; its metrics."""
        r, loop, n, bs = self.r, self.loop, self.n, self.bs
        lr = self.optimizer.param_groups[0]["lr"]    # the learning rate of its first step
        loop.begin_epoch()
        total, first, k = 0.0, 0, r.accumulate_steps
        while first < self.nsteps:
            # whole groups of accumulated micro-batches (k = 1: any count)
            count = min(-(-chunk.size // k) * k, self.nsteps - first)
            c0 = time.perf_counter()
            values = loop.steps(r.X, r.y, order, first, count, bs)
            chunk.took(count, time.perf_counter() - c0)
            # both loops stop after the first non-finite loss: only the last can be one
            if values and not math.isfinite(values[-1]):
                raise self.diverged(epoch, first + len(values) - 1, values[-1])
            for value, rows in zip(values, self.rows[first:first + len(values)]):
                total += value * rows
            bar.update(count)
            first += count
        if not _all_finite(self.params):
            # a non-finite gradient in the epoch's last step: caught before evaluating
            raise self.diverged(epoch, self.nsteps - 1, None)
        metrics = {"loss": total / n}
        if r.accept_if_improves:
            metrics["rejected_steps"] = loop.rejected
            metrics["nonfinite_steps"] = loop.nonfinite
            if loop.nonfinite:
                warnings.warn(f"fit: {loop.nonfinite} step(s) of epoch {epoch} gave a "
                              "non-finite loss and were undone", RuntimeWarning, stacklevel=4)
        if r.Xv is not None:
            # yv is given with Xv
            metrics.update(_evaluate(self.model, r.loss, r.Xv, cast(Array, r.yv)))
            if r.average is not None and r.average.n_averaged:
                avg = _evaluate(r.average.module, r.loss, r.Xv, cast(Array, r.yv))
                metrics.update({f"avg_{k}": v for k, v in avg.items()})
        metrics["lr"] = lr
        return metrics

    def stop(self, epoch: int, metrics: dict[str, float]) -> bool:
        """Early stopping (keeping the best epoch's parameters) and the callbacks."""
        r, history = self.r, self.history
        if r.early_stopping is not None:
            if metrics["val_loss"] < self.best_val:
                self.best_val, self.wait, history.best_epoch = metrics["val_loss"], 0, epoch
                self.best_params = [p.copy() for p in self.params]
            else:
                self.wait += 1
                if self.wait >= r.early_stopping:
                    history.stop_reason = "early_stopping"
                    return True
        stops = [cb(epoch, dict(metrics)) is True for cb in r.callbacks]
        if any(stops):
            history.stop_reason = "callback"
            return True
        return False

    def diverged(self, epoch: int, step: int, value: float | None) -> DivergenceError:
        """The DivergenceError of a non-finite loss ``value`` (None: non-finite parameters)
        at ``step``, after restoring the back-up."""
        restored = self.loop.backup.restore()
        if restored and self.r.schedule is not None:
            self.r.schedule.undo_one()
        if value is None:
            what = "the parameters became non-finite"
        elif self.loop.streak >= self.r.nonfinite_limit:
            what = (f"{self.loop.streak} consecutive steps gave a non-finite loss ({value}) "
                    "and were undone")
        else:
            what = f"the loss became {value}"
        if value is not None and self.loop.streak >= self.r.nonfinite_limit:
            state = "The parameters and the optimizer state are those of the last accepted step."
        elif restored:
            state = ("The parameters and the optimizer state were restored to those before "
                     "the last step with a finite loss.")
        else:
            state = "The initial parameters already give it."
        lr = self.optimizer.param_groups[0]["lr"]
        return DivergenceError(
            f"training diverged at epoch {epoch}, step {step}: {what}. {state} "
            f"Try a smaller learning rate (lr={lr}).", epoch=epoch, step=step,
            history=self.history)


class Chunks:
    """How many steps to take between two returns to Python: enough that the fused loop
    runs on its own, few enough (about ``seconds`` each) that Ctrl-C and the progress bar
    answer promptly. The size changes only the calls, never the steps taken."""

    def __init__(self, seconds: float = 0.1, first: int = 16, most: int = 1 << 16) -> None:
        self.seconds, self.size, self.most = seconds, first, most

    def took(self, count: int, elapsed: float) -> None:
        per_step = elapsed / count
        self.size = max(1, min(self.most, int(self.seconds / per_step) if per_step > 0
                               else self.most))


def _bar(total: int, on: bool) -> Any:  # a tqdm bar or a _NoBar
    if not on:
        return _NoBar()
    from tqdm.auto import tqdm
    return tqdm(total=total, unit="step", dynamic_ncols=True, leave=True)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def set_postfix(self, d: dict[str, str]) -> None:
        pass

    def close(self) -> None:
        pass


def _evaluate(model: Module, loss: _losses._Loss, Xv: Array, yv: Array) -> dict[str, float]:
    out = model.predict(Xv)
    metrics = {"val_loss": type(loss)(backend=loss.backend).forward(out, yv)}
    if loss.kind == "cross_entropy":
        metrics["val_accuracy"] = float(np.mean(out.argmax(axis=1) == yv))
    elif loss.kind == "bce_with_logits":
        metrics["val_accuracy"] = float(np.mean((out > 0) == (yv > 0.5)))
    return metrics


def loop_for(model: Module, loss: _losses._Loss, optimizer: Optimizer, backup: Backup,
             accept_if_improves: bool, nonfinite_limit: int | None, fused: bool = True,
             clip: float | None = None, schedule: _schedule.Driver | None = None,
             accumulate: int = 1) -> Loop:
    """The loop that takes fit's steps: `FusedLoop` when ``fused`` and it takes exactly the
    steps of the per-step loop, else `StepLoop` (over the compiled program when there is
    one, layer by layer otherwise). ``accumulate``: micro-batches per optimizer step."""
    if fused and not FusedLoop.refusal(model, loss, optimizer, accept_if_improves):
        # refusal() found a compiled program: the model is a native Sequential
        return FusedLoop(cast("Sequential", model), loss, optimizer, backup, clip, schedule,
                         accumulate)
    program, grads = getattr(model, "program", None), model.gradients()
    if program is not None and loss.backend == "native":
        kind = loss.kind
        train_batch, loss_batch = program.train_batch, program.loss_batch
        train = lambda X, y, order, start, stop, grad_rows=0: train_batch(X, y, order, start,
                                                                          stop, kind, grad_rows)
        measure = lambda X, y, order, start, stop: loss_batch(X, y, order, start, stop, kind)
    else:
        def train(X: Array, y: Array, order: Array, start: int, stop: int,
                  grad_rows: int = 0) -> float:
            idx = order[start:stop]
            value = loss.forward(model.forward(X[idx]), y[idx])
            grad = loss.backward()
            if grad_rows and grad_rows != stop - start:   # its share of a group's mean
                grad = grad * grad.dtype.type((stop - start) / grad_rows)
            model.backward(grad)
            return value

        def measure(X: Array, y: Array, order: Array, start: int, stop: int) -> float:
            idx = order[start:stop]
            return type(loss)(backend=loss.backend).forward(model.predict(X[idx]), y[idx])
    return StepLoop(optimizer, grads, backup, train, measure if accept_if_improves else None,
                    nonfinite_limit, clip, schedule, accumulate)


class Loop:
    """What both loops share: the optimizer and its back-up (``backup``, a
    ``fastgd._optim.Backup`` of the parameters and the optimizer state, saved before every
    step; `fit` restores it on divergence)."""

    #: steps undone this epoch: with a non-finite loss, without a lower loss; and the
    #: current run of consecutive non-finite ones
    nonfinite: int
    rejected: int
    streak: int

    def __init__(self, optimizer: Optimizer, backup: Backup) -> None:
        self.optimizer, self.backup = optimizer, backup
        # fit's weight average: updated after every optimizer step, in the back-up
        self.average: Any = None
        self.avg_model: Any = None
        self.extra: list[Any] = []

    def set_average(self, average: Any, model: Module) -> None:
        self.average, self.avg_model, self.extra = average, model, average._arrays()

    if TYPE_CHECKING:  # each loop's own
        def steps(self, X: Array, y: Array, order: Array, first: int, count: int,
                  bs: int) -> list[float]: ...


    def begin_epoch(self) -> None:
        """Take the optimizer's back-up again if its arrays changed (a callback that turned
        on ``amsgrad`` adds one): the new one starts from the state now, which the last
        epoch's checks found finite."""
        backup = self.optimizer.backup(self.extra)
        if backup is not self.backup:
            backup.save()
            self.backup = backup


class StepLoop(Loop):
    """The per-step loop: one Python iteration a step, ``train`` (loss and gradients of a
    batch), the optimizer's back-up, ``optimizer.step``, and with ``measure``
    (accept_if_improves) the undo of a step that did not lower the batch loss.

    ``steps`` returns the mean batch loss of each step it took and stops after the first
    non-finite one (whose step it does not take). A trial step whose new loss is NaN or
    infinite is undone like any other, counted in ``nonfinite`` and ``streak``
    (consecutive ones); after ``limit`` consecutive ones its loss is returned as the
    step's value, so that the caller raises.

    With ``accumulate`` > 1 (no ``measure``) the batches are micro-batches in groups of
    ``accumulate`` from ``first`` (a call starts a group: ``first`` a multiple of
    ``accumulate``, ``count`` one too or reaching the epoch's end), each trained with
    ``train(..., grad_rows)`` for its share of the group's mean loss, and their gradients
    summed in ``acc`` in the order ``Program.train_steps`` sums them; one back-up, clipping,
    update and schedule step a group."""

    def __init__(self, optimizer: Optimizer, grads: list[FloatArray], backup: Backup,
                 train: _BatchLoss, measure: _BatchLoss | None, limit: int | None = None,
                 clip: float | None = None, schedule: _schedule.Driver | None = None,
                 accumulate: int = 1) -> None:
        super().__init__(optimizer, backup)
        self.grads = grads
        self.accumulate = accumulate
        self.acc = [np.empty_like(g) for g in grads] if accumulate > 1 else []
        # a per-step schedule, stepped after every update
        self.schedule = schedule if schedule is not None and schedule.per_step else None
        self.clipper = None if clip is None else _optim.GradClipper(list(grads), clip)
        self.train, self.measure, self.limit = train, measure, limit
        self.nonfinite = self.rejected = self.streak = 0

    def begin_epoch(self) -> None:
        super().begin_epoch()
        self.nonfinite = self.rejected = 0

    def steps(self, X: Array, y: Array, order: Array, first: int, count: int,
              bs: int) -> list[float]:
        if self.accumulate > 1:
            return self._accumulated(X, y, order, first, count, bs)
        values: list[float] = []
        n = len(X)
        step, save, restore = self.optimizer.step, self.backup.save, self.backup.restore
        schedule = self.schedule
        if schedule is not None:
            schedule.mark()
        for k in range(first, first + count):
            start, stop = k * bs, min((k + 1) * bs, n)
            value = self.train(X, y, order, start, stop)
            values.append(value)
            if not math.isfinite(value):
                break
            save()
            if self.clipper is not None:
                self.clipper.run()
            step(self.grads)
            if self.average is not None:
                self.average.update_parameters(self.avg_model)
            if schedule is not None:
                schedule.step()
            if self.measure is None:
                continue
            after = self.measure(X, y, order, start, stop)
            if after < value:
                self.streak = 0
                continue
            restore()
            if math.isfinite(after):
                self.rejected += 1
                self.streak = 0
                continue
            self.nonfinite += 1
            self.streak += 1
            if self.limit is not None and self.streak >= self.limit:
                values[-1] = after
                break
        return values

    def _accumulated(self, X: Array, y: Array, order: Array, first: int, count: int,
                     bs: int) -> list[float]:
        """`steps` with gradient accumulation: one update a group of micro-batches."""
        values: list[float] = []
        n, k, grads, acc = len(X), self.accumulate, self.grads, self.acc
        schedule = self.schedule
        if schedule is not None:
            schedule.mark()
        end = first + count
        for g0 in range(first, end, k):
            g1 = min(g0 + k, end)
            rows = min(g1 * bs, n) - g0 * bs     # the group's rows
            for j in range(g0, g1):
                value = self.train(X, y, order, j * bs, min((j + 1) * bs, n), rows)
                values.append(value)
                if not math.isfinite(value):
                    return values
                if g1 - g0 == 1:
                    continue
                for a, g in zip(acc, grads):  # as train_steps: ((g0 + g1) + g2) + ...
                    if j == g0:
                        np.copyto(a, g)
                    elif j < g1 - 1:
                        np.add(a, g, out=a)
                    else:
                        np.add(g, a, out=g)
            self.backup.save()
            if self.clipper is not None:
                self.clipper.run()
            self.optimizer.step(grads)
            if self.average is not None:
                self.average.update_parameters(self.avg_model)
            if schedule is not None:
                schedule.step()
        return values


class FusedLoop(Loop):
    """The fused training path: how `fit` binds a model and an optimizer into the C epoch
    loop.

    A compiled model (``model.program``, a ``fastgd._nn.Program``), a native loss and an
    optimizer whose ``step`` its bound native updates reproduce exactly
    (``optimizer.binds_exactly``) train a whole chunk of steps in one C call,
    ``Program.train_steps``: per step the batch gather, forward, fused loss, the
    optimizer's back-up (``optimizer.backup().hook()``: parameters and optimizer state,
    restored by `fit` on divergence), backward and the updates bound to the model's
    gradient arrays (``optimizer.bind(model.gradients())``, bound again every epoch so that
    a callback's change of hyper-parameters takes effect), with no Python between steps.
    It takes exactly the steps `StepLoop` takes, bit for bit.
    """

    nonfinite = rejected = streak = 0

    @staticmethod
    def refusal(model: Module, loss: _losses._Loss, optimizer: Optimizer,
                accept_if_improves: bool) -> str:
        """Why the fused loop cannot train this combination, or "" when it can."""
        if getattr(model, "program", None) is None:
            return "the model is not a compiled native Sequential"
        if loss.backend != "native":
            return "the loss is not native"
        if not optimizer.binds_exactly:
            return ("the optimizer is not native, or its class overrides step() (an override "
                    "must run)")
        if accept_if_improves:
            return "accept_if_improves needs a return to Python after each step"
        return ""

    def __init__(self, model: Sequential, loss: _losses._Loss, optimizer: Optimizer,
                 backup: Backup, clip: float | None = None,
                 schedule: _schedule.Driver | None = None, accumulate: int = 1) -> None:
        super().__init__(optimizer, backup)
        self.accumulate = accumulate    # micro-batches per update (train_steps' groups)
        # a model refusal() accepts has its program
        self.program = cast("_nn.Program", model.program)
        self.kind, self.grads = loss.kind, model.gradients()
        self.hooks: list[object] = []
        self.save_hook: object | None = None
        self.losses = np.empty(0)
        self._bound: tuple[Any, ...] | None = None   # what the hooks were bound for
        # gradient clipping, in C between the backward pass and the updates
        self.clip_hooks = ([] if clip is None
                           else [_optim.GradClipper(list(self.grads), clip).hook()])
        # a per-step schedule: its values reach the bound updates through a table
        self.schedule = schedule if schedule is not None and schedule.per_step else None
        self.table: _optim.ScheduleTable | None = None
        self.momentum_on: list[bool] | None = None

    def _key(self, group: dict[str, Any]) -> tuple:
        """The snapshot of a group's hyper-parameters that needs a new binding when it
        changes: all of them, but what a per-step schedule's table sets."""
        if self.schedule is None:
            return _frozen(group)
        rest = {k: v for k, v in group.items() if k not in ("lr", "momentum", "betas")}
        if "betas" in group:
            rest["betas"] = tuple(group["betas"])[1:]
        if "momentum" in group:
            rest["momentum"] = bool(group["momentum"])
        return _frozen(rest)

    def begin_epoch(self) -> None:
        # bound again when a callback changed the hyper-parameters (their snapshot differs)
        # or the optimizer's arrays (its back-up is then a new one)
        key = tuple(self._key(g) for g in self.optimizer.param_groups)
        super().begin_epoch()
        if self._bound is None or self._bound[0] != key or self._bound[1] is not self.backup:
            updates = self.optimizer.bind(self.grads)
            table: list[object] = []
            if self.schedule is not None:
                self.table = _optim.ScheduleTable(updates)
                table = [self.table.hook()]
                if self.schedule.second == "momentum":
                    self.momentum_on = [bool(g["momentum"]) for g in self.optimizer.param_groups]
            self.hooks = self.clip_hooks + table + [u.hook() for u in updates]
            if self.average is not None:      # after the updates: the average of the step
                self.hooks.append(self.average._native_averager(self.avg_model).hook())
            self.save_hook = self.backup.hook()
            self._bound = (key, self.backup)

    def steps(self, X: Array, y: Array, order: Array, first: int, count: int,
              bs: int) -> list[float]:
        if len(self.losses) < count:
            self.losses = np.empty(count)
        start, stop = first * bs, min((first + count) * bs, len(X))
        schedule = self.schedule
        k = self.accumulate
        if schedule is None:
            done = self.program.train_steps(X, y, order, start, stop, bs, self.kind,
                                            self.save_hook, self.hooks, self.losses, k)
            return self.losses[:done].tolist()
        assert self.table is not None   # bound with the schedule
        t0 = schedule.t
        # a row per update: one a group of k micro-batches (the call starts a group)
        updates = -(-count // k)
        self.table.set(schedule.table(updates, self.momentum_on))
        done = self.program.train_steps(X, y, order, start, stop, bs, self.kind, self.save_hook,
                                        self.hooks, self.losses, k)
        values = self.losses[:done].tolist()
        taken = done - (1 if values and not math.isfinite(values[-1]) else 0)
        if taken < done:      # stopped at a non-finite loss: the updates of whole groups
            taken //= k
        else:
            taken = -(-taken // k)
        if taken < updates:   # stopped early: the schedule as after the updates taken
            schedule.rewind(t0 + taken)
        return values


def _all_finite(arrays: Iterable[FloatArray]) -> bool:
    """Whether every element of every array is finite (a sum in the array's dtype first,
    the exact check only if the sum is not finite, which a NaN or infinity always makes it
    and an overflow of large finite values may: a finite model costs one pass without a
    temporary)."""
    for a in arrays:
        if not math.isfinite(a.sum()) and not np.isfinite(a).all():
            return False
    return True
