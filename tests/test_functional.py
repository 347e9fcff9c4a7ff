"""The in-place functional API: backends, list and single forms, steps, dtypes, errors."""
import re

import numpy as np
import pytest

from fastgd import functional as F
from helpers import CASE_IDS, CASES, TOL, copies, make, random_array


def state_names(name, kw):
    """The functional state arrays a case needs, with their initial fill value."""
    if name == "SGD":
        return {"momentum_buffer": 0.0} if kw.get("momentum", 0) else {}
    if name == "Adagrad":
        return {"state_sum": kw.get("initial_accumulator_value", 0.0)}
    if name == "RMSprop":
        out = {"square_avg": 0.0}
        if kw.get("momentum", 0):
            out["momentum_buffer"] = 0.0
        if kw.get("centered", False):
            out["grad_avg"] = 0.0
        return out
    if name == "Adamax":
        return {"exp_avg": 0.0, "exp_inf": 0.0}
    if name == "Lion":
        return {"exp_avg": 0.0}
    if name == "Adadelta":
        return {"square_avg": 0.0, "acc_delta": 0.0}
    if name in ("RAdam", "NAdam"):
        return {"exp_avg": 0.0, "exp_avg_sq": 0.0}
    out = {"exp_avg": 0.0, "exp_avg_sq": 0.0}
    if kw.get("amsgrad", False):
        out["max_exp_avg_sq"] = 0.0
    return out


def call(name, kw, param, grad, states, step, backend):
    """One functional update for a CASES entry; ``step`` is an int or a list of ints."""
    kw = dict(kw)
    if name == "SGD":
        first = step == 1 if np.ndim(step) == 0 else all(s == 1 for s in step)
        F.sgd_(param, grad, states.get("momentum_buffer"), init_momentum_buffer=first,
               backend=backend, **kw)
    elif name == "Adagrad":
        kw.pop("initial_accumulator_value", None)
        F.adagrad_(param, grad, states["state_sum"], step=step, backend=backend, **kw)
    elif name == "RMSprop":
        F.rmsprop_(param, grad, states["square_avg"], grad_avg=states.get("grad_avg"),
                   momentum_buffer=states.get("momentum_buffer"), backend=backend, **kw)
    elif name == "RAdam":
        b1, b2 = kw.pop("betas", (0.9, 0.999))
        F.radam_(param, grad, states["exp_avg"], states["exp_avg_sq"], step=step, beta1=b1,
                 beta2=b2, backend=backend, **kw)
    elif name == "NAdam":
        b1, b2 = kw.pop("betas", (0.9, 0.999))
        # the tests keep mu_product as one 0-d array per parameter, like the other states;
        # the list form takes them as one float64 vector
        mu = states["mu_product"]
        vec = mu if isinstance(mu, np.ndarray) else np.array([float(m) for m in mu])
        F.nadam_(param, grad, states["exp_avg"], states["exp_avg_sq"], vec, step=step,
                 beta1=b1, beta2=b2, backend=backend, **kw)
        if not isinstance(mu, np.ndarray):
            for m, v in zip(mu, vec):
                m[...] = v
    elif name == "Adadelta":
        F.adadelta_(param, grad, states["square_avg"], states["acc_delta"], backend=backend,
                    **kw)
    elif name == "Lion":
        b1, b2 = kw.pop("betas", (0.9, 0.99))
        F.lion_(param, grad, states["exp_avg"], beta1=b1, beta2=b2, backend=backend, **kw)
    elif name == "Adamax":
        b1, b2 = kw.pop("betas", (0.9, 0.999))
        F.adamax_(param, grad, states["exp_avg"], states["exp_inf"], step=step, beta1=b1,
                  beta2=b2, backend=backend, **kw)
    else:
        b1, b2 = kw.pop("betas", (0.9, 0.999))
        fn = F.adam_ if name == "Adam" else F.adamw_
        fn(param, grad, states["exp_avg"], states["exp_avg_sq"], step=step, beta1=b1,
           beta2=b2, max_exp_avg_sq=states.get("max_exp_avg_sq"), backend=backend, **kw)


