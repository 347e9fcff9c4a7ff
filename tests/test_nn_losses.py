"""Losses of fastgd.nn: native vs reference, hand-computed values, finite differences,
errors, and parity with torch.nn.functional."""
import math
import warnings

import numpy as np
import pytest

from fastgd import nn
from fastgd.nn import losses as nn_losses

from nn_testutil import DTYPE_IDS, DTYPES, fd_gradient, tol

BACKENDS = ("native", "reference")
dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
backends = pytest.mark.parametrize("backend", BACKENDS)


@pytest.fixture
def rng(request):
    return np.random.default_rng(sum(map(ord, request.node.nodeid)))


def make_case(kind, rng, shape, dtype):
    """(loss class, pred, target) with random values for ``kind``."""
    n, c = shape
    pred = (rng.standard_normal(shape) * 2).astype(dtype)
    if kind == "mse":
        return nn.MSELoss, pred, rng.standard_normal(shape).astype(dtype)
    if kind == "cross_entropy":
        return nn.CrossEntropyLoss, pred, rng.integers(0, c, size=n)
    return nn.BCEWithLogitsLoss, pred, rng.uniform(0, 1, size=shape).astype(dtype)


KINDS = ["mse", "cross_entropy", "bce_with_logits"]


# ----------------------------------------------------------------------------- native vs reference

@dtypes
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (64, 10)])
def test_native_matches_reference(dtype, kind, shape, rng):
    cls, pred, target = make_case(kind, rng, shape, dtype)
    nat, ref = cls(), cls(backend="reference")
    vn, vr = nat(pred, target), ref(pred, target)
    assert type(vn) is float and type(vr) is float
    assert vn == pytest.approx(vr, rel=tol(dtype)["rtol"], abs=tol(dtype)["atol"])
    gn, gr = nat.backward(), ref.backward()
    assert gn.dtype == dtype and gr.dtype == dtype and gn.shape == pred.shape
    np.testing.assert_allclose(gn, gr, **tol(dtype))


@dtypes
@backends
@pytest.mark.parametrize("kind", ["mse", "bce_with_logits"])
def test_elementwise_losses_any_shape(dtype, backend, kind, rng):
    cls = nn.MSELoss if kind == "mse" else nn.BCEWithLogitsLoss
    pred = rng.standard_normal((2, 3, 4)).astype(dtype)
    target = rng.uniform(0, 1, (2, 3, 4)).astype(dtype)
    a, b = cls(backend=backend), cls(backend="reference")
    assert a(pred, target) == pytest.approx(b(pred, target), rel=tol(dtype)["rtol"])
    np.testing.assert_allclose(a.backward(), b.backward(), **tol(dtype))
    # 1-D
    assert a(pred[0, 0], target[0, 0]) == pytest.approx(b(pred[0, 0], target[0, 0]),
                                                        rel=tol(dtype)["rtol"])


# ----------------------------------------------------------------------------- hand-computed

@dtypes
@backends
def test_mse_hand_computed(dtype, backend):
    loss = nn.MSELoss(backend=backend)
    assert loss(np.array([1.0, 2.0], dtype), np.array([0.0, 0.0], dtype)) == 2.5
    np.testing.assert_array_equal(loss.backward(), [1.0, 2.0])
    p = np.array([[1.0, 2.0], [3.0, 4.0]], dtype)
    t = np.array([[1.0, 0.0], [0.0, 4.0]], dtype)
    assert loss(p, t) == pytest.approx((0 + 4 + 9 + 0) / 4)
    np.testing.assert_allclose(loss.backward(), [[0, 1.0], [1.5, 0]])
    assert loss(p, p.copy()) == 0.0
    np.testing.assert_array_equal(loss.backward(), 0)


@dtypes
@backends
@pytest.mark.parametrize("classes", [2, 3, 10])
def test_cross_entropy_of_zero_logits_is_log_classes(dtype, backend, classes):
    loss = nn.CrossEntropyLoss(backend=backend)
    labels = np.arange(4) % classes
    assert loss(np.zeros((4, classes), dtype), labels) == pytest.approx(math.log(classes),
                                                                       rel=1e-6)
    expect = np.full((4, classes), 1 / classes)
    expect[np.arange(4), labels] -= 1
    np.testing.assert_allclose(loss.backward(), expect / 4, **tol(dtype))


