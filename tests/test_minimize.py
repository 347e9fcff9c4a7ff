"""fastgd.minimize: convergence, the native kernels, stop rules, divergence, accept-if-improves,
many starts at once, and errors."""
import math
import types
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import fastgd
from fastgd import functions
from fastgd.optim import _stepper
from fastgd.descent.minimize import Iterate, MinimizeResult, minimize

METHODS = ["gd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "nadam"]
#: learning rates that take each method from (1, 3) to the minimum of x² + y² + xy within 3000 steps
GOOD_LR = {"gd": 0.1, "momentum": 0.05, "nesterov": 0.05, "adagrad": 0.5, "rmsprop": 0.01,
           "adam": 0.05, "adamw": 0.05, "nadam": 0.05}
#: how close to (0, 0) counts as reaching it, per dtype
REACH = {np.dtype(np.float32): 1e-3, np.dtype(np.float64): 1e-5}

OPTIM = {"gd": ("SGD", {}), "momentum": ("SGD", {"momentum": 0.9}),
         "nesterov": ("SGD", {"momentum": 0.9, "nesterov": True}), "adagrad": ("Adagrad", {}),
         "rmsprop": ("RMSprop", {}), "adam": ("Adam", {}), "adamw": ("AdamW", {}),
         "nadam": ("NAdam", {})}


def quad(p):
    return p[..., 0] ** 2 + p[..., 1] ** 2 + p[..., 0] * p[..., 1]


def quad_grad(p):
    return np.stack([2 * p[..., 0] + p[..., 1], 2 * p[..., 1] + p[..., 0]], axis=-1)


# ---------------------------------------------------------------------------- convergence
@pytest.mark.parametrize("method", METHODS)
def test_each_method_takes_the_quadratic_from_1_3_to_0_0(method, dtype):
    x0 = np.array([1.0, 3.0], dtype)
    res = minimize(quad, x0, grad=quad_grad, method=method, lr=GOOD_LR[method],
                   max_iter=3000, tol=1e-4 if dtype == np.float32 else 1e-7,
                   weight_decay=0.0) if method == "adamw" else \
        minimize(quad, x0, grad=quad_grad, method=method, lr=GOOD_LR[method],
                 max_iter=3000, tol=1e-4 if dtype == np.float32 else 1e-7)
    assert res.converged, res.message
    assert res.x.dtype == dtype and res.path.dtype == dtype
    np.testing.assert_allclose(res.x, [0.0, 0.0], atol=REACH[dtype])
    assert res.fun == pytest.approx(float(quad(res.x.astype(np.float64))), abs=1e-6)


def test_numerical_gradient_by_default(dtype):
    res = minimize(lambda p: float(quad(p)), np.array([1.0, 3.0], dtype), lr=0.1)
    assert res.converged, res.message
    np.testing.assert_allclose(res.x, [0.0, 0.0], atol=REACH[dtype] * 10)


def test_gd_on_the_quadratic_reaches_the_origin_with_default_tol():
    res = minimize(quad, [1.0, 3.0], grad=quad_grad, lr=0.1)
    assert res.converged and "gradient norm" in res.message
    assert res.grad_norm <= 1e-6
    np.testing.assert_allclose(res.x, 0.0, atol=1e-6)


def test_result_fields_are_consistent(dtype):
    x0 = np.array([1.0, 3.0], dtype)
    res = minimize(quad, x0, grad=quad_grad, lr=0.2, max_iter=50, tol=0, tol_change=0)
    assert isinstance(res, MinimizeResult)
    assert res.nit == 50 and not res.converged and "max_iter=50" in res.message
    assert res.path.shape == (51, 2) and res.history.shape == (51,)
    assert np.array_equal(res.path[0], x0)
    np.testing.assert_allclose(res.history, quad(res.path.astype(np.float64)), rtol=1e-6)
    assert np.array_equal(res.x, res.path[-1])
    assert res.fun == res.history[-1]
    g = quad_grad(res.x.astype(np.float64))
    assert res.grad_norm == pytest.approx(float(np.linalg.norm(g)), rel=1e-5)
    assert isinstance(res.converged, bool) and isinstance(res.nit, int)
    assert "MinimizeResult" in repr(res)
    with pytest.raises(TypeError):
        len(res)
    with pytest.raises(TypeError):
        res[0]


def test_plain_gd_is_x_minus_lr_grad():
    res = minimize(quad, [1.0, 3.0], grad=quad_grad, lr=0.1, max_iter=3, tol=0, tol_change=0)
    x = np.array([1.0, 3.0])
    for k in range(1, 4):
        x = x - 0.1 * quad_grad(x)
        np.testing.assert_allclose(res.path[k], x, rtol=1e-15)


# ---------------------------------------------------------------------------- native kernels
@pytest.mark.parametrize("method", METHODS)
def test_steps_are_the_optimizers_steps(method, dtype):
    """minimize runs the same kernels as fastgd.optim, with their defaults: bit for bit."""
    name, kw = OPTIM[method]
    lr = 0.01
    x0 = np.array([1.0, 3.0], dtype)
    res = minimize(quad, x0, grad=quad_grad, method=method, lr=lr, max_iter=25, tol=0,
                   tol_change=0)
    w = x0.copy()
    opt = getattr(fastgd.optim, name)([w], lr=lr, **kw)
    for k in range(1, 26):
        opt.step([quad_grad(w)])
        assert np.array_equal(res.path[k], w), (method, k)


def test_hyper_parameters_pass_through(dtype):
    x0 = np.array([1.0, 3.0], dtype)
    res = minimize(quad, x0, grad=quad_grad, method="adam", lr=0.05, betas=(0.5, 0.8),
                   amsgrad=True, max_iter=10, tol=0, tol_change=0)
    w = x0.copy()
    opt = fastgd.optim.Adam([w], lr=0.05, betas=(0.5, 0.8), amsgrad=True)
    for _ in range(10):
        opt.step([quad_grad(w)])
    assert np.array_equal(res.x, w)
    other = minimize(quad, x0, grad=quad_grad, method="adam", lr=0.05, max_iter=10, tol=0,
                     tol_change=0)
    assert not np.array_equal(other.x, w)


def test_momentum_defaults_to_0_9_and_can_be_set():
    a = minimize(quad, [1.0, 3.0], grad=quad_grad, method="momentum", lr=0.01, max_iter=5,
                 tol=0, tol_change=0)
    b = minimize(quad, [1.0, 3.0], grad=quad_grad, method="momentum", lr=0.01, momentum=0.9,
                 max_iter=5, tol=0, tol_change=0)
    c = minimize(quad, [1.0, 3.0], grad=quad_grad, method="momentum", lr=0.01, momentum=0.5,
                 max_iter=5, tol=0, tol_change=0)
    assert np.array_equal(a.path, b.path) and not np.array_equal(a.path, c.path)


def test_default_lr_is_the_optimizers_default():
    for method, lr in [("gd", 1e-3), ("adam", 1e-3), ("adagrad", 1e-2), ("rmsprop", 1e-2)]:
        a = minimize(quad, [1.0, 3.0], grad=quad_grad, method=method, max_iter=3)
        b = minimize(quad, [1.0, 3.0], grad=quad_grad, method=method, lr=lr, max_iter=3)
        assert np.array_equal(a.path, b.path), method


def test_many_starts_take_one_kernel_call_per_iteration(monkeypatch):
    calls = []
    kernel = _stepper._optim.sgd

    def counting(plan, **hp):
        calls.append(plan.n)
        return kernel(plan, **hp)

    monkeypatch.setattr(_stepper._optim, "sgd", counting)
    starts = np.random.default_rng(0).uniform(-3, 3, (50, 2))
    res = minimize(quad, starts, grad=quad_grad, lr=0.1, max_iter=30, tol=0, tol_change=0)
    assert calls == [1] * 30             # one array (all 50 starts) per call, 30 calls
    assert res.nit.tolist() == [30] * 50


# ---------------------------------------------------------------------------- maximize
def test_maximize_is_gradient_ascent(dtype):
    neg = lambda p: -quad(p)  # noqa: E731
    neg_grad = lambda p: -quad_grad(p)  # noqa: E731
    x0 = np.array([1.0, 3.0], dtype)
    up = minimize(neg, x0, grad=neg_grad, lr=0.1, maximize=True, max_iter=20, tol=0,
                  tol_change=0)
    down = minimize(quad, x0, grad=quad_grad, lr=0.1, max_iter=20, tol=0, tol_change=0)
    assert np.array_equal(up.path, down.path)          # x <- x + lr * grad(-f)
    np.testing.assert_allclose(up.history, -down.history)
    assert np.all(np.diff(up.history) > 0)
    full = minimize(neg, x0, grad=neg_grad, lr=0.1, maximize=True)
    assert full.converged
    np.testing.assert_allclose(full.x, 0.0, atol=REACH[dtype])


# ---------------------------------------------------------------------------- stop rules
def test_stop_on_small_change_of_f_and_x():
    # |x|^4 is flat at 0: the gradient rule needs |x| ~ 1e-2, the change rule stops first
    f = lambda p: float(np.sum(p ** 4))  # noqa: E731
    g = lambda p: 4 * p ** 3  # noqa: E731
    res = minimize(f, [1.0, -1.0], grad=g, lr=0.1, tol=1e-12, tol_change=1e-6, max_iter=100000)
    assert res.converged and "tol_change" in res.message
    assert res.nit < 100000 and res.grad_norm > 1e-12
    strict = minimize(f, [1.0, -1.0], grad=g, lr=0.1, tol=1e-12, tol_change=0, max_iter=2000)
    assert strict.nit == 2000 and not strict.converged


def test_float32_run_stops_when_x_stops_changing():
    # the minimum (pi, e) is no float32 point: the gradient never reaches 0, but the steps
    # fall below half an ulp of x and x stops changing
    c = np.array([np.pi, np.e])
    f = lambda p: float(np.sum((p.astype(np.float64) - c) ** 2))  # noqa: E731
    g = lambda p: (2 * (p.astype(np.float64) - c)).astype(np.float32)  # noqa: E731
    res = minimize(f, np.array([1.0, 2.0], np.float32), grad=g, lr=0.1, tol=0, max_iter=10 ** 5)
    assert res.converged and "tol_change" in res.message and res.nit < 1000
    assert res.grad_norm > 0
    np.testing.assert_allclose(res.x, c, rtol=1e-6)


def test_max_iter_zero_evaluates_the_start():
    res = minimize(quad, [1.0, 3.0], grad=quad_grad, max_iter=0)
    assert res.nit == 0 and res.path.shape == (1, 2) and res.fun == 13.0
    assert res.grad_norm == pytest.approx(math.sqrt(74)) and not res.converged


def test_converged_at_the_start():
    res = minimize(quad, [0.0, 0.0], grad=quad_grad)
    assert res.converged and res.nit == 0 and len(res.path) == 1


# ---------------------------------------------------------------------------- divergence
@pytest.mark.parametrize("kappa", [1.0, 4.0, 30.0])
def test_lr_beyond_2_over_L_diverges_and_is_reported(kappa, dtype):
    f = functions.bowl(kappa, angle=25.0)
    L = float(np.linalg.eigvalsh(f.hessian).max())
    x0 = np.array([1.0, 1.0], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # no overflow warnings either
        bad = minimize(f, x0, grad=f.grad, lr=2.2 / L, max_iter=5000)
    assert not bad.converged
    assert bad.message.startswith("diverged") and "smaller lr" in bad.message
    assert np.all(np.isfinite(bad.x))
    assert bad.fun == pytest.approx(float(np.nanmin(bad.history)))     # the best point seen
    assert bad.fun <= float(f(x0.astype(np.float64))) + 1e-6
    good = minimize(f, x0, grad=f.grad, lr=1.9 / L, max_iter=20000,
                    tol=1e-4 if dtype == np.float32 else 1e-6)
    assert good.converged, good.message
    np.testing.assert_allclose(good.x, 0.0, atol=REACH[dtype] * 10)


def test_quadratic_diverges_beyond_2_over_3():
    f = functions.quadratic()
    res = minimize(f, [1.0, 3.0], grad=f.grad, lr=0.7)
    assert not res.converged and "lr=0.7" in res.message
    assert res.message.startswith("diverged: f rose from 13 to ")   # caught by f's growth
    assert np.array_equal(res.x, [1.0, 3.0])           # the start was the best point
    slow = minimize(f, [1.0, 3.0], grad=f.grad, lr=0.67, max_iter=200)
    assert not slow.converged and "diverged" in slow.message and "rose" in slow.message


def test_overflow_to_inf_or_nan_stops_without_exception():
    f = lambda p: float(np.exp(p[0] ** 2))  # noqa: E731
    g = lambda p: np.array([2 * p[0] * np.exp(p[0] ** 2)])  # noqa: E731
    res = minimize(f, [1.0], grad=g, lr=1.0)
    assert not res.converged and res.message.startswith("diverged: f became inf")
    assert math.isfinite(res.fun) and np.all(np.isfinite(res.x))
    assert not np.all(np.isfinite(res.history))


def test_x_growing_without_bound_is_reported():
    # f = -x is unbounded below; Adagrad's steps stay ~lr, plain GD with a large lr runs off
    f = lambda p: float(-p[0] - p[1] + 0.0 * p[0] ** 2)  # noqa: E731
    res = minimize(f, [0.0, 0.0], grad=lambda p: np.array([-1.0, -1.0]), lr=1e7,
                   max_iter=1000)
    assert not res.converged and "max|x|" in res.message


# ---------------------------------------------------------------------------- accept-if-improves
def test_accept_if_improves_shrinks_lr_and_converges(dtype):
    x0 = np.array([1.0, 3.0], dtype)
    plain = minimize(quad, x0, grad=quad_grad, lr=2.0)
    assert not plain.converged and "diverged" in plain.message
    res = minimize(quad, x0, grad=quad_grad, lr=2.0, accept_if_improves=True,
                   tol=1e-3 if dtype == np.float32 else 1e-6)
    assert res.converged, res.message
    np.testing.assert_allclose(res.x, 0.0, atol=REACH[dtype] * 10)
    assert np.all(np.diff(res.history) < 0)            # every accepted step improves f
    assert res.nit > len(res.path) - 1                 # some steps were rejected
    np.testing.assert_allclose(res.history, quad(res.path.astype(np.float64)), rtol=1e-5)


def test_accept_if_improves_keeps_good_steps_unchanged():
    a = minimize(quad, [1.0, 3.0], grad=quad_grad, lr=0.1, max_iter=20, tol=0, tol_change=0)
    b = minimize(quad, [1.0, 3.0], grad=quad_grad, lr=0.1, max_iter=20, tol=0, tol_change=0,
                 accept_if_improves=True)
    assert np.array_equal(a.path, b.path)


def test_accept_if_improves_rolls_back_optimizer_state():
    # a rejected momentum step must not leave its gradient in the momentum buffer: the run
    # then equals a run that starts with the shrunk learning rate
    a = minimize(quad, [1.0, 3.0], grad=quad_grad, method="momentum", lr=2.0, max_iter=1,
                 accept_if_improves=True, tol=0, tol_change=0)
    assert a.nit == 1 and len(a.path) == 1           # rejected
    b = minimize(quad, [1.0, 3.0], grad=quad_grad, method="momentum", lr=2.0, max_iter=6,
                 accept_if_improves=True, tol=0, tol_change=0)
    c = minimize(quad, [1.0, 3.0], grad=quad_grad, method="momentum", lr=0.5, max_iter=4,
                 accept_if_improves=True, tol=0, tol_change=0)
    # two rejections (lr 2.0 and 1.0), then the same run as one that starts at lr 0.5
    assert b.nit == 6 and len(b.path) == len(c.path) >= 2
    np.testing.assert_allclose(b.path, c.path, rtol=1e-12)
    np.testing.assert_allclose(b.path[1], [1.0 - 0.5 * 5, 3.0 - 0.5 * 7])


def test_backtracking_line_search_satisfies_armijo(dtype):
    x0 = np.array([1.0, 3.0], dtype)
    res = minimize(quad, x0, grad=quad_grad, lr=5.0, line_search="backtracking",
                   tol=1e-3 if dtype == np.float32 else 1e-7)
    assert res.converged, res.message
    np.testing.assert_allclose(res.x, 0.0, atol=REACH[dtype] * 10)
    P = res.path.astype(np.float64)
    for a, b in zip(P[:-1], P[1:]):
        g = quad_grad(a)
        assert quad(b) <= quad(a) + 1e-4 * g @ (b - a) + 1e-12


def test_backtracking_on_rosenbrock_beats_a_fixed_step():
    f = functions.rosenbrock()
    ls = minimize(f, [-1.2, 1.0], grad=f.grad, lr=1.0, line_search="backtracking",
                  max_iter=20000, tol=1e-5)
    assert ls.converged, ls.message
    np.testing.assert_allclose(ls.x, [1.0, 1.0], atol=1e-4)
    fixed = minimize(f, [-1.2, 1.0], grad=f.grad, lr=1.0, max_iter=100)
    assert not fixed.converged


# ---------------------------------------------------------------------------- many starts
def test_himmelblau_four_starts_four_minima(dtype):
    f = functions.himmelblau()
    starts = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]], dtype)
    res = minimize(f, starts, grad=f.grad, lr=0.01, tol=1e-3 if dtype == np.float32 else 1e-6)
    assert len(res) == 4 and res.x.shape == (4, 2) and res.x.dtype == dtype
    assert res.converged.dtype == bool and res.converged.all()
    nearest = [int(np.argmin(np.linalg.norm(f.minima - x, axis=1))) for x in res.x]
    assert sorted(nearest) == [0, 1, 2, 3]           # each start ends in its own minimum
    np.testing.assert_allclose(res.x, f.minima[nearest], atol=REACH[dtype] * 10)


