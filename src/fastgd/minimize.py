r"""`minimize`: gradient descent (or ascent) on a Python function, with fastgd's native steps.

>>> import numpy as np, fastgd
>>> f = lambda p: p[0] ** 2 + p[1] ** 2 + p[0] * p[1]          # the seeds' function
>>> g = lambda p: np.array([2 * p[0] + p[1], 2 * p[1] + p[0]])
>>> res = fastgd.minimize(f, [1.0, 3.0], grad=g, lr=0.1)
>>> res.converged, np.abs(res.x).max() < 1e-5
(True, True)
"""
import math
from collections import namedtuple

import numpy as np

from . import _checks
from ._stepper import Stepper, check_method, defaults
from .gradients import (_central, _central_batched, as_real_array, default_eps, row_values,
                        scalar_value)

__all__ = ["minimize", "MinimizeResult", "Iterate"]

#: f (or |x|) this many times its start (plus one) counts as growing without bound
GROWTH = 1e8
#: Armijo's sufficient-decrease constant and the most halvings of one backtracking search
ARMIJO_C = 1e-4
MAX_HALVINGS = 40
#: accept_if_improves: the learning-rate factor after a rejected step
SHRINK = 0.5
#: the single-start loop checks |x| for unbounded growth every this many iterations
_X_CHECK_EVERY = 16

#: what ``callback`` receives after each iteration (``x`` is a copy)
Iterate = namedtuple("Iterate", "nit x fun")

_INF = math.inf


class MinimizeResult:
    """What `minimize` returns.

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

    For a 2-D ``x0`` (k starts) every attribute holds one entry per start (``x`` has shape
    ``(k, d)``, ``converged`` is a boolean array, ``path`` and ``history`` are tuples of
    arrays), and ``res[i]`` is the result of start ``i`` alone.
    """

    _FIELDS = ("x", "fun", "grad_norm", "nit", "converged", "message", "path", "history")

    def __init__(self, x, fun, grad_norm, nit, converged, message, path, history, batch):
        self.x = x
        self.fun = fun
        self.grad_norm = grad_norm
        self.nit = nit
        self.converged = converged
        self.message = message
        self.path = path
        self.history = history
        self._batch = batch

    def __len__(self):
        if not self._batch:
            raise TypeError("a single-start result has no len(); x0 was 1-D")
        return len(self.x)

    def __getitem__(self, i):
        """The result of start ``i`` (for a 2-D ``x0``)."""
        if not self._batch:
            raise TypeError("a single-start result cannot be indexed; x0 was 1-D")
        return MinimizeResult(self.x[i], float(self.fun[i]), float(self.grad_norm[i]),
                              int(self.nit[i]), bool(self.converged[i]), self.message[i],
                              None if self.path is None else self.path[i], self.history[i],
                              False)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self):
        lines = []
        for k in self._FIELDS:
            v = getattr(self, k)
            if k in ("path", "history") and v is not None:
                v = (f"<{len(v)} arrays>" if self._batch else
                     f"<array of shape {v.shape}>")
            lines.append(f"{k:>10}: {v!r}" if not isinstance(v, str) else f"{k:>10}: {v}")
        return "MinimizeResult(\n" + "\n".join(lines) + "\n)"


