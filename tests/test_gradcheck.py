"""fastgd.gradcheck: backprop against central differences on every layer, every loss and a
deep model; broken gradients are caught."""
import numpy as np
import pytest

import fastgd
from fastgd import nn

from nn_testutil import build, layer

BACKENDS = ("native", "reference")
backends = pytest.mark.parametrize("backend", BACKENDS)
ACTS = [("relu", {}), ("leaky_relu", {"negative_slope": 0.1}),
        ("leaky_relu", {"negative_slope": -0.4}), ("sigmoid", {}), ("tanh", {}),
        ("softmax", {}), ("identity", {})]
ACT_IDS = ["relu", "leaky0.1", "leaky-0.4", "sigmoid", "tanh", "softmax", "identity"]


def data(kind, n=6, fin=4, fout=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, fin))
    if kind == "cross_entropy":
        y = rng.integers(0, fout, n)
    elif kind == "bce_with_logits":
        y = rng.uniform(0, 1, (n, fout))
    else:
        y = rng.standard_normal((n, fout))
    return X, y


@backends
@pytest.mark.parametrize("bias", [True, False])
def test_linear(backend, bias):
    model = nn.Sequential(nn.Linear(4, 3, bias=bias, dtype=np.float64, seed=0, backend=backend))
    X, y = data("mse")
    assert fastgd.gradcheck(model, X, y, "mse") < 1e-6


@backends
@pytest.mark.parametrize("kind, kw", ACTS, ids=ACT_IDS)
@pytest.mark.parametrize("position", ["after", "between"])
def test_every_activation(backend, kind, kw, position):
    act = layer(kind, backend, **kw)
    if position == "after":
        layers = [nn.Linear(4, 3, dtype=np.float64, seed=1, backend=backend), act]
    else:   # activation between two Linears: it is backpropagated into the first
        layers = [nn.Linear(4, 5, dtype=np.float64, seed=1, backend=backend), act,
                  nn.Linear(5, 3, dtype=np.float64, seed=2, backend=backend)]
    model = nn.Sequential(*layers)
    for p in model.parameters():        # nonzero biases
        p += 0.1
    X, y = data("mse", seed=3)
    assert fastgd.gradcheck(model, X, y, "mse") < 1e-6


@backends
@pytest.mark.parametrize("kind", ["mse", "cross_entropy", "bce_with_logits"])
def test_every_loss(backend, kind):
    model = nn.MLP([4, 5, 3], activation="tanh", dtype=np.float64, seed=0, backend=backend)
    X, y = data(kind, seed=4)
    assert fastgd.gradcheck(model, X, y, kind) < 1e-6
    loss = fastgd.nn.losses.by_name(kind)(backend=backend)
    assert fastgd.gradcheck(model, X, y, loss) < 1e-6


@backends
@pytest.mark.parametrize("arch", ["mixed", "consecutive_linears_act_first", "act_after_fused"])
def test_deep_mixed_model(backend, arch):
    model = build(arch, np.float64, backend, seed=5)
    rng = np.random.default_rng(6)
    for p in model.parameters():
        p[...] = rng.standard_normal(p.shape) * 0.5   # not saturated: no tiny entries
    X = rng.standard_normal((8, model.in_features))
    y = rng.integers(0, model.out_features, 8)
    assert fastgd.gradcheck(model, X, y, "cross_entropy") < 1e-6
    y2 = rng.standard_normal((8, model.out_features))
    assert fastgd.gradcheck(model, X, y2, "mse") < 1e-6


def test_docstring_example():
    model = fastgd.nn.MLP([3, 4, 2], activation="tanh", dtype=np.float64, seed=0)
    X = np.random.default_rng(0).standard_normal((5, 3))
    assert fastgd.gradcheck(model, X, np.array([0, 1, 1, 0, 1]), "cross_entropy") < 1e-6


def test_sampled_entries_and_parameters_unchanged():
    model = nn.MLP([10, 20, 3], activation="sigmoid", dtype=np.float64, seed=0)
    X, y = data("cross_entropy", fin=10, seed=1)
    before = [p.copy() for p in model.parameters()]
    assert fastgd.gradcheck(model, X, y, "cross_entropy", max_checks_per_param=5, seed=3) < 1e-6
    for a, b in zip(before, model.parameters()):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- broken gradients

def test_broken_layer_backward_is_detected(monkeypatch):
    """A reference layer whose backward returns twice the right gradient."""
    model = nn.MLP([4, 5, 3], activation="tanh", dtype=np.float64, seed=0, backend="reference")
    X, y = data("mse", seed=2)
    assert fastgd.gradcheck(model, X, y, "mse") < 1e-6
    tanh = model.layers[1]
    right = tanh.backward
    monkeypatch.setattr(tanh, "backward", lambda g: 2.0 * right(g))
    err = fastgd.gradcheck(model, X, y, "mse")
    assert err > 0.1          # |2g - g| / (|2g| + |g|) = 1/3 on the first layer's entries


def test_broken_linear_weight_gradient_is_detected(monkeypatch):
    model = nn.Sequential(nn.Linear(4, 3, dtype=np.float64, seed=0, backend="reference"))
    X, y = data("mse", seed=2)
    lin = model.layers[0]
    right = lin.backward

    def wrong(g):
        dx = right(g)
        lin.dW *= 1.01        # a 1 % error
        return dx

    monkeypatch.setattr(lin, "backward", wrong)
    assert fastgd.gradcheck(model, X, y, "mse") > 1e-3


def test_broken_native_program_gradient_is_detected(monkeypatch):
    """The compiled model's backward with one parameter gradient scaled."""
    model = nn.MLP([4, 5, 3], activation="relu", dtype=np.float64, seed=0)
    assert model.program is not None
    X, y = data("cross_entropy", seed=2)
    assert fastgd.gradcheck(model, X, y, "cross_entropy") < 1e-6
    right = model.backward

    def wrong(g):
        dx = right(g)
        model.gradients()[1][...] *= 3.0       # the first bias
        return dx

    monkeypatch.setattr(model, "backward", wrong)
    assert fastgd.gradcheck(model, X, y, "cross_entropy") > 0.1


def test_wrong_activation_derivative_is_detected(monkeypatch):
    """Sigmoid's backward replaced by tanh's formula."""
    model = nn.Sequential(nn.Linear(4, 3, dtype=np.float64, seed=0, backend="reference"),
                          nn.Sigmoid(backend="reference"))
    X, y = data("mse", seed=1)
    sig = model.layers[1]
    monkeypatch.setattr(sig, "_ref_backward", lambda z, a, g: g * (1 - a * a))
    assert fastgd.gradcheck(model, X, y, "mse") > 0.1


# ----------------------------------------------------------------------------- errors

def test_argument_errors():
    model = nn.MLP([3, 2], dtype=np.float64, seed=0)
    X, y = data("mse", fin=3, fout=2)
    with pytest.raises(TypeError, match="model must be a fastgd.nn module"):
        fastgd.gradcheck(lambda x: x, X, y, "mse")
    with pytest.raises(TypeError, match="loss must be a fastgd.nn loss or its name"):
        fastgd.gradcheck(model, X, y, np.mean)
    with pytest.raises(ValueError, match="loss must be one of"):
        fastgd.gradcheck(model, X, y, "l1")
    with pytest.raises(ValueError, match="eps must be > 0"):
        fastgd.gradcheck(model, X, y, "mse", eps=0)
    with pytest.raises(ValueError, match="X has 4 features but the model takes 3"):
        fastgd.gradcheck(model, np.zeros((6, 4)), y, "mse")
