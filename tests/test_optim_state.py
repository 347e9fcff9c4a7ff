"""Parameter groups, per-parameter state, skipped parameters and state dicts."""
import copy

import numpy as np
import pytest

import fastgd
from helpers import (CASE_IDS, CASES, assert_state_equal, assert_trees_equal, copies, make,
                     random_array, snapshot)

# optimizers whose state dict has something to carry (for the round trips)
ROUND_TRIP = [
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.1, initial_accumulator_value=0.2)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, alpha=0.9)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
]
ROUND_TRIP_IDS = [CASE_IDS[CASES.index(c)] if c in CASES else f"{c[0]}{sorted(c[1].items())}"
                  for c in ROUND_TRIP]


def grads_like(rng, params, none=()):
    return [None if i in none else random_array(rng, p.shape, p.dtype, scale=2.0)
            for i, p in enumerate(params)]


# ---------------------------------------------------------------------------- groups

def test_groups_have_their_own_hyper_parameters(backend, dtype):
    a, b = np.ones(3, dtype), np.ones(3, dtype)
    opt = fastgd.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1,
                           backend=backend)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[1]["lr"] == 0.5
    assert opt.param_groups[1]["momentum"] == 0  # defaults fill the rest
    g = np.ones(3, dtype)
    opt.step([g, g])
    np.testing.assert_allclose(a, 0.9, rtol=1e-6)
    np.testing.assert_allclose(b, 0.5, rtol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_group_hyper_parameters_match_separate_optimizers(case, rng, backend):
    """Two groups with different hyper-parameters == two optimizers, bit for bit."""
    name, kw = case
    init = [random_array(rng, (5,), np.float64), random_array(rng, (2, 3), np.float32)]
    other = dict(kw, lr=kw["lr"] * 3)
    if "weight_decay" in kw:
        other["weight_decay"] = 0.0
    grads = [grads_like(rng, init) for _ in range(4)]

    params = copies(init)
    opt = make(name, [{"params": [params[0]]}, {"params": [params[1]], **other}], backend,
               **kw)
    alone = copies(init)
    opt_a = make(name, [alone[0]], backend, **kw)
    opt_b = make(name, [alone[1]], backend, **other)
    for g in grads:
        opt.step(g)
        opt_a.step(g[:1])
        opt_b.step(g[1:])
    for x, y in zip(params, alone):
        np.testing.assert_array_equal(x, y)


def test_changing_lr_between_steps_takes_effect(backend, dtype):
    x = np.array([1.0, 2.0], dtype)
    y = np.array([1.0, 2.0], dtype)
    opt = fastgd.optim.SGD([{"params": [x]}, {"params": [y]}], lr=0.1, backend=backend)
    g = np.ones(2, dtype)
    opt.step([g, g])
    opt.param_groups[1]["lr"] = 0.5
    opt.step([g, g])
    np.testing.assert_allclose(x, [0.8, 1.8], rtol=1e-6)
    np.testing.assert_allclose(y, [0.4, 1.4], rtol=1e-6)
    opt.param_groups[0]["lr"] = 0.0
    opt.step([g, g])
    np.testing.assert_allclose(x, [0.8, 1.8], rtol=1e-6)


@pytest.mark.parametrize("name,key,value", [
    ("SGD", "momentum", 0.9), ("SGD", "weight_decay", 0.5), ("SGD", "maximize", True),
    ("Adagrad", "lr_decay", 1.0), ("RMSprop", "centered", True), ("RMSprop", "momentum", 0.5),
    ("Adam", "betas", (0.5, 0.5)), ("Adam", "amsgrad", True), ("AdamW", "weight_decay", 0.3),
    ("Adam", "eps", 0.5),
])
def test_changing_other_hyper_parameters_between_steps(backend, rng, name, key, value):
    """Edits of param_groups act on the next step exactly as if the optimizer had them."""
    init = [random_array(rng, (7,), np.float64)]
    # shrinking gradients, so that AMSGrad's running maximum matters
    grads = [[s * g[0]] for s in (3, 3, 3, 0.01, 0.01) for g in [grads_like(rng, init)]]
    x = copies(init)
    opt = make(name, x, backend, lr=0.1)
    # the same run in the reference backend, built with the new value from step 3 on
    y = copies(init)
    ref = make(name, y, "reference", lr=0.1)
    for t, g in enumerate(grads):
        if t == 2:
            opt.param_groups[0][key] = value
            ref.param_groups[0][key] = value
        opt.step(g)
        ref.step(g)
        if t == 1:
            before = x[0].copy()
    np.testing.assert_allclose(x[0], y[0], rtol=1e-12)
    # and the change made a difference: rerun without it
    z = copies(init)
    plain = make(name, z, backend, lr=0.1)
    for g in grads:
        plain.step(g)
    assert not np.allclose(z[0], x[0], rtol=1e-9, atol=0)
    assert not np.array_equal(before, x[0])


def test_in_place_edit_of_list_betas_takes_effect(backend):
    x, y = np.ones(3), np.ones(3)
    opt = fastgd.optim.Adam([x], lr=0.1, betas=[0.9, 0.999], backend=backend)
    ref = fastgd.optim.Adam([y], lr=0.1, betas=(0.9, 0.999), backend=backend)
    g = np.array([1.0, -2.0, 0.5])
    opt.step([g])
    ref.step([g])
    opt.param_groups[0]["betas"][0] = 0.2
    ref.param_groups[0]["betas"] = (0.2, 0.999)
    opt.step([-g])
    ref.step([-g])
    np.testing.assert_array_equal(x, y)
    opt.param_groups[0]["betas"][1] = 1.0
    with pytest.raises(ValueError, match="betas"):
        opt.step([g])


def test_deleted_hyper_parameter_is_refused(backend):
    opt = fastgd.optim.RMSprop([np.ones(2)], backend=backend)
    opt.step([np.ones(2)])
    del opt.param_groups[0]["alpha"]
    with pytest.raises((ValueError, KeyError), match="alpha"):
        opt.step([np.ones(2)])


# The optimizer re-checks a group only when it no longer compares equal (==) to a snapshot
# taken at the last check (optimizer.py, Optimizer._checked). == is the wrong test for
# "unchanged": it ignores type changes (1 == True) and in-place edits of arrays, and it
# raises for arrays of more than one element.

def test_in_place_edit_of_array_betas_takes_effect(backend):
    x = np.ones(3)
    opt = fastgd.optim.Adam([x], lr=0.1, betas=np.array([0.9, 0.999]), backend=backend)
    opt.step([np.ones(3)])
    opt.param_groups[0]["betas"][0] = 1.5  # invalid
    with pytest.raises(ValueError, match="betas"):
        opt.step([np.ones(3)])


def test_replacing_array_betas(backend):
    x, y = np.ones(3), np.ones(3)
    opt = fastgd.optim.Adam([x], lr=0.1, betas=np.array([0.9, 0.999]), backend=backend)
    ref = fastgd.optim.Adam([y], lr=0.1, backend=backend)
    opt.step([np.ones(3)])
    ref.step([np.ones(3)])
    opt.param_groups[0]["betas"] = np.array([0.5, 0.9])
    ref.param_groups[0]["betas"] = (0.5, 0.9)
    opt.step([np.ones(3)])
    ref.step([np.ones(3)])
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("key,old,new", [("lr", 1, True), ("lr", 0, False),
                                         ("maximize", False, 0), ("nesterov", True, 1)])
def test_type_change_between_steps_is_validated(backend, key, old, new):
    kw = dict(lr=0.1, momentum=0.9, nesterov=True)
    kw[key] = old
    opt = fastgd.optim.SGD([np.ones(2)], backend=backend, **kw)
    opt.step([np.ones(2)])
    opt.param_groups[0][key] = new
    with pytest.raises(TypeError, match=key):
        opt.step([np.ones(2)])


def test_add_param_group(backend):
    a = np.ones(2)
    opt = fastgd.optim.Adam([a], lr=0.1, betas=(0.8, 0.9), backend=backend)
    opt.step([np.ones(2)])
    b = np.ones(3, np.float32)
    opt.add_param_group({"params": [b], "lr": 0.01})
    assert len(opt.param_groups) == 2
    g1 = opt.param_groups[1]
    assert g1["lr"] == 0.01 and g1["betas"] == (0.8, 0.9) and g1["params"][0] is b
    opt.step([np.ones(2), np.full(3, -1.0, np.float32)])
    # b's first Adam step moves it by its group's lr (times sign(g)), a's second by ~0.1
    np.testing.assert_allclose(b, 1.01, rtol=1e-6)
    assert opt.state[1]["step"] == 1 and opt.state[0]["step"] == 2
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1]]
    with pytest.raises(ValueError, match="grads"):
        opt.step([np.ones(2)])  # the new parameter needs its gradient too


