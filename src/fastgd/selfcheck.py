"""Every native kernel against its numpy twin, on this machine: what ``fastgd check`` runs.

Each optimizer of `fastgd.optim.ALGORITHMS` (with its defaults, each of its flags on, weight
decay and ``maximize``), `fastgd.nn.Linear`, each activation and each loss runs on both
backends from the same random inputs, in float32 and float64, and the results are compared
with a tolerance per dtype. A mismatch means the loader picked kernels that compute something
else here (a miscompiled clone, a broken BLAS): attach the output to a bug report.

>>> import fastgd
>>> results = fastgd.selfcheck.run(log=None)
>>> all(r.ok for r in results)
True
"""
from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple

import numpy as np

from . import optim
from ._typing import FloatArray
from .nn import Linear
from .nn.activations import ACTIVATIONS
from .nn.losses import LOSSES

#: native vs reference, as the test suite compares them
TOLERANCE = {np.dtype(np.float32): dict(rtol=1e-5, atol=1e-6),
             np.dtype(np.float64): dict(rtol=1e-12, atol=1e-14)}
#: sizes that exercise the vector loops and their tails
SIZES = (1, 7, 33, 1000, 4099)
STEPS = 3


class Result(NamedTuple):
    """One kernel's comparison: ``worst`` is the largest error relative to the tolerance
    (at most 1 passes)."""
    name: str
    dtype: str
    ok: bool
    worst: float
    seconds: float

    def line(self) -> str:
        """One line of ``fastgd check``'s report."""
        return (f"{'ok  ' if self.ok else 'FAIL'} {self.dtype:7} {self.name:60} "
                f"max error / tolerance {self.worst:.2g}")


def relative_error(a: FloatArray, b: FloatArray) -> float:
    """max |a - b| / (atol + rtol |b|): at most 1 is within the dtype's tolerance."""
    tol = TOLERANCE[a.dtype]
    if a.shape != b.shape:
        return float("inf")
    err = np.abs(a.astype(np.float64) - b.astype(np.float64))
    bound = tol["atol"] + tol["rtol"] * np.abs(b.astype(np.float64))
    return float(np.max(err / bound)) if err.size else 0.0


def optimizer_configs(cls: type[optim.Optimizer]) -> list[dict[str, Any]]:
    """The defaults, each flag on, weight decay, and ``maximize`` (SGD with momentum, so its
    momentum and Nesterov paths run)."""
    base: dict[str, Any] = {"momentum": 0.9} if "momentum" in cls.spec.defaults else {}
    configs = [{}, dict(base, weight_decay=0.01), dict(base, maximize=True)]
    for h in cls.spec.hypers:
        if isinstance(h.default, bool) and h.name != "maximize":
            configs.append(dict(base, **{h.name: True}))
    return configs


def _optimizer_case(cls: type[optim.Optimizer], kw: dict[str, Any],
                    dtype: type) -> Callable[[], float]:
    def case() -> float:
        rng = np.random.default_rng(0)
        start: list[FloatArray] = [rng.standard_normal(n).astype(dtype) for n in SIZES]
        grads: list[list[FloatArray]] = [[rng.standard_normal(n).astype(dtype) for n in SIZES] for _ in range(STEPS)]
        runs = []
        for backend in ("native", "reference"):
            params = [p.copy() for p in start]
            opt = cls(params, backend=backend, **kw)
            for g in grads:
                opt.step(g)
            runs.append(params)
        return max(relative_error(a, b) for a, b in zip(*runs))
    return case


def _linear(dtype: type) -> Callable[..., Linear]:
    """``make(backend=...)``: the same Linear(19, 11) on either backend."""
    def make(*, backend: str) -> Linear:
        return Linear(19, 11, dtype=dtype, seed=0, backend=backend)
    return make


def _layer_case(make: Callable[..., Any], dtype: type, target: str) -> Callable[[], float]:
    """Forward and backward of ``make(backend=...)`` (a layer, or a loss when ``target`` is
    not "none") on both backends."""
    def case() -> float:
        rng = np.random.default_rng(1)
        x: FloatArray = rng.standard_normal((37, 19)).astype(dtype)
        t = (rng.integers(0, 19, 37) if target == "labels"
             else rng.random((37, 19)).astype(dtype))
        out = []
        for backend in ("native", "reference"):
            m = make(backend=backend)
            if target == "none":
                y = m.forward(x.copy())
                out += [y, m.backward(np.ones_like(y))]
            else:
                out += [np.array(m(x.copy(), t), dtype=dtype), m.backward()]
        half = len(out) // 2
        return max(relative_error(a, b) for a, b in zip(out[:half], out[half:]))
    return case


def cases() -> list[tuple[str, type, Callable[[], float]]]:
    """(name, dtype, case) for every native kernel."""
    out: list[tuple[str, type, Callable[[], float]]] = []
    for dtype in (np.float32, np.float64):
        for cls in optim.ALGORITHMS.values():
            for kw in optimizer_configs(cls):
                args = ", ".join(f"{k}={v}" for k, v in kw.items())
                out.append((f"{cls.__name__}({args})", dtype, _optimizer_case(cls, kw, dtype)))
        out.append(("Linear(19, 11)", dtype, _layer_case(_linear(dtype), dtype, "none")))
        for name, act in ACTIVATIONS.items():
            out.append((name, dtype, _layer_case(act, dtype, "none")))
        for name, loss in LOSSES.items():
            target = "labels" if name == "cross_entropy" else "values"
            out.append((name, dtype, _layer_case(loss, dtype, target)))
    return out


def run(log: Callable[[str], Any] | None = print) -> list[Result]:
    """Run every case; ``log`` gets one line per kernel (None: silent). Returns the results."""
    results = []
    for name, dtype, case in cases():
        t0 = time.perf_counter()
        worst = case()
        r = Result(name, np.dtype(dtype).name, worst <= 1.0, worst, time.perf_counter() - t0)
        results.append(r)
        if log is not None:
            log(r.line())
    return results
