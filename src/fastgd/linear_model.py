r"""Linear regression by gradient descent (full batch, stochastic, mini-batch) or least squares.

>>> import numpy as np
>>> from fastgd.linear_model import LinearRegression
>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((200, 3))
>>> y = X @ np.array([1.0, -2.0, 0.5]) + 3.0
>>> model = LinearRegression(solver="gd", lr=0.1).fit(X, y)
>>> np.round(model.coef_, 2), round(model.intercept_, 2), model.n_iter_
(array([ 1. , -2. ,  0.5]), 3.0, 43)
"""
from __future__ import annotations

import inspect
import math
import warnings
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import numpy as np

from . import _checks
from ._typing import ArrayLike, FloatArray, Real
from .descent.gradients import as_real_array
from .optim._stepper import Stepper

if TYPE_CHECKING:
    from .nn.init import SeedLike

__all__ = ["LinearRegression", "ConvergenceWarning", "NotFittedError"]

SOLVERS = ("gd", "sgd", "minibatch", "closed_form")
OBJECTIVES = ("mse", "l2")
#: a loss this many times its start (plus one) counts as diverging
_GROWTH = 1e8

_Self = TypeVar("_Self", bound="LinearRegression")


class ConvergenceWarning(UserWarning):
    """``max_iter`` was reached before the stopping rule held (as scikit-learn's)."""


class NotFittedError(ValueError, AttributeError):
    """The model is used before ``fit`` (as scikit-learn's)."""


