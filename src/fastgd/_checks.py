"""Argument checks shared by the public entry points: clear errors, before any write."""
import math
import numbers
from typing import Any, Collection, Sequence

import numpy as np

from ._optim import check_disjoint
from ._typing import Array, FloatArray

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


#: the integer types `integer` and `seed` accept (bools are refused separately)
_INTS = (int, np.integer)


def integer(value: Any, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as a Python int, checked to be an integer within ``[low, high]``.

    Python ints and numpy integers are accepted; bools (``True`` is an int to Python but
    always a mistake here), floats (even ``3.0``), strings and everything else are not.

    Parameters
    ----------
    value : object
        What the caller passed.
    name : str
        The argument's name, as the caller spells it; every message starts with it.
    low, high : int, optional
        Inclusive bounds.

    Returns
    -------
    int

    Raises
    ------
    TypeError
        ``"{name} must be an int, got str"``.
    ValueError
        ``"{name} must be >= 1, got 0"`` (or ``<= high``).

    Examples
    --------
    >>> integer(np.int64(3), "max_iter", low=1)
    3
    >>> integer(0, "max_iter", low=1)
    Traceback (most recent call last):
    ...
    ValueError: max_iter must be >= 1, got 0
    """
    if type(value) is not int:  # fast path for the common type; bool is not int here
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, _INTS):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def real(value: Any, name: str, *, low: float | None = None, high: float | None = None,
         low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a Python float, checked to be a finite real number within the bounds.

    Python ints and floats and numpy integer and floating scalars (``np.float32(1e-5)``,
    ``np.int64(3)``) are accepted; bools, strings, arrays (even 0-d) and everything else
    are not.

    Parameters
    ----------
    value : object
        What the caller passed.
    name : str
        The argument's name; every message starts with it.
    low, high : float, optional
        Bounds, inclusive unless ``low_open`` / ``high_open``.
    low_open, high_open : bool, default False
        Exclude the bound itself.

    Returns
    -------
    float

    Raises
    ------
    TypeError
        ``"{name} must be a real number, got str"``.
    ValueError
        ``"{name} must be finite, got nan"``, ``"{name} must be > 0, got 0.0"``, ...

    Examples
    --------
    >>> real(np.float32(0.5), "lr", low=0, low_open=True)
    0.5
    """
    t = type(value)
    if t is not float and t is not int:  # fast path for the common types; bool is not int here
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {t.__name__}")
    try:
        v = float(value)
    except OverflowError:  # an int beyond the float range
        raise ValueError(f"{name} must be finite, got an integer of {value.bit_length()} "
                         "bits") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {v}")
    if high is not None and (v > high or (high_open and v == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {v}")
    return v


_SEED_TYPES = (np.random.Generator, np.random.SeedSequence)


def seed(value: Any, name: str = "seed"
         ) -> int | np.random.Generator | np.random.SeedSequence | None:
    """A seed of numpy's random generators: None, an int >= 0, a Generator or a SeedSequence.

    Parameters
    ----------
    value : None, int, numpy integer, numpy.random.Generator or numpy.random.SeedSequence
        None (fresh randomness), a non-negative integer, or a generator or seed sequence
        (returned as given, to be used as is).
    name : str, default "seed"
        The argument's name (e.g. ``"random_state"``).

    Returns
    -------
    None, int, numpy.random.Generator or numpy.random.SeedSequence
        Integers come back as Python ints (the same stream as the numpy integer).

    Raises
    ------
    TypeError
        Anything else (a bool, a float, a string, a list, ...), naming the argument.
    ValueError
        A negative integer.

    Examples
    --------
    >>> seed(np.int64(3))
    3
    >>> seed(-1, "random_state")
    Traceback (most recent call last):
    ...
    ValueError: random_state must be >= 0, got -1
    """
    if value is None or isinstance(value, _SEED_TYPES):
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, _INTS):
        raise TypeError(f"{name} must be None, an int >= 0, a numpy.random.Generator or a "
                        f"numpy.random.SeedSequence, got {type(value).__name__}")
    return integer(value, name, low=0)


def choice(value: Any, name: str, options: Collection[str]) -> str:
    """``value`` when it is one of the strings ``options``; a ValueError naming ``name``
    otherwise (also for a non-string, which ``in`` alone would compare element-wise)."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")
    return value


def float_dtype(value: Any, name: str = "dtype") -> np.dtype[Any]:
    """``value`` as ``numpy.dtype`` float32 or float64.

    Anything numpy reads as one of the two is accepted (``np.float32``, ``"float64"``,
    ``float``, a dtype); None, which numpy would read as float64, is not (where a default
    exists it is float32, so None is more likely a mistake than a choice).

    Raises
    ------
    TypeError
        ``"{name} must be float32 or float64, got int64"``.
    """
    dt = None
    if value is not None:
        try:
            dt = np.dtype(value)
        except (TypeError, ValueError):
            pass
    if dt is None or dt not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got "
                        f"{dt if dt is not None else repr(value)}")
    return dt


def flag(value: Any, name: str) -> bool:
    """``value`` as a bool: Python's or numpy's, not 0/1 or a string."""
    if type(value) is not bool and not isinstance(value, np.bool_):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def pair(value: Any, name: str) -> tuple[Any, ...]:
    """``value`` as a tuple of two items (each still to be checked by the caller)."""
    try:
        n = None if isinstance(value, (str, bytes)) else len(value)
    except TypeError:  # no len(), or a 0-d array
        n = None
    if n != 2:
        raise TypeError(f"{name} must be a pair of numbers, got {value!r}")
    return tuple(value)


def backend(value: Any) -> str:
    if not isinstance(value, str) or value not in ("native", "reference"):
        raise ValueError(f"backend must be 'native' or 'reference', got {value!r}")
    return value


def is_array(a: Any) -> bool:
    """Whether ``a`` is one array (an ndarray, or another library's array that numpy can view:
    DLPack, the array interface, the buffer protocol) rather than a list of them."""
    if isinstance(a, np.ndarray):
        return True
    if isinstance(a, (list, tuple, dict, str, bytes)):
        return False
    t = type(a)
    return (hasattr(t, "__dlpack__") or hasattr(a, "__array_interface__")
            or hasattr(a, "__array_struct__") or isinstance(a, (memoryview, bytearray))
            or _has_buffer(a))


def _has_buffer(a: Any) -> bool:
    try:
        memoryview(a)
    except TypeError:
        return False
    return True


def array_view(a: Any, name: str, *, writeable: bool) -> np.ndarray:
    """``a`` as an ndarray over its own memory, never a copy.

    An ndarray is returned as it is. Another library's array is viewed through DLPack
    (``__dlpack__``: a PyTorch tensor, a JAX array), the array interface
    (``__array_interface__``/``__array_struct__``) or the buffer protocol (``array.array``,
    ``memoryview``), in that order; ``__array__`` is never used, since it may copy, and an
    update written into a copy would be lost.

    Parameters
    ----------
    a : object
        The array.
    name : str
        The argument's name; every message starts with it.
    writeable : bool
        The caller writes into it (a parameter or a state array).

    Raises
    ------
    TypeError
        ``a`` is no array, or numpy cannot view it in place (a GPU tensor, bfloat16, a
        tensor that requires grad, a sparse or conjugated tensor: the exporter's reason is
        quoted), or ``writeable`` and the view is read-only.

    Examples
    --------
    >>> import array
    >>> v = array_view(array.array("d", [1.0, 2.0]), "param", writeable=True)
    >>> v.dtype, v.flags.writeable
    (dtype('float64'), True)
    """
    if isinstance(a, np.ndarray):
        return a
    kind = type(a).__name__
    if hasattr(type(a), "__dlpack__"):
        try:
            view = np.from_dlpack(a)
        except (BufferError, TypeError, ValueError, RuntimeError) as e:
            hint = (" (pass tensor.detach(), which shares its memory)"
                    if "require" in str(e) and "grad" in str(e) else "")
            raise TypeError(f"{name}: numpy cannot view this {kind} in place{hint}: "
                            f"{str(e).strip() or type(e).__name__}") from None
    elif hasattr(a, "__array_interface__") or hasattr(a, "__array_struct__"):
        try:
            view = np.asarray(a)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name}: numpy cannot view this {kind} in place: {e}") from None
    elif _has_buffer(a):
        view = np.asarray(memoryview(a))
    else:
        raise TypeError(f"{name} must be a numpy.ndarray or an array numpy can view in place "
                        f"(DLPack, the array interface, the buffer protocol), got {kind}")
    if writeable and not view.flags.writeable:
        raise TypeError(f"{name} is a read-only {kind}; it is updated in place, so it must "
                        "be writeable")
    return view


def parameter(a: Any, name: str) -> FloatArray:
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
    if not a.flags.aligned:
        raise ValueError(f"{name} is not aligned to its {a.dtype} elements (flags.aligned is "
                         "False); pass np.require(a, requirements='A') and keep that array as "
                         "the parameter")
    return a


def like(a: Any, ref: Array, name: str, ref_name: str) -> Array:
    """An array with the dtype and shape of ``ref`` (a gradient or a state array)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != ref.dtype:
        raise TypeError(f"{name} has dtype {a.dtype} but {ref_name} has {ref.dtype}")
    if a.shape != ref.shape:
        raise ValueError(f"{name} has shape {a.shape} but {ref_name} has shape {ref.shape}")
    return a


def disjoint(arrays: Sequence[Array], names: Sequence[str]) -> None:
    """Raise ValueError when two of ``arrays`` are the same array or share memory."""
    check_disjoint(arrays, names)


def grads_sequence(grads: Any, n: int) -> Sequence[Any]:
    """The gradients as a list of length ``n``: ndarrays (other libraries' arrays viewed by
    `array_view`) or None."""
    if not isinstance(grads, (list, tuple)):
        if is_array(grads) or not hasattr(grads, "__iter__"):
            raise TypeError("grads must be a sequence of numpy arrays aligned with the "
                            f"parameters, got {type(grads).__name__}")
        grads = list(grads)
    if len(grads) != n:
        raise ValueError(f"grads has {len(grads)} arrays but the optimizer has {n} parameters")
    out = None  # the caller's sequence is never changed: a copy once a foreign array shows
    for i, g in enumerate(grads):
        if g is not None and type(g) is not np.ndarray and is_array(g) \
                and not isinstance(g, np.ndarray):
            if out is None:
                out = list(grads)
            out[i] = array_view(g, f"grads[{i}]", writeable=False)
    return grads if out is None else out