def test_add_param_group_rejects_bad_groups():
    a, b = np.ones(2), np.ones(2)
    opt = fastgd.optim.SGD([a], lr=0.1)
    with pytest.raises(ValueError, match="same array"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="lr"):
        opt.add_param_group({"params": [b], "lr": -1.0})
    with pytest.raises(ValueError, match="betas"):
        opt.add_param_group({"params": [b], "betas": (0.9, 0.99)})
    with pytest.raises(ValueError, match="params"):
        opt.add_param_group({"lr": 0.1})
    with pytest.raises(ValueError, match="params"):
        opt.add_param_group({"params": []})
    with pytest.raises(TypeError, match="param_groups"):
        opt.add_param_group([b])
    assert len(opt.param_groups) == 1
    # nothing was half-added: the optimizer still steps one parameter
    opt.step([np.ones(2)])
    np.testing.assert_allclose(a, 0.9)


def test_replacing_a_groups_params_is_refused(backend):
    a, b = np.ones(2), np.ones(2)
    opt = fastgd.optim.SGD([a], lr=0.1, backend=backend)
    opt.param_groups[0]["params"].append(b)
    with pytest.raises(ValueError, match="params"):
        opt.step([np.ones(2)])
    np.testing.assert_array_equal(a, 1.0)


# ---------------------------------------------------------------------------- None gradients