class LinearRegression:
    r"""Least-squares linear regression, fitted by gradient descent on fastgd's native kernel.

    The model is :math:`\hat y = X\beta + b`. With ``objective="mse"`` the loss is the mean
    squared error and full-batch gradient descent (``solver="gd"``) is

    .. math::
        L(\beta) = \tfrac1n\lVert y - X\beta\rVert^2, \qquad
        \beta \leftarrow \beta + \frac{2\lambda}{n}\,X^\top (y - X\beta)

    With ``objective="l2"`` the loss is the (non-squared) norm of the residual
    :math:`r = y - X\beta`, :math:`\lVert r\rVert_2 = \sqrt{\operatorname{mean}(r^2)}`,
    whose gradient is

    .. math::
        \nabla L = -\frac{X^\top r}{n\,\lVert r\rVert_2}
        \quad (0 \text{ when } r = 0)

    Both have the least-squares solution as minimiser. The intercept :math:`b` is a
    coefficient on a column of ones. ``"sgd"`` uses one sample per step and
    ``"minibatch"`` ``batch_size`` samples (the rows are shuffled every epoch), with the
    same formulas over the rows of the step; ``"closed_form"`` solves least squares
    directly (``numpy.linalg.lstsq``, the pseudo-inverse :math:`\beta = X^+ y`).

    Parameters
    ----------
    solver : {"gd", "sgd", "minibatch", "closed_form"}, default "gd"
    objective : {"mse", "l2"}, default "mse"
    lr : float, default 0.01
        Learning rate :math:`\lambda` (> 0). Standardised features make one learning rate
        suit every coefficient.
    max_iter : int, default 1000
        Iterations for ``"gd"``; epochs (passes over the data) for ``"sgd"`` and
        ``"minibatch"``, as in scikit-learn's SGDRegressor (>= 1).
    tol : float or None, default 1e-6
        Stop when the training loss has not improved by at least ``tol`` for
        ``n_iter_no_change`` consecutive iterations (epochs). None: run ``max_iter``.
    n_iter_no_change : int, default 5
        Consecutive iterations (epochs) without a ``tol`` gain that stop the fit (>= 1).
    batch_size : int, default 32
        Samples per step of ``"minibatch"`` (>= 1; capped at the number of samples).
    fit_intercept : bool, default True
    shuffle : bool, default True
        Shuffle the samples every epoch (``"sgd"``, ``"minibatch"``).
    random_state : None, int >= 0, numpy.random.Generator or numpy.random.SeedSequence
        Seeds the shuffling; an int gives the same result every time.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : float
        (0.0 without ``fit_intercept``)
    n_iter_ : int
        Iterations (epochs) run; 0 for ``"closed_form"``.
    loss_curve_ : ndarray
        The training loss (of ``objective``) over the whole data after each iteration or
        epoch; empty for ``"closed_form"``.
    n_features_in_ : int

    Raises
    ------
    TypeError, ValueError
        From ``fit``, for a parameter of the wrong type or out of range, naming it (the
        constructor and ``set_params`` only store the parameters, as scikit-learn's
        estimators do).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> y = 2 * X[:, 0] + 1
    >>> m = LinearRegression(solver="closed_form").fit(X, y)
    >>> m.coef_.round(6), round(m.intercept_, 6), m.predict([[4.0]]).round(6)
    (array([2.]), 1.0, array([9.]))
    """

    def __init__(self, *, solver: str = "gd", objective: str = "mse", lr: Real = 0.01,
                 max_iter: int = 1000, tol: Real | None = 1e-6, n_iter_no_change: int = 5,
                 batch_size: int = 32, fit_intercept: bool = True, shuffle: bool = True,
                 random_state: SeedLike = None) -> None:
        self.solver = solver
        self.objective = objective
        self.lr = lr
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.batch_size = batch_size
        self.fit_intercept = fit_intercept
        self.shuffle = shuffle
        self.random_state = random_state

    # ------------------------------------------------------------------ scikit-learn API
    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters, by name (scikit-learn's estimator API)."""
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self: _Self, **params: Any) -> _Self:
        """Set constructor parameters (scikit-learn's estimator API); returns ``self``."""
        names = self._param_names()
        for k in params:
            if k not in names:
                raise ValueError(f"invalid parameter {k!r} for LinearRegression; expected some "
                                 f"of {names}")
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        defaults = {k: p.default for k, p in
                    inspect.signature(type(self).__init__).parameters.items() if k != "self"}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if not (type(v) is type(defaults[k]) and v == defaults[k])]
        return f"LinearRegression({', '.join(changed)})"

    def _validate_params(self) -> None:
        _checks.choice(self.solver, "solver", SOLVERS)
        _checks.choice(self.objective, "objective", OBJECTIVES)
        _checks.real(self.lr, "lr", low=0, low_open=True)
        _checks.integer(self.max_iter, "max_iter", low=1)
        if self.tol is not None:
            _checks.real(self.tol, "tol", low=0)
        _checks.integer(self.n_iter_no_change, "n_iter_no_change", low=1)
        _checks.integer(self.batch_size, "batch_size", low=1)
        _checks.flag(self.fit_intercept, "fit_intercept")
        _checks.flag(self.shuffle, "shuffle")
        _checks.seed(self.random_state, "random_state")

    # ------------------------------------------------------------------ fit / predict
    def fit(self: _Self, X: ArrayLike, y: ArrayLike) -> _Self:
        """Fit the coefficients to the rows of ``X`` and the targets ``y``; returns ``self``.

        ``X`` is (n_samples, n_features); float32 stays float32 (``y`` is cast to ``X``'s
        dtype), other real dtypes become float64. NaN or infinity in ``X`` or ``y`` raises.
        """
        self._validate_params()
        X, y = _check_Xy(X, y)
        n, p = X.shape
        dt = X.dtype
        Xa = np.hstack([X, np.ones((n, 1), dt)]) if self.fit_intercept else X
        curve: list[float]
        if self.solver == "closed_form":
            w = np.linalg.lstsq(Xa, y, rcond=None)[0].astype(dt, copy=False)
            curve, n_iter = [], 0
        else:
            w = np.zeros(Xa.shape[1], dt)
            fit = _fit_gd if self.solver == "gd" else _fit_stochastic
            curve, n_iter = fit(self, Xa, y, w)
        self.coef_ = np.ascontiguousarray(w[:p])
        self.intercept_ = float(w[p]) if self.fit_intercept else 0.0
        self.n_iter_ = n_iter
        self.loss_curve_ = np.asarray(curve, dtype=np.float64)
        self.n_features_in_ = p
        return self

    def predict(self, X: ArrayLike) -> FloatArray:
        """Predictions :math:`X\\beta + b` for the rows of ``X``."""
        if not hasattr(self, "coef_"):
            raise NotFittedError("this LinearRegression is not fitted yet; call fit(X, y) first")
        X = _check_X(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but LinearRegression was fitted "
                             f"with {self.n_features_in_}")
        coef = self.coef_.astype(X.dtype, copy=False) if X.dtype != self.coef_.dtype else self.coef_
        return X @ coef + X.dtype.type(self.intercept_)

    def score(self, X: ArrayLike, y: ArrayLike) -> float:
        """The coefficient of determination :math:`R^2 = 1 - SS_{res}/SS_{tot}`."""
        X, y = _check_Xy(X, y)
        pred = self.predict(X).astype(np.float64)
        y = y.astype(np.float64)
        ss_res = float(np.sum((y - pred) ** 2))
        ss_tot = float(np.sum((y - y.mean()) ** 2))
        if ss_tot == 0:
            return 1.0 if ss_res == 0 else 0.0
        return 1.0 - ss_res / ss_tot


