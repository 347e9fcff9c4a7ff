"""fastgd.nn.utils: gradient clipping against torch.nn.utils, hand-computed values, the
native norm's determinism, and bad input."""
import math

import numpy as np
import pytest

import fastgd
from fastgd.nn.utils import (clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_,
                             get_total_norm)

torch = pytest.importorskip("torch")

DT = [np.float32, np.float64]
TOL = {np.float32: 2e-4, np.float64: 1e-9}
SHAPES = [(7,), (3, 4), (70001,), (), (0,)]


def _grads(rng, dtype, scale=1.0):
    return [np.asarray(rng.standard_normal(s) * scale, dtype=dtype) for s in SHAPES]


@pytest.mark.parametrize("dtype", DT)
@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.5, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e9])
def test_clip_grad_norm_matches_torch(dtype, norm_type, max_norm):
    rng = np.random.default_rng(7 if math.isinf(norm_type) else int(norm_type * 10))
    ours = _grads(rng, dtype)
    if math.isinf(norm_type):   # torch cannot take the inf norm of an empty tensor
        ours = [g for g in ours if g.size]
    params = [torch.zeros(g.shape, dtype=torch.float32 if dtype == np.float32 else torch.float64)
              for g in ours]
    for p, g in zip(params, ours):
        p.grad = torch.from_numpy(g.copy())
    total = clip_grad_norm_(ours, max_norm, norm_type)
    theirs = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type, foreach=False).item()
    assert total == pytest.approx(theirs, rel=TOL[dtype])
    for g, p in zip(ours, params):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=TOL[dtype], atol=1e-30)


def test_clip_grad_norm_hand_computed_and_skips_none():
    g = [np.array([3.0, 0.0]), None, np.array([[4.0]])]
    assert clip_grad_norm_(g, 1.0) == 5.0
    coef = 1.0 / (5.0 + 1e-6)
    np.testing.assert_array_equal(g[0], np.array([3.0, 0.0]) * coef)
    np.testing.assert_array_equal(g[2], np.array([[4.0]]) * coef)
    assert get_total_norm([np.array([1.0, -2.0, 2.0])], 1) == 5.0
    assert get_total_norm([np.array([1.0, -7.0])], "inf") == 7.0
    assert get_total_norm([]) == 0.0


def test_norm_of_mixed_dtypes_is_the_norm_of_all_elements():
    a, b = np.array([3.0], np.float32), np.array([4.0], np.float64)
    assert get_total_norm([a, b]) == pytest.approx(5.0)
    assert get_total_norm([a, b], math.inf) == 4.0


@pytest.mark.parametrize("dtype", DT)
@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.0, math.inf])
def test_native_norm_is_bit_identical_for_any_thread_count(threads, dtype, norm_type):
    g = [np.random.default_rng(1).standard_normal(300_001).astype(dtype),
         np.random.default_rng(2).standard_normal(5000).astype(dtype)]
    values = []
    for n in (1, 2, 3, 7):
        threads(n)
        values.append(get_total_norm(g, norm_type))
    assert len({v.hex() for v in values}) == 1
    exact = (np.sum(np.abs(np.concatenate(g).astype(np.float64)) ** norm_type)
             ** (1 / norm_type) if norm_type != math.inf
             else np.abs(np.concatenate(g)).max())
    assert values[0] == pytest.approx(float(exact), rel=1e-12)


def test_non_finite_norm_propagates_or_raises_before_touching_anything():
    g = [np.array([1.0, np.nan]), np.array([2.0])]
    assert math.isnan(get_total_norm(g))
    assert math.isnan(get_total_norm(g, math.inf))
    before = [a.copy() for a in g]
    with pytest.raises(ValueError, match="non-finite|cannot be clipped"):
        clip_grad_norm_(g, 1.0, error_if_nonfinite=True)
    for a, b in zip(g, before):
        np.testing.assert_array_equal(a, b)
    assert math.isnan(clip_grad_norm_(g, 1.0))         # as torch: scaled by NaN
    assert np.isnan(g[1]).all()


