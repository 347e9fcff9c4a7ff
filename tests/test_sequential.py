"""Sequential: the compiled native program (fused Linear + activation) against the
layer-by-layer reference, parameter storage, predict, MLP, errors, and torch parity."""
import numpy as np
import pytest

from fastgd import nn

from nn_testutil import (ARCHS, DTYPE_IDS, DTYPES, build, copy_params, fd_gradient, tol)

dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
archs = pytest.mark.parametrize("arch", sorted(ARCHS))
BACKENDS = ("native", "reference")


@pytest.fixture
def rng(request):
    return np.random.default_rng(sum(map(ord, request.node.nodeid)))


def pair(arch, dtype, rng):
    """A native and a reference model with identical (copied) weights and random biases."""
    nat = build(arch, dtype, "native", seed=0)
    ref = build(arch, dtype, "reference", seed=100)
    for p in nat.parameters():
        p[...] = rng.standard_normal(p.shape) * 0.7
    copy_params(nat, ref)
    return nat, ref


def first_width(model):
    return model.in_features


# ----------------------------------------------------------------------------- compiled vs reference

@dtypes
@archs
@pytest.mark.parametrize("n", [1, 13, 100])
def test_native_program_matches_reference(dtype, arch, n, rng):
    nat, ref = pair(arch, dtype, rng)
    assert nat.program is not None and ref.program is None
    assert nat.backend == "native" and ref.backend == "reference"
    x = rng.standard_normal((n, nat.in_features)).astype(dtype)
    yn, yr = nat.forward(x), ref.forward(x)
    assert yn.dtype == dtype and yn.shape == (n, nat.out_features)
    np.testing.assert_allclose(yn, yr, **tol(dtype))
    g = rng.standard_normal(yn.shape).astype(dtype)
    dxn, dxr = nat.backward(g), ref.backward(g)
    assert dxn.dtype == dtype and dxn.shape == x.shape
    np.testing.assert_allclose(dxn, dxr, **tol(dtype))
    gn, gr = nat.gradients(), ref.gradients()
    assert len(gn) == len(gr) == len(nat.parameters())
    for a, b in zip(gn, gr):
        np.testing.assert_allclose(a, b, **tol(dtype))


@dtypes
def test_program_reused_across_batch_sizes(dtype, rng):
    """Buffers grow with the batch and stay correct when it shrinks again."""
    nat, ref = pair("mixed", dtype, rng)
    for n in (3, 40, 2, 200, 17):
        x = rng.standard_normal((n, 5)).astype(dtype)
        g = rng.standard_normal((n, 3)).astype(dtype)
        np.testing.assert_allclose(nat.forward(x), ref.forward(x), **tol(dtype))
        np.testing.assert_allclose(nat.backward(g), ref.backward(g), **tol(dtype))
        for a, b in zip(nat.gradients(), ref.gradients()):
            np.testing.assert_allclose(a, b, **tol(dtype))


@dtypes
def test_native_non_contiguous_input(dtype, rng):
    nat, ref = pair("mixed", dtype, rng)
    big = rng.standard_normal((20, 10)).astype(dtype)
    x = big[::2, ::2]
    np.testing.assert_allclose(nat.forward(x), ref.forward(np.ascontiguousarray(x)),
                               **tol(dtype))
    g = np.asfortranarray(rng.standard_normal((10, 3)).astype(dtype))
    np.testing.assert_allclose(nat.backward(g), ref.backward(np.ascontiguousarray(g)),
                               **tol(dtype))


@pytest.mark.parametrize("backend", BACKENDS)
@archs
def test_backward_matches_finite_differences(backend, arch, rng):
    model = build(arch, np.float64, backend, seed=3)
    for p in model.parameters():
        p[...] = rng.standard_normal(p.shape) * 0.7
    x = rng.standard_normal((4, model.in_features))
    G = rng.standard_normal((4, model.out_features))

    def f():
        return float(np.sum(G * model.predict(x)))

    model.forward(x)
    dx = model.backward(G)
    grads = [g.copy() for g in model.gradients()]
    np.testing.assert_allclose(dx, fd_gradient(f, x), rtol=1e-6, atol=1e-8)
    for p, g in zip(model.parameters(), grads):
        np.testing.assert_allclose(g, fd_gradient(f, p), rtol=1e-6, atol=1e-8)