@pytest.mark.parametrize("kw", [dict(), dict(method="adam", lr=0.05),
                                dict(accept_if_improves=True, lr=0.05),
                                dict(line_search="backtracking", lr=0.2)])
def test_each_start_equals_its_own_run(kw, dtype):
    f = functions.himmelblau()
    starts = np.array([[0.0, 0.0], [-4.0, 4.0], [4.0, -4.0], [-3.5, -3.0], [0.5, 3.0]], dtype)
    kw = {"lr": 0.01, **kw}
    res = minimize(f, starts, grad=f.grad, max_iter=400, **kw)
    for i, p in enumerate(starts):
        one = minimize(f, p, grad=f.grad, max_iter=400, **kw)
        r = res[i]
        assert r.nit == one.nit and r.converged == one.converged, (i, r.message, one.message)
        assert r.message == one.message
        np.testing.assert_allclose(r.x, one.x, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(r.history, one.history, rtol=1e-5, atol=1e-6)
        assert np.array_equal(r.path[0], p) and len(r.path) == len(one.path)
    if kw.get("accept_if_improves"):                  # the rule did reject steps
        assert any(r.nit > len(r.path) - 1 for r in res)


def test_starts_stop_on_their_own():
    f = functions.quadratic()
    starts = np.array([[1e-7, 0.0], [1.0, 3.0], [30.0, -40.0]])
    res = minimize(f, starts, grad=f.grad, lr=0.1)
    assert res.nit[0] == 0 and res.nit[1] < res.nit[2]
    assert res.converged.all()
    assert [len(p) for p in res.path] == [n + 1 for n in res.nit]
    assert np.array_equal(res.x[0], starts[0])            # frozen once converged
    for r in res:
        assert np.array_equal(r.path[-1], r.x)


def test_a_diverging_start_does_not_disturb_the_others():
    f = lambda p: p[..., 0] ** 4 + p[..., 1] ** 2  # noqa: E731
    g = lambda p: np.stack([4 * p[..., 0] ** 3, 2 * p[..., 1]], axis=-1)  # noqa: E731
    starts = np.array([[0.5, 0.5], [30.0, 0.0]])
    res = minimize(f, starts, grad=g, lr=0.1, max_iter=5000, tol=1e-4)
    assert res.converged.tolist() == [True, False]
    assert "diverged" in res.message[1] and np.array_equal(res.x[1], starts[1])
    alone = minimize(f, starts[0], grad=g, lr=0.1, max_iter=5000, tol=1e-4)
    np.testing.assert_allclose(res.x[0], alone.x)


def test_many_starts_with_numerical_gradient():
    f = functions.himmelblau()
    starts = np.array([[1.0, 1.0], [-1.0, -1.0]])
    res = minimize(f, starts, lr=0.01)
    assert res.converged.all()
    np.testing.assert_allclose(res.x, f.minima[[0, 2]], atol=1e-5)


def test_a_function_written_for_one_point_is_refused_for_many():
    starts = np.array([[1.0, 3.0], [2.0, 2.0]])
    with pytest.raises(ValueError, match=r"x\[\.\.\., i\]"):
        minimize(lambda p: p[0] ** 2 + p[1] ** 2, starts, grad=quad_grad)
    with pytest.raises(ValueError, match="rows of a 2-D x"):   # returns grad transposed
        minimize(quad, starts, grad=lambda p: np.array([2 * p[0] + p[1], 2 * p[1] + p[0]]))
    with pytest.raises(ValueError, match="one value per row"):
        minimize(lambda p: float(np.sum(p)), np.ones((3, 2)))


# ---------------------------------------------------------------------------- callback, path
def test_callback_sees_each_iteration_and_can_stop():
    seen = []

    def cb(it):
        assert isinstance(it, Iterate)
        seen.append((it.nit, it.x.copy(), it.fun))
        return it.nit == 7

    res = minimize(quad, [1.0, 3.0], grad=quad_grad, lr=0.1, callback=cb)
    assert res.nit == 7 and not res.converged and "callback" in res.message
    assert [s[0] for s in seen] == list(range(1, 8))
    assert np.array_equal(seen[-1][1], res.x) and seen[-1][2] == res.fun

    def stop(it):
        raise StopIteration

    assert minimize(quad, [1.0, 3.0], grad=quad_grad, callback=stop).nit == 1
    batch = minimize(quad, np.ones((3, 2)), grad=quad_grad, lr=0.1,
                     callback=lambda it: it.nit == 4)
    assert batch.nit.tolist() == [4, 4, 4] and "callback" in batch.message[0]


def test_keep_path_false(dtype):
    x0 = np.array([1.0, 3.0], dtype)
    a = minimize(quad, x0, grad=quad_grad, lr=0.1)
    b = minimize(quad, x0, grad=quad_grad, lr=0.1, keep_path=False)
    assert b.path is None and np.array_equal(a.x, b.x) and np.array_equal(a.history, b.history)
    bad = minimize(quad, x0, grad=quad_grad, lr=0.9, keep_path=False)
    assert "diverged" in bad.message and np.array_equal(bad.x, x0)
    many = minimize(quad, np.ones((2, 2), dtype), grad=quad_grad, lr=0.1, keep_path=False)
    assert many.path is None and many.converged.all()


def test_grad_may_return_x_itself_or_a_list():
    half_sq = lambda p: 0.5 * float(np.dot(p, p))  # noqa: E731
    res = minimize(half_sq, [1.0, -2.0], grad=lambda p: p, lr=0.5)
    assert res.converged
    res = minimize(quad, [1.0, 3.0], grad=lambda p: [2 * p[0] + p[1], 2 * p[1] + p[0]], lr=0.1)
    assert res.converged


def test_results_are_deterministic():
    f = functions.himmelblau()
    starts = np.random.default_rng(1).uniform(-5, 5, (20, 2))
    a = minimize(f, starts, grad=f.grad, method="adam", lr=0.05)
    b = minimize(f, starts, grad=f.grad, method="adam", lr=0.05)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.nit, b.nit)