@dtypes
@backends
def test_cross_entropy_hand_computed(dtype, backend):
    loss = nn.CrossEntropyLoss(backend=backend)
    z = np.array([[0.0, np.log(3.0)], [2.0, 2.0]], dtype)   # softmax rows [.25 .75], [.5 .5]
    v = loss(z, np.array([1, 0]))
    assert v == pytest.approx((-np.log(0.75) - np.log(0.5)) / 2, rel=1e-6)
    np.testing.assert_allclose(loss.backward(), [[0.125, -0.125], [-0.25, 0.25]], **tol(dtype))
    assert round(loss(np.zeros((2, 4), dtype), np.array([0, 3])), 6) == 1.386294


@dtypes
@backends
def test_cross_entropy_large_logits_stay_finite(dtype, backend):
    loss = nn.CrossEntropyLoss(backend=backend)
    z = np.array([[1e4, 0.0, -1e4]] * 3, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            v0 = loss(z[:1], np.array([0]))
            v1 = loss(z[:1], np.array([1]))
            v2 = loss(z[:1], np.array([2]))
            vall = loss(z, np.array([0, 1, 2]))
            g = loss.backward()
    assert v0 == 0.0
    assert v1 == pytest.approx(1e4)
    assert v2 == pytest.approx(2e4)
    assert vall == pytest.approx(1e4)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, np.array([[0, 0, 0], [1, -1, 0], [1, 0, -1]]) / 3,
                               **tol(dtype))
    big = 1e30 if dtype == np.float32 else 1e300
    assert loss(np.array([[big, big]], dtype), np.array([1])) == pytest.approx(math.log(2))


@dtypes
@backends
def test_bce_hand_computed(dtype, backend):
    loss = nn.BCEWithLogitsLoss(backend=backend)
    assert loss(np.zeros(3, dtype), np.array([0.0, 1.0, 1.0], dtype)) == \
        pytest.approx(math.log(2), rel=1e-7)
    np.testing.assert_allclose(loss.backward(), np.array([0.5, -0.5, -0.5]) / 3, **tol(dtype))
    x = np.array([np.log(3.0)], dtype)          # sigmoid = 0.75
    assert loss(x, np.array([0.25], dtype)) == pytest.approx(
        -(0.25 * np.log(0.75) + 0.75 * np.log(0.25)), rel=1e-6)
    np.testing.assert_allclose(loss.backward(), [0.5], **tol(dtype))
    # bool and int targets are converted
    assert loss(np.zeros(2, dtype), np.array([True, False])) == pytest.approx(math.log(2))
    assert loss(np.zeros(2, dtype), np.array([1, 0])) == pytest.approx(math.log(2))


@dtypes
@backends
def test_bce_large_logits_stay_finite(dtype, backend):
    loss = nn.BCEWithLogitsLoss(backend=backend)
    big = 1e4 if dtype == np.float32 else 1e300
    x = np.array([big, -big, big, -big, 1e4, -1e4], dtype)
    t = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            v = loss(x, t)
            g = loss.backward()
    assert math.isfinite(v)
    assert v == pytest.approx(2 * float(big) / 6)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, np.array([0, 0, 1, -1, 0, 0]) / 6, **tol(dtype))
    # each confident right answer alone costs (nearly) nothing
    assert loss(np.array([1e4, -1e4], dtype), np.array([1.0, 0.0], dtype)) == 0.0


# ----------------------------------------------------------------------------- finite differences

@backends
@pytest.mark.parametrize("kind", KINDS)
def test_gradient_matches_finite_differences(backend, kind, rng):
    cls, pred, target = make_case(kind, rng, (6, 4), np.float64)
    loss = cls(backend=backend)
    loss(pred, target)
    g = loss.backward().copy()
    fd = fd_gradient(lambda: cls(backend=backend)(pred, target), pred)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)


