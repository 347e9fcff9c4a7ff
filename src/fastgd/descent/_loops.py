"""The iteration engine of `fastgd.minimize`: the loops, their stop rules and reports.

`run_single` iterates one start (a 1-D x) with Python-float bookkeeping, the hot path;
`run_batch` iterates k starts (the rows of a 2-D x) with vectorised bookkeeping, each start
stopping on its own. Both take every step with one `fastgd._stepper.Stepper` call (one
native kernel call for all the starts) and return a `MinimizeResult`.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Iterator, NamedTuple, cast

import numpy as np

from .._typing import Array, FloatArray
from .gradients import scalar_value

if TYPE_CHECKING:
    from ..optim._stepper import Snapshot, Stepper
    from .minimize import _Options

__all__ = ["MinimizeResult", "Iterate", "run_single", "run_batch", "grad_array"]

#: f (or |x|) this many times its start (plus one) counts as growing without bound
GROWTH = 1e8
#: Armijo's sufficient-decrease constant and the most halvings of one backtracking search
ARMIJO_C = 1e-4
MAX_HALVINGS = 40
#: accept_if_improves: the learning-rate factor after a rejected step
SHRINK = 0.5
#: the single-start loop checks |x| for unbounded growth every this many iterations
_X_CHECK_EVERY = 16
#: up to this many coordinates, the single-start loop works on Python floats (tolist)
_SMALL = 16

#: what ``callback`` receives after each iteration (``x`` is a copy)
class Iterate(NamedTuple):
    nit: int
    x: FloatArray
    #: a float for one start, an array of k values for k starts
    fun: Any


#: why a run stops: the kind of stop and the values its message shows
_Stop = tuple[str, dict[str, Any]]
#: a trial step (line search or accept rule): ``trial(g, f, it) -> (f_new, stop)``
_Trial = Callable[[FloatArray, float, int], tuple[float | None, _Stop | None]]

_INF = math.inf
_NP_FLOATS = (np.float64, np.float32)


class MinimizeResult:
    """What `minimize` returns.

    For a 2-D ``x0`` (k starts) every attribute holds one entry per start (``x`` has shape
    ``(k, d)``, ``converged`` is a boolean array, ``path`` and ``history`` are tuples of
    arrays), and ``res[i]`` is the result of start ``i`` alone.

    Attributes
    ----------
    x : ndarray
        The solution: the last iterate, or the best point seen when the run diverged.
    fun : float
        ``fun(x)``.
    grad_norm : float
        The Euclidean norm of the gradient at ``x``.
    nit : int
        Iterations run (rejected trial steps included).
    converged : bool
        True when a stop rule on the gradient norm or on the change of f and x held.
    message : str
        Why the run stopped.
    path : ndarray of shape (n + 1, d), or None
        The accepted iterates, ``path[0]`` being ``x0`` (None when ``keep_path=False``).
    history : ndarray of shape (n + 1,)
        f at each accepted iterate: ``history[j] == fun(path[j])``.
    """

    _FIELDS = ("x", "fun", "grad_norm", "nit", "converged", "message", "path", "history")

    # for k starts fun, grad_norm, nit, converged are arrays, message, path and history
    # tuples; for one start a float, float, int, bool, str, array (or None) and array
    def __init__(self, x: FloatArray, fun: Any, grad_norm: Any, nit: Any, converged: Any,
                 message: Any, path: Any, history: Any, batch: bool) -> None:
        self.x = x
        self.fun = fun
        self.grad_norm = grad_norm
        self.nit = nit
        self.converged = converged
        self.message = message
        self.path = path
        self.history = history
        self._batch = batch

    def __len__(self) -> int:
        if not self._batch:
            raise TypeError("a single-start result has no len(); x0 was 1-D")
        return len(self.x)

    def __getitem__(self, i: int) -> MinimizeResult:
        """The result of start ``i`` (for a 2-D ``x0``)."""
        if not self._batch:
            raise TypeError("a single-start result cannot be indexed; x0 was 1-D")
        return MinimizeResult(self.x[i], float(self.fun[i]), float(self.grad_norm[i]),
                              int(self.nit[i]), bool(self.converged[i]), self.message[i],
                              None if self.path is None else self.path[i], self.history[i],
                              False)

    def __iter__(self) -> Iterator[MinimizeResult]:
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        lines = []
        for k in self._FIELDS:
            v = getattr(self, k)
            if k in ("path", "history") and v is not None:
                v = (f"<{len(v)} arrays>" if self._batch else
                     f"<array of shape {v.shape}>")
            lines.append(f"{k:>10}: {v!r}" if not isinstance(v, str) else f"{k:>10}: {v}")
        return "MinimizeResult(\n" + "\n".join(lines) + "\n)"


def grad_array(g: Any, shape: tuple[int, ...], dtype: np.dtype[Any],
               name: str = "grad") -> FloatArray:
    """What ``grad`` returned as an array of ``shape`` and ``dtype``."""
    if not isinstance(g, np.ndarray):
        try:
            g = np.asarray(g)
        except Exception as exc:
            raise TypeError(f"{name} must return an array of real numbers: {exc}") from None
    if g.dtype.kind not in "fiu":
        raise TypeError(f"{name} must return real numbers, got dtype {g.dtype}")
    if g.shape != shape:
        raise ValueError(f"{name} must return an array of x's shape {shape}, got {g.shape}")
    return g if g.dtype == dtype else g.astype(dtype)



# ---------------------------------------------------------------------------- messages
def _message(kind: str, o: _Options, **v: Any) -> str:
    lr = o.lr
    hint = (f"lr={lr:g} is likely too large for this function: try a smaller lr "
            f"(e.g. lr={lr / 10:g}); x is the best point seen (iteration {v.get('best', 0)})")
    if kind == "gradient":
        return f"converged: gradient norm {v['gn']:.3g} <= tol={o.tol:g}"
    if kind == "stall":
        return (f"converged: f and x changed by less than tol_change={o.tol_change:g} "
                "(relative) in the last step")
    if kind == "shrunk":
        return (f"converged: no step decreased f until the trial step shrank below "
                f"tol_change={o.tol_change:g} (learning rate now {v['lr']:.3g})")
    if kind == "max_iter":
        return (f"stopped: max_iter={o.max_iter} reached with gradient norm {v['gn']:.3g} > "
                f"tol={o.tol:g}; raise max_iter or lr")
    if kind == "nonfinite":
        return f"diverged: f became {v['f']} at iteration {v['it']}; {hint}"
    if kind == "growth":
        verb = "fell" if o.maximize else "rose"
        return (f"diverged: f {verb} from {v['f0']:.4g} to {v['f']:.4g} by iteration {v['it']}, "
                f"growing without bound; {hint}")
    if kind == "xgrowth":
        return (f"diverged: max|x| grew to {v['xm']:.3g} by iteration {v['it']} (f may be "
                f"unbounded {'above' if o.maximize else 'below'}, or the steps too large); "
                f"{hint}")
    if kind == "worse":
        verb = "fell" if o.maximize else "rose"
        return (f"diverged: after max_iter={o.max_iter} iterations f {verb} from f(x0)="
                f"{v['f0']:.4g} to {v['f']:.4g}; {hint}")
    if kind == "linesearch":
        return (f"stopped: backtracking found no decrease along the step after "
                f"{MAX_HALVINGS} halvings (iteration {v['it']})")
    if kind == "callback":
        return f"stopped by callback at iteration {v['it']}"
    raise AssertionError(kind)  # pragma: no cover


_CONVERGED = {"gradient", "stall", "shrunk"}
_DIVERGED = {"nonfinite", "growth", "xgrowth", "worse"}


def _stop_by_callback(callback: Callable[[Iterate], Any], it: int, x: FloatArray,
                      f: Any) -> bool:
    try:
        return callback(Iterate(it, x.copy(), f)) is True
    except StopIteration:
        return True


# ---------------------------------------------------------------------------- one start
def _path_point(path: list[Any], i: int, d: int, small: bool, dt: np.dtype[Any]) -> FloatArray:
    """Iterate ``i`` (negative counts from the end) of a path being recorded."""
    if not small:
        return path[i].copy()
    n = len(path) // d
    i = i + n if i < 0 else i
    return np.array(path[i * d:(i + 1) * d], dtype=dt)


def _fval(fv: Any) -> float:
    tf = type(fv)
    return fv if tf is float else float(fv) if tf in _NP_FLOATS else scalar_value(fv)


class _Single:
    """One start's setup and record: its limits, path, f's history and best point."""

    def __init__(self, x: FloatArray, f0: float, o: _Options) -> None:
        self.sgn = sgn = -1.0 if o.maximize else 1.0
        self.h0 = h0 = sgn * f0
        self.hlim = h0 + GROWTH * (1 + abs(h0))
        self.xlim = GROWTH * (1 + float(np.abs(x).max()))
        self.small = small = x.size <= _SMALL
        self.keep = keep = o.keep_path
        self.d, self.shape, self.dt = x.size, x.shape, x.dtype
        # a small x is recorded as Python floats in one flat list (cheap to append and to
        # convert at the end), a large one as array copies
        # a flat list of floats (small x) or a list of array copies; None without keep_path
        self.path: Any = (x.tolist() if small else [x.copy()]) if keep else None
        self.hist = [f0]
        self.best_x: FloatArray | None = None if keep else x.copy()
        special = o.line_search is not None or o.accept
        self.xprev: FloatArray | None = np.empty_like(x) if special or not keep else None

    def point(self, i: int) -> FloatArray:
        return _path_point(self.path, i, self.d, self.small, self.dt)

    def stalled(self, x: FloatArray, tc: float) -> bool:
        """x moved by less than tol_change (relative) in the last accepted step."""
        prev = self.xprev if self.xprev is not None else self.point(-2)
        return float(np.abs(x - prev).max()) <= tc * (1 + float(np.abs(x).max()))


def _backtrack(fun: Callable[[FloatArray], Any], x: FloatArray, xprev: FloatArray,
               D: FloatArray, g: FloatArray, f: float, sgn: float,
               t: float) -> tuple[float, float | None]:
    """Armijo backtracking along D from xprev: (t, f there), f None when no t would do."""
    slope = min(sgn * float(np.dot(g.astype(np.float64), D)), 0.0)
    if t != 1.0:
        x[...] = xprev + t * D
    f_new = _fval(fun(x))
    halvings = 0
    while not (sgn * f_new <= sgn * f + ARMIJO_C * t * slope):
        halvings += 1
        if halvings > MAX_HALVINGS:
            return t, None
        t *= 0.5
        x[...] = xprev + t * D
        f_new = _fval(fun(x))
    return t, f_new


def _trial_step(fun: Callable[[FloatArray], Any], x: FloatArray, xprev: FloatArray,
                stepper: Stepper, o: _Options) -> _Trial:
    """The step with line search or the accept rule: ``trial(g, f, it)`` steps x (already
    copied to xprev) and returns ``(f_new, stop)``, f_new None for a rejected step and stop
    a ``(kind, info)`` pair when the run stops."""
    sgn = -1.0 if o.maximize else 1.0
    tc, search, step = o.tol_change, o.line_search is not None, stepper.step
    scale, t_prev = 1.0, 0.5

    def trial(g: FloatArray, f: float, it: int) -> tuple[float | None, _Stop | None]:
        nonlocal scale, t_prev
        snap = stepper.snapshot()
        step(g)
        D = x.astype(np.float64) - xprev          # the kernel's step, exact for float32
        if search:
            t, f_new = _backtrack(fun, x, xprev, D, g, f, sgn, min(1.0, 2.0 * t_prev))
            if f_new is None:
                x[...] = xprev
                stepper.restore(snap)
                return None, ("linesearch", {"it": it})
            t_prev = t
            return f_new, None
        if scale != 1.0:
            D *= scale
            x[...] = xprev + D
        f_new = _fval(fun(x))
        if sgn * f_new < sgn * f:
            return f_new, None
        x[...] = xprev
        stepper.restore(snap)
        scale *= SHRINK
        if float(np.abs(D).max()) <= tc * (1 + float(np.abs(xprev).max())):
            return None, ("shrunk", {"lr": o.lr * scale})
        return None, None
    return trial


def _single_loop(fun: Callable[[FloatArray], Any], grad: Callable[[FloatArray], Any],
                 x: FloatArray, step: Callable[[FloatArray], None], trial: _Trial | None,
                 f0: float, o: _Options, r: _Single
                 ) -> tuple[str | None, dict[str, Any], int, float, int]:
    """The iterations of one start: (kind, info, it, f, best_i); kind None at max_iter.

    The hot path of minimize: without ``trial`` (no line search, no accept rule) each
    iteration is one grad call, one kernel call, one fun call and the stop rules inline."""
    sgn, hlim, xlim, small, keep, shape, dt = r.sgn, r.hlim, r.xlim, r.small, r.keep, r.shape, r.dt
    tol, tc, max_iter, callback = o.tol, o.tol_change, o.max_iter, o.callback
    # record and best_x are None exactly when unused (keep_path decides): each use tests keep
    record: Any = (r.path.extend if small else r.path.append) if keep else None
    snapshot = x.tolist if small else x.copy
    best_x: Any
    hist, best_x, xprev = r.hist, r.best_x, r.xprev
    hypot, sqrt = math.hypot, math.sqrt
    best_h, best_i, f, it = r.h0, 0, f0, 0
    while it < max_iter:
        g = grad(x)
        if type(g) is not np.ndarray or g.dtype is not dt or g.shape != shape:
            g = grad_array(g, shape, dt)
        gn = hypot(*g.tolist()) if small else sqrt(g.dot(g))
        if gn <= tol:
            return "gradient", {"gn": gn}, it, f, best_i
        if xprev is not None:
            np.copyto(xprev, x)
        it += 1
        if trial is None:
            step(g)
            fv = fun(x)
            tf = type(fv)
            f_new = fv if tf is float else float(fv) if tf in _NP_FLOATS else scalar_value(fv)
        else:
            f_new, stop = trial(g, f, it)
            if stop is not None:
                return stop[0], stop[1], it, f, best_i
        if f_new is not None:                     # None: the trial step was rejected
            if keep:
                record(snapshot())
            hist.append(f_new)
            h_new = sgn * f_new
            if not (-_INF < h_new <= hlim):
                kind = "nonfinite" if not math.isfinite(h_new) else "growth"
                return kind, {"f": f_new, "f0": f0, "it": it}, it, f, best_i
            if h_new < best_h:
                best_h, best_i = h_new, len(hist) - 1
                if not keep:
                    np.copyto(best_x, x)
            if it % _X_CHECK_EVERY == 0:
                xm = float(np.abs(x).max())
                if not xm <= xlim:
                    return "xgrowth", {"xm": xm, "it": it}, it, f, best_i
            stall = abs(f_new - f) <= tc * (1 + abs(f)) and r.stalled(x, tc)
            f = f_new
            if stall:
                return "stall", {}, it, f, best_i
        if callback is not None and _stop_by_callback(callback, it, x, f):
            return "callback", {"it": it}, it, f, best_i
    return None, {}, it, f, best_i


def run_single(fun: Callable[[FloatArray], Any], grad: Callable[[FloatArray], Any],
               x: FloatArray, stepper: Stepper, f0: float, o: _Options) -> MinimizeResult:
    """The loop for one start: one kernel call per iteration and little else.

    For a small ``x`` the gradient norm and the stored path use Python floats
    (``tolist``), which is cheaper than numpy's per-call overhead on tiny arrays.
    """
    r = _Single(x, f0, o)
    special = o.line_search is not None or o.accept
    # xprev exists for a trial step
    trial = _trial_step(fun, x, cast(FloatArray, r.xprev), stepper, o) if special else None
    kind, info, it, f, best_i = _single_loop(fun, grad, x, stepper.step, trial, f0, o, r)
    if kind is None:
        if r.sgn * f > r.h0:
            kind, info = "worse", {"f0": f0, "f": f}
        else:
            kind = "max_iter"
    if kind in _DIVERGED:
        info["best"] = best_i
        x_out = r.point(best_i) if r.keep else cast(FloatArray, r.best_x)  # set without keep
        f_out = r.hist[best_i]
    else:
        x_out, f_out = x.copy(), f
    if kind == "gradient":
        gn = info["gn"]
    else:
        gf = grad_array(grad(x_out), r.shape, r.dt).astype(np.float64)
        gn = float(np.sqrt(np.dot(gf, gf)))
        info.setdefault("gn", gn)
        if kind == "max_iter" and gn <= o.tol:
            kind, info = "gradient", {"gn": gn}
    path = r.path
    if r.keep:
        path = np.array(path, dtype=r.dt).reshape(-1, *r.shape) if r.small else np.array(path)
    return MinimizeResult(
        x_out, float(f_out), float(gn), it, kind in _CONVERGED, _message(kind, o, **info),
        path, np.array(r.hist, dtype=np.float64), False)

# ---------------------------------------------------------------------------- many starts
def _rowmax(a: FloatArray) -> FloatArray:
    return np.abs(a).max(axis=1).astype(np.float64)


def _rownorm(g: FloatArray) -> FloatArray:
    return np.sqrt(np.einsum("ij,ij->i", g, g, dtype=np.float64))


class _Batch:
    """k starts (the rows of X) at once: the state of the run, its step and stop rules."""

    def __init__(self, F: Callable[[FloatArray], FloatArray],
                 G: Callable[[FloatArray], FloatArray], X: FloatArray, stepper: Stepper,
                 f0: FloatArray, o: _Options) -> None:
        self.F, self.G, self.X, self.stepper, self.f0, self.o = F, G, X, stepper, f0, o
        self.k = k = X.shape[0]
        self.sgn = -1.0 if o.maximize else 1.0
        self.f = f = f0.astype(np.float64, copy=True)
        self.h0 = h0 = self.sgn * f
        self.hlim = h0 + GROWTH * (1 + np.abs(h0))
        self.xlim = GROWTH * (1 + _rowmax(X))
        self.active = np.ones(k, bool)
        self.nit = np.zeros(k, np.int64)
        self.kinds: list[str | None] = [None] * k
        self.infos: list[dict[str, Any]] = [dict() for _ in range(k)]
        self.best_h, self.best_x, self.best_it = h0.copy(), X.copy(), np.zeros(k, np.int64)
        self.best_f = f.copy()
        self.scale = np.ones(k)
        self.scaled = False
        self.t_prev = np.full(k, 0.5)  # backtracking starts from min(1, 2 * the last factor)
        self.snaps = [X.copy()] if o.keep_path else None
        self.fs, self.acc = [f.copy()], [np.ones(k, bool)]
        self.Xprev = np.empty_like(X)
        self.rollback = o.accept or o.line_search is not None

    def finish(self, rows: Array, kind: str, **info: Any) -> None:
        for i in np.flatnonzero(rows):
            self.kinds[i] = kind
            self.infos[i] = {key: (val[i] if isinstance(val, np.ndarray) else val)
                             for key, val in info.items()}
        self.active[rows] = False

    def run(self) -> MinimizeResult:
        o, X, active = self.o, self.X, self.active
        for it in range(1, o.max_iter + 1):
            g = self.G(X)
            gn = _rownorm(g)
            hit = active & (gn <= o.tol)
            if hit.any():
                self.finish(hit, "gradient", gn=gn)
            if not active.any():
                break
            f_new, accepted = self.step(g, it)
            self.stop_rules(f_new, accepted)
            if not active.any():
                break
            if o.callback is not None and _stop_by_callback(o.callback, it, X, self.f):
                self.finish(active.copy(), "callback", it=self.nit)
                break
        return self.result()

    def step(self, g: FloatArray, it: int) -> tuple[FloatArray, Array]:
        """One step of every active start: (f at the new rows, which rows were accepted)."""
        o, X, Xprev, active = self.o, self.X, self.Xprev, self.active
        np.copyto(Xprev, X)
        snap = self.stepper.snapshot() if self.rollback else None
        self.stepper.step(g)
        frozen = ~active
        D = None
        if self.scaled or o.line_search is not None or o.accept:
            D = X.astype(np.float64) - Xprev  # exact for float32 iterates
            D[frozen] = 0
            if self.scaled:
                D *= self.scale[:, None]
                X[...] = Xprev + D
        if frozen.any():
            X[frozen] = Xprev[frozen]
        self.nit[active] += 1
        if o.line_search is not None:
            assert D is not None and snap is not None  # both made for a trial step
            return self.line_search(g, D, frozen, snap, it)
        if o.accept:
            assert D is not None and snap is not None
            return self.accept(D, snap)
        return self.F(X), active.copy()

    def line_search(self, g: FloatArray, D: FloatArray, frozen: Array, snap: Snapshot,
                    it: int) -> tuple[FloatArray, Array]:
        X, Xprev, f, sgn, active = self.X, self.Xprev, self.f, self.sgn, self.active
        slope = np.minimum(sgn * np.einsum("ij,ij->i", g.astype(np.float64), D), 0.0)
        t = np.minimum(1.0, 2.0 * self.t_prev)
        if (t < 1).any():
            X[...] = Xprev + t[:, None] * D
        f_new = self.F(X)
        ok = frozen | (sgn * f_new <= sgn * f + ARMIJO_C * t * slope)
        for _ in range(MAX_HALVINGS):
            bad = ~ok
            if not bad.any():
                break
            t[bad] *= 0.5
            X[bad] = Xprev[bad] + t[bad, None] * D[bad]
            f_new[bad] = self.F(X)[bad]
            ok = frozen | (sgn * f_new <= sgn * f + ARMIJO_C * t * slope)
        failed = active & ~ok
        if failed.any():
            X[failed] = Xprev[failed]
            f_new[failed] = f[failed]
            self.stepper.restore(snap, None if not (active & ok).any() else failed)
            self.finish(failed, "linesearch", it=it)
        accepted = active & ok
        self.t_prev = np.where(accepted, t, self.t_prev)
        D *= t[:, None]
        return f_new, accepted

    def accept(self, D: FloatArray, snap: Snapshot) -> tuple[FloatArray, Array]:
        X, Xprev, f, sgn, active = self.X, self.Xprev, self.f, self.sgn, self.active
        f_new = self.F(X)
        accepted = active & (sgn * f_new < sgn * f)
        rejected = active & ~accepted
        if rejected.any():
            X[rejected] = Xprev[rejected]
            f_new[rejected] = f[rejected]
            self.stepper.restore(snap, None if not accepted.any() else rejected)
            tiny = rejected & (_rowmax(D) <= self.o.tol_change * (1 + _rowmax(Xprev)))
            self.scale[rejected] *= SHRINK
            self.scaled = True
            if tiny.any():
                self.finish(tiny, "shrunk", lr=self.o.lr * self.scale)
        return f_new, accepted

    def stop_rules(self, f_new: FloatArray, accepted: Array) -> None:
        """Record the step, keep the best points and stop the rows that diverged or stalled."""
        X, f, tc, nit, best_it = self.X, self.f, self.o.tol_change, self.nit, self.best_it
        if self.snaps is not None:
            self.snaps.append(X.copy())
        self.fs.append(np.where(accepted, f_new, f))
        self.acc.append(accepted.copy())
        h_new = self.sgn * f_new
        nonfinite = accepted & ~np.isfinite(h_new)
        growth = accepted & ~nonfinite & (h_new > self.hlim)
        xm = _rowmax(X)
        xgrowth = accepted & ~nonfinite & ~growth & ~(xm <= self.xlim)
        diverged = nonfinite | growth | xgrowth
        improve = accepted & ~diverged & (h_new < self.best_h)
        if improve.any():
            self.best_h[improve] = h_new[improve]
            self.best_f[improve] = f_new[improve]
            self.best_x[improve] = X[improve]
            best_it[improve] = nit[improve]
        df_small = accepted & ~diverged & (np.abs(f_new - f) <= tc * (1 + np.abs(f)))
        stall = np.zeros(self.k, bool)
        if df_small.any():
            stall = df_small & (_rowmax(X - self.Xprev) <= tc * (1 + xm))
        self.f = f = np.where(accepted, f_new, f)
        if diverged.any():
            self.finish(nonfinite, "nonfinite", f=f_new, it=nit, best=best_it)
            self.finish(growth, "growth", f=f_new, f0=self.f0, it=nit, best=best_it)
            self.finish(xgrowth, "xgrowth", xm=xm, it=nit, best=best_it)
            X[diverged] = self.best_x[diverged]  # keep later evaluations finite
            f[diverged] = self.best_f[diverged]
        if stall.any():
            self.finish(stall, "stall")

    def result(self) -> MinimizeResult:
        kinds, infos, f, best_it, k = self.kinds, self.infos, self.f, self.best_it, self.k
        i: int | np.integer[Any]
        for i in np.flatnonzero(self.active):
            if self.sgn * f[i] > self.h0[i]:
                kinds[i], infos[i] = "worse", {"f0": self.f0[i], "f": f[i], "best": best_it[i]}
            else:
                kinds[i] = "max_iter"
        out_x = self.X.copy()
        out_f = f.copy()
        for i, kind in enumerate(kinds):
            if kind in _DIVERGED:
                out_x[i] = self.best_x[i]
                out_f[i] = self.best_f[i]
                infos[i]["best"] = best_it[i]
        gn = _rownorm(self.G(out_x))
        messages = []
        for i, kind in enumerate(kinds):
            assert kind is not None  # every start has stopped by now
            if kind == "max_iter" and gn[i] <= self.o.tol:
                kind = kinds[i] = "gradient"
            infos[i]["gn"] = gn[i]
            messages.append(_message(kind, self.o, **infos[i]))
        A = np.array(self.acc)
        paths = None
        if self.snaps is not None:
            S = np.array(self.snaps)
            paths = tuple(S[A[:, i], i] for i in range(k))
        Fh = np.array(self.fs)
        hists = tuple(Fh[A[:, i], i] for i in range(k))
        return MinimizeResult(out_x, out_f, gn, self.nit,
                              np.array([kd in _CONVERGED for kd in kinds]),
                              tuple(messages), paths, hists, True)


def run_batch(F: Callable[[FloatArray], FloatArray], G: Callable[[FloatArray], FloatArray],
              X: FloatArray, stepper: Stepper, f0: FloatArray, o: _Options) -> MinimizeResult:
    """k starts (the rows of X) at once, each stopping on its own."""
    return _Batch(F, G, X, stepper, f0, o).run()