# ---------------------------------------------------------------------------- solvers
def _loss_and_grad(objective: str, Xb: FloatArray, yb: FloatArray, w: FloatArray,
                   r: FloatArray, g: FloatArray) -> float:
    """The loss over rows ``Xb`` and its gradient (written into ``g``); ``r`` is scratch."""
    np.matmul(Xb, w, out=r)
    np.subtract(yb, r, out=r)                      # r = y - Xw
    m = len(yb)
    ss = float(np.dot(r, r))
    np.matmul(r, Xb, out=g)                        # g = X^T r
    if objective == "mse":
        g *= g.dtype.type(-2.0 / m)
        return ss / m
    norm = math.sqrt(ss / m)
    g *= g.dtype.type(-1.0 / (m * norm)) if norm > 0 else 0
    return norm


def _full_loss(objective: str, Xa: FloatArray, y: FloatArray, w: FloatArray,
               r: FloatArray) -> float:
    np.matmul(Xa, w, out=r)
    np.subtract(y, r, out=r)
    mse = float(np.dot(r.astype(np.float64), r.astype(np.float64))) / len(y)
    return mse if objective == "mse" else math.sqrt(mse)


class _Stop:
    """scikit-learn's rule: stop after ``n_iter_no_change`` rounds without a ``tol`` gain."""

    def __init__(self, tol: Real | None, patience: int, first_loss: float) -> None:
        self.tol, self.patience = tol, patience
        self.best = first_loss
        self.start = first_loss
        self.count = 0

    def __call__(self, model: LinearRegression, loss: float, it: int) -> bool:
        if not math.isfinite(loss) or loss > _GROWTH * (1 + self.start):
            raise ValueError(f"the training loss diverged ({loss:.4g}) at iteration {it}: "
                             f"lr={model.lr:g} is too large; try a smaller lr (e.g. "
                             f"{model.lr / 10:g}) or standardise the features")
        if self.tol is None:
            return False
        self.count = self.count + 1 if loss > self.best - self.tol else 0
        self.best = min(self.best, loss)
        return self.count >= self.patience


def _fit_gd(model: LinearRegression, Xa: FloatArray, y: FloatArray,
            w: FloatArray) -> tuple[list[float], int]:
    n = len(y)
    stepper = Stepper("gd", w, model.lr)
    r = np.empty(n, w.dtype)
    g = np.empty_like(w)
    with np.errstate(over="ignore", invalid="ignore"):
        loss = _loss_and_grad(model.objective, Xa, y, w, r, g)
        stop = _Stop(model.tol, model.n_iter_no_change, loss)
        curve = []
        for it in range(1, model.max_iter + 1):
            stepper.step(g)
            loss = _loss_and_grad(model.objective, Xa, y, w, r, g)   # at the new w
            curve.append(loss)
            if stop(model, loss, it):
                return curve, it
    _warn_max_iter(model)
    return curve, model.max_iter


