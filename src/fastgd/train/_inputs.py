"""Checking and splitting training data for ``fit``."""
import numpy as np

from .._typing import Array, ArrayLike, DTypeLike, Real


def features(X: ArrayLike, name: str, dtype: DTypeLike, n_features: int) -> Array:
    """X as a C-contiguous (n, n_features) array of the model's dtype, all finite."""
    if isinstance(X, (str, bytes)) or X is None:
        raise TypeError(f"{name} must be a 2-D numeric array, got {type(X).__name__}")
    X = np.asarray(X)
    if X.dtype == object or not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
        raise TypeError(f"{name} must be numeric, got dtype {X.dtype}")
    if np.issubdtype(X.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real, got dtype {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples, features), got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if X.shape[1] != n_features:
        raise ValueError(f"{name} has {X.shape[1]} features but the model takes {n_features}")
    X = np.ascontiguousarray(X, dtype=dtype)
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return X


def targets(y: ArrayLike, name: str, n: int, kind: str, n_outputs: int,
            dtype: DTypeLike) -> Array:
    """y as the loss takes it: int64 labels in range (cross-entropy) or (n, outputs) floats."""
    if y is None or isinstance(y, (str, bytes)):
        raise TypeError(f"{name} must be an array, got {type(y).__name__}")
    y = np.asarray(y)
    if y.ndim == 0:
        raise ValueError(f"{name} must have one row per sample, got a scalar")
    if len(y) != n:
        raise ValueError(f"{name} has {len(y)} rows but X has {n}")
    if kind == "cross_entropy":
        if y.ndim != 1:
            raise ValueError(f"{name} must be 1-D class labels, got shape {y.shape}")
        if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer):
            raise TypeError(f"{name} must hold integer class labels, got dtype {y.dtype}")
        if y.min() < 0 or y.max() >= n_outputs:
            raise ValueError(f"{name} holds labels {y.min()}..{y.max()} but the model has "
                             f"{n_outputs} outputs (labels must be 0..{n_outputs - 1})")
        return np.ascontiguousarray(y, dtype=np.int64)
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_):
        raise TypeError(f"{name} must be numeric, got dtype {y.dtype}")
    if y.ndim == 1 and n_outputs == 1:
        y = y.reshape(-1, 1)
    if y.ndim != 2 or y.shape[1] != n_outputs:
        raise ValueError(f"{name} must have shape ({n}, {n_outputs}), got {y.shape}")
    y = np.ascontiguousarray(y, dtype=dtype)
    if not np.isfinite(y).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return y


def split(X: Array, y: Array, fraction: Real) -> tuple[Array, Array, Array, Array]:
    """The last ``fraction`` of the rows as validation data (before any shuffling)."""
    n_val = int(round(len(X) * fraction))
    if n_val < 1 or n_val >= len(X):
        raise ValueError(f"validation_split={fraction} leaves no training or no validation "
                         f"rows out of {len(X)}")
    return X[:-n_val], y[:-n_val], X[-n_val:], y[-n_val:]