def test_clip_grads_with_norm_and_infinite_max_norm():
    g = [np.array([3.0, 4.0], np.float32)]
    clip_grads_with_norm_(g, math.inf, 5.0)             # factor 1: unchanged
    np.testing.assert_array_equal(g[0], [3.0, 4.0])
    clip_grads_with_norm_(g, 2.5, 5.0)
    np.testing.assert_allclose(g[0], np.float32(2.5) / np.float32(5.0 + 1e-6) * np.float32([3, 4]))


@pytest.mark.parametrize("dtype", DT)
def test_clip_grad_value_matches_torch(dtype):
    rng = np.random.default_rng(3)
    ours = _grads(rng, dtype, scale=3.0)
    ours[0][2] = np.nan
    theirs = [torch.from_numpy(g.copy()) for g in ours]
    params = [torch.zeros(g.shape, dtype=t.dtype) for g, t in zip(ours, theirs)]
    for p, t in zip(params, theirs):
        p.grad = t
    clip_grad_value_(ours, 1.5)
    torch.nn.utils.clip_grad_value_(params, 1.5, foreach=False)
    for g, p in zip(ours, params):
        np.testing.assert_array_equal(g, p.grad.numpy())


@pytest.mark.parametrize("call, error, match", [
    (lambda g: clip_grad_norm_(g, "1"), TypeError, "max_norm"),
    (lambda g: clip_grad_norm_(g, 1.0, norm_type=0), ValueError, "norm_type must be > 0"),
    (lambda g: clip_grad_norm_(g, 1.0, norm_type=-2), ValueError, "norm_type"),
    (lambda g: clip_grad_norm_(g, 1.0, norm_type=True), TypeError, "norm_type"),
    (lambda g: clip_grad_norm_(g, 1.0, error_if_nonfinite="no"), TypeError, "error_if_nonfinite"),
    (lambda g: clip_grad_norm_("grads", 1.0), TypeError, "grads must be"),
    (lambda g: clip_grad_norm_([g[0], [1.0]], 1.0), TypeError, r"grads\[1\]"),
    (lambda g: clip_grad_norm_([g[0], np.ones(3, np.int64)], 1.0), TypeError, r"grads\[1\]"),
    (lambda g: clip_grad_value_(g, None), TypeError, "clip_value"),
])
def test_bad_input_is_refused_before_anything_changes(call, error, match):
    g = [np.array([3.0, 4.0]), np.array([1.0])]
    before = [a.copy() for a in g]
    with pytest.raises(error, match=match):
        call(g)
    for a, b in zip(g, before):
        np.testing.assert_array_equal(a, b)


def test_read_only_gradients_are_refused():
    g = np.array([3.0, 4.0])
    g.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        clip_grad_norm_([g], 1.0)
    with pytest.raises(ValueError, match="read-only"):
        clip_grad_value_([g], 1.0)


def test_clip_with_a_model_and_optimizer():
    """The usual loop: backward, clip, step."""
    rng = np.random.default_rng(0)
    model = fastgd.nn.MLP([4, 8, 2], seed=0)
    opt = fastgd.optim.SGD(model.parameters(), lr=0.1)
    X, y = rng.standard_normal((16, 4)).astype(np.float32), rng.integers(0, 2, 16)
    loss = fastgd.nn.CrossEntropyLoss()
    loss(model(X), y)
    model.backward(loss.backward())
    total = clip_grad_norm_(model.gradients(), 0.01)
    assert total > 0.01
    assert get_total_norm(model.gradients()) == pytest.approx(0.01, rel=1e-4)
    opt.step(model.gradients())


def test_inf_norm_with_an_empty_array_is_the_max_of_the_others():
    """(torch raises here; the max over all elements is well defined.)"""
    assert get_total_norm([np.zeros(0), np.array([-2.0, 1.0])], math.inf) == 2.0