@dtypes
def test_relu_kink_and_leaky_negative_slope_fused(dtype):
    """Fused epilogue at exact zeros and with a negative leaky slope, by hand."""
    for backend in BACKENDS:
        lin = nn.Linear(2, 3, dtype=dtype, init="zeros", backend=backend)
        lin.W = [[1, -1, 0], [0, 0, 0]]
        model = nn.Sequential(lin, nn.LeakyReLU(-0.5, backend=backend))
        x = np.array([[2.0, 5.0], [-4.0, 1.0]], dtype)
        np.testing.assert_array_equal(model.forward(x), [[2, 1, 0], [2, 4, 0]])
        dx = model.backward(np.ones((2, 3), dtype))
        # dz = [[1, -0.5, -0.5], [-0.5, 1, -0.5]]; dW = x^T dz; dx = dz W^T
        np.testing.assert_array_equal(lin.dW, [[4, -5, 1], [4.5, -1.5, -3]])
        np.testing.assert_array_equal(lin.db, [0.5, 0.5, -1])
        np.testing.assert_array_equal(dx, [[1.5, 0], [-1.5, 0]])
        relu = nn.Sequential(nn.Linear(2, 3, dtype=dtype, init="zeros", backend=backend),
                             nn.ReLU(backend=backend))
        np.testing.assert_array_equal(relu.forward(x), 0)
        relu.backward(np.ones((2, 3), dtype))
        np.testing.assert_array_equal(relu.gradients()[0], 0)   # ReLU'(0) = 0
        np.testing.assert_array_equal(relu.gradients()[1], 0)


# ----------------------------------------------------------------------------- storage

@pytest.mark.parametrize("backend", BACKENDS)
@dtypes
def test_parameters_are_the_model_storage(backend, dtype, rng):
    model = build("mixed", dtype, backend)
    linears = [l for l in model.layers if isinstance(l, nn.Linear)]
    params, grads = model.parameters(), model.gradients()
    assert [p.shape for p in params] == [(5, 7), (7,), (7, 6), (6,), (6, 4), (4,), (4, 3), (3,)]
    expect = [a for l in linears for a in (l.W, l.b)]
    assert all(p is e for p, e in zip(params, expect))
    assert all(g is e for g, e in zip(grads, [a for l in linears for a in (l.dW, l.db)]))
    x = rng.standard_normal((6, 5)).astype(dtype)
    before = model.forward(x)
    params[2][...] = 0                      # the second Linear's W, through parameters()
    after = model.forward(x)
    assert not np.allclose(before, after)
    ref = build("mixed", dtype, "reference")
    copy_params(model, ref)
    np.testing.assert_allclose(after, ref.forward(x), **tol(dtype))
    # W setter on a layer: the compiled program sees it too
    linears[0].W = np.zeros((5, 7))
    linears[0].b = np.ones(7)
    row = model.forward(x[:1])
    np.testing.assert_allclose(model.forward(x), np.tile(row, (6, 1)), **tol(dtype))
    # backward writes into the same gradient arrays
    model.backward(rng.standard_normal((6, 3)).astype(dtype))   # (softmax kills constants)
    assert all(g is e for g, e in zip(model.gradients(), grads))
    assert any(np.any(g != 0) for g in grads)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_overwritten_not_accumulated(backend, rng):
    model = build("mixed", np.float64, backend)
    x = rng.standard_normal((4, 5))
    g = rng.standard_normal((4, 3))
    model.forward(x)
    model.backward(g)
    first = [a.copy() for a in model.gradients()]
    model.forward(x)
    model.backward(g)
    for a, b in zip(first, model.gradients()):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- predict

@pytest.mark.parametrize("backend", BACKENDS)
@dtypes
@pytest.mark.parametrize("batch_size", [1, 7, 50, 1024])
def test_predict_in_batches_equals_forward(backend, dtype, batch_size, rng):
    model = build("mixed", dtype, backend)
    x = rng.standard_normal((50, 5)).astype(dtype)
    out = model.predict(x, batch_size=batch_size)
    assert out.dtype == dtype and out.shape == (50, 3)
    np.testing.assert_allclose(out, model.forward(x), **tol(dtype))