@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_none_gradient_skips_the_parameter(case, rng, backend):
    name, kw = case
    params = [random_array(rng, (4,), np.float32), random_array(rng, (3,), np.float64),
              random_array(rng, (5,), np.float32)]
    opt = make(name, params, backend, **kw)
    opt.step(grads_like(rng, params))
    before_p = copies(params)
    before_s = snapshot(opt)["state"]
    opt.step(grads_like(rng, params, none={1}))
    np.testing.assert_array_equal(params[1], before_p[1])
    assert_trees_equal(opt.state_dict()["state"][1], before_s[1])
    assert opt.state[1]["step"] == 1
    assert opt.state[0]["step"] == opt.state[2]["step"] == 2
    assert not np.array_equal(params[0], before_p[0])
    # a parameter that never got a gradient has no state at all
    opt2 = make(name, copies(params), backend, **kw)
    opt2.step(grads_like(rng, params, none={0}))
    assert 0 not in opt2.state and 1 in opt2.state
    opt2.step([None, None, None])
    assert opt2.state[1]["step"] == 1


def test_skipped_parameter_has_its_own_step_count(backend, dtype):
    """Adam's bias correction uses each parameter's own step: a late first step moves by lr."""
    a, b = np.zeros(2, dtype), np.zeros(2, dtype)
    opt = fastgd.optim.Adam([a, b], lr=0.1, backend=backend)
    g = np.array([1.0, -1.0], dtype)
    for _ in range(3):
        opt.step([g, None])
    opt.step([g, np.array([3.0, -0.5], dtype)])
    np.testing.assert_allclose(b, [-0.1, 0.1], rtol=1e-6)
    assert opt.state[0]["step"] == 4 and opt.state[1]["step"] == 1


def test_sgd_momentum_buffer_starts_at_first_real_gradient(backend):
    x = np.zeros(1)
    opt = fastgd.optim.SGD([x], lr=1.0, momentum=0.5, dampening=0.5, backend=backend)
    opt.step([None])
    assert opt.state == {}
    opt.step([np.array([2.0])])
    np.testing.assert_array_equal(opt.state[0]["momentum_buffer"], [2.0])
    opt.step([np.array([2.0])])
    np.testing.assert_array_equal(opt.state[0]["momentum_buffer"], [0.5 * 2 + 0.5 * 2])


def test_state_property_is_live_and_keyed_by_global_index(backend):
    a, b, c = np.ones(2), np.ones(3), np.ones(1)
    opt = fastgd.optim.Adam([{"params": [a, b]}, {"params": [c]}], backend=backend)
    assert opt.state == {}
    opt.step([np.ones(2), None, np.ones(1)])
    st = opt.state
    assert sorted(st) == [0, 2]
    assert set(st[0]) == {"step", "exp_avg", "exp_avg_sq"}
    m = st[2]["exp_avg"]
    opt.step([np.ones(2), None, np.ones(1)])
    assert m is opt.state[2]["exp_avg"] or np.shares_memory(m, opt.state[2]["exp_avg"])
    np.testing.assert_allclose(m, opt.state[2]["exp_avg"])
    assert opt.state[2]["step"] == 2


# ---------------------------------------------------------------------------- state dicts

def _two_groups(name, kw, init, backend):
    params = copies(init)
    groups = [{"params": params[:2]}, {"params": params[2:], "lr": kw["lr"] * 0.5}]
    return params, make(name, groups, backend, **kw)


