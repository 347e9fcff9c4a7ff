"""Data sets that ship inside the package (no download)."""
import gzip
from importlib import resources

import numpy as np


def load_digits():
    """The 8x8 handwritten digits: ``X`` (1797, 64) float64 pixels in 0..16, ``y`` labels 0..9.

    UCI "Optical Recognition of Handwritten Digits" (E. Alpaydin, C. Kaynak, 1998; CC BY 4.0),
    as shipped with scikit-learn; see ``fastgd/data/README.md``.

    Examples
    --------
    >>> X, y = load_digits()
    >>> X.shape, y.shape, int(y.max())
    ((1797, 64), (1797,), 9)
    """
    with resources.files("fastgd.data").joinpath("digits.csv.gz").open("rb") as fh:
        table = np.loadtxt(gzip.open(fh), delimiter=",")
    return table[:, :-1], table[:, -1].astype(np.int64)


def train_test_split(X, y, test_size=0.25, seed=0):
    """Shuffle with ``seed`` and hold out ``test_size`` of the rows: (X_train, X_test, y_train,
    y_test), stratified by class when ``y`` holds integer labels."""
    rng = np.random.default_rng(seed)
    n = len(X)
    if np.issubdtype(np.asarray(y).dtype, np.integer):
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