def new_states(name, kw, params):
    out = {k: [np.full_like(p, v) for p in params] for k, v in state_names(name, kw).items()}
    if name == "NAdam":
        out["mu_product"] = [np.ones(()) for _ in params]
    return out


SHAPES = [(), (1,), (0,), (17,), (4, 5), (70001,)]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_functional_matches_optimizer_and_reference(case, dtype, rng):
    """List form, native and reference, == the optimizer class over 6 steps."""
    name, kw = case
    init = [random_array(rng, s, dtype) for s in SHAPES]
    grads = [[random_array(rng, s, dtype) for s in SHAPES] for _ in range(6)]

    out = {}
    for backend in ("native", "reference"):
        params = copies(init)
        states = new_states(name, kw, params)
        for t, g in enumerate(grads, start=1):
            call(name, kw, params, g, states, t, backend)
        out[backend] = params, states
    opt_params = copies(init)
    opt = make(name, opt_params, "native", **kw)
    for g in grads:
        opt.step(g)

    (pn, sn), (pr, sr) = out["native"], out["reference"]
    for i in range(len(init)):
        assert pn[i].dtype == dtype and pr[i].dtype == dtype
        np.testing.assert_allclose(pn[i], pr[i], **TOL[dtype], err_msg=f"param[{i}]")
        assert np.array_equal(pn[i], opt_params[i]), f"param[{i}] vs optimizer"
        for k in sn:
            assert sn[k][i].dtype == (np.float64 if k == "mu_product" else dtype)
            np.testing.assert_allclose(sn[k][i], sr[k][i], **TOL[dtype], err_msg=k)
            opt_key = "sum" if k == "state_sum" else k
            assert np.array_equal(sn[k][i], opt.state[i][opt_key]), (i, k)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_single_array_form_equals_list_form(case, dtype, rng, backend):
    name, kw = case
    init = [random_array(rng, s, dtype) for s in [(3,), (2, 2), ()]]
    grads = [[random_array(rng, p.shape, dtype) for p in init] for _ in range(3)]
    lst = copies(init)
    lst_states = new_states(name, kw, lst)
    single = copies(init)
    single_states = new_states(name, kw, single)
    for t, g in enumerate(grads, start=1):
        call(name, kw, lst, g, lst_states, t, backend)
        for i, p in enumerate(single):
            call(name, kw, p, g[i], {k: v[i] for k, v in single_states.items()}, t, backend)
    for i in range(len(init)):
        assert np.array_equal(lst[i], single[i])
        for k in lst_states:
            assert np.array_equal(lst_states[k][i], single_states[k][i])


@pytest.mark.parametrize("name,kw", [c for c in CASES if c[0] in ("Adagrad", "Adam", "AdamW")],
                         ids=[i for c, i in zip(CASES, CASE_IDS)
                              if c[0] in ("Adagrad", "Adam", "AdamW")])
def test_per_tensor_step_list(name, kw, dtype, rng, backend):
    """``step=[...]``: each tensor uses its own step for the step-dependent factors."""
    steps = [1, 4, 4, 2, 7]
    init = [random_array(rng, (n,), dtype) for n in (3, 5, 1, 70, 2)]
    g = [random_array(rng, p.shape, dtype) for p in init]
    lst = copies(init)
    lst_states = new_states(name, kw, lst)
    # some state history, so the step numbers matter for every tensor
    for k in lst_states:
        for a in lst_states[k]:
            a[...] = np.abs(random_array(rng, a.shape, dtype)) + 0.1
    pre_states = {k: copies(v) for k, v in lst_states.items()}

    def fresh():
        return copies(init), {k: copies(v) for k, v in pre_states.items()}

    call(name, kw, lst, g, lst_states, steps, backend)
    one, one_states = fresh()
    for i, p in enumerate(one):
        call(name, kw, p, g[i], {k: v[i] for k, v in one_states.items()}, steps[i], backend)
    for i in range(len(init)):
        assert np.array_equal(lst[i], one[i]), i
    # and the steps mattered: with step=1 for all, only the tensor at step 1 agrees
    ones, ones_states = fresh()
    call(name, kw, ones, g, ones_states, 1, backend)
    assert np.array_equal(ones[0], lst[0])
    if name != "Adagrad" or kw.get("lr_decay", 0):
        assert not np.array_equal(ones[1], lst[1])
    # numpy integer steps work the same
    arr, arr_states = fresh()
    call(name, kw, arr, g, arr_states, np.array(steps), backend)
    for a, b in zip(arr, lst):
        assert np.array_equal(a, b)