@pytest.mark.parametrize("case", ROUND_TRIP, ids=ROUND_TRIP_IDS)
def test_state_dict_round_trip_is_bit_identical(case, rng, backend):
    name, kw = case
    k, m = 3, 4
    init = [random_array(rng, (6,), np.float32), random_array(rng, (2, 3), np.float64),
            random_array(rng, (), np.float64), random_array(rng, (9,), np.float32, "C")]
    grads = [grads_like(rng, init, none={i % 5}) for i in range(k + m)]

    params, opt = _two_groups(name, kw, init, backend)
    for g in grads[:k]:
        opt.step(g)
    saved = opt.state_dict()
    saved_params = copies(params)
    for g in grads[k:]:
        opt.step(g)

    fresh_params, fresh = _two_groups(name, kw, saved_params, backend)
    fresh.param_groups[0]["lr"] = 123.0  # overwritten by the load
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["lr"] == kw["lr"]
    for g in grads[k:]:
        fresh.step(g)
    for x, y in zip(params, fresh_params):
        assert np.array_equal(x, y)
    assert_state_equal(opt, fresh)
    assert_trees_equal(opt.state_dict(), fresh.state_dict())


@pytest.mark.parametrize("case", ROUND_TRIP, ids=ROUND_TRIP_IDS)
def test_state_dict_loads_across_backends(case, rng):
    name, kw = case
    init = [random_array(rng, (6,), np.float64), random_array(rng, (3,), np.float64),
            random_array(rng, (4,), np.float64)]
    grads = [grads_like(rng, init) for _ in range(6)]
    params, opt = _two_groups(name, kw, init, "native")
    for g in grads[:3]:
        opt.step(g)
    saved, saved_params = opt.state_dict(), copies(params)
    for g in grads[3:]:
        opt.step(g)
    ref_params, ref = _two_groups(name, kw, saved_params, "reference")
    ref.load_state_dict(saved)
    for g in grads[3:]:
        ref.step(g)
    for x, y in zip(params, ref_params):
        np.testing.assert_allclose(x, y, rtol=1e-12)


@pytest.mark.parametrize("case", ROUND_TRIP, ids=ROUND_TRIP_IDS)
def test_state_dict_is_a_snapshot(case, rng, backend):
    name, kw = case
    params = [random_array(rng, (5,), np.float32)]
    opt = make(name, params, backend, **kw)
    opt.step(grads_like(rng, params))
    opt.step(grads_like(rng, params))
    sd = opt.state_dict()
    frozen = copy.deepcopy(sd)
    opt.step(grads_like(rng, params))
    opt.param_groups[0]["lr"] = 0.5
    assert_trees_equal(sd, frozen)
    # and loading copies in: editing the dict afterwards does not reach the optimizer
    opt.load_state_dict(sd)
    live = snapshot(opt)
    for entry in sd["state"].values():
        for v in entry.values():
            if isinstance(v, np.ndarray):
                v[...] = 777.0
    sd["param_groups"][0]["lr"] = 9.0
    assert_trees_equal(snapshot(opt), live)


def test_state_dict_layout():
    a, b = np.ones(2), np.ones(3)
    opt = fastgd.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1,
                           momentum=0.9)
    opt.step([np.ones(2), None])
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert list(sd["state"]) == [0]
    assert sd["state"][0]["step"] == 1 and isinstance(sd["state"][0]["step"], int)
    np.testing.assert_array_equal(sd["state"][0]["momentum_buffer"], [1.0, 1.0])
    assert sd["param_groups"][0]["params"] == [0] and sd["param_groups"][1]["params"] == [1]
    assert sd["param_groups"][1]["lr"] == 0.5 and sd["param_groups"][1]["momentum"] == 0.9


# ---------------------------------------------------------------------------- bad state dicts

def _trained_adam(backend):
    params = [np.linspace(-1, 1, 4), np.linspace(0, 1, 3).astype(np.float32), np.ones(2)]
    opt = fastgd.optim.Adam([{"params": params[:2]}, {"params": params[2:], "lr": 0.5}],
                            lr=0.1, amsgrad=True, backend=backend)
    rng = np.random.default_rng(5)
    for _ in range(2):
        opt.step(grads_like(rng, params))
    return params, opt