@backends
def test_backward_returns_gradient_of_last_forward(backend, rng):
    loss = nn.MSELoss(backend=backend)
    a, b = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    loss(a, b)
    ga = loss.backward().copy()
    loss(b, a)
    np.testing.assert_allclose(loss.backward(), -ga, rtol=1e-12)


# ----------------------------------------------------------------------------- errors

@backends
@pytest.mark.parametrize("cls", [nn.MSELoss, nn.CrossEntropyLoss, nn.BCEWithLogitsLoss])
def test_backward_before_forward(backend, cls):
    with pytest.raises(RuntimeError, match=r"backward\(\) needs a forward\(\) first"):
        cls(backend=backend).backward()


@backends
@pytest.mark.parametrize("bad", [[0, 3], [-1, 0], [0, 100]])
def test_cross_entropy_label_out_of_range(backend, bad):
    loss = nn.CrossEntropyLoss(backend=backend)
    with pytest.raises(ValueError, match=r"target holds the label -?\d+, outside 0..2 for 3 classes"):
        loss(np.zeros((2, 3)), np.array(bad))
    with pytest.raises(RuntimeError):
        loss.backward()                         # nothing was computed


@backends
def test_cross_entropy_target_errors(backend):
    loss = nn.CrossEntropyLoss(backend=backend)
    z = np.zeros((2, 3))
    with pytest.raises(TypeError, match="integer class labels, got dtype float64"):
        loss(z, np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match="integer class labels, got dtype bool"):
        loss(z, np.array([True, False]))
    with pytest.raises(ValueError, match=r"target must have shape \(2,\)"):
        loss(z, np.array([[0], [1]]))
    with pytest.raises(ValueError, match=r"target must have shape \(2,\)"):
        loss(z, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="input must be 2-D logits"):
        loss(np.zeros(3), np.array([0, 1, 2]))
    # other integer types and lists are accepted
    assert loss(z, np.array([0, 2], np.int32)) == pytest.approx(math.log(3))
    assert loss(z, [0, 2]) == pytest.approx(math.log(3))


@backends
@pytest.mark.parametrize("cls", [nn.MSELoss, nn.BCEWithLogitsLoss])
def test_elementwise_target_errors(backend, cls):
    loss = cls(backend=backend)
    with pytest.raises(ValueError, match=r"target has shape \(3,\) but input has \(3, 1\)"):
        loss(np.zeros((3, 1)), np.zeros(3))
    with pytest.raises(TypeError, match="target must be numeric"):
        loss(np.zeros(2), np.array(["a", "b"]))
    with pytest.raises(ValueError, match="empty"):
        loss(np.zeros((0, 2)), np.zeros((0, 2)))


@backends
@pytest.mark.parametrize("cls", [nn.MSELoss, nn.CrossEntropyLoss, nn.BCEWithLogitsLoss])
def test_input_errors(backend, cls):
    loss = cls(backend=backend)
    with pytest.raises(TypeError, match="input must be a numpy.ndarray"):
        loss([[0.0, 1.0]], np.array([0]))
    with pytest.raises(TypeError, match="input must have dtype float32 or float64"):
        loss(np.zeros((1, 2), np.int64), np.array([0]))


def test_loss_by_name():
    assert nn_losses.by_name("mse") is nn.MSELoss
    assert nn_losses.by_name("cross_entropy") is nn.CrossEntropyLoss
    assert nn_losses.by_name("bce_with_logits") is nn.BCEWithLogitsLoss
    with pytest.raises(ValueError, match="loss must be one of"):
        nn_losses.by_name("hinge")
    with pytest.raises(ValueError, match="backend"):
        nn.MSELoss(backend="gpu")


# ----------------------------------------------------------------------------- torch