@pytest.mark.parametrize("backend", BACKENDS)
@archs
def test_predict_does_not_disturb_pending_backward(backend, arch, rng):
    model = build(arch, np.float64, backend)
    x1 = rng.standard_normal((8, model.in_features))
    x2 = rng.standard_normal((30, model.in_features)) * 3
    g = rng.standard_normal((8, model.out_features))
    model.forward(x1)
    expect_dx = model.backward(g)
    expect = [a.copy() for a in model.gradients()]
    model.forward(x1)
    model.predict(x2, batch_size=11)
    model.predict(x2[:3])
    dx = model.backward(g)
    np.testing.assert_array_equal(dx, expect_dx)
    for a, b in zip(model.gradients(), expect):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_sees_parameter_changes(backend, rng):
    model = build("mixed", np.float64, backend)
    x = rng.standard_normal((5, 5))
    a = model.predict(x)
    for p in model.parameters():
        p *= 0.5
    b = model.predict(x)
    assert not np.allclose(a, b)
    np.testing.assert_allclose(b, model.forward(x), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_errors(backend):
    model = build("mixed", np.float32, backend)
    with pytest.raises(TypeError, match="X has dtype float64 but the layer is float32"):
        model.predict(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="X has 4 features, expected 5"):
        model.predict(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        model.predict(np.zeros((2, 5), np.float32), batch_size=0)
    with pytest.raises(TypeError, match="batch_size must be an int, got float"):
        model.predict(np.zeros((2, 5), np.float32), batch_size=2.0)
    assert model.predict(np.zeros((0, 5), np.float32)).shape == (0, 3)


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_backward_errors(backend):
    model = build("mixed", np.float32, backend)
    with pytest.raises(RuntimeError, match=r"needs a forward\(\) first"):
        model.backward(np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="x has dtype float64"):
        model.forward(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="x has 6 features, expected 5"):
        model.forward(np.zeros((2, 6), np.float32))
    with pytest.raises(TypeError, match="x must be a numpy.ndarray"):
        model.forward([[0.0] * 5])
    model.forward(np.zeros((2, 5), np.float32))
    with pytest.raises(TypeError, match="grad_output has dtype float64"):
        model.backward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="grad_output"):
        model.backward(np.zeros((3, 3), np.float32))


def test_construction_errors():
    with pytest.raises(ValueError, match="share one dtype"):
        nn.Sequential(nn.Linear(3, 4, dtype=np.float32), nn.ReLU(),
                      nn.Linear(4, 2, dtype=np.float64))
    with pytest.raises(ValueError, match=r"layers\[2\] takes 5 features but the layer before gives 4"):
        nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(5, 2))
    with pytest.raises(ValueError, match=r"layers\[1\] takes 5 features"):
        nn.Sequential(nn.Linear(3, 4), nn.Linear(5, 2))
    with pytest.raises(TypeError, match=r"layers\[1\] must be a fastgd.nn layer, got function"):
        nn.Sequential(nn.Linear(3, 4), lambda x: x)
    with pytest.raises(TypeError, match=r"layers\[0\] must be a fastgd.nn layer, got MSELoss"):
        nn.Sequential(nn.MSELoss())
    with pytest.raises(ValueError, match="at least one layer"):
        nn.Sequential()


def test_mixed_backends_run_layer_by_layer(rng):
    model = nn.Sequential(nn.Linear(3, 4, dtype=np.float64, seed=0), nn.Tanh(backend="reference"),
                          nn.Linear(4, 2, dtype=np.float64, seed=1))
    assert model.backend == "reference" and model.program is None
    ref = nn.Sequential(nn.Linear(3, 4, dtype=np.float64, seed=0, backend="reference"),
                        nn.Tanh(backend="reference"),
                        nn.Linear(4, 2, dtype=np.float64, seed=1, backend="reference"))
    x = rng.standard_normal((5, 3))
    np.testing.assert_allclose(model.forward(x), ref.forward(x), rtol=1e-12)


def test_nested_sequential_is_flattened_and_indexable():
    inner = nn.Sequential(nn.Linear(3, 4, seed=0), nn.ReLU())
    outer = nn.Sequential(inner, nn.Linear(4, 2, seed=1))
    assert len(outer) == 3
    assert outer[0] is inner[0] and isinstance(outer[1], nn.ReLU)
    assert outer.in_features == 3 and outer.out_features == 2
    assert "(2): Linear(in_features=4, out_features=2" in repr(outer)
    assert outer.parameters()[0] is inner[0].W


def test_sequential_without_linear_predict():
    model = nn.Sequential(nn.ReLU(), nn.Tanh())
    x = np.array([[-1.0, 2.0]])
    np.testing.assert_allclose(model.forward(x), np.tanh([[0.0, 2.0]]))
    np.testing.assert_allclose(model.predict(x), np.tanh([[0.0, 2.0]]))


# ----------------------------------------------------------------------------- MLP

