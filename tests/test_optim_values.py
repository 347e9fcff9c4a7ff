"""Hand-computed first steps of each algorithm, from the torch.optim algorithm definitions.

Expected values are computed here with plain Python floats, never through fastgd.
"""
import math

import numpy as np
import pytest

import fastgd
from helpers import make

# hand values are exact math in double; float32 results round a few times
HAND_TOL = {np.dtype(np.float32): dict(rtol=2e-6, atol=1e-7),
            np.dtype(np.float64): dict(rtol=1e-13, atol=1e-15)}


def arr(values, dtype):
    return np.array(values, dtype=dtype)


def check(actual, expected, dtype):
    assert actual.dtype == dtype
    np.testing.assert_allclose(actual, np.array(expected, dtype=np.float64), **HAND_TOL[dtype])


def roughly(actual, expected):
    """For the "moves by lr * sign(g)" shortcuts, which ignore eps."""
    np.testing.assert_allclose(actual, expected, rtol=1e-6)


def run(name, x0, grads, dtype, backend, **kw):
    x = arr(x0, dtype)
    opt = make(name, [x], backend, **kw)
    out = []
    for g in grads:
        opt.step([arr(g, dtype)])
        out.append(x.copy())
    return out, opt


# ---------------------------------------------------------------------------- SGD

def test_sgd_plain(dtype, backend):
    (x1,), _ = run("SGD", [1.0, 3.0, -2.0], [[2.0, 6.0, 0.5]], dtype, backend, lr=0.1)
    check(x1, [1 - 0.2, 3 - 0.6, -2 - 0.05], dtype)


def test_sgd_momentum_and_dampening_two_steps(dtype, backend):
    lr, mu, tau = 0.1, 0.9, 0.5
    x0, g1, g2 = [1.0, -1.0], [1.0, 2.0], [3.0, -1.0]
    (x1, x2), opt = run("SGD", x0, [g1, g2], dtype, backend, lr=lr, momentum=mu, dampening=tau)
    # first step: the buffer is the gradient itself (no dampening)
    b1 = g1
    e1 = [x - lr * b for x, b in zip(x0, b1)]
    b2 = [mu * b + (1 - tau) * g for b, g in zip(b1, g2)]
    e2 = [x - lr * b for x, b in zip(e1, b2)]
    check(x1, e1, dtype)
    check(x2, e2, dtype)
    check(opt.state[0]["momentum_buffer"], b2, dtype)
    assert opt.state[0]["step"] == 2


def test_sgd_nesterov_two_steps(dtype, backend):
    lr, mu = 0.1, 0.9
    x0, g1, g2 = [1.0, -1.0], [1.0, 2.0], [3.0, -1.0]
    (x1, x2), _ = run("SGD", x0, [g1, g2], dtype, backend, lr=lr, momentum=mu, nesterov=True)
    b1 = g1
    e1 = [x - lr * (g + mu * b) for x, g, b in zip(x0, g1, b1)]
    b2 = [mu * b + g for b, g in zip(b1, g2)]
    e2 = [x - lr * (g + mu * b) for x, g, b in zip(e1, g2, b2)]
    check(x1, e1, dtype)
    check(x2, e2, dtype)


def test_sgd_weight_decay_and_maximize(dtype, backend):
    lr, wd = 0.1, 0.5
    x0, g = [2.0, -4.0], [1.0, 1.0]
    (x1,), _ = run("SGD", x0, [g], dtype, backend, lr=lr, weight_decay=wd)
    check(x1, [2 - lr * (1 + wd * 2), -4 - lr * (1 + wd * -4)], dtype)
    (x1,), _ = run("SGD", x0, [g], dtype, backend, lr=lr, weight_decay=wd, maximize=True)
    # maximize negates the gradient, then the L2 term is added
    check(x1, [2 - lr * (-1 + wd * 2), -4 - lr * (-1 + wd * -4)], dtype)


# ---------------------------------------------------------------------------- Adagrad

