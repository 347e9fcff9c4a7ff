"""Argument checks shared by the public entry points: clear errors, before any write."""
import math
import numbers

import numpy as np

from ._optim import check_disjoint

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def real(value, name, *, low=None, high=None, low_open=False, high_open=False):
    """``value`` as a float, checked to be a finite real number within the bounds."""
    t = type(value)
    if t is not float and t is not int:  # fast path for the common types; bool is not int here
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {t.__name__}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {v}")
    if high is not None and (v > high or (high_open and v == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {v}")
    return v


def flag(value, name):
    if type(value) is not bool and not isinstance(value, np.bool_):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def pair(value, name):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise TypeError(f"{name} must be a pair of numbers, got {value!r}")
    return tuple(value)


def backend(value):
    if value not in ("native", "reference"):
        raise ValueError(f"backend must be 'native' or 'reference', got {value!r}")
    return value


def parameter(a, name):
    """A parameter array: float32/float64, writeable, contiguous (C or Fortran order)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {a.dtype}")
    if not a.flags.writeable:
        raise ValueError(f"{name} is read-only; parameters are updated in place")
    if not (a.flags.c_contiguous or a.flags.f_contiguous):
        raise ValueError(f"{name} is not contiguous; pass np.ascontiguousarray(...) and keep "
                         "that array as the parameter")
    return a


def like(a, ref, name, ref_name):
    """An array with the dtype and shape of ``ref`` (a gradient or a state array)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != ref.dtype:
        raise TypeError(f"{name} has dtype {a.dtype} but {ref_name} has {ref.dtype}")
    if a.shape != ref.shape:
        raise ValueError(f"{name} has shape {a.shape} but {ref_name} has shape {ref.shape}")
    return a


def disjoint(arrays, names):
    """Raise ValueError when two of ``arrays`` are the same array or share memory."""
    check_disjoint(arrays, names)


def grads_sequence(grads, n):
    """The gradients as a list of length ``n``."""
    if isinstance(grads, np.ndarray) or not isinstance(grads, (list, tuple)):
        if isinstance(grads, np.ndarray) or not hasattr(grads, "__iter__"):
            raise TypeError("grads must be a sequence of numpy arrays aligned with the "
                            f"parameters, got {type(grads).__name__}")
        grads = list(grads)
    if len(grads) != n:
        raise ValueError(f"grads has {len(grads)} arrays but the optimizer has {n} parameters")
    return grads