def _bad_state_dicts():
    out = []

    def add(label, err, match, fn):
        out.append(pytest.param(err, match, fn, id=label))

    def set_state(i, k, v):
        def fn(sd):
            sd["state"][i][k] = v
        return fn

    add("state-shape", ValueError, "exp_avg", set_state(0, "exp_avg", np.zeros(5)))
    add("state-shape-0d", ValueError, "exp_avg_sq", set_state(1, "exp_avg_sq", np.zeros(())))
    add("state-dtype", TypeError, "exp_avg", set_state(1, "exp_avg", np.zeros(3)))
    add("state-not-array", TypeError, "max_exp_avg_sq", set_state(0, "max_exp_avg_sq", [0.0] * 4))
    add("state-none", ValueError, "exp_avg", set_state(0, "exp_avg", None))
    add("step-zero", ValueError, "step", set_state(0, "step", 0))
    add("step-negative", ValueError, "step", set_state(0, "step", -3))
    add("step-fraction", ValueError, "step", set_state(0, "step", 2.5))
    add("step-str", ValueError, "step", set_state(0, "step", "2"))
    add("step-bool", ValueError, "step", set_state(0, "step", True))
    add("step-missing", ValueError, "step", lambda sd: sd["state"][0].pop("step"))
    add("unknown-state-key", ValueError, "momentum_buffer",
        set_state(0, "momentum_buffer", np.zeros(4)))
    add("state-index-out-of-range", ValueError, "3", lambda sd: sd["state"].update({3: {"step": 1}}))
    add("state-index-str", ValueError, "'0'", lambda sd: sd["state"].update({"0": sd["state"][0]}))
    add("state-entry-not-dict", TypeError, "state", lambda sd: sd["state"].update({1: [1]}))
    add("too-few-groups", ValueError, "param groups", lambda sd: sd["param_groups"].pop())
    add("too-many-groups", ValueError, "param groups",
        lambda sd: sd["param_groups"].append(dict(sd["param_groups"][0], params=[3])))
    add("param-count", ValueError, "params",
        lambda sd: sd["param_groups"][0].update(params=[0, 1, 2]))
    add("param-indices", ValueError, "params",
        lambda sd: sd["param_groups"][1].update(params=[0]))
    add("unknown-group-key", ValueError, "momentum",
        lambda sd: sd["param_groups"][1].update(momentum=0.9))
    add("bad-group-lr", ValueError, "lr", lambda sd: sd["param_groups"][1].update(lr=-0.1))
    add("bad-group-betas", ValueError, "betas",
        lambda sd: sd["param_groups"][0].update(betas=(0.9, 1.0)))
    add("bad-group-amsgrad", TypeError, "amsgrad",
        lambda sd: sd["param_groups"][1].update(amsgrad="yes"))
    add("extra-top-level-key", ValueError, "state_dict", lambda sd: sd.update(extra=1))
    add("missing-state", ValueError, "state_dict", lambda sd: sd.pop("state"))
    return out


@pytest.mark.parametrize("err,match,corrupt", _bad_state_dicts())
def test_bad_state_dict_raises_and_changes_nothing(backend, err, match, corrupt):
    params, opt = _trained_adam(backend)
    sd = opt.state_dict()
    # the last (valid) entry is changed on purpose first, so a partial load would show
    sd["state"][2]["exp_avg"] = sd["state"][2]["exp_avg"] + 1.0
    sd["param_groups"][1]["lr"] = 0.25
    corrupt(sd)
    before = snapshot(opt)
    with pytest.raises(err, match=match):
        opt.load_state_dict(sd)
    assert_trees_equal(snapshot(opt), before)
    assert opt.param_groups[1]["lr"] == 0.5
    # and it keeps stepping exactly like an untouched twin
    twin_params, twin = _trained_adam(backend)
    g = grads_like(np.random.default_rng(9), params)
    opt.step(g)
    twin.step(g)
    for x, y in zip(params, twin_params):
        np.testing.assert_array_equal(x, y)


def test_state_dict_of_another_optimizer_is_refused():
    a = np.ones(3)
    adam = fastgd.optim.Adam([a])
    adam.step([np.ones(3)])
    sgd = fastgd.optim.SGD([np.ones(3)], momentum=0.9)
    with pytest.raises(ValueError):
        sgd.load_state_dict(adam.state_dict())
    assert sgd.state == {}


def test_load_state_dict_into_different_shapes_is_refused():
    opt = fastgd.optim.RMSprop([np.ones(3)], centered=True)
    opt.step([np.ones(3)])
    other = fastgd.optim.RMSprop([np.ones(4)], centered=True)
    with pytest.raises(ValueError, match="shape"):
        other.load_state_dict(opt.state_dict())
    assert other.state == {}
