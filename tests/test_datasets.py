"""fastgd.datasets: the bundled digits and the stratified train/test split."""
import numpy as np
import pytest

from fastgd import datasets


@pytest.fixture(scope="module")
def digits():
    return datasets.load_digits()


def test_load_digits_shapes_and_ranges(digits):
    X, y = digits
    assert X.shape == (1797, 64) and y.shape == (1797,)
    assert X.dtype == np.float64 and y.dtype == np.int64
    assert X.min() == 0 and X.max() == 16
    np.testing.assert_array_equal(X, np.round(X))           # integer pixel counts
    assert np.isfinite(X).all()
    assert set(np.unique(y)) == set(range(10))
    counts = np.bincount(y, minlength=10)
    assert counts.sum() == 1797 and len(counts) == 10
    # the UCI/scikit-learn class counts
    np.testing.assert_array_equal(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    # corners of the 8x8 image are (almost) always blank, the centre is not
    assert X[:, 0].max() == 0
    assert X[:, 27].mean() > 5


def test_load_digits_is_fresh_and_deterministic(digits):
    X1, y1 = datasets.load_digits()
    X1[0, 0] = 99
    X2, y2 = datasets.load_digits()
    assert X2[0, 0] == 0
    np.testing.assert_array_equal(X2, digits[0])
    np.testing.assert_array_equal(y2, digits[1])


@pytest.mark.parametrize("test_size", [0.25, 0.1, 0.5])
def test_train_test_split_is_stratified(digits, test_size):
    X, y = digits
    Xtr, Xte, ytr, yte = datasets.train_test_split(X, y, test_size=test_size, seed=0)
    counts = np.bincount(y, minlength=10)
    expect_test = np.array([int(round(c * test_size)) for c in counts])
    np.testing.assert_array_equal(np.bincount(yte, minlength=10), expect_test)
    np.testing.assert_array_equal(np.bincount(ytr, minlength=10), counts - expect_test)
    assert len(Xtr) + len(Xte) == len(X) == len(ytr) + len(yte)
    assert Xtr.shape[1] == Xte.shape[1] == 64
    # a partition of the rows: every (row, label) appears exactly once
    rows = np.concatenate([np.c_[Xtr, ytr], np.c_[Xte, yte]])
    full = np.c_[X, y]
    key = lambda a: a[np.lexsort(a.T[::-1])]
    np.testing.assert_array_equal(key(rows), key(full))


def test_train_test_split_sizes_025(digits):
    X, y = digits
    Xtr, Xte, ytr, yte = datasets.train_test_split(X, y, test_size=0.25, seed=0)
    assert Xte.shape == (450, 64) and Xtr.shape == (1347, 64)


def test_train_test_split_determinism(digits):
    X, y = digits
    a = datasets.train_test_split(X, y, test_size=0.25, seed=3)
    b = datasets.train_test_split(X, y, test_size=0.25, seed=3)
    c = datasets.train_test_split(X, y, test_size=0.25, seed=4)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[1], c[1])
    # rows keep their original relative order inside each part
    idx = np.arange(len(X))
    _, te_idx, _, _ = datasets.train_test_split(idx.reshape(-1, 1), y, test_size=0.25, seed=3)
    assert np.all(np.diff(te_idx[:, 0]) > 0)


def test_train_test_split_pairs_rows_with_labels(digits):
    X, y = digits
    idx = np.arange(len(X)).reshape(-1, 1)
    tr, te, ytr, yte = datasets.train_test_split(idx, y, test_size=0.3, seed=1)
    np.testing.assert_array_equal(y[tr[:, 0]], ytr)
    np.testing.assert_array_equal(y[te[:, 0]], yte)


def test_train_test_split_float_targets():
    X = np.arange(40, dtype=np.float64).reshape(20, 2)
    y = np.linspace(0, 1, 20)                     # regression targets: not stratified
    Xtr, Xte, ytr, yte = datasets.train_test_split(X, y, test_size=0.25, seed=0)
    assert len(Xte) == 5 and len(Xtr) == 15
    np.testing.assert_allclose(Xte[:, 0] / 2, yte * 19, atol=1e-12)
    np.testing.assert_allclose(Xtr[:, 0] / 2, ytr * 19, atol=1e-12)
