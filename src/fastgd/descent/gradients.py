"""Numerical gradients by central finite differences.

>>> import numpy as np, fastgd
>>> f = lambda p: p[0] ** 2 + p[1] ** 2 + p[0] * p[1]      # x² + y² + xy
>>> g = fastgd.numerical_gradient(f, [1.0, 3.0])
>>> np.round(g, 6)
array([5., 7.])
>>> float(np.round(np.linalg.norm(g) ** 2, 6))                 # |grad|^2 = 74
74.0
"""
import numbers
from typing import Any, Callable

import numpy as np

from .. import _checks
from .._typing import ArrayLike, DTypeLike, FloatArray

__all__ = ["numerical_gradient"]

_NOTHING = object()


def numerical_gradient(fun: Callable[[FloatArray], Any], x: ArrayLike, eps: float | None = None,
                       *, batched: bool = False) -> FloatArray:
    r"""The gradient of ``fun`` at ``x`` by central finite differences.

    .. math::
        \frac{\partial f}{\partial x_i}(x) \approx
        \frac{f(x + h_i e_i) - f(x - h_i e_i)}{2 h_i},
        \qquad h_i = \epsilon\,\max(1, |x_i|)

    The error is :math:`O(h^2)` (exact for quadratics up to rounding). The default
    :math:`\epsilon` is the cube root of the machine epsilon of ``x``'s dtype (about 6e-6
    for float64, 5e-3 for float32), which balances truncation against rounding error.

    Parameters
    ----------
    fun : callable
        ``fun(x) -> float`` for an array ``x`` of ``x``'s shape. It is called ``2 * x.size``
        times on a work array it must not modify or keep.
    x : array_like of real numbers
        The point, of any shape. float32 and float64 are kept; other real dtypes become
        float64.
    eps : float, optional
        Relative step :math:`\epsilon`, at least the unit roundoff
        :math:`u` of ``x``'s dtype, ``np.finfo(dtype).eps / 2`` (1.1e-16 for float64, 6e-8
        for float32). Because :math:`h_i` scales with :math:`\max(1, |x_i|)`, this one bound
        holds for every :math:`x_i`: with :math:`\epsilon \ge u`, :math:`h_i` is at least
        half the spacing of the floats around :math:`x_i`, so :math:`x_i + h_i` and
        :math:`x_i - h_i` never both round back to :math:`x_i` and the step actually taken
        (the quotient divides by it, not by :math:`2 h_i`) is never zero. A smaller
        :math:`\epsilon` is below the dtype's resolution and raises ValueError. Steps that
        close to it are dominated by rounding error; the default is far more accurate.
    batched : bool, default False
        ``x`` has shape ``(k, d)``: ``k`` points, and ``fun`` maps it to ``k`` values (one
        per row, e.g. written with ``x[..., 0]``). Every row's gradient then costs the same
        ``2 d`` calls of ``fun`` in all.

    Returns
    -------
    ndarray
        The gradient, with ``x``'s shape and (float) dtype.

    Raises
    ------
    TypeError
        ``fun`` is not callable, ``x`` holds no real numbers, ``eps`` is not a real number or
        ``batched`` not a bool.
    ValueError
        ``x`` holds NaN or infinity, is not 2-D with ``batched=True``, or ``eps`` is not
        finite or below the unit roundoff of ``x``'s dtype.

    Examples
    --------
    >>> import numpy as np
    >>> numerical_gradient(lambda v: float(np.sum(v ** 3)), np.array([1.0, -2.0])).round(6)
    array([ 3., 12.])
    >>> pts = np.array([[1.0, 3.0], [0.0, 0.0]])
    >>> numerical_gradient(lambda p: p[..., 0] ** 2 + p[..., 1] ** 2 + p[..., 0] * p[..., 1],
    ...                    pts, batched=True).round(6)
    array([[5., 7.],
           [0., 0.]])
    """
    if not callable(fun):
        raise TypeError(f"fun must be callable, got {type(fun).__name__}")
    batched = _checks.flag(batched, "batched")
    x = as_real_array(x, "x")
    if batched and x.ndim != 2:
        raise ValueError(f"x must be 2-D (k points, d coordinates) when batched=True, got "
                         f"shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN or infinity")
    h_rel = default_eps(x.dtype) if eps is None else check_eps(eps, x.dtype)
    if batched:
        return central_batched(fun, x, h_rel)
    return central(fun, x, h_rel)


def default_eps(dtype: DTypeLike) -> float:
    """The default relative step: the cube root of ``dtype``'s machine epsilon."""
    return float(np.finfo(dtype).eps) ** (1.0 / 3.0)


