"""fastgd.optim.LBFGS against torch.optim.LBFGS step by step, its checks and state dicts,
and minimize(method="lbfgs")."""
import math

import numpy as np
import pytest

import fastgd
from fastgd.optim import LBFGS

torch = pytest.importorskip("torch")

#: parameters and the losses step returns, against torch (the closure is the same numpy
#: function for both, so only the optimizers' arithmetic differs)
TORCH_RTOL = {np.dtype(np.float32): 2e-4, np.dtype(np.float64): 1e-9}

STARTS = {
    "2d-a": [-1.5, 2.0],
    "2d-b": [-1.2, 1.0],
    "2d-c": [0.5, -0.5],
    "10d-line": list(np.linspace(-1.0, 1.5, 10)),
    "10d-pairs": list(np.tile([-1.2, 1.0], 5)),
}


def rosenbrock(x):
    """The n-dimensional Rosenbrock function and its gradient."""
    a, b = x[:-1], x[1:]
    f = float(np.sum(100.0 * (b - a * a) ** 2 + (1 - a) ** 2))
    g = np.zeros_like(x)
    g[:-1] += -400.0 * a * (b - a * a) - 2 * (1 - a)
    g[1:] += 200.0 * (b - a * a)
    return f, g


def _pair(dtype, x0_list, fn, **kw):
    """A fastgd and a torch optimizer over copies of the same start, and their closures."""
    xs = [np.array(x0, dtype=dtype) for x0 in x0_list]
    tdt = getattr(torch, np.dtype(dtype).name)
    txs = [torch.tensor(x0, dtype=tdt) for x0 in x0_list]
    ours = LBFGS(xs, **kw)
    theirs = torch.optim.LBFGS(txs, **kw)

    def closure():
        f, gs = fn(xs)
        return f, gs

    def tclosure():
        f, gs = fn([t.numpy().copy() for t in txs])
        for t, g in zip(txs, gs):
            t.grad = torch.from_numpy(g)
        return f

    return xs, txs, ours, theirs, closure, tclosure


def _compare(dtype, xs, txs, l1, l2):
    rtol = TORCH_RTOL[np.dtype(dtype)]
    for x, t in zip(xs, txs):
        tn = t.numpy()
        assert x.dtype == tn.dtype
        scale = np.maximum(np.abs(tn), 1e-3)
        rel = float(np.max(np.abs(x - tn) / scale))
        assert rel <= rtol, (x, tn)
    rel_loss = abs(l1 - l2) / abs(l2)
    assert rel_loss <= rtol, (l1, l2)


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
@pytest.mark.parametrize("start", list(STARTS), ids=list(STARTS))
def test_rosenbrock_matches_torch(dtype, start, line_search_fn):
    x0 = STARTS[start]
    lr = 1 if line_search_fn else (0.1 if len(x0) == 2 else 0.01)
    xs, txs, ours, theirs, closure, tclosure = _pair(
        dtype, [x0], lambda v: (lambda f, g: (f, [g]))(*rosenbrock(v[0])),
        lr=lr, max_iter=4, history_size=10, line_search_fn=line_search_fn)
    f_start = rosenbrock(np.array(x0, dtype=dtype))[0]
    for _ in range(3):
        l1 = ours.step(closure)
        l2 = float(theirs.step(tclosure))
        assert type(l1) is float
        _compare(dtype, xs, txs, l1, l2)
    st, tst = ours.state[0], theirs.state[txs[0]]
    assert (st["func_evals"], st["n_iter"]) == (tst["func_evals"], tst["n_iter"])
    assert st["n_iter"] >= 6                       # several iterations in each step
    assert len(st["old_dirs"]) == len(tst["old_dirs"])
    assert st["d"].dtype == np.dtype(dtype) and st["prev_flat_grad"].dtype == np.dtype(dtype)
    assert rosenbrock(xs[0])[0] < f_start                 # it did descend