@dtypes
@backends
@pytest.mark.parametrize("kind", KINDS)
def test_matches_torch_functional(dtype, backend, kind, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    cls, pred, target = make_case(kind, rng, (16, 5), dtype)
    loss = cls(backend=backend)
    value = loss(pred, target)
    grad = loss.backward()
    tp = torch.tensor(pred, requires_grad=True)
    if kind == "mse":
        tv = F.mse_loss(tp, torch.tensor(target))
    elif kind == "cross_entropy":
        tv = F.cross_entropy(tp, torch.tensor(target))
    else:
        tv = F.binary_cross_entropy_with_logits(tp, torch.tensor(target))
    tv.backward()
    r = 2e-6 if dtype == np.float32 else 1e-12
    assert value == pytest.approx(tv.item(), rel=r, abs=r)
    np.testing.assert_allclose(grad, tp.grad.numpy(), rtol=10 * r, atol=r)


@backends
def test_large_logits_match_torch(backend):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    cases = [(nn.CrossEntropyLoss, F.cross_entropy,
              np.array([[1e4, 0.0, -1e4], [-5e3, 5e3, 0.0]], np.float32), np.array([2, 1])),
             (nn.BCEWithLogitsLoss, F.binary_cross_entropy_with_logits,
              np.array([3e3, -3e3, 50.0, -50.0], np.float32),
              np.array([0.0, 0.0, 1.0, 0.5], np.float32))]
    for cls, torch_loss, z, target in cases:
        loss = cls(backend=backend)
        tz = torch.tensor(z, requires_grad=True)
        tv = torch_loss(tz, torch.tensor(target))
        tv.backward()
        assert loss(z, target) == pytest.approx(tv.item(), rel=1e-6)
        np.testing.assert_allclose(loss.backward(), tz.grad.numpy(), atol=1e-7)


# the native float32 exp (a vectorised polynomial) against float64, over its whole range

def _softmax64(x):
    """Softmax with float32's own shift (x - max rounded to float32, as the kernel rounds
    it) and everything after it exact: what is left to compare is the exp and the sum."""
    z = (x - x.max(axis=1, keepdims=True)).astype(np.float64)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("cols", [1, 2, 3, 10, 16, 17, 100])
def test_float32_softmax_and_cross_entropy_within_a_few_ulps(cols):
    from fastgd import _nn
    rng = np.random.default_rng(cols)
    rows = 4000 // cols + 3
    # logits spread so that the shifted values cover [-87, 0] and beyond
    x = (rng.standard_normal((rows, cols)) * 30).astype(np.float32)
    y = np.empty_like(x)
    _nn.softmax_forward(x, y)
    ref = _softmax64(x)
    big = ref > 1e-30                      # normal float32 results: relative error
    eps = np.finfo(np.float32).eps
    # 2 ulp for the exp, the float32 sum of `cols` terms, the division
    assert np.all(np.abs(y[big] - ref[big]) <= (4 + cols) * eps * ref[big])
    assert np.all(np.abs(y[~big] - ref[~big]) <= 1e-30)
    labels = rng.integers(0, cols, rows)
    grad = np.empty_like(x)
    total = _nn.loss("cross_entropy", x, labels, grad)
    gref = ref.copy()
    gref[np.arange(rows), labels] -= 1
    gref /= rows
    assert np.abs(grad - gref).max() <= (8 + cols) * eps / rows
    z = (x - x.max(axis=1, keepdims=True)).astype(np.float64)
    lref = np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(rows), labels])
    assert abs(total - lref) <= 1e-6 * max(1.0, abs(lref))


@pytest.mark.parametrize("value, expected", [(-np.inf, [0.0, 1.0]), (-1e30, [0.0, 1.0]),
                                             (-103.0, [0.0, 1.0]), (1e30, [1.0, 0.0])])
def test_float32_softmax_at_the_ends_of_the_range(value, expected):
    from fastgd import _nn
    x = np.array([[value, 0.0]], np.float32)
    y = np.empty_like(x)
    _nn.softmax_forward(x, y)
    np.testing.assert_array_equal(y[0], np.array(expected, np.float32))


def test_float32_softmax_propagates_nan():
    from fastgd import _nn
    x = np.array([[np.nan, 0.0], [0.0, 1.0]], np.float32)
    y = np.empty_like(x)
    _nn.softmax_forward(x, y)
    assert np.isnan(y[0]).all() and np.isfinite(y[1]).all()
