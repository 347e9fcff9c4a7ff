"""Layers of fastgd.nn: native vs reference, hand-computed values, finite differences,
input validation, initialisation and parameter storage."""
import warnings

import numpy as np
import pytest

from fastgd import nn
from fastgd.nn import init as nn_init

from nn_testutil import DTYPE_IDS, DTYPES, away_from_zero, fd_gradient, layer, tol

BACKENDS = ("native", "reference")
ACTS = [("relu", {}), ("leaky_relu", {"negative_slope": 0.01}),
        ("leaky_relu", {"negative_slope": 0.3}), ("leaky_relu", {"negative_slope": -0.5}),
        ("leaky_relu", {"negative_slope": 0.0}), ("leaky_relu", {"negative_slope": 2.0}),
        ("sigmoid", {}), ("tanh", {}), ("softmax", {}), ("identity", {})]
ACT_IDS = [f"{k}{kw.get('negative_slope', '')}" for k, kw in ACTS]

dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)


@pytest.fixture
def rng(request):
    return np.random.default_rng(sum(map(ord, request.node.nodeid)))


# ----------------------------------------------------------------------------- Linear

@dtypes
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("n", [1, 7, 64])
def test_linear_native_matches_reference(dtype, bias, n, rng):
    nat = nn.Linear(9, 5, bias=bias, dtype=dtype, seed=3)
    ref = nn.Linear(9, 5, bias=bias, dtype=dtype, seed=3, backend="reference")
    np.testing.assert_array_equal(nat.W, ref.W)
    if bias:
        nat.b = rng.standard_normal(5)
        ref.b = nat.b
    x = rng.standard_normal((n, 9)).astype(dtype)
    g = rng.standard_normal((n, 5)).astype(dtype)
    zn, zr = nat(x), ref(x)
    assert zn.dtype == dtype and zn.shape == (n, 5)
    np.testing.assert_allclose(zn, zr, **tol(dtype))
    np.testing.assert_allclose(zr, x.astype(np.float64) @ nat.W + (nat.b if bias else 0),
                               **tol(dtype))
    dxn, dxr = nat.backward(g), ref.backward(g)
    assert dxn.dtype == dtype and dxn.shape == x.shape
    np.testing.assert_allclose(dxn, dxr, **tol(dtype))
    np.testing.assert_allclose(nat.dW, ref.dW, **tol(dtype))
    if bias:
        np.testing.assert_allclose(nat.db, ref.db, **tol(dtype))
        np.testing.assert_allclose(nat.db, g.astype(np.float64).sum(0), **tol(dtype))
    else:
        assert nat.db is None and ref.db is None


@dtypes
@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_non_contiguous_input(dtype, backend, rng):
    layer_ = nn.Linear(4, 3, dtype=dtype, seed=0, backend=backend)
    big = rng.standard_normal((10, 8)).astype(dtype)
    x = big[::2, ::2]                       # strided view
    xf = np.asfortranarray(x)
    expect = np.ascontiguousarray(x).astype(np.float64) @ layer_.W
    np.testing.assert_allclose(layer_(x), expect, **tol(dtype))
    np.testing.assert_allclose(layer_(xf), expect, **tol(dtype))
    g = np.asfortranarray(rng.standard_normal((5, 3)).astype(dtype))
    dx = layer_.backward(g)
    np.testing.assert_allclose(dx, g.astype(np.float64) @ layer_.W.T, **tol(dtype))
    np.testing.assert_allclose(layer_.dW, x.T.astype(np.float64) @ g, **tol(dtype))


@dtypes
@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_hand_computed(dtype, backend):
    layer_ = nn.Linear(2, 3, dtype=dtype, init="zeros", backend=backend)
    layer_.W = [[1, 0, -1], [2, 1, 0]]
    layer_.b = [0.5, -1, 2]
    x = np.array([[1, 2], [3, 4]], dtype)
    np.testing.assert_array_equal(layer_(x), [[5.5, 1, 1], [11.5, 3, -1]])
    dx = layer_.backward(np.ones((2, 3), dtype))
    np.testing.assert_array_equal(layer_.dW, [[4, 4, 4], [6, 6, 6]])
    np.testing.assert_array_equal(layer_.db, [2, 2, 2])
    np.testing.assert_array_equal(dx, [[0, 3], [0, 3]])
    # gradients are overwritten, not accumulated
    layer_(x)
    layer_.backward(np.ones((2, 3), dtype))
    np.testing.assert_array_equal(layer_.db, [2, 2, 2])