def test_sgd_init_momentum_buffer(backend):
    x, buf = np.array([1.0]), np.array([5.0])
    F.sgd_(x, np.array([2.0]), buf, lr=0.5, momentum=0.9, dampening=0.5,
           init_momentum_buffer=True, backend=backend)
    np.testing.assert_array_equal(buf, [2.0])       # the buffer takes the gradient
    np.testing.assert_array_equal(x, [0.0])
    F.sgd_(x, np.array([2.0]), buf, lr=0.5, momentum=0.9, dampening=0.5, backend=backend)
    np.testing.assert_allclose(buf, [0.9 * 2 + 0.5 * 2])
    np.testing.assert_allclose(x, [-0.5 * 2.8])


def test_sgd_without_momentum_needs_no_buffer(backend, dtype):
    x = np.array([1.0, 2.0], dtype)
    F.sgd_(x, np.array([1.0, 1.0], dtype), lr=0.25, backend=backend)
    np.testing.assert_array_equal(x, np.array([0.75, 1.75], dtype))
    assert x.dtype == dtype


def test_float32_stays_float32(backend):
    w, m, v, vmax = (np.ones(3, np.float32) for _ in range(4))
    F.adam_(w, np.ones(3, np.float32), m, v, step=1, lr=0.1, amsgrad=True, max_exp_avg_sq=vmax,
            backend=backend)
    assert all(a.dtype == np.float32 for a in (w, m, v, vmax))
    F.adamw_(w, np.ones(3, np.float32), m, v, step=2, backend=backend)
    s = np.zeros(3, np.float32)
    F.adagrad_(w, np.ones(3, np.float32), s, step=1, backend=backend)
    sq, ga, mb = (np.zeros(3, np.float32) for _ in range(3))
    F.rmsprop_(w, np.ones(3, np.float32), sq, grad_avg=ga, momentum_buffer=mb, momentum=0.9,
               centered=True, backend=backend)
    assert all(a.dtype == np.float32 for a in (w, m, v, vmax, s, sq, ga, mb))
    assert np.all(np.isfinite(w))


# ---------------------------------------------------------------------------- errors

def _adam_args(n=3, dtype=np.float64):
    return [np.ones(n, dtype), np.ones(n, dtype), np.zeros(n, dtype), np.zeros(n, dtype)]


@pytest.mark.parametrize("call_,match", [
    (lambda b: F.sgd_(np.ones(2), np.ones(2), momentum=0.9, backend=b), "momentum_buffer"),
    (lambda b: F.adam_(*_adam_args(), step=1, amsgrad=True, backend=b), "max_exp_avg_sq"),
    (lambda b: F.adamw_(*_adam_args(), step=1, amsgrad=True, backend=b), "max_exp_avg_sq"),
    (lambda b: F.rmsprop_(np.ones(2), np.ones(2), np.zeros(2), centered=True, backend=b),
     "grad_avg"),
    (lambda b: F.rmsprop_(np.ones(2), np.ones(2), np.zeros(2), momentum=0.5, backend=b),
     "momentum_buffer"),
], ids=["sgd-buffer", "adam-max", "adamw-max", "rmsprop-grad_avg", "rmsprop-buffer"])
def test_missing_state(call_, match, backend):
    with pytest.raises(ValueError, match=match):
        call_(backend)