def check_eps(eps: Any, dtype: DTypeLike, name: str = "eps") -> float:
    """``eps`` as a float: a finite relative step no smaller than ``dtype``'s unit roundoff.

    See `numerical_gradient` for why ``np.finfo(dtype).eps / 2`` is the bound.
    """
    h = _checks.real(eps, name, low=0, low_open=True)
    u = float(np.finfo(dtype).eps) / 2
    if h < u:
        raise ValueError(f"{name} must be at least the unit roundoff of {np.dtype(dtype).name}, "
                         f"{u:.3g} (np.finfo(dtype).eps / 2), got {h:g}: a smaller relative "
                         "step h can round away (x + h == x == x - h); the default "
                         f"{default_eps(dtype):.2g} is more accurate")
    return h


def as_real_array(x: Any, name: str) -> FloatArray:
    """``x`` as a float32/float64 ndarray (other real dtypes become float64)."""
    try:
        a = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be an array of real numbers: {exc}") from None
    if a.dtype in _checks.FLOAT_DTYPES:
        return a
    if a.dtype.kind in "iu":
        return a.astype(np.float64)
    if a.dtype.kind == "O":
        # numpy turns None into NaN, and '3' or True into numbers: refuse them here
        bad = next((v for v in a.flat if v is None or isinstance(
            v, (str, bytes, bool, np.bool_, complex, np.complexfloating))), _NOTHING)
        if bad is not _NOTHING:
            what = "" if a.ndim == 0 else "an element of type "
            raise TypeError(f"{name} must be an array of real numbers, got {what}"
                            f"{type(bad).__name__}")
        try:
            return a.astype(np.float64)
        except (TypeError, ValueError):
            pass
    kind = {"b": "bool", "c": "complex", "U": "str", "S": "bytes"}.get(a.dtype.kind, str(a.dtype))
    raise TypeError(f"{name} must be an array of real numbers, got dtype {kind}")


def scalar_value(f: Any, name: str = "fun") -> float:
    """``f`` (what ``fun`` returned) as a Python float; a clear error when it is not a scalar."""
    if type(f) is float:
        return f
    if isinstance(f, np.ndarray):
        if f.size != 1:
            raise ValueError(f"{name} must return a scalar, got an array of shape {f.shape}")
        f = f.reshape(())[()]
    if isinstance(f, (bool, np.bool_)) or not isinstance(f, numbers.Real):
        raise TypeError(f"{name} must return a real number, got {type(f).__name__}")
    return float(f)


def row_values(f: Any, k: int, name: str = "fun") -> FloatArray:
    """``f`` as a float64 vector of ``k`` values (one per point of a batch)."""
    a = np.asarray(f)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name} must return real numbers, got dtype {a.dtype}")
    if a.shape != (k,):
        raise ValueError(f"{name} must return one value per row ({k} values) for a 2-D x, "
                         f"got shape {a.shape}; write it with x[..., i] so that it works on a "
                         "batch of points")
    return a.astype(np.float64, copy=False)


def central(fun: Callable[[FloatArray], Any], x: FloatArray, h_rel: float) -> FloatArray:
    work = np.array(x, dtype=x.dtype, order="C", copy=True)
    flat = work.reshape(-1)
    grad = np.empty(flat.shape, np.float64)
    for i in range(flat.size):
        v = flat[i]
        h = h_rel * max(1.0, abs(float(v)))
        flat[i] = v + h
        xp = float(flat[i])
        fp = scalar_value(fun(work))
        flat[i] = v - h
        xm = float(flat[i])
        fm = scalar_value(fun(work))
        flat[i] = v
        grad[i] = (fp - fm) / (xp - xm)
    return grad.astype(x.dtype, copy=False).reshape(x.shape)


def central_batched(fun: Callable[[FloatArray], Any], x: FloatArray,
                    h_rel: float) -> FloatArray:
    k, d = x.shape
    work = np.array(x, dtype=x.dtype, order="C", copy=True)
    grad = np.empty((k, d), np.float64)
    for j in range(d):
        v = work[:, j].copy()
        h = h_rel * np.maximum(1.0, np.abs(v.astype(np.float64)))
        work[:, j] = v + h
        xp = work[:, j].astype(np.float64)
        fp = row_values(fun(work), k)
        work[:, j] = v - h
        xm = work[:, j].astype(np.float64)
        fm = row_values(fun(work), k)
        work[:, j] = v
        grad[:, j] = (fp - fm) / (xp - xm)
    return grad.astype(x.dtype, copy=False)