def minimize(fun, x0, *, grad=None, method="gd", lr=None, maximize=False, max_iter=1000,
             tol=1e-6, tol_change=1e-9, line_search=None, accept_if_improves=False,
             callback=None, keep_path=True, **hyper):
    r"""Minimise (or maximise) ``fun`` from ``x0`` by gradient descent and its relatives.

    Every step is one call of fastgd's native kernel for ``method`` (the kernels behind
    `fastgd.optim`, with their defaults), on the whole array of iterates. Plain gradient
    descent is

    .. math::
        x_{t+1} = x_t - \gamma\,\nabla f(x_t)
        \qquad(\text{ascent with } \texttt{maximize=True}:\; x_{t+1} = x_t + \gamma\,\nabla f(x_t))

    With ``accept_if_improves`` a step :math:`\Delta x` is kept only if
    :math:`f(x_t + \Delta x) < f(x_t)`; otherwise :math:`x` (and the optimizer's state) stay
    and :math:`\gamma \leftarrow \gamma / 2`. With ``line_search="backtracking"`` the step is
    halved, :math:`s \leftarrow s/2` from :math:`s = 1`, until Armijo's condition
    :math:`f(x_t + s\Delta x) \le f(x_t) + c\,s\,\nabla f(x_t)^\top \Delta x` holds
    (:math:`c = 10^{-4}`).

    Parameters
    ----------
    fun : callable
        ``fun(x) -> float``. For a 2-D ``x0`` it gets the ``(k, d)`` array of iterates and
        returns ``k`` values (write it with ``x[..., i]``; the functions of
        `fastgd.functions` work this way).
    x0 : array_like, shape (d,) or (k, d)
        The start, or ``k`` starts minimised together (one kernel call updates them all).
        float32 and float64 are kept; other real dtypes become float64.
    grad : callable, optional
        ``grad(x)`` with ``x``'s shape. Default: `fastgd.numerical_gradient` (central
        differences, ``2 d`` calls of ``fun`` per iteration).
    method : {"gd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"}
        ``"gd"`` is `fastgd.optim.SGD` without momentum; ``"momentum"`` and ``"nesterov"``
        are SGD with ``momentum=0.9`` unless given; the others are `fastgd.optim.Adagrad`,
        `~fastgd.optim.RMSprop`, `~fastgd.optim.Adam` and `~fastgd.optim.AdamW`.
    lr : float, optional
        Learning rate :math:`\gamma` (> 0); the initial step for ``line_search``. Default: the
        method's optimizer default (PyTorch's): 1e-3, or 1e-2 for adagrad and rmsprop.
    maximize : bool, default False
        Gradient ascent.
    max_iter : int, default 1000
    tol : float, default 1e-6
        Stop (converged) when the gradient norm is at most ``tol``.
    tol_change : float, default 1e-9
        Stop (converged) when, in one accepted step, both f and x change by at most
        ``tol_change`` relative to ``1 + |f|`` and ``1 + max|x|``; with ``accept_if_improves``,
        also when a rejected trial step is that small.
    line_search : {None, "backtracking"}
    accept_if_improves : bool, default False
        The seeds' rule (see above).
    callback : callable, optional
        ``callback(Iterate(nit, x, fun))`` after each iteration; returning True (or raising
        StopIteration) stops the run.
    keep_path : bool, default True
        Keep every accepted iterate in ``path`` (turn off for large ``x``).
    **hyper
        Other hyper-parameters of the method's optimizer: ``momentum``, ``dampening``,
        ``weight_decay``, ``betas``, ``eps``, ``amsgrad``, ``alpha``, ``centered``,
        ``lr_decay``, ``initial_accumulator_value``, as in `fastgd.optim`.

    Returns
    -------
    MinimizeResult
        ``x``, ``fun``, ``grad_norm``, ``nit``, ``converged``, ``message``, ``path``,
        ``history``; per start for a 2-D ``x0``.

    Notes
    -----
    A run that diverges — f or x becomes NaN or infinite, f rises more than
    ``1e8 * (1 + |f(x0)|)`` above its start, ``max|x|`` grows beyond
    ``1e8 * (1 + max|x0|)``, or f ends worse than it started — stops without an exception:
    ``converged`` is False, ``message`` names the cause and suggests a smaller ``lr``, and
    ``x`` is the best point seen. Numpy's overflow and invalid-value warnings are silenced
    during the run for the same reason.

    With several starts, each start stops on its own (its rows are frozen) and the shared
    optimizer step counter (Adam's bias correction) counts the iterations of the batch.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd import functions, minimize
    >>> f = functions.himmelblau()
    >>> starts = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
    >>> res = minimize(f, starts, grad=f.grad, lr=0.01)
    >>> res.converged.all(), np.round(res.x, 2)        # four starts, four minima
    (np.True_, array([[ 3.  ,  2.  ],
           [-2.81,  3.13],
           [-3.78, -3.28],
           [ 3.58, -1.85]]))
    >>> bad = minimize(functions.quadratic(), [1.0, 3.0], grad=functions.quadratic().grad,
    ...                lr=0.8)                           # beyond 2/L = 2/3
    >>> bad.converged, bad.message.split(":")[0]
    (False, 'diverged')
    """
    o = _options(fun, x0, grad, method, lr, maximize, max_iter, tol, tol_change, line_search,
                 accept_if_improves, callback, keep_path)
    X = np.array(o.x0, dtype=o.x0.dtype, order="C", copy=True)
    batch = X.ndim == 2
    fast = not batch and o.line_search is None and not o.accept
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if fast:
            stepper = Stepper(method, X, o.lr, o.maximize, hyper)
            f0 = _start_value(fun, X)
            return _run_single(fun, _single_grad(fun, grad, X), X, stepper, f0, o)
        X2 = X.reshape(1, -1) if not batch else X
        stepper = Stepper(method, X2, o.lr, o.maximize, hyper)
        F, G = _batch_evaluators(fun, grad, X2, batch)
        f0 = F(X2)
        bad = ~np.isfinite(f0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"fun(x0) is not finite ({f0[i]}) at start {i}" if batch else
                             f"fun(x0) is not finite ({f0[i]})")
        res = _run_batch(F, G, X2, stepper, f0, o)
    return res if batch else res[0]