def test_adagrad_two_steps_with_lr_decay(dtype, backend):
    lr, eta, eps = 0.5, 0.25, 1e-10
    x0, g1, g2 = [1.0, -2.0], [4.0, -3.0], [1.0, 2.0]
    (x1, x2), opt = run("Adagrad", x0, [g1, g2], dtype, backend, lr=lr, lr_decay=eta)
    s1 = [g * g for g in g1]
    e1 = [x - lr * g / (math.sqrt(s) + eps) for x, g, s in zip(x0, g1, s1)]
    clr2 = lr / (1 + 1 * eta)
    s2 = [s + g * g for s, g in zip(s1, g2)]
    e2 = [x - clr2 * g / (math.sqrt(s) + eps) for x, g, s in zip(e1, g2, s2)]
    check(x1, e1, dtype)   # first step: every coordinate moves by lr (g / |g|)
    roughly(x1, [0.5, -1.5])
    check(x2, e2, dtype)
    check(opt.state[0]["sum"], s2, dtype)


def test_adagrad_initial_accumulator_and_weight_decay(dtype, backend):
    lr, s0, wd, eps = 0.1, 1.0, 0.5, 1e-3
    x0, g = [2.0, 0.0], [1.0, -3.0]
    (x1,), opt = run("Adagrad", x0, [g], dtype, backend, lr=lr, initial_accumulator_value=s0,
                     weight_decay=wd, eps=eps, maximize=True)
    d = [-gi + wd * xi for gi, xi in zip(g, x0)]
    s = [s0 + di * di for di in d]
    check(x1, [x - lr * di / (math.sqrt(si) + eps) for x, di, si in zip(x0, d, s)], dtype)
    check(opt.state[0]["sum"], s, dtype)


# ---------------------------------------------------------------------------- RMSprop

def test_rmsprop_first_step(dtype, backend):
    lr, alpha, eps = 0.01, 0.99, 1e-8
    x0, g = [1.0, -1.0, 3.0], [1.0, -1.0, 0.25]
    (x1,), opt = run("RMSprop", x0, [g], dtype, backend, lr=lr, alpha=alpha)
    v = [(1 - alpha) * gi * gi for gi in g]
    check(x1, [x - lr * gi / (math.sqrt(vi) + eps) for x, gi, vi in zip(x0, g, v)], dtype)
    # i.e. each coordinate moves by lr / sqrt(1 - alpha) = 0.1
    roughly(x1, [0.9, -0.9, 2.9])
    check(opt.state[0]["square_avg"], v, dtype)


@pytest.mark.parametrize("alpha", [0.9, 0.3])
def test_rmsprop_centered_two_steps(dtype, backend, alpha):
    lr, eps = 0.01, 1e-8
    x0, g1, g2 = [1.0, -1.0], [2.0, -1.0], [1.0, 3.0]
    (x1, x2), opt = run("RMSprop", x0, [g1, g2], dtype, backend, lr=lr, alpha=alpha,
                        centered=True)
    v1 = [(1 - alpha) * g * g for g in g1]
    m1 = [(1 - alpha) * g for g in g1]
    e1 = [x - lr * g / (math.sqrt(v - m * m) + eps) for x, g, v, m in zip(x0, g1, v1, m1)]
    # the centred variance estimate after one step is alpha (1 - alpha) g^2
    for g, v, m in zip(g1, v1, m1):
        assert math.isclose(v - m * m, alpha * (1 - alpha) * g * g)
    v2 = [alpha * v + (1 - alpha) * g * g for v, g in zip(v1, g2)]
    m2 = [alpha * m + (1 - alpha) * g for m, g in zip(m1, g2)]
    e2 = [x - lr * g / (math.sqrt(v - m * m) + eps) for x, g, v, m in zip(e1, g2, v2, m2)]
    check(x1, e1, dtype)
    check(x2, e2, dtype)
    check(opt.state[0]["grad_avg"], m2, dtype)
    check(opt.state[0]["square_avg"], v2, dtype)