def _fit_stochastic(model: LinearRegression, Xa: FloatArray, y: FloatArray,
                    w: FloatArray) -> tuple[list[float], int]:
    n = len(y)
    bs = 1 if model.solver == "sgd" else min(model.batch_size, n)
    rng = np.random.default_rng(model.random_state)
    stepper = Stepper("gd", w, model.lr)
    r_full = np.empty(n, w.dtype)
    g = np.empty_like(w)
    rb = np.empty(bs, w.dtype)
    starts = range(0, n, bs)
    mse = model.objective == "mse"
    with np.errstate(over="ignore", invalid="ignore"):
        stop = _Stop(model.tol, model.n_iter_no_change, _full_loss(model.objective, Xa, y, w, r_full))
        curve = []
        for epoch in range(1, model.max_iter + 1):
            if model.shuffle:
                order = rng.permutation(n)
                Xs, ys = Xa[order], y[order]
            else:
                Xs, ys = Xa, y
            if bs == 1:
                _sgd_epoch(mse, Xs, ys.tolist(), w, g, stepper.step)
            else:
                for s in starts:
                    Xb, yb = Xs[s:s + bs], ys[s:s + bs]
                    _loss_and_grad(model.objective, Xb, yb, w, rb[:len(yb)], g)
                    stepper.step(g)
            loss = _full_loss(model.objective, Xa, y, w, r_full)
            curve.append(loss)
            if stop(model, loss, epoch):
                return curve, epoch
    _warn_max_iter(model)
    return curve, model.max_iter


def _sgd_epoch(mse: bool, Xs: FloatArray, ys: list[float], w: FloatArray, g: FloatArray,
               step: Callable[[FloatArray], object]) -> None:
    """One pass of one-sample steps, the formulas of `_loss_and_grad` with one row:
    :math:`g = -2 r x` (mse) or :math:`g = -\\operatorname{sign}(r)\\, x` (l2)."""
    multiply = np.multiply
    for i, yi in enumerate(ys):
        xi = Xs[i]
        r = yi - float(xi.dot(w))
        c = -2.0 * r if mse else (-1.0 if r > 0 else 1.0 if r < 0 else 0.0)
        multiply(xi, c, out=g)
        step(g)


def _warn_max_iter(model: LinearRegression) -> None:
    if model.tol is not None:
        unit = "iterations" if model.solver == "gd" else "epochs"
        warnings.warn(f"LinearRegression(solver={model.solver!r}) reached max_iter="
                      f"{model.max_iter} {unit} before the loss stopped improving; raise "
                      "max_iter or lr", ConvergenceWarning, stacklevel=3)


# ---------------------------------------------------------------------------- input checks
def _check_X(X: Any) -> FloatArray:  # X: array_like
    X = as_real_array(X, "X")
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}"
                         + ("; use X.reshape(-1, 1) for a single feature" if X.ndim == 1 else ""))
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X is empty (shape {X.shape})")
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or infinity")
    return np.ascontiguousarray(X)


def _check_Xy(X: Any, y: Any) -> tuple[FloatArray, FloatArray]:  # array_likes
    X = _check_X(X)
    y = as_real_array(y, "y")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (n_samples,), got shape {y.shape}; fit one model per "
                         "target")
    if len(y) != X.shape[0]:
        raise ValueError(f"X and y have different numbers of samples: X has {X.shape[0]} "
                         f"rows, y has {len(y)}")
    if not np.all(np.isfinite(y)):
        raise ValueError("y contains NaN or infinity")
    return X, np.ascontiguousarray(y, dtype=X.dtype)

