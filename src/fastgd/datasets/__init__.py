"""Data sets that ship inside the package (no download)."""
from __future__ import annotations

import gzip
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _checks
from .._typing import Array, ArrayLike, FloatArray, Real

if TYPE_CHECKING:
    from ..nn.init import SeedLike


def load_digits() -> tuple[FloatArray, Array]:
    """The 8x8 handwritten digits: ``X`` (1797, 64) float64 pixels in 0..16, ``y`` labels 0..9.

    UCI "Optical Recognition of Handwritten Digits" (E. Alpaydin, C. Kaynak, 1998; CC BY 4.0),
    as shipped with scikit-learn; see ``fastgd/data/README.md``.

    Examples
    --------
    >>> X, y = load_digits()
    >>> X.shape, y.shape, int(y.max())
    ((1797, 64), (1797,), 9)
    """
    with resources.files("fastgd.datasets.data").joinpath("digits.csv.gz").open("rb") as fh:
        table = np.loadtxt(gzip.open(fh), delimiter=",")
    return table[:, :-1], table[:, -1].astype(np.int64)


def train_test_split(X: ArrayLike, y: ArrayLike, test_size: Real = 0.25,
                     seed: SeedLike = 0) -> tuple[Array, Array, Array, Array]:
    """Shuffle with ``seed`` and hold out ``test_size`` of the rows, stratified by class when
    ``y`` holds integer labels.

    Parameters
    ----------
    X : array_like, shape (n, ...)
        The samples (at least one).
    y : array_like, shape (n,) or (n, ...)
        The targets, one per sample.
    test_size : float, default 0.25
        The fraction of the rows (of each class) held out, in (0, 1); the counts are
        rounded, so a small data set can leave a split empty.
    seed : None, int >= 0, numpy.random.Generator or numpy.random.SeedSequence, default 0
        The shuffle.

    Returns
    -------
    X_train, X_test, y_train, y_test : ndarray

    Raises
    ------
    TypeError, ValueError
        For an argument of the wrong type or out of range, naming it.

    Examples
    --------
    >>> X, y = load_digits()
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, seed=0)
    >>> len(X_train) + len(X_test) == len(X), len(X_test) == len(y_test)
    (True, True)
    """
    test_size = _checks.real(test_size, "test_size", low=0, high=1, low_open=True,
                             high_open=True)
    seed = _checks.seed(seed)
    X, y = _rows(X, "X"), _rows(y, "y")
    if len(X) != len(y):
        raise ValueError(f"X and y have different numbers of rows: X has {len(X)}, y has "
                         f"{len(y)}")
    rng = np.random.default_rng(seed)
    n = len(X)
    test: Any  # the test rows: a list by class, then a sorted array
    if np.issubdtype(y.dtype, np.integer):
        test = []
        for c in np.unique(y):
            rows = rng.permutation(np.flatnonzero(y == c))
            test.extend(rows[:int(round(len(rows) * test_size))])
        test = np.sort(np.array(test, dtype=np.int64))
    else:
        test = np.sort(rng.permutation(n)[:int(round(n * test_size))])
    mask = np.ones(n, bool)
    mask[test] = False
    return X[mask], X[test], y[mask], y[test]


def _rows(a: ArrayLike, name: str) -> Array:
    """``a`` as an array of at least one row (a 1-D or higher array)."""
    if a is None or isinstance(a, (str, bytes)):
        raise TypeError(f"{name} must be an array, got {type(a).__name__}")
    a = np.asarray(a)
    if a.ndim == 0:
        raise ValueError(f"{name} must have one row per sample, got a scalar")
    if len(a) == 0:
        raise ValueError(f"{name} is empty")
    return a
