"""The training runs of tests/test_mpi.py, run under ``mpiexec -n K python mpi_worker.py
CASE DTYPE OUT`` (each rank writes ``OUT/rank{r}.npz``) and, for the single-process
reference, called in the test's own process with ``comm=None``."""
from __future__ import annotations

import os
import sys
import time
from typing import Any

import numpy as np

import fastgd
from fastgd.optim.lr_scheduler import StepLR
from fastgd.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def data(dtype: Any, n: int, kind: str = "cross_entropy") -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    X = rng.standard_normal((n, 6)).astype(dtype)
    if kind == "mse":
        return X, (X @ rng.standard_normal((6, 3))).astype(dtype)
    return X, (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1)


#: case -> (rows, batch_size, epochs, optimizer, fit's other arguments)
CASES: dict[str, tuple[int, int | None, int, str, dict[str, Any]]] = {
    # 203 = 12 * 16 + 11: a short last batch of 11 rows, split 5 / 6
    "sgd_uneven": (203, 16, 3, "sgd", {}),
    # 17 = 16 + 1: the last batch's one row is rank 1's, rank 0 adds zeros
    "adam_one_row": (17, 16, 4, "adam", {}),
    "full_batch": (101, None, 5, "adam", {}),
    "mse_clip_schedule": (150, 20, 3, "sgd", {"loss": "mse", "clip_grad_norm": 0.5,
                                               "scheduler_interval": "step"}),
    "average": (120, 24, 3, "adamw", {"average": True}),
    "early_stopping": (240, 16, 40, "adam", {"validation_split": 0.25, "early_stopping": 2,
                                             "lr": 0.2}),
    "divergence": (96, 16, 3, "sgd", {"lr": 1e30, "loss": "mse"}),
    # rows 8..15 of every batch of 16 hold huge values: only rank 1's loss overflows
    "divergence_one_rank": (64, 16, 2, "sgd", {"loss": "mse", "huge": True, "shuffle": False}),
    "callback_one_rank": (96, 16, 10, "sgd", {"stop_on_rank1": 2}),
    # rank 1's clock runs 1000 times faster: alone, it would size its calls of the C loop
    # (the steps between two returns to Python) smaller than rank 0; they must agree
    "skewed_clock": (203, 4, 2, "sgd", {"skew_clock": 1000.0}),
    # the per-step loop: every trial step accepted or undone alike on every rank
    "accept_if_improves": (160, 16, 3, "adam", {"accept_if_improves": True, "lr": 0.3}),
    "step_loop": (203, 16, 2, "sgd", {"fused": False}),
    # every trial step's loss is not finite: undone, until nonfinite_limit in a row
    "accept_nonfinite": (96, 16, 2, "sgd", {"accept_if_improves": True, "lr": 1e300,
                                            "loss": "mse"}),
}


def build(dtype: Any, opt: str, lr: float, sizes: list[int]) -> tuple[Any, Any]:
    model = fastgd.nn.MLP(sizes, seed=1, dtype=dtype)
    if opt == "sgd":
        optimizer = fastgd.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    elif opt == "adam":
        optimizer = fastgd.optim.Adam(model.parameters(), lr=lr)
    else:
        optimizer = fastgd.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    return model, optimizer


def run(case: str, dtype: Any, comm: Any = None) -> dict[str, Any]:
    """Train ``case``; the parameters, the History's losses and any DivergenceError."""
    n, bs, epochs, opt, kw = CASES[case]
    kw = dict(kw)
    loss = kw.pop("loss", "cross_entropy")
    X, y = data(dtype, n, loss)
    if kw.pop("huge", False):
        X[np.arange(n) % 16 >= 8] *= 1e30 if dtype == np.float32 else 1e200
    out = 3
    model, optimizer = build(dtype, opt, kw.pop("lr", 0.05), [6, 16, out])
    rank = 0 if comm is None else comm.Get_rank()
    if kw.pop("average", False):
        kw["average"] = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))
    if kw.get("scheduler_interval") == "step":
        kw["scheduler"] = StepLR(optimizer, step_size=5, gamma=0.5)
    skew = kw.pop("skew_clock", None)
    if skew is not None and rank == 1:
        clock = time.perf_counter
        time.perf_counter = lambda: skew * clock()   # type: ignore[assignment]
    stop_epoch = kw.pop("stop_on_rank1", None)
    if stop_epoch is not None:
        kw["callbacks"] = [lambda e, logs: rank == 1 and e == stop_epoch]
    result: dict[str, Any] = {}
    try:
        h = fastgd.fit(model, X, y, loss=loss, optimizer=optimizer, epochs=epochs,
                       batch_size=bs, seed=0, progress=False, comm=comm, **kw)
        result["loss"] = np.array(h["loss"])
        result["epochs"] = h.epochs
        if "rejected_steps" in h:
            result["rejected"] = np.array(h["rejected_steps"])
        if "val_loss" in h:
            result["val_loss"] = np.array(h["val_loss"])
    except fastgd.DivergenceError as exc:
        result["error"] = str(exc)
        result["step"] = (exc.epoch, exc.step)
    for i, p in enumerate(model.parameters()):
        result[f"p{i}"] = p.copy()
    if "average" in kw:
        for i, p in enumerate(kw["average"].module.parameters()):
            result[f"avg{i}"] = p.copy()
    return result