@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_docstring_example(backend):
    layer_ = nn.Linear(3, 2, init="zeros", backend=backend)
    layer_.b[...] = [1, 2]
    out = layer_(np.ones((4, 3), np.float32))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.tile([1.0, 2.0], (4, 1)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_backward_finite_differences(backend, bias, rng):
    layer_ = nn.Linear(4, 3, bias=bias, dtype=np.float64, seed=1, backend=backend)
    if bias:
        layer_.b = rng.standard_normal(3)
    x = rng.standard_normal((5, 4))
    G = rng.standard_normal((5, 3))

    def f():
        return float(np.sum(G * layer_.predict(x)))

    layer_(x)
    dx = layer_.backward(G)
    np.testing.assert_allclose(dx, fd_gradient(f, x), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(layer_.dW, fd_gradient(f, layer_.W), rtol=1e-7, atol=1e-8)
    if bias:
        np.testing.assert_allclose(layer_.db, fd_gradient(f, layer_.b), rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_without_bias(backend):
    layer_ = nn.Linear(3, 2, bias=False, backend=backend)
    assert layer_.b is None and layer_.db is None
    assert len(layer_.parameters()) == 1 and layer_.parameters()[0] is layer_.W
    assert len(layer_.gradients()) == 1 and layer_.gradients()[0] is layer_.dW
    with pytest.raises(ValueError, match="no bias"):
        layer_.b = np.zeros(2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_empty_batch(backend):
    layer_ = nn.Linear(3, 2, dtype=np.float64, seed=0, backend=backend)
    layer_.b = [1.0, 2.0]
    out = layer_(np.zeros((0, 3)))
    assert out.shape == (0, 2)
    dx = layer_.backward(np.zeros((0, 2)))
    assert dx.shape == (0, 3)
    np.testing.assert_array_equal(layer_.dW, 0)
    np.testing.assert_array_equal(layer_.db, 0)


# ----------------------------------------------------------------------------- W/b storage

@dtypes
def test_parameter_setters_copy_into_storage(dtype, rng):
    layer_ = nn.Linear(3, 2, dtype=dtype, seed=0)
    W, b = layer_.W, layer_.b
    newW = rng.standard_normal((3, 2))          # float64: cast into the layer's dtype
    layer_.W = newW
    layer_.b = [7, 8]                           # lists and ints are accepted
    assert layer_.W is W and layer_.b is b
    assert layer_.parameters()[0] is W and layer_.parameters()[1] is b
    assert W.dtype == dtype and b.dtype == dtype
    np.testing.assert_allclose(W, newW, **tol(dtype))
    np.testing.assert_array_equal(b, [7, 8])
    newW[...] = 0                               # a copy: the caller's array is not aliased
    assert np.any(layer_.W != 0)


def test_parameter_setters_reject_bad_values():
    layer_ = nn.Linear(3, 2)
    before = layer_.W.copy()
    with pytest.raises(ValueError, match=r"W must have shape \(3, 2\)"):
        layer_.W = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"W must have shape"):
        layer_.W = np.zeros(6)
    with pytest.raises(ValueError, match=r"b must have shape \(2,\)"):
        layer_.b = np.zeros(3)
    with pytest.raises(TypeError, match="W must be numeric"):
        layer_.W = np.full((3, 2), "a")
    np.testing.assert_array_equal(layer_.W, before)


# ----------------------------------------------------------------------------- init

@pytest.mark.parametrize("scheme", ["he_uniform", "he_normal", "xavier_uniform", "xavier_normal"])
def test_init_statistics(scheme):
    fin, fout = 400, 300
    W = nn.Linear(fin, fout, dtype=np.float64, init=scheme, seed=123).W
    fan = fin if scheme.startswith("he") else (fin + fout) / 2
    var = 1.0 / fan * (2.0 if scheme.startswith("he") else 1.0)
    # he: 2 / fan_in; xavier: 2 / (fan_in + fan_out)
    expect_var = 2.0 / fin if scheme.startswith("he") else 2.0 / (fin + fout)
    assert var == pytest.approx(expect_var)
    assert abs(W.mean()) < 4 * np.sqrt(expect_var / W.size)
    assert W.var() == pytest.approx(expect_var, rel=0.03)
    if scheme.endswith("uniform"):
        bound = np.sqrt(3 * expect_var)         # sqrt(6 / fan_in) or sqrt(6 / (in + out))
        assert np.abs(W).max() <= bound
        assert np.abs(W).max() > 0.99 * bound
        # uniform: a quarter of the mass in each quarter of [-a, a]
        hist = np.histogram(W, bins=4, range=(-bound, bound))[0] / W.size
        np.testing.assert_allclose(hist, 0.25, atol=0.01)
    else:
        # normal: about 68.3 % within one standard deviation, and values beyond 3 sigma
        inside = np.mean(np.abs(W) < np.sqrt(expect_var))
        assert inside == pytest.approx(0.6827, abs=0.01)
        assert np.abs(W).max() > 3 * np.sqrt(expect_var)


@dtypes
def test_init_seed_determinism(dtype):
    a = nn.Linear(20, 10, dtype=dtype, seed=7)
    b = nn.Linear(20, 10, dtype=dtype, seed=7)
    c = nn.Linear(20, 10, dtype=dtype, seed=8)
    assert a.W.dtype == dtype
    np.testing.assert_array_equal(a.W, b.W)
    assert not np.array_equal(a.W, c.W)
    np.testing.assert_array_equal(a.b, 0)
    # reset_parameters draws the same weights again from an int seed
    a.W[...] = 0
    a.b[...] = 5
    a.reset_parameters()
    np.testing.assert_array_equal(a.W, b.W)
    np.testing.assert_array_equal(a.b, 0)
    # no seed: fresh randomness
    assert not np.array_equal(nn.Linear(20, 10).W, nn.Linear(20, 10).W)
    # a Generator seed is used as given
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(nn.Linear(4, 3, seed=g1).W, nn.Linear(4, 3, seed=g2).W)


def test_init_zeros_and_float32_bounds():
    np.testing.assert_array_equal(nn.Linear(5, 4, init="zeros").W, 0)
    W = nn.Linear(50, 30, init="he_uniform", seed=0).W
    assert W.dtype == np.float32
    assert np.abs(W).max() <= np.float32(np.sqrt(6 / 50))


@pytest.mark.parametrize("nxt, scheme", [
    (lambda: nn.ReLU(), "he_uniform"),
    (lambda: nn.LeakyReLU(0.1), "he_uniform"),
    (lambda: nn.Tanh(), "xavier_uniform"),
    (lambda: nn.Sigmoid(), "xavier_uniform"),
    (lambda: nn.Linear(6, 2, seed=99), "xavier_uniform"),
    (None, "xavier_uniform"),
])
def test_auto_init_follows_next_layer_in_sequential(nxt, scheme):
    expect = nn.Linear(3, 6, init=scheme, seed=11).W
    alone = nn.Linear(3, 6, seed=11)
    np.testing.assert_array_equal(alone.W, nn.Linear(3, 6, init="xavier_uniform", seed=11).W)
    lin = nn.Linear(3, 6, seed=11)
    W = lin.W
    nn.Sequential(lin, *([nxt()] if nxt else []))
    assert lin.W is W
    np.testing.assert_array_equal(lin.W, expect)


def test_explicit_init_is_kept_in_sequential():
    lin = nn.Linear(3, 6, init="xavier_normal", seed=2)
    before = lin.W.copy()
    nn.Sequential(lin, nn.ReLU())
    np.testing.assert_array_equal(lin.W, before)


def test_init_draw_rejects_unknown_scheme():
    with pytest.raises(ValueError, match="init must be one of"):
        nn_init.draw("glorot", 2, 2, np.random.default_rng(0), np.float32)
    assert nn_init.for_activation("ReLU") == "he_uniform"
    assert nn_init.for_activation("Tanh") == "xavier_uniform"


def test_linear_constructor_errors():
    with pytest.raises(ValueError, match="init must be one of"):
        nn.Linear(2, 2, init="kaiming")
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        nn.Linear(2, 2, dtype=np.int32)
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        nn.Linear(2, 2, dtype=np.float16)
    with pytest.raises(ValueError, match="in_features must be >= 1"):
        nn.Linear(0, 2)
    with pytest.raises(TypeError, match="out_features must be an int"):
        nn.Linear(2, 2.0)
    with pytest.raises(TypeError, match="in_features must be an int"):
        nn.Linear(True, 2)
    with pytest.raises(ValueError, match="backend"):
        nn.Linear(2, 2, backend="cuda")


# ----------------------------------------------------------------------------- activations

@dtypes
@pytest.mark.parametrize("kind, kw", ACTS, ids=ACT_IDS)
@pytest.mark.parametrize("shape", [(1, 1), (6, 5), (33, 17)])
def test_activation_native_matches_reference(dtype, kind, kw, shape, rng):
    nat, ref = layer(kind, "native", **kw), layer(kind, "reference", **kw)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    an, ar = nat(x), ref(x)
    assert an.dtype == dtype and an.shape == shape
    np.testing.assert_allclose(an, ar, **tol(dtype))
    dn, dr = nat.backward(g), ref.backward(g)
    assert dn.dtype == dtype and dn.shape == shape
    np.testing.assert_allclose(dn, dr, **tol(dtype))


@dtypes
@pytest.mark.parametrize("kind, kw", [a for a in ACTS if a[0] != "softmax"],
                         ids=[i for i in ACT_IDS if i != "softmax"])
@pytest.mark.parametrize("shape", [(7,), (2, 3, 4)])
def test_elementwise_activation_any_ndim(dtype, kind, kw, shape, rng):
    nat, ref = layer(kind, "native", **kw), layer(kind, "reference", **kw)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    np.testing.assert_allclose(nat(x), ref(x), **tol(dtype))
    np.testing.assert_allclose(nat.backward(g), ref.backward(g), **tol(dtype))


@dtypes
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind, kw", ACTS, ids=ACT_IDS)
def test_activation_non_contiguous(dtype, backend, kind, kw, rng):
    a = layer(kind, backend, **kw)
    x = (rng.standard_normal((8, 10)) * 2).astype(dtype)[::2, 1::2]
    expect = layer(kind, "reference", **kw)(np.ascontiguousarray(x))
    np.testing.assert_allclose(a(x), expect, **tol(dtype))
    g = np.asfortranarray(rng.standard_normal(x.shape).astype(dtype))
    ref = layer(kind, "reference", **kw)
    ref(np.ascontiguousarray(x))
    np.testing.assert_allclose(a.backward(g), ref.backward(np.ascontiguousarray(g)),
                               **tol(dtype))


@dtypes
@pytest.mark.parametrize("backend", BACKENDS)
def test_relu_hand_computed(dtype, backend):
    r = nn.ReLU(backend=backend)
    x = np.array([-2.0, -0.0, 0.0, 0.5, 3.0], dtype)
    np.testing.assert_array_equal(r(x), [0, 0, 0, 0.5, 3])
    np.testing.assert_array_equal(r.backward(np.full(5, 2.0, dtype)), [0, 0, 0, 2, 2])
    np.testing.assert_array_equal(r(np.array([-1.0, 2.0], dtype)), [0.0, 2.0])


@dtypes
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("slope", [0.1, 0.0, -0.5, 1.0, 3.0])
def test_leaky_relu_hand_computed(dtype, backend, slope):
    r = nn.LeakyReLU(slope, backend=backend)
    assert r.slope == slope
    x = np.array([-2.0, -1.0, 0.0, 0.5, 3.0], dtype)
    s = dtype(slope)
    np.testing.assert_array_equal(r(x), [-2 * s, -s, 0, 0.5, 3])
    np.testing.assert_array_equal(r.backward(np.ones(5, dtype)), [s, s, s, 1, 1])


def test_leaky_relu_default_and_errors():
    assert nn.LeakyReLU().slope == 0.01
    assert "negative_slope=0.2" in repr(nn.LeakyReLU(0.2))
    with pytest.raises(TypeError, match="negative_slope"):
        nn.LeakyReLU("0.1")
    with pytest.raises(ValueError, match="negative_slope must be finite"):
        nn.LeakyReLU(float("nan"))


@dtypes
@pytest.mark.parametrize("backend", BACKENDS)
def test_sigmoid_hand_computed(dtype, backend):
    s = nn.Sigmoid(backend=backend)
    x = np.array([0.0, np.log(3.0), -np.log(3.0)], dtype)
    np.testing.assert_allclose(s(x), [0.5, 0.75, 0.25], **tol(dtype))
    np.testing.assert_allclose(s.backward(np.ones(3, dtype)), [0.25, 0.1875, 0.1875],
                               **tol(dtype))


@dtypes
@pytest.mark.parametrize("backend", BACKENDS)
def test_sigmoid_large_inputs_no_overflow(dtype, backend):
    s = nn.Sigmoid(backend=backend)
    big = 1e4 if dtype == np.float32 else 1e300
    x = np.array([-big, -1000.0, -100.0, -50.0, 0.0, 50.0, 100.0, 1000.0, big], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            y = s(x)
            d = s.backward(np.ones_like(x))
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(d))
    assert np.all((y >= 0) & (y <= 1))
    np.testing.assert_array_equal(y[[0, 1]], 0)
    np.testing.assert_array_equal(y[[-2, -1]], 1)
    assert y[4] == 0.5
    np.testing.assert_allclose(y[3], np.exp(-50.0) / (1 + np.exp(-50.0)), rtol=1e-5)
    assert np.all(np.diff(y) >= 0)


@dtypes
@pytest.mark.parametrize("backend", BACKENDS)
def test_tanh_hand_computed(dtype, backend):
    t = nn.Tanh(backend=backend)
    x = np.array([0.0, np.arctanh(0.5), -np.arctanh(0.5), 30.0, -1e4], dtype)
    np.testing.assert_allclose(t(x), [0, 0.5, -0.5, 1, -1], **tol(dtype))
    np.testing.assert_allclose(t.backward(np.ones(5, dtype)), [1, 0.75, 0.75, 0, 0],
                               rtol=tol(dtype)["rtol"], atol=10 * tol(dtype)["atol"])


@dtypes
@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_hand_computed(dtype, backend):
    s = nn.Softmax(backend=backend)
    np.testing.assert_array_equal(s(np.zeros((2, 4), dtype)), np.full((2, 4), 0.25))
    y = s(np.array([[0.0, np.log(2.0), np.log(5.0)]], dtype))
    np.testing.assert_allclose(y, [[1 / 8, 2 / 8, 5 / 8]], **tol(dtype))
    s(np.zeros((1, 2), dtype))
    np.testing.assert_allclose(s.backward(np.array([[1.0, 0.0]], dtype)), [[0.25, -0.25]],
                               **tol(dtype))
    # shift invariance
    x = np.array([[1.0, 2.0, 3.0]], dtype)
    np.testing.assert_allclose(s(x), s(x + dtype(100)), **tol(dtype))


@dtypes
@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_huge_logits(dtype, backend):
    s = nn.Softmax(backend=backend)
    big = 1e30 if dtype == np.float32 else 1e300
    x = np.array([[1e4, 0.0, -1e4], [big, big, big], [-big, 0.0, -big], [big, -big, 0.0]],
                 dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = s(x)
        d = s.backward(np.ones_like(x))
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(d))
    np.testing.assert_allclose(y, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0, 1, 0], [1, 0, 0]],
                               **tol(dtype))
    np.testing.assert_allclose(y.sum(axis=1), 1, **tol(dtype))


@dtypes
@pytest.mark.parametrize("backend", BACKENDS)
def test_identity_is_a_copy(dtype, backend):
    i = nn.Identity(backend=backend)
    x = np.array([[1.0, -2.0]], dtype)
    y = i(x)
    np.testing.assert_array_equal(y, x)
    y[...] = 0
    np.testing.assert_array_equal(x, [[1.0, -2.0]])
    g = np.array([[3.0, 4.0]], dtype)
    d = i.backward(g)
    np.testing.assert_array_equal(d, g)
    assert not np.shares_memory(d, g)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind, kw", ACTS, ids=ACT_IDS)
def test_activation_backward_finite_differences(backend, kind, kw, rng):
    a = layer(kind, backend, **kw)
    x = away_from_zero(rng, (4, 5), np.float64)
    G = rng.standard_normal((4, 5))

    def f():
        return float(np.sum(G * a.predict(x)))

    a(x)
    np.testing.assert_allclose(a.backward(G), fd_gradient(f, x), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_backward_directional_derivative(backend, rng):
    s = nn.Softmax(backend=backend)
    x = rng.standard_normal((6, 9)) * 2
    G = rng.standard_normal((6, 9))
    v = rng.standard_normal((6, 9))
    eps = 1e-6
    fd = (np.sum(G * s.predict(x + eps * v)) - np.sum(G * s.predict(x - eps * v))) / (2 * eps)
    s(x)
    assert np.sum(s.backward(G) * v) == pytest.approx(fd, rel=1e-6, abs=1e-9)


# ----------------------------------------------------------------------------- validation

ALL_LAYERS = [lambda b: nn.Linear(3, 2, seed=0, backend=b)] + \
    [lambda b, k=k, kw=kw: layer(k, b, **kw) for k, kw in ACTS]
ALL_IDS = ["linear"] + ACT_IDS


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("make", ALL_LAYERS, ids=ALL_IDS)
def test_non_array_input_raises_type_error(backend, make):
    with pytest.raises(TypeError, match="x must be a numpy.ndarray, got list"):
        make(backend)([[1.0, 2.0, 3.0]])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("make", ALL_LAYERS, ids=ALL_IDS)
@pytest.mark.parametrize("bad", [np.int64, np.float16, np.complex128, np.bool_])
def test_non_float_input_raises_type_error(backend, make, bad):
    with pytest.raises(TypeError, match=r"^x "):
        make(backend)(np.ones((2, 3), bad))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("make", ALL_LAYERS, ids=ALL_IDS)
def test_backward_before_forward_raises(backend, make):
    with pytest.raises(RuntimeError, match=r"backward\(\) needs a forward\(\) first"):
        make(backend).backward(np.ones((2, 3), np.float32))


@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_input_errors(backend):
    layer_ = nn.Linear(3, 2, backend=backend)
    with pytest.raises(TypeError, match=r"x has dtype float64 but the layer is float32"):
        layer_(np.ones((2, 3)))
    with pytest.raises(ValueError, match="x has 4 features, expected 3"):
        layer_(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="x must be 2-D"):
        layer_(np.ones(3, np.float32))
    layer_(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="grad_output has shape"):
        layer_.backward(np.ones((3, 2), np.float32))
    with pytest.raises(TypeError, match="grad_output has dtype float64"):
        layer_.backward(np.ones((2, 2)))
    with pytest.raises(TypeError, match="grad_output must be a numpy.ndarray"):
        layer_.backward([[1.0, 1.0], [1.0, 1.0]])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind, kw", ACTS, ids=ACT_IDS)
def test_activation_grad_output_errors(backend, kind, kw):
    a = layer(kind, backend, **kw)
    a(np.ones((2, 3), np.float64))
    with pytest.raises(ValueError, match="grad_output has shape"):
        a.backward(np.ones((3, 2)))
    with pytest.raises(TypeError, match="grad_output has dtype float32"):
        a.backward(np.ones((2, 3), np.float32))


@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_over_the_last_axis_of_any_shape(backend):
    x = np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 7
    layer = nn.Softmax(backend=backend)
    y = layer(x)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(axis=-1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(layer(np.zeros(4)), np.full(4, 0.25))
    g = np.linspace(-1, 1, 24).reshape(2, 3, 4)
    layer(x)
    expected = y * (g - (g * y).sum(axis=-1, keepdims=True))
    np.testing.assert_allclose(layer.backward(g), expected, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="at least one axis"):
        layer(np.ones(()))


def test_activation_backend_error():
    with pytest.raises(ValueError, match="backend must be 'native' or 'reference'"):
        nn.ReLU(backend="fast")


@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_predict_keeps_pending_backward(backend, rng):
    layer_ = nn.Linear(4, 3, dtype=np.float64, seed=0, backend=backend)
    x1, x2 = rng.standard_normal((5, 4)), rng.standard_normal((9, 4))
    g = rng.standard_normal((5, 3))
    layer_(x1)
    expect_dx = layer_.backward(g)
    expect_dW = layer_.dW.copy()
    layer_(x1)
    out = layer_.predict(x2, batch_size=4)
    np.testing.assert_allclose(out, x2 @ layer_.W + layer_.b, rtol=1e-12)
    np.testing.assert_array_equal(layer_.backward(g), expect_dx)
    np.testing.assert_array_equal(layer_.dW, expect_dW)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        layer_.predict(x2, batch_size=0)