def test_rmsprop_momentum_two_steps(dtype, backend):
    lr, alpha, mu, eps, wd = 0.01, 0.5, 0.9, 1e-8, 0.1
    x0, g1, g2 = [1.0, -1.0], [2.0, -1.0], [1.0, 3.0]
    (x1, x2), opt = run("RMSprop", x0, [g1, g2], dtype, backend, lr=lr, alpha=alpha,
                        momentum=mu, weight_decay=wd)
    d1 = [g + wd * x for g, x in zip(g1, x0)]
    v1 = [(1 - alpha) * d * d for d in d1]
    b1 = [d / (math.sqrt(v) + eps) for d, v in zip(d1, v1)]
    e1 = [x - lr * b for x, b in zip(x0, b1)]
    d2 = [g + wd * x for g, x in zip(g2, e1)]
    v2 = [alpha * v + (1 - alpha) * d * d for v, d in zip(v1, d2)]
    b2 = [mu * b + d / (math.sqrt(v) + eps) for b, d, v in zip(b1, d2, v2)]
    e2 = [x - lr * b for x, b in zip(e1, b2)]
    check(x1, e1, dtype)
    check(x2, e2, dtype)
    check(opt.state[0]["momentum_buffer"], b2, dtype)


# ---------------------------------------------------------------------------- Adam

def adam_expected(x0, grads, lr, b1, b2, eps, wd=0.0, amsgrad=False, decoupled=False,
                  maximize=False):
    """Adam/AdamW per the torch.optim algorithm box, in Python floats (one coordinate)."""
    x, m, v, vmax, out = x0, 0.0, 0.0, 0.0, []
    for t, g in enumerate(grads, start=1):
        g = -g if maximize else g
        if decoupled:
            x = x * (1 - lr * wd)
        elif wd:
            g = g + wd * x
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = max(vmax, v)
        m_hat = m / (1 - b1**t)
        v_hat = (vmax if amsgrad else v) / (1 - b2**t)
        x = x - lr * m_hat / (math.sqrt(v_hat) + eps)
        out.append(x)
    return out, m, v, vmax


def test_adam_first_step_moves_by_lr_times_sign(dtype, backend):
    lr = 0.1
    x0, g = [1.0, 1.0, -2.0, 0.5], [0.5, -2.0, 1e-3, 40.0]
    (x1,), opt = run("Adam", x0, [g], dtype, backend, lr=lr)
    # m_hat = g, v_hat = g^2: the step is lr * g / (|g| + eps) = lr * sign(g) up to eps
    check(x1, [x - lr * gi / (abs(gi) + 1e-8) for x, gi in zip(x0, g)], dtype)
    roughly(x1, [0.9, 1.1, -2.0999990, 0.4])
    check(opt.state[0]["exp_avg"], [0.1 * gi for gi in g], dtype)
    check(opt.state[0]["exp_avg_sq"], [0.001 * gi * gi for gi in g], dtype)


def test_adam_two_steps_weight_decay_and_maximize(dtype, backend):
    lr, b1, b2, eps, wd = 0.05, 0.8, 0.95, 1e-6, 0.1
    x0 = [1.0, -0.5]
    g1, g2 = [0.3, -2.0], [1.5, 0.25]
    for maximize in (False, True):
        (x1, x2), _ = run("Adam", x0, [g1, g2], dtype, backend, lr=lr, betas=(b1, b2),
                          eps=eps, weight_decay=wd, maximize=maximize)
        for i in range(2):
            (e1, e2), *_ = adam_expected(x0[i], [g1[i], g2[i]], lr, b1, b2, eps, wd=wd,
                                         maximize=maximize)
            check(x1[i:i + 1], [e1], dtype)
            check(x2[i:i + 1], [e2], dtype)


def test_amsgrad_uses_the_running_maximum(dtype, backend):
    lr, b1, b2, eps = 0.1, 0.9, 0.5, 1e-8
    x0, g1, g2 = [0.0], [10.0], [0.1]  # v2 = 0.5 * 50 + 0.5 * 0.01 < v1 = 50
    (x1, x2), opt = run("Adam", x0, [g1, g2], dtype, backend, lr=lr, betas=(b1, b2),
                        amsgrad=True)
    (e1, e2), m, v, vmax = adam_expected(x0[0], [g1[0], g2[0]], lr, b1, b2, eps, amsgrad=True)
    assert vmax == 50.0 and v < vmax
    check(x2, [e2], dtype)
    check(opt.state[0]["max_exp_avg_sq"], [vmax], dtype)
    check(opt.state[0]["exp_avg_sq"], [v], dtype)
    # and that differs from plain Adam
    (_, plain2), *_ = adam_expected(x0[0], [g1[0], g2[0]], lr, b1, b2, eps)
    assert abs(plain2 - e2) > 1e-3