@pytest.mark.parametrize("call_,which", [
    (lambda b: F.adagrad_(np.ones(2), np.ones(2), None, step=1, backend=b), "state_sum"),
    (lambda b: F.adam_(np.ones(2), np.ones(2), None, np.zeros(2), step=1, backend=b), "exp_avg"),
    (lambda b: F.adam_([np.ones(2)], [np.ones(2)], [np.zeros(2)], None, step=1, backend=b),
     "exp_avg_sq"),
    (lambda b: F.rmsprop_(np.ones(2), np.ones(2), None, backend=b), "square_avg"),
], ids=["adagrad", "adam-exp_avg", "adam-exp_avg_sq-list", "rmsprop"])
def test_none_for_a_state_every_step_uses(call_, which, backend):
    """Was a crash of the native backend (the kernel read the missing array)."""
    with pytest.raises(TypeError, match=f"{which} must be a numpy.ndarray"):
        call_(backend)


@pytest.mark.parametrize("step", [0, -1, 1.0, 2.5, True, "1", [1, 0, 2], [1, 2]])
def test_bad_step(step, backend):
    params = [np.ones(2), np.ones(3), np.ones(1)]
    args = [params, copies(params), [np.zeros_like(p) for p in params],
            [np.zeros_like(p) for p in params]]
    before = copies(params)
    with pytest.raises((ValueError, TypeError), match="step"):
        F.adam_(*args, step=step, backend=backend)
    with pytest.raises((ValueError, TypeError), match="step"):
        F.adagrad_(params, args[1], args[2], step=step, backend=backend)
    for a, b in zip(params, before):
        np.testing.assert_array_equal(a, b)


def test_step_none_is_refused(backend):
    w, g, m, v = _adam_args()
    with pytest.raises((ValueError, TypeError), match="step"):
        F.adam_(w, g, m, v, step=None, backend=backend)
    np.testing.assert_array_equal(w, 1.0)
    with pytest.raises((ValueError, TypeError), match="step"):
        F.adagrad_(w, g, np.zeros(3), step=None, backend=backend)
    np.testing.assert_array_equal(w, 1.0)


def test_step_is_required():
    with pytest.raises(TypeError, match="step"):
        F.adam_(*_adam_args())
    with pytest.raises(TypeError, match="step"):
        F.adagrad_(np.ones(2), np.ones(2), np.zeros(2))


@pytest.mark.parametrize("which", ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"])
def test_state_shape_and_dtype_mismatch(which, backend):
    def run(bad):
        w, g, m, v = _adam_args(4)
        states = {"exp_avg": m, "exp_avg_sq": v, "max_exp_avg_sq": np.zeros(4)}
        states[which] = bad
        F.adam_(w, g, states["exp_avg"], states["exp_avg_sq"], step=1, amsgrad=True,
                max_exp_avg_sq=states["max_exp_avg_sq"], backend=backend)
        return w

    with pytest.raises(ValueError, match=which):
        run(np.zeros(5))
    with pytest.raises(ValueError, match=which):
        run(np.zeros((4, 1)))
    with pytest.raises(TypeError, match=which):
        run(np.zeros(4, np.float32))
    with pytest.raises(TypeError, match=which):
        run([0.0] * 4)
    ro = np.zeros(4)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=which):
        run(ro)
    with pytest.raises(ValueError, match=which):
        run(np.zeros(8)[::2])


def test_adagrad_errors_name_state_sum(backend):
    with pytest.raises(ValueError, match="state_sum"):
        F.adagrad_(np.ones(3), np.ones(3), np.zeros(4), step=1, backend=backend)


