"""`minimize(method="lbfgs")`: the loop of one start, one `fastgd.optim.LBFGS` step per
iteration, with minimize's stop rules, record and divergence handling.

Each iteration is one ``LBFGS.step(closure)`` of an optimizer built with ``max_iter=1``: one
L-BFGS iteration (a direction from the history, then a fixed step of ``lr`` or a strong-Wolfe
line search), so ``max_iter``, ``path``, ``history``, ``nit`` and the callback count L-BFGS
iterations, as scipy's L-BFGS-B does. The closure's first call in a step is answered from
the value and gradient the loop already has at x, and a line search leaves them at the new
x, so no point is evaluated twice.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, cast

import numpy as np

from .._typing import FloatArray
from ._loops import (_CONVERGED, _DIVERGED, _INF, _X_CHECK_EVERY, MinimizeResult, _fval,
                     _message, _Single, _stop_by_callback, grad_array)

if TYPE_CHECKING:
    from ..optim.lbfgs import LBFGS
    from .minimize import _Options

__all__ = ["HYPER", "run_lbfgs", "combine"]

#: the hyper-parameters of `fastgd.optim.LBFGS` a minimize call may set, with minimize's
#: defaults (max_eval: the line search's budget per iteration, torch's 25 trial points
#: after the evaluation at x); lr, line_search_fn and the tolerances come from minimize's
#: own arguments, and max_iter is 1
HYPER = {"history_size": 100, "max_eval": 26}


def run_lbfgs(fun: Callable[[FloatArray], Any], grad: Callable[[FloatArray], Any],
              x: FloatArray, opt: LBFGS, f0: float, o: _Options) -> MinimizeResult:
    """Minimise from ``x`` (updated in place; ``opt`` is built on ``[x]``)."""
    r = _Single(x, f0, o)
    sgn, shape, dt, small, keep = r.sgn, r.shape, r.dt, r.small, r.keep
    tol, tc, max_iter, callback = o.tol, o.tol_change, o.max_iter, o.callback
    xprev = np.empty_like(x)
    here: list[Any] = [f0, grad_array(grad(x), shape, dt)]   # f and the gradient at x
    fresh = [False]

    def closure() -> tuple[float, list[FloatArray]]:
        if fresh[0]:                     # the step's first call: at x, known already
            fresh[0] = False
            f, g = here
        else:
            f, g = _fval(fun(x)), grad_array(grad(x), shape, dt)
        return (f, [g]) if sgn > 0 else (-f, [-g])

    record: Any = (r.path.extend if small else r.path.append) if keep else None
    snapshot = x.tolist if small else x.copy
    hist = r.hist
    best_h, best_i, f, it = r.h0, 0, f0, 0
    kind: str | None = None
    info: dict[str, Any] = {}
    while it < max_iter:
        g = here[1]
        gn = math.hypot(*g.tolist()) if small else math.sqrt(float(g.dot(g)))
        if gn <= tol:
            kind, info = "gradient", {"gn": gn}
            break
        np.copyto(xprev, x)
        it += 1
        fresh[0] = True
        opt.step(closure)
        final = opt._final
        if final is None:                # a fixed step: x is new to the loop
            f_new = _fval(fun(x))
            here = [f_new, grad_array(grad(x), shape, dt)]
        else:                            # the line search's (or an unmoved x's) values
            f_new = sgn * final[0]
            flat = final[1].reshape(shape)
            here = [f_new, flat if sgn > 0 else -flat]
        if keep:
            record(snapshot())
        hist.append(f_new)
        h_new = sgn * f_new
        if not (-_INF < h_new <= r.hlim):
            kind = "nonfinite" if not math.isfinite(h_new) else "growth"
            info = {"f": f_new, "f0": f0, "it": it}
            break
        if h_new < best_h:
            best_h, best_i = h_new, len(hist) - 1
            if not keep:
                np.copyto(cast(FloatArray, r.best_x), x)
        if it % _X_CHECK_EVERY == 0:
            xm = float(np.abs(x).max())
            if not xm <= r.xlim:
                kind, info = "xgrowth", {"xm": xm, "it": it}
                break
        stall = (abs(f_new - f) <= tc * (1 + abs(f))
                 and float(np.abs(x - xprev).max()) <= tc * (1 + float(np.abs(x).max())))
        f = f_new
        if stall:
            kind = "stall"
            break
        if callback is not None and _stop_by_callback(callback, it, x, f):
            kind, info = "callback", {"it": it}
            break
    if kind is None:
        kind = "worse" if sgn * f > r.h0 else "max_iter"
        if kind == "worse":
            info = {"f0": f0, "f": f}
    if kind in _DIVERGED:
        info["best"] = best_i
        x_out = r.point(best_i) if keep else cast(FloatArray, r.best_x).copy()
        f_out = hist[best_i]
        gf = grad_array(grad(x_out), shape, dt).astype(np.float64)
        gn = float(np.sqrt(np.dot(gf, gf)))
    else:
        x_out, f_out = x.copy(), f
        if kind != "gradient":
            gf = here[1].astype(np.float64)
            gn = float(np.sqrt(np.dot(gf, gf)))
    info.setdefault("gn", gn)
    if kind == "max_iter" and gn <= tol:
        kind, info = "gradient", {"gn": gn}
    path = r.path
    if keep:
        path = np.array(path, dtype=dt).reshape(-1, *shape) if small else np.array(path)
    return MinimizeResult(x_out, float(f_out), float(gn), it, kind in _CONVERGED,
                          _message(kind, o, **info), path, np.array(hist, dtype=np.float64),
                          False)


def combine(results: list[MinimizeResult], X: FloatArray) -> MinimizeResult:
    """The results of the starts (rows of X) run one after another, as one batch result."""
    return MinimizeResult(
        np.stack([res.x for res in results]).astype(X.dtype, copy=False),
        np.array([res.fun for res in results]), np.array([res.grad_norm for res in results]),
        np.array([res.nit for res in results], dtype=np.int64),
        np.array([res.converged for res in results]), tuple(res.message for res in results),
        None if results[0].path is None else tuple(res.path for res in results),
        tuple(res.history for res in results), True)
