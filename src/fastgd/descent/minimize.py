r"""`minimize`: gradient descent (or ascent) on a Python function, with fastgd's native steps.

>>> import numpy as np, fastgd
>>> f = lambda p: p[0] ** 2 + p[1] ** 2 + p[0] * p[1]          # x² + y² + xy
>>> g = lambda p: np.array([2 * p[0] + p[1], 2 * p[1] + p[0]])
>>> res = fastgd.minimize(f, [1.0, 3.0], grad=g, lr=0.1)
>>> res.converged, bool(np.abs(res.x).max() < 1e-5)
(True, True)
"""
import math
from typing import Any, Callable

import numpy as np

from .. import _checks
from .._typing import ArrayLike, FloatArray, Real
from ..optim._stepper import METHODS, Stepper, defaults
from ..optim.lbfgs import LBFGS
from . import _lbfgs
from ._loops import Iterate, MinimizeResult, grad_array, run_batch, run_single
from .gradients import (central, central_batched, as_real_array, default_eps, row_values,
                        scalar_value)

__all__ = ["minimize", "MinimizeResult", "Iterate"]


def minimize(fun: Callable[[FloatArray], Any], x0: ArrayLike, *,
             grad: Callable[[FloatArray], ArrayLike] | None = None, method: str = "gd",
             lr: Real | None = None, maximize: bool = False, max_iter: int = 1000,
             tol: Real = 1e-6, tol_change: Real = 1e-9, line_search: str | None = None,
             accept_if_improves: bool = False, callback: Callable[[Iterate], Any] | None = None,
             keep_path: bool = True, **hyper: Any) -> MinimizeResult:
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
    halved, :math:`s \leftarrow s/2`, until Armijo's condition
    :math:`f(x_t + s\Delta x) \le f(x_t) + c\,s\,\nabla f(x_t)^\top \Delta x` holds
    (:math:`c = 10^{-4}`); each search starts from :math:`s = \min(1, 2 s_{t-1})`, twice
    the previous accepted factor, so the step can grow back to the learning rate.

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
    method : {"gd", "momentum", "nesterov", "lbfgs", or a name of `fastgd.optim.ALGORITHMS`}
        ``"gd"`` is `fastgd.optim.SGD` without momentum; ``"momentum"`` and ``"nesterov"``
        are SGD with ``momentum=0.9`` unless given; the other names of
        `fastgd.optim.ALGORITHMS` (``"adagrad"``, ``"rmsprop"``, ``"adam"``, ``"adamw"``,
        ``"adamax"``, ``"radam"``, ``"adadelta"``, ``"lion"``, ...) are those optimizers.
        ``"lbfgs"`` is `fastgd.optim.LBFGS`, one L-BFGS iteration per iteration (see Notes).
    lr : float, optional
        Learning rate :math:`\gamma` (> 0); the initial step for ``line_search``. Default: the
        method's optimizer default (PyTorch's): 1e-3, or 1e-2 for adagrad and rmsprop, 1
        for lbfgs.
    maximize : bool, default False
        Gradient ascent.
    max_iter : int, default 1000
        The most iterations (>= 0; with 0, ``x0`` is evaluated and returned).
    tol : float, default 1e-6
        Stop (converged) when the gradient norm is at most ``tol``.
    tol_change : float, default 1e-9
        Stop (converged) when, in one accepted step, both f and x change by at most
        ``tol_change`` relative to ``1 + |f|`` and ``1 + max|x|``; with ``accept_if_improves``,
        also when a rejected trial step is that small.
    line_search : {None, "backtracking", "strong_wolfe"}
        ``"backtracking"`` (Armijo, above) for the optimizers' methods; ``"strong_wolfe"``
        (torch's strong-Wolfe search) for ``"lbfgs"`` only.
    accept_if_improves : bool, default False
        The accept-if-improves rule (see above).
    callback : callable, optional
        ``callback(Iterate(nit, x, fun))`` after each iteration; returning True (or raising
        StopIteration) stops the run.
    keep_path : bool, default True
        Keep every accepted iterate in ``path`` (turn off for large ``x``).
    **hyper
        Other hyper-parameters of the method's optimizer: ``momentum``, ``dampening``,
        ``weight_decay``, ``betas``, ``eps``, ``amsgrad``, ``alpha``, ``centered``,
        ``lr_decay``, ``initial_accumulator_value``, as in `fastgd.optim`; for lbfgs
        ``history_size`` (default 100) and ``max_eval``, the evaluations of one iteration
        (default 26: the one at x and up to 25 of the line search).

    Returns
    -------
    MinimizeResult
        ``x``, ``fun``, ``grad_norm``, ``nit``, ``converged``, ``message``, ``path``,
        ``history``; per start for a 2-D ``x0``.

    Raises
    ------
    TypeError, ValueError
        For an argument of the wrong type or out of range, naming it, before ``fun`` is
        first called (a hyper-parameter in ``**hyper`` is checked by its optimizer's rules).
        ValueError also when ``fun(x0)`` is not finite, or when a ``fun`` or ``grad`` for a
        2-D ``x0`` does not treat the rows as separate points.

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

    With ``method="lbfgs"`` an iteration is one ``LBFGS.step`` with ``max_iter=1``: a
    direction from the last ``history_size`` steps and gradients (the two-loop recursion),
    then a step of ``lr`` along it, or the step the strong-Wolfe line search finds. So
    ``max_iter``, ``nit``, ``path``, ``history`` and ``callback`` count L-BFGS iterations
    (as scipy's L-BFGS-B counts them), the stop rules on the gradient norm and on the change
    of f and x and the divergence rules above apply after each, and the optimizer's own
    ``tolerance_change`` is ``tol_change`` (its ``tolerance_grad`` is left to ``tol``). An
    iteration evaluates ``fun`` and ``grad`` once without a line search, and at each trial
    point with one (never twice at the same point). ``accept_if_improves`` is not available.
    The rows of a 2-D ``x0`` are minimised one after another, each with its own optimizer
    (L-BFGS couples all coordinates of its vector); ``callback`` then sees each start's
    iterates (a 1-D ``x`` and a float), and stopping it stops that start.

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
    if method == "lbfgs":
        return _minimize_lbfgs(fun, grad, X, o, hyper)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        stepper = Stepper(method, X, o.lr, o.maximize, hyper)
        if X.ndim == 1:
            f0 = _start_value(fun, X)
            return run_single(fun, _single_grad(fun, grad, X), X, stepper, f0, o)
        F, G = _batch_evaluators(fun, grad, X)
        f0s = F(X)
        bad = ~np.isfinite(f0s)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"fun(x0) is not finite ({f0s[i]}) at start {i}")
        return run_batch(F, G, X, stepper, f0s, o)


# ---------------------------------------------------------------------------- options
class _Options:
    """The checked arguments of one `minimize` call."""
    x0: FloatArray
    method: str
    lr: float
    maximize: bool
    max_iter: int
    tol: float
    tol_change: float
    line_search: str | None
    accept: bool
    callback: Callable[[Iterate], Any] | None
    keep_path: bool


def _options(fun: Any, x0: Any, grad: Any, method: Any, lr: Any, maximize: Any, max_iter: Any,
             tol: Any, tol_change: Any, line_search: Any, accept: Any, callback: Any,
             keep_path: Any) -> _Options:
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
    if not isinstance(method, str) or method not in _METHODS:
        raise ValueError(f"method must be one of {sorted(_METHODS)}, got {method!r}")
    o.method = method
    default_lr = _LBFGS_LR if method == "lbfgs" else defaults(method)[0]
    o.lr = default_lr if lr is None else _checks.real(lr, "lr", low=0, low_open=True)
    o.maximize = _checks.flag(maximize, "maximize")
    o.max_iter = _checks.integer(max_iter, "max_iter", low=0)
    o.tol = _checks.real(tol, "tol", low=0)
    o.tol_change = _checks.real(tol_change, "tol_change", low=0)
    search = "strong_wolfe" if method == "lbfgs" else "backtracking"
    if line_search is not None and not (isinstance(line_search, str)
                                        and line_search == search):
        raise ValueError(f"line_search must be None or {search!r} for method={method!r}, got "
                         f"{line_search!r}")
    o.line_search = line_search
    o.accept = _checks.flag(accept, "accept_if_improves")
    if o.accept and line_search is not None:
        raise ValueError("use either line_search or accept_if_improves, not both")
    if o.accept and method == "lbfgs":
        raise ValueError("accept_if_improves is not available with method='lbfgs'; use "
                         "line_search='strong_wolfe'")
    o.callback = callback
    o.keep_path = _checks.flag(keep_path, "keep_path")
    return o


#: every method: the optimizers' (`fastgd.optim._stepper.METHODS`) and L-BFGS
_METHODS = frozenset([*METHODS, "lbfgs"])
#: L-BFGS's default learning rate (torch's): full quasi-Newton steps
_LBFGS_LR = 1.0


def _minimize_lbfgs(fun: Callable[[FloatArray], Any], grad: Callable[[FloatArray], Any] | None,
                    X: FloatArray, o: _Options, hyper: dict[str, Any]) -> MinimizeResult:
    """method="lbfgs": one `fastgd.optim.LBFGS` iteration per minimize iteration; for a
    2-D ``x0`` the starts are run one after another (L-BFGS's history couples all the
    coordinates of one vector)."""
    allowed = sorted(_lbfgs.HYPER)
    for k in hyper:
        if k not in _lbfgs.HYPER:
            raise ValueError(f"unknown hyper-parameter {k!r} for method='lbfgs'; expected "
                             f"some of {allowed}")
    if not X.flags.c_contiguous:  # pragma: no cover - minimize's own copy is C-ordered
        raise ValueError("x must be C-contiguous")
    settings = {**_lbfgs.HYPER, **hyper}
    # tol_change=0 as the smallest positive float: a line-search bracket shrunk to a point
    # still ends the search (torch's zoom would interpolate between two equal points)
    change = o.tol_change or float(np.finfo(X.dtype).tiny)

    def optimizer(x: FloatArray) -> LBFGS:
        return LBFGS([x], lr=o.lr, max_iter=1, max_eval=settings["max_eval"],
                     tolerance_grad=0.0, tolerance_change=change,
                     history_size=settings["history_size"], line_search_fn=o.line_search)

    optimizer(X.copy())            # every hyper-parameter checked before fun is called
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if X.ndim == 1:
            f0 = _start_value(fun, X)
            return _lbfgs.run_lbfgs(fun, _single_grad(fun, grad, X), X, optimizer(X), f0, o)
        F, G = _batch_evaluators(fun, grad, X)
        f0s = F(X)
        bad = ~np.isfinite(f0s)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"fun(x0) is not finite ({f0s[i]}) at start {i}")
        F1, G1 = _batch_evaluators(fun, grad, X[:1])   # one row at a time
        one_f = lambda z: F1(z[None])[0]
        one_g = lambda z: G1(z[None])[0]
        results = [_lbfgs.run_lbfgs(one_f, one_g, X[i], optimizer(X[i]), float(f0s[i]), o)
                   for i in range(X.shape[0])]
        return _lbfgs.combine(results, X)


# ---------------------------------------------------------------------------- evaluation

def _start_value(fun: Callable[[FloatArray], Any], x: FloatArray) -> float:
    f0 = scalar_value(fun(x))
    if not math.isfinite(f0):
        raise ValueError(f"fun(x0) is not finite ({f0})")
    return f0


def _single_grad(fun: Callable[[FloatArray], Any], grad: Callable[[FloatArray], Any] | None,
                 x: FloatArray) -> Callable[[FloatArray], Any]:
    if grad is None:
        h = default_eps(x.dtype)
        return lambda v: central(fun, v, h)
    return grad


def _batch_evaluators(fun: Callable[[FloatArray], Any], grad: Callable[[FloatArray], Any] | None,
                      X: FloatArray) -> tuple[Callable[[FloatArray], FloatArray],
                                              Callable[[FloatArray], FloatArray]]:
    k, d = X.shape
    dt = X.dtype

    def F(Z: FloatArray) -> FloatArray:
        return row_values(fun(Z), k)

    if grad is None:
        h = default_eps(dt)

        def G(Z: FloatArray) -> FloatArray:
            return central_batched(fun, Z, h)
    else:
        def G(Z: FloatArray) -> FloatArray:
            return grad_array(grad(Z), (k, d), dt)

    if k > 1:  # a function written for one point can return k values by accident
        one = X[:1].copy()
        all_f = F(X)
        fun_msg = ("fun does not treat the rows of a 2-D x as separate points (fun(x0[:1]) "
                   "differs from fun(x0)[0]); write it with x[..., i]")
        try:
            f1 = np.asarray(fun(one), dtype=np.float64)
        except Exception as exc:
            raise ValueError(f"{fun_msg}: {type(exc).__name__}: {exc}") from exc
        if f1.shape not in ((1,), ()) or not np.allclose(f1.reshape(-1)[0], all_f[0],
                                                          rtol=1e-4, atol=1e-12, equal_nan=True):
            raise ValueError(fun_msg)
        if grad is not None:
            grad_msg = ("grad does not treat the rows of a 2-D x as separate points "
                        "(grad(x0[:1]) differs from grad(x0)[:1]); it must return shape "
                        "(k, d) with row i the gradient at row i, e.g. "
                        "np.stack([..., ...], axis=-1)")
            gk = G(X)
            try:
                g1 = np.asarray(grad(one), dtype=np.float64)
            except Exception as exc:
                raise ValueError(f"{grad_msg}: {type(exc).__name__}: {exc}") from exc
            if g1.shape != (1, d) or not np.allclose(g1[0], gk[0], rtol=1e-4, atol=1e-12,
                                                     equal_nan=True):
                raise ValueError(grad_msg)
    return F, G