def test_adamw_decouples_weight_decay(dtype, backend):
    lr, wd = 0.1, 0.5
    # zero gradient: only the decay acts, x (1 - lr wd)
    (x1,), _ = run("AdamW", [1.0, -4.0], [[0.0, 0.0]], dtype, backend, lr=lr, weight_decay=wd)
    check(x1, [0.95, -3.8], dtype)
    # two steps with gradients, against the algorithm box
    b1, b2, eps = 0.9, 0.999, 1e-8
    x0, g1, g2 = [1.0, -4.0], [2.0, 0.5], [-1.0, 0.5]
    (x1, x2), _ = run("AdamW", x0, [g1, g2], dtype, backend, lr=lr, weight_decay=wd,
                      amsgrad=True)
    for i in range(2):
        (e1, e2), *_ = adam_expected(x0[i], [g1[i], g2[i]], lr, b1, b2, eps, wd=wd,
                                     decoupled=True, amsgrad=True)
        check(x1[i:i + 1], [e1], dtype)
        check(x2[i:i + 1], [e2], dtype)
    # first step: decay, then lr * sign(g)
    roughly(x1, [1.0 * 0.95 - 0.1, -4.0 * 0.95 - 0.1])


def test_adam_l2_differs_from_adamw(dtype, backend):
    (a,), _ = run("Adam", [1.0], [[0.0]], dtype, backend, lr=0.1, weight_decay=0.5)
    # Adam adds 0.5 * x to the gradient: d = 0.5, the first step moves by lr * sign(d)
    roughly(a, [0.9])


# ----------------------------------------------------------------------------- Lion

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("kw", [dict(), dict(weight_decay=0.1), dict(maximize=True),
                                dict(lr=0.01, betas=(0.8, 0.95), weight_decay=0.02)])
def test_lion_follows_its_formula(dtype, backend, kw):
    """u = sign(b1 m + (1 - b1) g), p <- p - lr (u + wd p), m <- b2 m + (1 - b2) g, written
    out here in numpy step by step (sign(0) = 0), over 30 steps with some zero gradients."""
    rng = np.random.default_rng(7)
    p = rng.standard_normal(301).astype(dtype)
    expected, m = p.copy(), np.zeros_like(p)
    opt = fastgd.optim.Lion([p], backend=backend, **kw)
    lr = kw.get("lr", 1e-4)
    b1, b2 = kw.get("betas", (0.9, 0.99))
    wd = kw.get("weight_decay", 0.0)
    for _ in range(30):
        g = rng.standard_normal(301).astype(dtype)
        g[::9] = 0
        opt.step([g])
        d = -g if kw.get("maximize") else g
        u = np.sign(b1 * m + (1 - b1) * d)
        m = b2 * m + (1 - b2) * d
        expected = expected - lr * (u + wd * expected)
    np.testing.assert_array_equal(p, expected)
    np.testing.assert_array_equal(opt.state[0]["exp_avg"], m)


def test_lion_moves_each_coordinate_by_lr():
    p = np.array([1.0, -1.0, 0.0, 5.0])
    fastgd.optim.Lion([p], lr=0.25).step([np.array([3.0, -1e-9, 0.0, np.nan])])
    np.testing.assert_array_equal(p[:3], [0.75, -0.75, 0.0])
    assert np.isnan(p[3])                    # a NaN gradient gives a NaN, never a silent 0


def test_lion_defaults_are_optax_s():
    opt = fastgd.optim.Lion([np.zeros(1)])
    g = opt.param_groups[0]
    assert (g["lr"], g["betas"], g["weight_decay"], g["maximize"]) == (1e-4, (0.9, 0.99),
                                                                        0.0, False)