def test_param_and_grad_errors(backend):
    with pytest.raises(TypeError, match="param"):
        F.sgd_(np.ones(2, np.int32), np.ones(2, np.int32), backend=backend)
    with pytest.raises(TypeError, match="grad"):
        F.sgd_(np.ones(2), np.ones(2, np.float32), backend=backend)
    with pytest.raises(ValueError, match="grad"):
        F.sgd_(np.ones(2), np.ones(3), backend=backend)
    with pytest.raises(TypeError, match="grad"):
        F.sgd_(np.ones(2), [1.0, 1.0], backend=backend)
    with pytest.raises(ValueError, match="param"):
        F.sgd_(np.ones((4, 4))[:, 0], np.ones(4), backend=backend)
    ro = np.ones(2)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="param"):
        F.sgd_(ro, np.ones(2), backend=backend)
    with pytest.raises(ValueError, match="grad"):
        F.sgd_([np.ones(2), np.ones(2)], [np.ones(2)], backend=backend)
    with pytest.raises(ValueError, match="backend"):
        F.sgd_(np.ones(2), np.ones(2), backend="fast")
    with pytest.raises(ValueError, match="lr"):
        F.adam_(*_adam_args(), step=1, lr=-1.0, backend=backend)
    with pytest.raises(ValueError, match="beta1"):
        F.adam_(*_adam_args(), step=1, beta1=1.0, backend=backend)
    with pytest.raises(ValueError, match="beta2"):
        F.adamw_(*_adam_args(), step=1, beta2=-0.5, backend=backend)
    with pytest.raises(ValueError, match="nesterov"):
        F.sgd_(np.ones(2), np.ones(2), np.zeros(2), momentum=0.0, nesterov=True,
               backend=backend)


def test_grad_sharing_memory_with_written_arrays(backend):
    w, g, m, v = _adam_args(4)
    for bad_grad in (w, w[:], m, v):
        before = [a.copy() for a in (w, m, v)]
        with pytest.raises(ValueError, match="grad"):
            F.adam_(w, bad_grad, m, v, step=1, backend=backend)
        for a, b in zip((w, m, v), before):
            np.testing.assert_array_equal(a, b)
    # in list form, a gradient may not alias *any* written array
    w2 = np.ones(4)
    with pytest.raises(ValueError, match="grad"):
        F.sgd_([w, w2], [w2, np.ones(4)], backend=backend)
    # state shared with the parameter
    with pytest.raises(ValueError, match="param|exp_avg"):
        F.adam_(w, g, w, v, step=1, backend=backend)
    with pytest.raises(ValueError, match="exp_avg"):
        F.adam_(w, g, m, m, step=1, backend=backend)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_no_partial_update_in_list_form(case, backend, rng):
    name, kw = case
    params = [random_array(rng, (5,), np.float64), random_array(rng, (4,), np.float64)]
    grads = [random_array(rng, p.shape, p.dtype) for p in params]
    states = new_states(name, kw, params)
    before_p = copies(params)
    before_s = {k: copies(v) for k, v in states.items()}
    bad_grads = [grads[0], np.ones(4, np.float32)]
    with pytest.raises(TypeError, match=re.escape("grad[1]")):
        call(name, kw, params, bad_grads, states, 1, backend)
    if states:
        k = next(iter(states))
        bad_states = dict(states)
        bad_states[k] = [states[k][0], np.zeros(3)]
        # ("sum[1]" also matches "state_sum[1]"; see test_adagrad_errors_name_state_sum)
        with pytest.raises(ValueError, match=re.escape(f"{k.replace('state_', '')}[1]")):
            call(name, kw, params, grads, bad_states, 1, backend)
    for a, b in zip(params, before_p):
        assert np.array_equal(a, b)
    for k in states:
        for a, b in zip(states[k], before_s[k]):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_state_in_another_layout_is_refused_by_both_backends(backend):
    p = np.asfortranarray(np.ones((3, 4)))
    m, v = np.zeros((3, 4)), np.zeros((3, 4))  # C order, parameter is Fortran order
    before = p.copy()
    with pytest.raises(ValueError, match="exp_avg has strides"):
        F.adam_(p, np.ones((3, 4)), m, v, step=1, backend=backend)
    np.testing.assert_array_equal(p, before)
    F.adam_(p, np.ones((3, 4)), np.zeros_like(p), np.zeros_like(p), step=1,
            backend=backend)
