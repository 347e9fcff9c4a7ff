"""The native kernels against their numpy twins (``backend="reference"``), over many steps."""
import functools

import numpy as np
import pytest

from helpers import CASE_IDS, CASES, TOL, assert_state_close, copies, make, random_array

STEPS = 30
BIG = 2**17 + 37  # above the OpenMP threshold, not a multiple of 16 or 64

# (shape, memory order); two parameter groups
GROUP0 = [((), "C"), ((1,), "C"), ((0,), "C"), ((17,), "C"), ((BIG,), "C")]
GROUP1 = [((3, 0), "C"), ((5, 7), "C"), ((4, 33), "F"), ((1000,), "C"), ((2, 3, 5), "C")]


@functools.lru_cache(maxsize=None)
def _problem(dtype_name):
    """Initial parameters and a fixed gradient/skip schedule (read-only, shared by tests)."""
    dtype = np.dtype(dtype_name)
    rng = np.random.default_rng(20240611 + dtype.itemsize)
    shapes = GROUP0 + GROUP1
    init = [random_array(rng, s, dtype, order) for s, order in shapes]
    grads = []
    for _ in range(STEPS):
        step = []
        for (s, order), scale in zip(shapes, rng.uniform(0.1, 3.0, len(shapes))):
            g = random_array(rng, s, dtype, order, scale)
            g.flags.writeable = False  # gradients are only read
            step.append(g)
        # about one gradient in six is None: that parameter skips the step
        for i in np.flatnonzero(rng.random(len(shapes)) < 0.15):
            step[i] = None
        grads.append(step)
    for a in init:
        a.flags.writeable = False
    return init, grads


def _run(name, kw, dtype, backend):
    init, grads = _problem(dtype.name)
    params = copies(init)
    n0 = len(GROUP0)
    groups = [{"params": params[:n0]},
              {"params": params[n0:], "lr": kw["lr"] * 0.5}]
    opt = make(name, groups, backend, **kw)
    for t, g in enumerate(grads):
        if t == STEPS // 2:
            opt.param_groups[0]["lr"] = kw["lr"] * 0.3
        opt.step(g)
    return params, opt


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_native_matches_reference(case, dtype, threads):
    name, kw = case
    threads(2)  # the BIG parameter is then split over two OpenMP threads
    tol = TOL[dtype]
    p_nat, opt_nat = _run(name, kw, dtype, "native")
    p_ref, opt_ref = _run(name, kw, dtype, "reference")
    init, _ = _problem(dtype.name)
    for i, (a, b, a0) in enumerate(zip(p_nat, p_ref, init)):
        assert a.dtype == dtype and a.shape == a0.shape
        assert np.all(np.isfinite(b)), f"reference produced non-finite values in params[{i}]"
        np.testing.assert_allclose(a, b, **tol, err_msg=f"params[{i}]")
        if a.size:
            assert not np.array_equal(a, a0), f"params[{i}] never moved"
    assert_state_close(opt_nat, opt_ref, tol)
    # dtype of every state array is the parameter's
    for i, entry in opt_nat.state.items():
        for k, v in entry.items():
            if isinstance(v, np.ndarray):
                assert v.dtype == dtype and v.shape == init[i].shape, (i, k)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_mixed_float32_float64_in_one_optimizer(case, rng):
    """Many small arrays of both dtypes in one group: one kernel call per dtype batch."""
    name, kw = case
    sizes = rng.integers(0, 40, size=40)
    dtypes = [np.float32 if i % 3 else np.float64 for i in range(len(sizes))]
    init = [random_array(rng, (int(n),), dt) for n, dt in zip(sizes, dtypes)]
    grads = [[random_array(rng, a.shape, a.dtype) for a in init] for _ in range(8)]
    grads[3] = [None if i % 4 == 0 else g for i, g in enumerate(grads[3])]

    runs = {}
    for backend in ("native", "reference"):
        params = copies(init)
        opt = make(name, params, backend, **kw)
        for g in grads:
            opt.step(g)
        runs[backend] = params, opt
    # each dtype alone, in its own optimizer: batching by dtype must not change anything
    alone = copies(init)
    for dt in (np.float32, np.float64):
        idx = [i for i, a in enumerate(alone) if a.dtype == dt]
        opt = make(name, [alone[i] for i in idx], "native", **kw)
        for g in grads:
            opt.step([g[i] for i in idx])

    p_nat, opt_nat = runs["native"]
    p_ref, opt_ref = runs["reference"]
    for i, (a, b, c) in enumerate(zip(p_nat, p_ref, alone)):
        assert a.dtype == init[i].dtype
        np.testing.assert_allclose(a, b, **TOL[a.dtype], err_msg=f"params[{i}]")
        np.testing.assert_array_equal(a, c, err_msg=f"params[{i}] batched vs alone")
    tol32 = TOL[np.dtype(np.float32)]
    assert_state_close(opt_nat, opt_ref, tol32)
    for i, entry in opt_nat.state.items():
        for k, v in entry.items():
            if isinstance(v, np.ndarray):
                assert v.dtype == init[i].dtype, (i, k)
    assert opt_nat.state[0]["step"] == len(grads) - 1  # skipped once (grads[3][0] is None)
    assert opt_nat.state[1]["step"] == len(grads)