def _least_squares(dtype, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((20, 4)).astype(dtype)
    Y = rng.standard_normal((20, 3)).astype(dtype)

    def fn(v):
        W, b = v
        R = A @ W + b - Y
        return float(0.5 * np.sum(R.astype(np.float64) ** 2)), [A.T @ R, R.sum(axis=0)]

    return fn, [np.zeros((4, 3)), np.zeros(3)]


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_several_arrays_and_a_wrapping_history_match_torch(dtype, line_search_fn):
    fn, x0 = _least_squares(dtype)
    xs, txs, ours, theirs, closure, tclosure = _pair(
        dtype, x0, fn, lr=0.05 if line_search_fn is None else 1, max_iter=4, history_size=3,
        line_search_fn=line_search_fn)
    for _ in range(3):
        l1 = ours.step(closure)
        l2 = float(theirs.step(tclosure))
        _compare(dtype, xs, txs, l1, l2)
        assert len(ours.state[0]["old_dirs"]) == len(theirs.state[txs[0]]["old_dirs"]) <= 3
    assert len(ours.state[0]["old_dirs"]) == 3                # the history wrapped
    assert xs[0].shape == (4, 3) and xs[1].shape == (3,)


def test_tolerance_exits_as_torch(dtype):
    # a quadratic: tolerance_grad stops the step early, the counters show where
    fn = lambda v: (float(np.sum(v[0] ** 2)), [2 * v[0]])
    for kw in (dict(tolerance_grad=1e-3), dict(tolerance_change=1e-2),
               dict(max_eval=3), dict(tolerance_grad=1e3)):
        xs, txs, ours, theirs, closure, tclosure = _pair(
            dtype, [[1.0, -2.0, 0.5]], fn, lr=0.3, **kw)
        for _ in range(2):
            l1, l2 = ours.step(closure), float(theirs.step(tclosure))
            _compare(dtype, xs, txs, l1, l2)
        st, tst = ours.state[0], theirs.state[txs[0]]
        assert (st["func_evals"], st["n_iter"]) == (tst["func_evals"], tst["n_iter"]), kw
        assert st["n_iter"] < 40                       # every variant stopped early
    assert set(st) == {"func_evals", "n_iter"} and st["func_evals"] == 2   # at once


def _run(opt, closure, steps):
    return [opt.step(closure) for _ in range(steps)]


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_state_dict_round_trip_mid_run_is_bit_for_bit(dtype, line_search_fn):
    fn, x0 = _least_squares(dtype, seed=3)
    kw = dict(lr=0.05 if line_search_fn is None else 1, max_iter=3, history_size=4,
              line_search_fn=line_search_fn)
    a = [np.array(v, dtype=dtype) for v in x0]
    full = LBFGS(a, **kw)
    losses_a = _run(full, lambda: fn(a), 6)

    b = [np.array(v, dtype=dtype) for v in x0]
    first = LBFGS(b, **kw)
    losses_b = _run(first, lambda: fn(b), 3)
    saved = first.state_dict()
    before = {k: (v.copy() if isinstance(v, np.ndarray) else v)
              for k, v in saved["state"][0].items() if not isinstance(v, list)}
    losses_b += _run(first, lambda: fn(b), 1)          # the snapshot does not move with it
    for k, v in before.items():
        assert np.array_equal(saved["state"][0][k], v)
    c = [np.array(v, dtype=dtype) for v in x0]
    _run(LBFGS(c, **kw), lambda: fn(c), 3)             # the same point as b after 3 steps
    second = LBFGS(c, **kw)
    second.load_state_dict(saved)
    losses_c = losses_b[:3] + _run(second, lambda: fn(c), 3)
    assert losses_c == losses_a
    for p, q in zip(c, a):
        assert np.array_equal(p, q)
    sa, sc = full.state[0], second.state[0]
    assert sa.keys() == sc.keys()
    for k in sa:
        va, vc = sa[k], sc[k]
        if isinstance(va, list):
            assert len(va) == len(vc) and all(np.array_equal(x, y) for x, y in zip(va, vc))
        else:
            assert np.array_equal(va, vc) and type(va) is type(vc), k


def test_state_dict_has_torchs_keys_and_copies():
    x = np.array([1.0, 2.0])
    opt = LBFGS([x], max_iter=2)
    assert opt.state == {} and opt.state_dict()["state"] == {}
    opt.step(lambda: (float(x @ x), [2 * x]))
    sd = opt.state_dict()
    assert set(sd["state"][0]) == {"func_evals", "n_iter", "d", "t", "old_dirs", "old_stps",
                                   "ro", "H_diag", "prev_flat_grad", "prev_loss"}
    assert sd["state"][0]["d"] is not opt.state[0]["d"]
    assert sd["param_groups"] == [dict(lr=1.0, max_iter=2, max_eval=2, tolerance_grad=1e-7,
                                       tolerance_change=1e-9, history_size=100,
                                       line_search_fn=None, params=[0])]


def test_load_state_dict_checks_everything_first():
    x = np.array([1.0, 2.0, 3.0])
    opt = LBFGS([x], max_iter=3)
    opt.step(lambda: (float(x @ x), [2 * x]))
    good = opt.state_dict()

    def broken(edit):
        sd = opt.state_dict()
        edit(sd)
        return sd

    bad = [
        (lambda sd: sd["state"][0].update(d=np.zeros(2)), ValueError, r"\['d'\] has shape"),
        (lambda sd: sd["state"][0].update(d=sd["state"][0]["d"].astype(np.float32)), TypeError,
         "dtype float32"),
        (lambda sd: sd["state"][0]["old_stps"].append(np.zeros(3)), ValueError, "old_stps"),
        (lambda sd: sd["state"][0].pop("ro"), ValueError, "'ro'"),
        (lambda sd: sd["state"][0].update(t="1"), TypeError, r"\['t'\]"),
        (lambda sd: sd["state"][0].update(n_iter=-1), ValueError, "n_iter"),
        (lambda sd: sd["state"][0].update(extra=1), ValueError, "unknown key 'extra'"),
        (lambda sd: sd["state"].update({1: {}}), ValueError, "index 0"),
        (lambda sd: sd["param_groups"][0].update(lr=-1.0), ValueError, r"\['lr'\]"),
        (lambda sd: sd["param_groups"][0].update(history_size=0), ValueError, "history_size"),
        (lambda sd: sd["param_groups"][0].update(params=[0, 1]), ValueError, "params"),
        (lambda sd: sd["param_groups"].append({}), ValueError, "param groups"),
    ]
    x_before, st_before = x.copy(), opt.state_dict()
    for edit, exc, match in bad:
        with pytest.raises(exc, match=match):
            opt.load_state_dict(broken(edit))
        assert np.array_equal(x, x_before)
        now = opt.state_dict()
        assert now["param_groups"] == st_before["param_groups"]
        assert np.array_equal(now["state"][0]["d"], st_before["state"][0]["d"])
        assert now["state"][0]["n_iter"] == st_before["state"][0]["n_iter"]
    opt.load_state_dict(good)                             # and the good one loads
    # a history longer than history_size is refused
    sd = opt.state_dict()
    sd["param_groups"][0]["history_size"] = 1
    sd["state"][0]["old_dirs"] *= 2
    sd["state"][0]["old_stps"] *= 2
    sd["state"][0]["ro"] *= 2
    with pytest.raises(ValueError, match="more than history_size=1"):
        opt.load_state_dict(sd)


@pytest.mark.parametrize("kw, exc, match", [
    (dict(lr=-0.1), ValueError, "lr must be >= 0"),
    (dict(lr=float("nan")), ValueError, "lr must be finite"),
    (dict(lr="1"), TypeError, "lr must be a real number"),
    (dict(max_iter=0), ValueError, "max_iter must be >= 1"),
    (dict(max_iter=2.0), TypeError, "max_iter must be an int"),
    (dict(max_eval=0), ValueError, "max_eval must be >= 1"),
    (dict(tolerance_grad=-1e-9), ValueError, "tolerance_grad must be >= 0"),
    (dict(tolerance_change=-1.0), ValueError, "tolerance_change must be >= 0"),
    (dict(history_size=0), ValueError, "history_size must be >= 1"),
    (dict(line_search_fn="armijo"), ValueError,
     "line_search_fn must be None or 'strong_wolfe', got 'armijo'"),
    (dict(backend="fast"), ValueError, "backend must be"),
])
def test_bad_hyper_parameters_are_named(kw, exc, match):
    x = np.ones(3)
    with pytest.raises(exc, match=match):
        LBFGS([x], **kw)


def test_bad_params_are_named():
    with pytest.raises(TypeError, match=r"params\[1\] must have dtype"):
        LBFGS([np.ones(2), np.ones(2, dtype=np.int64)])
    with pytest.raises(TypeError, match=r"params\[1\] has dtype float32 but params\[0\]"):
        LBFGS([np.ones(2), np.ones(2, dtype=np.float32)])
    x = np.ones(4)
    with pytest.raises(ValueError, match="share memory|same array"):
        LBFGS([x, x[:2]])
    with pytest.raises(ValueError, match=r"params\[0\] is read-only"):
        LBFGS([_readonly()])
    with pytest.raises(ValueError, match="parameter groups"):
        LBFGS([{"params": [np.ones(2)]}, {"params": [np.ones(2)]}])
    with pytest.raises(ValueError, match="unknown hyper-parameter 'momentum'"):
        LBFGS([{"params": [np.ones(2)], "momentum": 0.9}])
    with pytest.raises(TypeError, match="not a single array"):
        LBFGS(np.ones(2))
    opt = LBFGS([{"params": [np.ones(2)], "lr": 0.5}])
    assert opt.param_groups[0]["lr"] == 0.5 and opt.defaults["lr"] == 1.0
    with pytest.raises(ValueError, match="parameter groups"):
        opt.add_param_group({"params": [np.ones(2)]})


def _readonly():
    a = np.ones(2)
    a.setflags(write=False)
    return a


@pytest.mark.parametrize("out, exc, match", [
    (3.0, TypeError, r"closure\(\) must return \(loss, grads\)"),
    (("1.0", [np.ones(3)]), TypeError, r"closure\(\)\[0\] must be the loss"),
    ((np.ones(2), [np.ones(3)]), TypeError, r"closure\(\)\[0\]"),
    ((1.0, np.ones(3)), TypeError, r"closure\(\)\[1\] must be a list"),
    ((1.0, [np.ones(3), np.ones(2)]), ValueError, r"closure\(\)\[1\] has 2 arrays"),
    ((1.0, [np.ones(2)]), ValueError, r"closure\(\)\[1\]\[0\] has shape \(2,\)"),
    ((1.0, [np.ones(3, np.float32)]), TypeError, r"closure\(\)\[1\]\[0\] has dtype float32"),
    ((1.0, [[1.0, 1.0, 1.0]]), TypeError, r"closure\(\)\[1\]\[0\] must be a numpy.ndarray"),
])
def test_bad_closure_outputs_are_named_and_change_nothing(out, exc, match):
    x = np.array([1.0, 2.0, 3.0])
    opt = LBFGS([x])
    with pytest.raises(exc, match=match):
        opt.step(lambda: out)
    assert np.array_equal(x, [1.0, 2.0, 3.0]) and opt.state == {}


def test_a_bad_closure_output_mid_step_puts_everything_back():
    x = np.array([-1.5, 2.0, 1.0])
    opt = LBFGS([x], lr=0.1, max_iter=5)
    opt.step(lambda: (lambda f, g: (f, [g]))(*rosenbrock(x)))
    x_before, sd = x.copy(), opt.state_dict()
    calls = []

    def closure():
        calls.append(1)
        return (lambda f, g: (f, [g]))(*rosenbrock(x)) if len(calls) < 3 else (1.0, [np.ones(2)])

    with pytest.raises(ValueError, match=r"closure\(\)\[1\]\[0\] has shape"):
        opt.step(closure)
    assert len(calls) == 3 and np.array_equal(x, x_before)
    assert opt.state[0]["n_iter"] == sd["state"][0]["n_iter"]
    assert np.array_equal(opt.state[0]["d"], sd["state"][0]["d"])


def test_step_takes_a_closure():
    x = np.ones(2)
    opt = LBFGS([x])
    with pytest.raises(TypeError, match="takes a closure"):
        opt.step([np.ones(2)])
    opt.param_groups[0]["lr"] = -1.0
    with pytest.raises(ValueError, match=r"param_groups\[0\]\['lr'\] must be >= 0"):
        opt.step(lambda: (1.0, [np.ones(2)]))
    opt.param_groups[0]["lr"] = 0.5
    opt.param_groups[0]["params"] = [np.ones(2)]
    with pytest.raises(ValueError, match="was changed"):
        opt.step(lambda: (1.0, [np.ones(2)]))
    with pytest.raises(TypeError, match="closure"):
        opt.bind([np.ones(2)])


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_loss_goes_on_as_torch(dtype, line_search_fn, bad):
    def fn(v):
        with np.errstate(all="ignore"):       # the closure's own arithmetic on nan
            f, g = rosenbrock(v[0])
        fn.calls += 1
        if fn.calls >= 3:                     # from the third evaluation on
            return bad, [np.full_like(g, bad)]
        return f, [g]

    fn.calls = 0
    xs, txs, ours, theirs, closure, _ = _pair(dtype, [[-1.5, 2.0]], fn, lr=0.1,
                                              line_search_fn=line_search_fn)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")        # nothing leaks, not even a warning
        l1 = ours.step(closure)
    fn.calls = 0

    def tclosure():
        f, gs = fn([t.numpy().copy() for t in txs])
        txs[0].grad = torch.from_numpy(gs[0])
        return f

    l2 = float(theirs.step(tclosure))
    assert l1 == l2 == 12.5
    x, t = xs[0], txs[0].numpy()
    assert np.array_equal(np.isnan(x), np.isnan(t))
    fin = np.isfinite(x)
    assert np.allclose(x[fin], t[fin], rtol=TORCH_RTOL[np.dtype(dtype)])
    assert ours.state[0]["func_evals"] == theirs.state[txs[0]]["func_evals"]


def test_works_with_a_scheduler():
    x = np.array([1.0, -1.0])
    opt = LBFGS([x], lr=0.5, max_iter=2)
    sched = fastgd.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(2):
        opt.step(lambda: (float(x @ x), [2 * x]))
        sched.step()
    assert opt.param_groups[0]["lr"] == 0.125
    assert opt.state_dict()["param_groups"][0]["initial_lr"] == 0.5


def test_float32_stays_float32():
    x = np.array([-1.5, 2.0], dtype=np.float32)
    opt = LBFGS([x], line_search_fn="strong_wolfe", max_iter=5)
    opt.step(lambda: (lambda f, g: (f, [g]))(*rosenbrock(x)))
    st = opt.state[0]
    assert x.dtype == np.float32 and st["d"].dtype == np.float32
    assert all(a.dtype == np.float32 for a in st["old_dirs"] + st["old_stps"])
    assert all(type(r) is np.float32 for r in st["ro"]) and type(st["H_diag"]) is np.float32


# ---------------------------------------------------------------------------- minimize
def _quad(p):
    return p[..., 0] ** 2 + 10 * p[..., 1] ** 2 + p[..., 0] * p[..., 1]


def _quad_grad(p):
    return np.stack([2 * p[..., 0] + p[..., 1], 20 * p[..., 1] + p[..., 0]], axis=-1)


@pytest.mark.parametrize("line_search", [None, "strong_wolfe"])
def test_minimize_lbfgs_on_a_quadratic(dtype, line_search):
    x0 = np.array([1.0, 3.0], dtype=dtype)
    res = fastgd.minimize(_quad, x0, grad=_quad_grad, method="lbfgs", line_search=line_search,
                          tol_change=1e-14, tol=1e-3 if dtype == np.float32 else 1e-6)
    assert res.converged and "gradient norm" in res.message, res.message
    assert res.x.dtype == dtype and np.abs(res.x).max() < 1e-3
    assert res.nit < 30 and len(res.history) == res.nit + 1 and res.path.shape == (res.nit + 1, 2)
    assert np.allclose(res.history, [_quad(p) for p in res.path.astype(np.float64)],
                       rtol=1e-5)


def test_minimize_lbfgs_is_the_optimizers_iterations():
    """Each minimize iteration is one L-BFGS iteration: the path is what one LBFGS step of
    max_iter=n gives, with torch's defaults."""
    f = fastgd.functions.rosenbrock()
    res = fastgd.minimize(f, [-1.5, 2.0], grad=f.grad, method="lbfgs", lr=0.1, max_iter=8,
                          tol=0, tol_change=0, history_size=5)
    x = np.array([-1.5, 2.0])
    opt = LBFGS([x], lr=0.1, max_iter=8, tolerance_grad=0, tolerance_change=1e-300,
                history_size=5)
    opt.step(lambda: (f(x), [f.grad(x)]))
    assert res.nit == 8 and np.array_equal(res.x, x)


@pytest.mark.parametrize("start", [[-1.5, 2.0], [-1.2, 1.0], [2.0, -1.0]])
def test_minimize_lbfgs_reaches_rosenbrocks_minimum(start):
    f = fastgd.functions.rosenbrock()
    res = fastgd.minimize(f, start, grad=f.grad, method="lbfgs", line_search="strong_wolfe",
                          tol=1e-8, tol_change=1e-14)
    assert res.converged, res.message
    assert np.allclose(res.x, [1.0, 1.0], atol=1e-6) and res.nit < 100


def test_minimize_lbfgs_batch_maximize_callback_and_checks():
    f = fastgd.functions.rosenbrock()
    starts = np.array([[-1.5, 2.0], [0.0, 0.0]])
    res = fastgd.minimize(f, starts, grad=f.grad, method="lbfgs", line_search="strong_wolfe",
                          tol=1e-8, tol_change=1e-14)
    assert res.converged.all() and np.allclose(res.x, 1.0, atol=1e-6)
    one = fastgd.minimize(f, starts[1], grad=f.grad, method="lbfgs", line_search="strong_wolfe",
                          tol=1e-8, tol_change=1e-14)
    assert np.array_equal(res[1].x, one.x) and res.nit[1] == one.nit
    up = fastgd.minimize(lambda p: -_quad(p), [1.0, 3.0], grad=lambda p: -_quad_grad(p),
                         method="lbfgs", maximize=True, line_search="strong_wolfe")
    assert up.converged and np.abs(up.x).max() < 1e-5
    seen = []
    stop = fastgd.minimize(_quad, [1.0, 3.0], grad=_quad_grad, method="lbfgs", lr=0.05,
                           callback=lambda it: seen.append(it.nit) or it.nit == 3)
    assert seen == [1, 2, 3] and stop.nit == 3 and "callback" in stop.message
    with pytest.raises(ValueError, match="unknown hyper-parameter 'momentum' for method='lbfgs'"):
        fastgd.minimize(_quad, [1.0, 3.0], method="lbfgs", momentum=0.9)
    with pytest.raises(ValueError, match="history_size must be >= 1"):
        fastgd.minimize(_quad, [1.0, 3.0], method="lbfgs", history_size=0)
    with pytest.raises(ValueError, match="line_search must be None or 'strong_wolfe'"):
        fastgd.minimize(_quad, [1.0, 3.0], method="lbfgs", line_search="backtracking")
    with pytest.raises(ValueError, match="line_search must be None or 'backtracking'"):
        fastgd.minimize(_quad, [1.0, 3.0], method="adam", line_search="strong_wolfe")
    with pytest.raises(ValueError, match="accept_if_improves"):
        fastgd.minimize(_quad, [1.0, 3.0], method="lbfgs", accept_if_improves=True)


def test_minimize_lbfgs_divergence_is_reported():
    # an unbounded-below function: lr=1 fixed steps run off, the best point comes back
    res = fastgd.minimize(lambda p: -np.dot(p, p) ** 2, [1.0, 0.5],
                          grad=lambda p: -4 * np.dot(p, p) * p, method="lbfgs", max_iter=200)
    assert not res.converged and res.message.startswith("diverged")
    assert np.isfinite(res.x).all() and np.isfinite(res.fun)


def test_minimize_accepts_every_algorithm_name():
    for name in [*fastgd.optim.ALGORITHMS, "lbfgs"]:
        res = fastgd.minimize(_quad, [1.0, 3.0], grad=_quad_grad, method=name, max_iter=2)
        assert res.nit == 2, name
    with pytest.raises(ValueError, match="lbfgs"):
        fastgd.minimize(_quad, [1.0, 3.0], method="bfgs")

