"""Shared helpers of the neural-network tests (test_nn_*, test_sequential, test_gradcheck,
test_fit, test_serialization): tolerances, finite differences, model builders."""
import numpy as np

import fastgd
from fastgd import nn

DTYPES = (np.float32, np.float64)
DTYPE_IDS = ("float32", "float64")

#: native vs reference (same math, different summation order / BLAS)
TOL = {
    np.dtype(np.float32): dict(rtol=1e-4, atol=1e-5),
    np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12),
}


def tol(dtype):
    return TOL[np.dtype(dtype)]


def fd_gradient(f, x, eps=1e-6):
    """Central differences of the scalar function ``f`` with respect to every entry of ``x``
    (float64, modified in place and restored)."""
    g = np.zeros_like(x, dtype=np.float64)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + eps
        up = f()
        flat[k] = old - eps
        down = f()
        flat[k] = old
        gflat[k] = (up - down) / (2 * eps)
    return g


def away_from_zero(rng, shape, dtype, low=0.05):
    """Random values with |v| >= low (no ReLU kink inside a finite-difference step)."""
    v = rng.uniform(low, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return v.astype(dtype)


def layer(kind, backend, dtype=np.float64, **kw):
    """An activation layer by name."""
    table = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "sigmoid": nn.Sigmoid,
             "tanh": nn.Tanh, "softmax": nn.Softmax, "identity": nn.Identity}
    return table[kind](backend=backend, **kw)


#: deep mixed architectures: tuples ("linear", in, out, bias) or (activation, kwargs)
ARCHS = {
    "mixed": [("linear", 5, 7, True), ("tanh", {}), ("linear", 7, 6, True),
              ("leaky_relu", {"negative_slope": 0.2}), ("linear", 6, 4, True), ("sigmoid", {}),
              ("linear", 4, 3, True), ("softmax", {})],
    "consecutive_linears_act_first": [
        ("relu", {}), ("linear", 5, 6, True), ("linear", 6, 4, True), ("relu", {}),
        ("linear", 4, 4, False), ("leaky_relu", {"negative_slope": -0.3}), ("tanh", {}),
        ("linear", 4, 2, True)],
    "softmax_first": [("tanh", {}), ("softmax", {}), ("linear", 5, 3, True), ("identity", {})],
    "single_linear": [("linear", 5, 3, True)],
    "act_after_fused": [("linear", 5, 8, True), ("relu", {}), ("sigmoid", {}),
                        ("linear", 8, 8, False), ("identity", {}), ("tanh", {}),
                        ("linear", 8, 2, True)],
}


def build(arch, dtype, backend, seed=0):
    """A Sequential of ``arch`` (a key of ARCHS or a list); Linear k is seeded with seed + k."""
    spec = ARCHS[arch] if isinstance(arch, str) else arch
    layers, k = [], 0
    for item in spec:
        if item[0] == "linear":
            _, fin, fout, bias = item
            layers.append(nn.Linear(fin, fout, bias=bias, dtype=dtype, seed=seed + k,
                                    backend=backend))
            k += 1
        else:
            layers.append(layer(item[0], backend, **item[1]))
    return nn.Sequential(*layers)


def copy_params(src, dst):
    for a, b in zip(src.parameters(), dst.parameters()):
        b[...] = a


def snapshot(model):
    return [p.copy() for p in model.parameters()]


def assert_params_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def blobs(rng, n=120, d=4, classes=3, dtype=np.float32):
    """Separable Gaussian blobs: (X, y) with integer labels."""
    centers = rng.standard_normal((classes, d)) * 3
    y = rng.integers(0, classes, size=n)
    X = centers[y] + rng.standard_normal((n, d))
    return X.astype(dtype), y.astype(np.int64)


def fit_quiet(model, X, y, **kw):
    kw.setdefault("progress", False)
    return fastgd.fit(model, X, y, **kw)