# ---------------------------------------------------------------------------- options
class _Options:
    pass


def _options(fun, x0, grad, method, lr, maximize, max_iter, tol, tol_change, line_search,
             accept, callback, keep_path):
    o = _Options()
    if not callable(fun):
        raise TypeError(f"fun must be callable, got {type(fun).__name__}")
    if grad is not None and not callable(grad):
        raise TypeError(f"grad must be callable or None, got {type(grad).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    x = as_real_array(x0, "x0")
    if x.ndim not in (1, 2):
        raise ValueError(f"x0 must be 1-D (one start) or 2-D (one start per row), got shape "
                         f"{x.shape}" + ("; pass [x0] for a scalar" if x.ndim == 0 else ""))
    if x.size == 0:
        raise ValueError(f"x0 is empty (shape {x.shape})")
    if not np.all(np.isfinite(x)):
        raise ValueError("x0 contains NaN or infinity")
    o.x0 = x
    check_method(method)
    o.method = method
    o.lr = defaults(method)[0] if lr is None else _checks.real(lr, "lr", low=0, low_open=True)
    o.maximize = _checks.flag(maximize, "maximize")
    if isinstance(max_iter, (bool, np.bool_)) or not isinstance(max_iter, (int, np.integer)):
        raise TypeError(f"max_iter must be an int, got {type(max_iter).__name__}")
    if max_iter < 0:
        raise ValueError(f"max_iter must be >= 0, got {max_iter}")
    o.max_iter = int(max_iter)
    o.tol = _checks.real(tol, "tol", low=0)
    o.tol_change = _checks.real(tol_change, "tol_change", low=0)
    if line_search not in (None, "backtracking"):
        raise ValueError(f"line_search must be None or 'backtracking', got {line_search!r}")
    o.line_search = line_search
    o.accept = _checks.flag(accept, "accept_if_improves")
    if o.accept and line_search is not None:
        raise ValueError("use either line_search or accept_if_improves, not both")
    o.callback = callback
    o.keep_path = _checks.flag(keep_path, "keep_path")
    return o


# ---------------------------------------------------------------------------- evaluation
def _grad_array(g, shape, dtype, name="grad"):
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


def _start_value(fun, x):
    f0 = scalar_value(fun(x))
    if not math.isfinite(f0):
        raise ValueError(f"fun(x0) is not finite ({f0})")
    return f0


def _single_grad(fun, grad, x):
    if grad is None:
        h = default_eps(x.dtype)
        return lambda v: _central(fun, v, h)
    return grad


def _batch_evaluators(fun, grad, X, batch):
    k, d = X.shape
    dt = X.dtype
    if not batch:
        def F(Z):
            return np.array([scalar_value(fun(Z[0]))])

        if grad is None:
            h = default_eps(dt)

            def G(Z):
                return _central(fun, Z[0], h).reshape(1, d)
        else:
            def G(Z):
                return _grad_array(grad(Z[0]), (d,), dt).reshape(1, d)
        return F, G

    def F(Z):
        return row_values(fun(Z), k)

    if grad is None:
        h = default_eps(dt)

        def G(Z):
            return _central_batched(fun, Z, h)
    else:
        def G(Z):
            return _grad_array(grad(Z), (k, d), dt)

    if k > 1:  # a function written for one point can return k values by accident
        one = X[:1].copy()
        all_f = F(X)
        f1 = np.asarray(fun(one))
        if f1.shape not in ((1,), ()) or not np.allclose(f1.reshape(-1)[0], all_f[0],
                                                          rtol=1e-4, atol=1e-12, equal_nan=True):
            raise ValueError("fun does not treat the rows of a 2-D x as separate points "
                             "(fun(x0[:1]) differs from fun(x0)[0]); write it with x[..., i]")
        if grad is not None:
            g1 = np.asarray(grad(one))
            gk = G(X)
            if g1.shape != (1, d) or not np.allclose(g1[0], gk[0], rtol=1e-4, atol=1e-12,
                                                     equal_nan=True):
                raise ValueError("grad does not treat the rows of a 2-D x as separate points "
                                 "(grad(x0[:1]) differs from grad(x0)[:1]); it must return "
                                 "shape (k, d) with row i the gradient at row i, e.g. "
                                 "np.stack([..., ...], axis=-1)")
    return F, G


# ---------------------------------------------------------------------------- messages
def _message(kind, o, **v):
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


def _stop_by_callback(callback, it, x, f):
    try:
        return callback(Iterate(it, x.copy(), f)) is True
    except StopIteration:
        return True


# ---------------------------------------------------------------------------- one start
def _run_single(fun, grad, x, stepper, f0, o):
    """The lean loop for one start without line search: a kernel call and little else."""
    sgn = -1.0 if o.maximize else 1.0
    h0 = sgn * f0
    hlim = h0 + GROWTH * (1 + abs(h0))
    xlim = GROWTH * (1 + float(np.abs(x).max()))
    tol2 = o.tol * o.tol
    tc = o.tol_change
    keep = o.keep_path
    path = [x.copy()] if keep else None
    hist = [f0]
    best_h, best_i = h0, 0
    best_x = None if keep else x.copy()
    xprev = None if keep else np.empty_like(x)
    shape, dt = x.shape, x.dtype
    step = stepper.step
    callback = o.callback
    f = f0
    it = 0
    kind, info = None, {}
    while it < o.max_iter:
        g = grad(x)
        if type(g) is not np.ndarray or g.dtype is not dt or g.shape != shape:
            g = _grad_array(g, shape, dt)
        gg = g.dot(g)
        if gg <= tol2:
            kind, info = "gradient", {"gn": math.sqrt(gg)}
            break
        if not keep:
            np.copyto(xprev, x)
        step(g)
        it += 1
        fv = fun(x)
        f_new = fv if type(fv) is float else scalar_value(fv)
        h_new = sgn * f_new
        if keep:
            path.append(x.copy())
        hist.append(f_new)
        if not (-_INF < h_new <= hlim):
            kind = "nonfinite" if not math.isfinite(h_new) else "growth"
            info = {"f": f_new, "f0": f0, "it": it}
            break
        if h_new < best_h:
            best_h, best_i = h_new, it
            if not keep:
                np.copyto(best_x, x)
        if it % _X_CHECK_EVERY == 0:
            xm = float(np.abs(x).max())
            if not xm <= xlim:
                kind, info = "xgrowth", {"xm": xm, "it": it}
                break
        if abs(f_new - f) <= tc * (1 + abs(f)):
            prev = path[-2] if keep else xprev
            if float(np.abs(x - prev).max()) <= tc * (1 + float(np.abs(x).max())):
                f = f_new
                kind = "stall"
                break
        f = f_new
        if callback is not None and _stop_by_callback(callback, it, x, f):
            kind, info = "callback", {"it": it}
            break
    if kind is None:
        if sgn * f > h0:
            kind, info = "worse", {"f0": f0, "f": f}
        else:
            kind = "max_iter"
    diverged = kind in _DIVERGED
    if diverged:
        info["best"] = best_i
        x_out = (path[best_i] if keep else best_x).copy()
        f_out = hist[best_i]
    else:
        x_out, f_out = x.copy(), f
    if kind == "gradient":
        gn = info["gn"]
    else:
        gf = _grad_array(grad(x_out), shape, dt)
        gn = float(np.sqrt(np.dot(gf.astype(np.float64), gf.astype(np.float64))))
        info.setdefault("gn", gn)
        if kind == "max_iter" and gn <= o.tol:
            kind, info = "gradient", {"gn": gn}
    return MinimizeResult(
        x_out, float(f_out), float(gn), it, kind in _CONVERGED, _message(kind, o, **info),
        np.array(path) if keep else None, np.array(hist, dtype=np.float64), False)


# ---------------------------------------------------------------------------- many starts
def _rowmax(a):
    return np.abs(a).max(axis=1).astype(np.float64)


def _run_batch(F, G, X, stepper, f0, o):
    """k starts (the rows of X) at once; also one start with line search or the accept rule."""
    k, d = X.shape
    dt = X.dtype
    sgn = -1.0 if o.maximize else 1.0
    tc = o.tol_change
    f = f0.astype(np.float64, copy=True)
    h0 = sgn * f
    hlim = h0 + GROWTH * (1 + np.abs(h0))
    xlim = GROWTH * (1 + _rowmax(X))
    active = np.ones(k, bool)
    nit = np.zeros(k, np.int64)
    kinds = [None] * k
    infos = [dict() for _ in range(k)]
    best_h, best_x, best_it = h0.copy(), X.copy(), np.zeros(k, np.int64)
    best_f = f.copy()
    scale = np.ones(k)
    scaled = False
    snaps = [X.copy()] if o.keep_path else None
    fs, acc = [f.copy()], [np.ones(k, bool)]
    Xprev = np.empty_like(X)
    rollback = o.accept or o.line_search is not None

    def finish(rows, kind, **info):
        for i in np.flatnonzero(rows):
            kinds[i] = kind
            infos[i] = {key: (val[i] if isinstance(val, np.ndarray) else val)
                        for key, val in info.items()}
        active[rows] = False

    for it in range(1, o.max_iter + 1):
        g = G(X)
        gn = np.sqrt(np.einsum("ij,ij->i", g, g, dtype=np.float64))
        hit = active & (gn <= o.tol)
        if hit.any():
            finish(hit, "gradient", gn=gn)
        if not active.any():
            break
        np.copyto(Xprev, X)
        snap = stepper.snapshot() if rollback else None
        stepper.step(g)
        frozen = ~active
        D = None
        if scaled or o.line_search is not None or o.accept:
            D = X.astype(np.float64) - Xprev  # exact for float32 iterates
            D[frozen] = 0
            if scaled:
                D *= scale[:, None]
                X[...] = Xprev + D
        if frozen.any():
            X[frozen] = Xprev[frozen]
        nit[active] += 1
        failed = np.zeros(k, bool)
        tiny = np.zeros(k, bool)
        if o.line_search is not None:
            slope = np.minimum(sgn * np.einsum("ij,ij->i", g.astype(np.float64), D), 0.0)
            t = np.ones(k)
            f_new = F(X)
            ok = frozen | (sgn * f_new <= sgn * f + ARMIJO_C * t * slope)
            for _ in range(MAX_HALVINGS):
                bad = ~ok
                if not bad.any():
                    break
                t[bad] *= 0.5
                X[bad] = Xprev[bad] + t[bad, None] * D[bad]
                f_new[bad] = F(X)[bad]
                ok = frozen | (sgn * f_new <= sgn * f + ARMIJO_C * t * slope)
            failed = active & ~ok
            if failed.any():
                X[failed] = Xprev[failed]
                f_new[failed] = f[failed]
                stepper.restore(snap, None if not (active & ok).any() else failed)
                finish(failed, "linesearch", it=it)
            accepted = active & ok
            D *= t[:, None]
        elif o.accept:
            f_new = F(X)
            accepted = active & (sgn * f_new < sgn * f)
            rejected = active & ~accepted
            if rejected.any():
                X[rejected] = Xprev[rejected]
                f_new[rejected] = f[rejected]
                stepper.restore(snap, None if not accepted.any() else rejected)
                tiny = rejected & (_rowmax(D) <= tc * (1 + _rowmax(Xprev)))
                scale[rejected] *= SHRINK
                scaled = True
                if tiny.any():
                    finish(tiny, "shrunk", lr=o.lr * scale)
        else:
            f_new = F(X)
            accepted = active.copy()
        if snaps is not None:
            snaps.append(X.copy())
        fs.append(np.where(accepted, f_new, f))
        acc.append(accepted.copy())
        h_new = sgn * f_new
        nonfinite = accepted & ~np.isfinite(h_new)
        growth = accepted & ~nonfinite & (h_new > hlim)
        xm = _rowmax(X)
        xgrowth = accepted & ~nonfinite & ~growth & ~(xm <= xlim)
        diverged = nonfinite | growth | xgrowth
        improve = accepted & ~diverged & (h_new < best_h)
        if improve.any():
            best_h[improve] = h_new[improve]
            best_f[improve] = f_new[improve]
            best_x[improve] = X[improve]
            best_it[improve] = nit[improve]
        df_small = accepted & ~diverged & (np.abs(f_new - f) <= tc * (1 + np.abs(f)))
        stall = np.zeros(k, bool)
        if df_small.any():
            step = _rowmax(X - Xprev)
            stall = df_small & (step <= tc * (1 + xm))
        f = np.where(accepted, f_new, f)
        if diverged.any():
            finish(nonfinite, "nonfinite", f=f_new, it=nit, best=best_it)
            finish(growth, "growth", f=f_new, f0=f0, it=nit, best=best_it)
            finish(xgrowth, "xgrowth", xm=xm, it=nit, best=best_it)
            X[diverged] = best_x[diverged]  # keep later evaluations finite
            f[diverged] = best_f[diverged]
        if stall.any():
            finish(stall, "stall")
        if not active.any():
            break
        if o.callback is not None and _stop_by_callback(o.callback, it, X, f):
            finish(active.copy(), "callback", it=nit)
            break

    for i in np.flatnonzero(active):
        if sgn * f[i] > h0[i]:
            kinds[i], infos[i] = "worse", {"f0": f0[i], "f": f[i], "best": best_it[i]}
        else:
            kinds[i] = "max_iter"
    out_x = X.copy()
    out_f = f.copy()
    for i, kind in enumerate(kinds):
        if kind in _DIVERGED:
            out_x[i] = best_x[i]
            out_f[i] = best_f[i]
            infos[i]["best"] = best_it[i]
    gfin = G(out_x)
    gn = np.sqrt(np.einsum("ij,ij->i", gfin, gfin, dtype=np.float64))
    messages = []
    for i, kind in enumerate(kinds):
        if kind == "max_iter" and gn[i] <= o.tol:
            kind = kinds[i] = "gradient"
        infos[i]["gn"] = gn[i]
        messages.append(_message(kind, o, **infos[i]))
    A = np.array(acc)
    paths = None
    if snaps is not None:
        S = np.array(snaps)
        paths = tuple(S[A[:, i], i] for i in range(k))
    Fh = np.array(fs)
    hists = tuple(Fh[A[:, i], i] for i in range(k))
    return MinimizeResult(out_x, out_f, gn, nit, np.array([kd in _CONVERGED for kd in kinds]),
                          tuple(messages), paths, hists, True)