def resume(dtype: Any, path: str, comm: Any, first: bool) -> dict[str, Any]:
    """Two epochs from the start (``first``, saved on rank 0) or from ``path``."""
    X, y = data(dtype, 150)
    if first:
        model, optimizer = build(dtype, "adam", 0.05, [6, 16, 3])
    else:
        model, optimizer = fastgd.load(path, optimizer=True)
    fastgd.fit(model, X, y, loss="cross_entropy", optimizer=optimizer, epochs=2,
               batch_size=16, seed=1 if first else 2, progress=False, comm=comm)
    if first:
        model.save(path, optimizer=optimizer, comm=comm)
    return {f"p{i}": p.copy() for i, p in enumerate(model.parameters())}


def main() -> None:
    from mpi4py import MPI
    case, dtype, out = sys.argv[1], np.dtype(sys.argv[2]), sys.argv[3]
    comm = MPI.COMM_WORLD
    if case == "raise_on_rank1":
        X, y = data(dtype, 64)
        model, optimizer = build(dtype, "sgd", 0.05, [6, 16, 3])

        def bad(epoch: int, logs: dict[str, float]) -> None:
            if comm.Get_rank() == 1 and epoch == 1:
                raise KeyError("a callback failed on rank 1")
        fastgd.fit(model, X, y, loss="cross_entropy", optimizer=optimizer, epochs=50,
                   batch_size=8, seed=0, progress=False, comm=comm, callbacks=[bad])
        return
    if case == "die_on_rank1":
        X, y = data(dtype, 64)
        model, optimizer = build(dtype, "sgd", 0.05, [6, 16, 3])

        def die(epoch: int, logs: dict[str, float]) -> None:
            if comm.Get_rank() == 1 and epoch == 1:
                os._exit(3)
        fastgd.fit(model, X, y, loss="cross_entropy", optimizer=optimizer, epochs=50,
                   batch_size=8, seed=0, progress=False, comm=comm, callbacks=[die])
        return
    if case == "mismatch":
        X, y = data(dtype, 64)
        model, optimizer = build(dtype, "sgd", 0.05, [6, 16, 3])
        try:
            fastgd.fit(model, X, y, loss="cross_entropy", optimizer=optimizer, epochs=1,
                       batch_size=8, seed=comm.Get_rank(), progress=False, comm=comm)
            result: dict[str, Any] = {"error": ""}
        except ValueError as exc:
            result = {"error": str(exc)}
        try:
            fastgd.fit(model, X, y, loss="cross_entropy", optimizer=optimizer, epochs=1,
                       batch_size=-1 if comm.Get_rank() == 1 else 8, seed=0,
                       progress=False, comm=comm)
            result["error2"] = ""
        except ValueError as exc:
            result["error2"] = str(exc)
    elif case == "save_errors":
        model, optimizer = build(dtype, "sgd", 0.05, [6, 16, 3])
        result = {}
        for key, path in [("missing_dir", os.path.join(out, "no", "such", "m.npz")),
                          ("bad_type", 123)]:
            try:
                model.save(path, optimizer=optimizer, comm=comm)   # type: ignore[arg-type]
                result[key] = ""
            except (OSError, TypeError) as exc:
                result[key] = f"{type(exc).__name__}: {exc}"
    elif case.startswith("resume"):
        result = resume(dtype, os.path.join(out, "ckpt.npz"), comm, case == "resume_first")
    else:
        result = run(case, dtype, comm)
    np.savez(os.path.join(out, f"rank{comm.Get_rank()}.npz"), **result)


if __name__ == "__main__":
    main()