@pytest.mark.parametrize("activation, cls", [("relu", nn.ReLU), ("leaky_relu", nn.LeakyReLU),
                                             ("sigmoid", nn.Sigmoid), ("tanh", nn.Tanh)])
def test_mlp_structure(activation, cls):
    m = nn.MLP([6, 8, 5, 3], activation=activation, dtype=np.float64, seed=0)
    kinds = [type(l) for l in m.layers]
    assert kinds == [nn.Linear, cls, nn.Linear, cls, nn.Linear]
    assert [(l.in_features, l.out_features) for l in m.layers if isinstance(l, nn.Linear)] == \
        [(6, 8), (8, 5), (5, 3)]
    assert all(p.dtype == np.float64 for p in m.parameters())
    assert m.program is not None
    assert m.in_features == 6 and m.out_features == 3
    # He (ReLU-like) or Xavier bounds for hidden layers
    lin = m.layers[0]
    bound = np.sqrt(6 / 6) if activation in ("relu", "leaky_relu") else np.sqrt(6 / 14)
    assert np.abs(lin.W).max() <= bound
    np.testing.assert_array_equal(lin.b, 0)


def test_mlp_seed_and_backend(rng):
    a = nn.MLP([4, 16, 3], seed=1)
    b = nn.MLP([4, 16, 3], seed=1)
    c = nn.MLP([4, 16, 3], seed=2)
    r = nn.MLP([4, 16, 3], seed=1, backend="reference")
    assert r.backend == "reference" and r.program is None
    for p, q, s in zip(a.parameters(), b.parameters(), r.parameters()):
        np.testing.assert_array_equal(p, q)
        np.testing.assert_array_equal(p, s)
    assert not np.array_equal(a.parameters()[0], c.parameters()[0])
    # the two layers get different weights (distinct child seeds)
    assert not np.array_equal(a.parameters()[0][:3, :3], a.parameters()[2][:3, :3])
    x = rng.standard_normal((9, 4)).astype(np.float32)
    np.testing.assert_allclose(a.forward(x), r.forward(x), **tol(np.float32))


def test_mlp_errors():
    with pytest.raises(ValueError, match="activation must be one of"):
        nn.MLP([2, 3], activation="gelu")
    with pytest.raises(ValueError, match="sizes needs at least an input and an output"):
        nn.MLP([2])
    m = nn.MLP([2, 3])
    assert len(m) == 1 and isinstance(m[0], nn.Linear)


# ----------------------------------------------------------------------------- torch

TORCH_ACTS = {"relu": lambda t, kw: t.nn.ReLU(), "tanh": lambda t, kw: t.nn.Tanh(),
              "sigmoid": lambda t, kw: t.nn.Sigmoid(), "identity": lambda t, kw: t.nn.Identity(),
              "softmax": lambda t, kw: t.nn.Softmax(dim=-1),
              "leaky_relu": lambda t, kw: t.nn.LeakyReLU(kw["negative_slope"])}


@dtypes
@archs
def test_matches_torch_eager(dtype, arch, rng):
    torch = pytest.importorskip("torch")
    nat, _ = pair(arch, dtype, rng)
    tdt = torch.float32 if dtype == np.float32 else torch.float64
    mods, lin_t = [], []
    for item, lyr in zip(ARCHS[arch], nat.layers):
        if item[0] == "linear":
            m = torch.nn.Linear(item[1], item[2], bias=item[3], dtype=tdt)
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(lyr.W.T.copy()))
                if item[3]:
                    m.bias.copy_(torch.from_numpy(lyr.b.copy()))
            lin_t.append(m)
            mods.append(m)
        else:
            mods.append(TORCH_ACTS[item[0]](torch, item[1]))
    tm = torch.nn.Sequential(*mods)
    x = rng.standard_normal((12, nat.in_features)).astype(dtype)
    g = rng.standard_normal((12, nat.out_features)).astype(dtype)
    tx = torch.tensor(x, requires_grad=True)
    ty = tm(tx)
    ty.backward(torch.from_numpy(g))
    t = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(nat.forward(x), ty.detach().numpy(), **t)
    np.testing.assert_allclose(nat.backward(g), tx.grad.numpy(), **t)
    grads = iter(nat.gradients())
    for m in lin_t:
        np.testing.assert_allclose(next(grads), m.weight.grad.numpy().T, **t)
        if m.bias is not None:
            np.testing.assert_allclose(next(grads), m.bias.grad.numpy(), **t)