def test_top_level_exports():
    exported = getattr(fastgd, "minimize", None)
    if exported is None or isinstance(exported, types.ModuleType):
        pytest.skip("fastgd/__init__.py does not export minimize yet")
    from fastgd.descent.gradients import numerical_gradient
    assert exported is minimize
    assert fastgd.numerical_gradient is numerical_gradient
    assert fastgd.functions is functions


# ---------------------------------------------------------------------------- Taylor property
@st.composite
def smooth_problems(draw):
    """f(x) = sum_j a_j sin(w_j . x + c_j) + q/2 |x|^2, its gradient, a curvature bound L
    and a point."""
    d = draw(st.integers(1, 4))
    m = draw(st.integers(1, 4))
    fl = lambda lo, hi: st.floats(lo, hi, allow_nan=False, allow_infinity=False)  # noqa: E731
    a = np.array(draw(st.lists(fl(-3, 3), min_size=m, max_size=m)))
    W = np.array(draw(st.lists(st.lists(fl(-2, 2), min_size=d, max_size=d), min_size=m,
                               max_size=m)))
    c = np.array(draw(st.lists(fl(-3, 3), min_size=m, max_size=m)))
    q = draw(fl(0, 2))
    x = np.array(draw(st.lists(fl(-3, 3), min_size=d, max_size=d)))
    L = float(np.sum(np.abs(a) * np.sum(W ** 2, axis=1)) + q)
    return a, W, c, q, x, L


