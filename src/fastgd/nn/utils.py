"""Gradient clipping, as ``torch.nn.utils``: `clip_grad_norm_`, `clip_grad_value_`,
`get_total_norm`, `clip_grads_with_norm_`, on lists of gradient arrays.

The norm is one native pass over all the arrays, accumulated in float64 over fixed blocks
(the same bits for any thread count); scaling and clamping are in place, in each array's
own dtype.

>>> import numpy as np
>>> from fastgd.nn.utils import clip_grad_norm_
>>> g = [np.array([3.0, 4.0])]
>>> clip_grad_norm_(g, max_norm=1.0)        # returns the norm before clipping
5.0
>>> np.round(g[0], 6)
array([0.6, 0.8])
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .. import _checks, _optim
from .._typing import FloatArray, Real  # noqa: F401  (Real: the documented number type)

__all__ = ["get_total_norm", "clip_grads_with_norm_", "clip_grad_norm_", "clip_grad_value_"]


def _grad_list(grads: Any, name: str = "grads") -> list[FloatArray]:
    """A list of arrays from one array or a sequence of them (None entries skipped, as
    torch skips parameters without a gradient)."""
    if isinstance(grads, np.ndarray):
        return [grads]
    if isinstance(grads, (str, bytes)) or not hasattr(grads, "__iter__"):
        raise TypeError(f"{name} must be an array or a sequence of arrays, got "
                        f"{type(grads).__name__}")
    out = []
    for i, g in enumerate(grads):
        if g is None:
            continue
        if not isinstance(g, np.ndarray):
            raise TypeError(f"{name}[{i}] must be a numpy.ndarray, got {type(g).__name__}")
        out.append(g)
    return out


def _number(value: Any, name: str) -> float:
    """A real number (infinity and NaN allowed: torch takes them) as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def _norm_type(norm_type: Any) -> float:
    if isinstance(norm_type, str) and norm_type == "inf":
        return math.inf
    value = _number(norm_type, "norm_type")
    if not value > 0:
        raise ValueError(f"norm_type must be > 0 (or inf), got {norm_type}")
    return value


def get_total_norm(grads: Sequence[FloatArray | None] | FloatArray, norm_type: Real = 2.0,
                   error_if_nonfinite: bool = False) -> float:
    r"""The ``norm_type``-norm of all elements of ``grads`` taken as one vector.

    .. math:: \|g\|_p = \Big(\sum_i |g_i|^p\Big)^{1/p}, \qquad
              \|g\|_\infty = \max_i |g_i|

    Parameters
    ----------
    grads : ndarray or sequence of ndarray or None
        float32 or float64 arrays (``None`` entries are skipped).
    norm_type : float, default 2.0
        ``p > 0``, or ``inf`` (``math.inf``, ``float("inf")`` or ``"inf"``).
    error_if_nonfinite : bool, default False
        Raise ``ValueError`` when the norm is NaN or infinite.

    Returns
    -------
    float
        0.0 for no arrays.

    Examples
    --------
    >>> import numpy as np
    >>> get_total_norm([np.array([3.0]), np.array([4.0])])
    5.0
    """
    arrays = _grad_list(grads)
    p = _norm_type(norm_type)
    error_if_nonfinite = _checks.flag(error_if_nonfinite, "error_if_nonfinite")
    groups: dict[np.dtype, list[FloatArray]] = {}
    for i, g in enumerate(arrays):
        if g.dtype not in (np.float32, np.float64):
            raise TypeError(f"grads[{i}] must have dtype float32 or float64, got {g.dtype}")
        groups.setdefault(g.dtype, []).append(g)
    norms = [_optim.norm(group, p) for group in groups.values()]
    if not norms:
        total = 0.0
    elif len(norms) == 1:
        total = norms[0]
    elif math.isinf(p):
        total = norms[0] if math.isnan(norms[0]) else max(norms, key=lambda v: (math.isnan(v), v))
    else:
        total = math.fsum(v ** p for v in norms) ** (1 / p)
    if error_if_nonfinite and not math.isfinite(total):
        raise ValueError(f"the total norm of order {norm_type} of grads is {total}, so it "
                         "cannot be clipped (error_if_nonfinite=True)")
    return float(total)