@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["float32", "float64"])
@given(problem=smooth_problems(), frac=st.floats(1e-3, 1.0))
def test_a_small_enough_step_decreases_f(dt, problem, frac):
    """The Taylor argument: f(x - a grad f) = f(x) - a |grad f|^2 + O(a^2) < f(x)
    for a small enough step a; with curvature at most L, any a <= 1/L is small enough."""
    a, W, c, q, x, L = problem

    def f(v):
        v = np.asarray(v, np.float64)
        return float(np.sum(a * np.sin(W @ v + c)) + 0.5 * q * v @ v)

    def grad(v):
        vd = np.asarray(v, np.float64)
        return (W.T @ (a * np.cos(W @ vd + c)) + q * vd).astype(v.dtype)

    x = x.astype(dt)
    g = grad(x).astype(np.float64)
    assume(L > 0)
    alpha = frac / L
    # the guaranteed decrease alpha (1 - L alpha / 2) |g|^2 must beat rounding in f
    resolution = (1e-5 if dt == np.float32 else 1e-12) * (1 + np.sum(np.abs(a)) + q * x @ x)
    assume(alpha * (1 - L * alpha / 2) * float(g @ g) > resolution)
    res = minimize(f, x, grad=grad, lr=alpha, max_iter=1, tol=0, tol_change=0)
    assert res.nit == 1 and res.history[1] < res.history[0]


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("args, kw, exc, match", [
    (("f", [1.0]), {}, TypeError, "fun must be callable"),
    ((quad, [1.0, 3.0]), {"grad": "g"}, TypeError, "grad must be callable"),
    ((quad, [1.0, 3.0]), {"callback": 3}, TypeError, "callback must be callable"),
    ((quad, "ab"), {}, TypeError, "x0 must be an array of real numbers"),
    ((quad, [1 + 1j, 2.0]), {}, TypeError, "x0 must be .*complex"),
    ((quad, 1.0), {}, ValueError, "x0 must be 1-D .* pass \\[x0\\]"),
    ((quad, np.ones((2, 2, 2))), {}, ValueError, "x0 must be 1-D"),
    ((quad, []), {}, ValueError, "x0 is empty"),
    ((quad, [np.nan, 1.0]), {}, ValueError, "x0 contains NaN"),
    ((quad, [1.0, 3.0]), {"lr": 0}, ValueError, "lr must be > 0"),
    ((quad, [1.0, 3.0]), {"lr": -0.1}, ValueError, "lr must be > 0"),
    ((quad, [1.0, 3.0]), {"lr": float("nan")}, ValueError, "lr must be finite"),
    ((quad, [1.0, 3.0]), {"lr": "fast"}, TypeError, "lr must be a real number"),
    ((quad, [1.0, 3.0]), {"method": "newton"}, ValueError, "method must be one of"),
    ((quad, [1.0, 3.0]), {"method": None}, ValueError, "method must be one of"),
    ((quad, [1.0, 3.0]), {"momentum": 0.9}, ValueError, "unknown hyper-parameter 'momentum'"),
    ((quad, [1.0, 3.0]), {"method": "adam", "foo": 1}, ValueError, "unknown hyper-parameter 'foo'"),
    ((quad, [1.0, 3.0]), {"method": "adam", "betas": (1.5, 0.9)}, ValueError, r"betas"),
    ((quad, [1.0, 3.0]), {"method": "momentum", "momentum": -1}, ValueError, "momentum"),
    ((quad, [1.0, 3.0]), {"maximize": "yes"}, TypeError, "maximize must be a bool"),
    ((quad, [1.0, 3.0]), {"max_iter": -1}, ValueError, "max_iter must be >= 0"),
    ((quad, [1.0, 3.0]), {"max_iter": 1.5}, TypeError, "max_iter must be an int"),
    ((quad, [1.0, 3.0]), {"tol": -1e-3}, ValueError, "tol must be >= 0"),
    ((quad, [1.0, 3.0]), {"tol_change": -1}, ValueError, "tol_change must be >= 0"),
    ((quad, [1.0, 3.0]), {"line_search": "wolfe"}, ValueError, "line_search must be"),
    ((quad, [1.0, 3.0]), {"line_search": "backtracking", "accept_if_improves": True},
     ValueError, "not both"),
    ((quad, [1.0, 3.0]), {"accept_if_improves": 1}, TypeError, "accept_if_improves must be"),
    ((quad, [1.0, 3.0]), {"keep_path": None}, TypeError, "keep_path must be a bool"),
    ((lambda p: p, [1.0, 3.0]), {"grad": quad_grad}, ValueError, "fun must return a scalar"),
    ((lambda p: float("nan"), [1.0, 3.0]), {"grad": quad_grad}, ValueError,
     r"fun\(x0\) is not finite"),
    ((lambda p: p[..., 0] * np.inf, np.ones((2, 2))), {"grad": quad_grad}, ValueError,
     r"fun\(x0\) is not finite .* start 0"),
    ((quad, [1.0, 3.0]), {"grad": lambda p: np.ones(3)}, ValueError,
     r"grad must return an array of x's shape \(2,\)"),
    ((quad, [1.0, 3.0]), {"grad": lambda p: "g"}, TypeError, "grad must return real numbers"),
])
def test_bad_input_raises_naming_the_argument(args, kw, exc, match):
    with pytest.raises(exc, match=match):
        minimize(*args, **kw)