def clip_grads_with_norm_(grads: Sequence[FloatArray | None] | FloatArray, max_norm: Real,
                          total_norm: Real) -> None:
    r"""Scale ``grads`` in place by :math:`\min(1, \text{max\_norm} / (\text{total\_norm} +
    10^{-6}))`, as ``torch.nn.utils.clip_grads_with_norm_`` (the factor is computed in the
    arrays' dtype, and applied even when it is 1, which changes nothing).

    Examples
    --------
    >>> import numpy as np
    >>> g = [np.array([3.0, 4.0])]
    >>> clip_grads_with_norm_(g, max_norm=2.5, total_norm=5.0)
    >>> np.round(g[0], 6)
    array([1.5, 2. ])
    """
    arrays = _grad_list(grads)
    max_norm = _number(max_norm, "max_norm")
    total = _number(total_norm, "total_norm")
    for i, g in enumerate(arrays):
        _checks.parameter(g, f"grads[{i}]")
    _scale_by_norm(arrays, max_norm, total)


def _scale_by_norm(arrays: list[FloatArray], max_norm: float, total: float) -> None:
    """clip_grads_with_norm_ once its arguments are checked."""
    for dtype in {g.dtype for g in arrays}:
        t = dtype.type
        coef = t(max_norm) / (t(total) + t(1e-6))
        coef = coef if coef != coef or coef < 1 else t(1.0)   # torch.clamp(max=1): NaN stays
        _optim.scale_([g for g in arrays if g.dtype == dtype], float(coef))


def clip_grad_norm_(grads: Sequence[FloatArray | None] | FloatArray, max_norm: Real,
                    norm_type: Real = 2.0, error_if_nonfinite: bool = False) -> float:
    r"""Clip the gradients' total norm to ``max_norm``, in place; the total norm before.

    As ``torch.nn.utils.clip_grad_norm_`` on the gradients (not the parameters):

    .. math::
        N = \|(g_1, \dots, g_k)\|_p,\qquad
        g_i \leftarrow g_i \cdot \min\Big(1, \frac{\text{max\_norm}}{N + 10^{-6}}\Big)

    Parameters
    ----------
    grads : ndarray or sequence of ndarray or None
        Writeable, contiguous float32/float64 arrays (``None`` entries skipped).
    max_norm : float
    norm_type : float, default 2.0
        ``p > 0``, or ``inf``.
    error_if_nonfinite : bool, default False
        Raise ``ValueError`` (and leave the arrays unchanged) when the total norm is NaN or
        infinite; otherwise the arrays are scaled by the non-finite factor, as in torch.

    Returns
    -------
    float
        The total norm of the gradients before clipping.

    Examples
    --------
    >>> import numpy as np
    >>> g = [np.array([0.3, 0.4])]
    >>> clip_grad_norm_(g, max_norm=1.0)       # below max_norm: unchanged
    0.5
    >>> g[0]
    array([0.3, 0.4])
    """
    arrays = _grad_list(grads)
    for i, g in enumerate(arrays):
        _checks.parameter(g, f"grads[{i}]")
    max_norm = _number(max_norm, "max_norm")
    total = get_total_norm(arrays, norm_type, error_if_nonfinite)
    _scale_by_norm(arrays, max_norm, total)
    return total


def clip_grad_value_(grads: Sequence[FloatArray | None] | FloatArray,
                     clip_value: Real) -> None:
    """Clamp every gradient element to ``[-clip_value, clip_value]`` in place, as
    ``torch.nn.utils.clip_grad_value_`` (NaN stays NaN).

    Examples
    --------
    >>> import numpy as np
    >>> g = [np.array([-3.0, 0.5, 2.0])]
    >>> clip_grad_value_(g, 1.0)
    >>> g[0]
    array([-1. ,  0.5,  1. ])
    """
    arrays = _grad_list(grads)
    for i, g in enumerate(arrays):
        _checks.parameter(g, f"grads[{i}]")
    c = _number(clip_value, "clip_value")
    for g in arrays:
        t = g.dtype.type
        np.clip(g, t(-c), t(c), out=g)
