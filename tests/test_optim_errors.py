"""Bad input raises TypeError/ValueError naming the argument, before anything is written."""
import re

import numpy as np
import pytest

import fastgd
from helpers import CASE_IDS, CASES, assert_trees_equal, copies, make, random_array, snapshot

OPTIMIZERS = ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW"]


def opt_of(name, params=None, backend="native", **kw):
    params = [np.ones(3)] if params is None else params
    return make(name, params, backend, **kw)


# ---------------------------------------------------------------------------- parameters

@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("bad", [np.int64, np.int32, np.float16, np.complex128, np.bool_,
                                 np.longdouble, np.dtype(">f8")], ids=str)
def test_non_float_parameter_dtype(name, bad, backend):
    with pytest.raises(TypeError, match=re.escape("params[1]")):
        opt_of(name, [np.ones(2), np.ones(2, dtype=bad)], backend)


@pytest.mark.parametrize("value", [[1.0, 2.0], 3.0, "abc", None])
def test_parameter_not_an_array(value):
    with pytest.raises(TypeError, match="params"):
        fastgd.optim.SGD([np.ones(2), value])


def test_params_container_errors():
    with pytest.raises(TypeError, match="params"):
        fastgd.optim.Adam(np.ones(3))
    with pytest.raises(ValueError, match="params"):
        fastgd.optim.Adam([])
    with pytest.raises(TypeError, match="params"):
        fastgd.optim.Adam([{"params": [np.ones(2)]}, np.ones(2)])
    with pytest.raises(TypeError, match="params"):
        fastgd.optim.Adam(3)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_read_only_parameter(name, backend):
    p = np.ones(3)
    p.flags.writeable = False
    with pytest.raises(ValueError, match=re.escape("params[0]")):
        opt_of(name, [p], backend)
    # made read-only after the optimizer was built
    q, r = np.ones(3), np.ones(2)
    opt = opt_of(name, [r, q], backend)
    q.flags.writeable = False
    with pytest.raises(ValueError, match=re.escape("params[1]")):
        opt.step([np.ones(2), np.ones(3)])
    np.testing.assert_array_equal(r, 1.0)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_same_array_twice(name):
    p = np.ones(4)
    with pytest.raises(ValueError, match=r"params\[\d\].*same array"):
        opt_of(name, [p, np.ones(2), p])
    with pytest.raises(ValueError, match="same array"):
        opt_of(name, [{"params": [p]}, {"params": [p], "lr": 0.1}])


def test_same_empty_array_twice():
    p = np.ones(0)
    with pytest.raises(ValueError, match="same array"):
        fastgd.optim.SGD([p, p])


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_overlapping_views(name):
    base = np.zeros(10)
    with pytest.raises(ValueError, match=r"params\[\d\] and params\[\d\] share memory"):
        opt_of(name, [base[:6], base[4:]])
    # touching but disjoint views are fine
    opt_of(name, [base[:5], base[5:]])
    m = np.zeros((4, 4))
    with pytest.raises(ValueError, match="share memory"):
        opt_of(name, [m, m[1]])


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_non_contiguous_parameter_is_refused(name):
    base = np.zeros((6, 6))
    for view in (base[:, 1], base[::2], base[:, :3], base.reshape(3, 2, 6).transpose(1, 0, 2)):
        with pytest.raises(ValueError, match=r"params\[1\] is not contiguous"):
            opt_of(name, [np.ones(1), view])


# ---------------------------------------------------------------------------- hyper-parameters

def _negative_cases():
    out = []
    for name in OPTIMIZERS:
        for arg in ("lr", "eps", "weight_decay"):
            if name == "SGD" and arg == "eps":
                continue
            out.append((name, arg))
    out += [("SGD", "momentum"), ("RMSprop", "momentum"), ("RMSprop", "alpha"),
            ("Adagrad", "lr_decay"), ("Adagrad", "initial_accumulator_value")]
    return out


@pytest.mark.parametrize("name,arg", _negative_cases())
def test_negative_hyper_parameter(name, arg):
    with pytest.raises(ValueError, match=arg):
        opt_of(name, **{arg: -0.1})
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match=arg):
            opt_of(name, **{arg: bad})
    opt_of(name, **{arg: 0.0})  # zero is allowed


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
@pytest.mark.parametrize("betas", [(1.0, 0.9), (0.9, 1.0), (-0.1, 0.9), (0.9, -1e-9),
                                   (0.9, 1.5), (float("nan"), 0.9)])
def test_betas_outside_unit_interval(name, betas):
    with pytest.raises(ValueError, match="betas"):
        opt_of(name, betas=betas)


@pytest.mark.parametrize("betas", [0.9, (0.9,), (0.9, 0.99, 0.999), "ab", None])
def test_betas_not_a_pair(betas):
    with pytest.raises(TypeError, match="betas"):
        fastgd.optim.Adam([np.ones(2)], betas=betas)


def test_betas_edges_are_allowed():
    fastgd.optim.Adam([np.ones(2)], betas=(0.0, 0.0))
    fastgd.optim.Adam([np.ones(2)], betas=[0.5, 0.999999])


@pytest.mark.parametrize("kw", [dict(nesterov=True), dict(nesterov=True, momentum=0.0),
                                dict(nesterov=True, momentum=0.9, dampening=0.1)])
def test_nesterov_needs_momentum_and_no_dampening(kw):
    with pytest.raises(ValueError, match="nesterov"):
        fastgd.optim.SGD([np.ones(2)], **kw)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_unknown_keyword(name):
    with pytest.raises(TypeError, match="nonsense"):
        opt_of(name, nonsense=1)
    with pytest.raises(TypeError, match="foreach"):
        opt_of(name, foreach=False)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_unknown_key_in_param_group(name):
    with pytest.raises(ValueError, match="nonsense"):
        make(name, [{"params": [np.ones(2)], "nonsense": 1}])
    with pytest.raises(ValueError, match="amsgrad" if name == "SGD" else "nesterov"):
        make(name, [{"params": [np.ones(2)],
                     ("amsgrad" if name == "SGD" else "nesterov"): True}])


@pytest.mark.parametrize("backend_value", ["c", "Native", "numpy", None, 1])
def test_bad_backend(backend_value):
    with pytest.raises(ValueError, match="backend"):
        fastgd.optim.Adam([np.ones(2)], backend=backend_value)


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("lr", [True, False, "0.1", None, [0.1], np.array(0.1), 1j])
def test_lr_must_be_a_real_number(name, lr):
    with pytest.raises(TypeError, match="lr"):
        opt_of(name, lr=lr)


@pytest.mark.parametrize("name,flag", [("SGD", "nesterov"), ("SGD", "maximize"),
                                       ("RMSprop", "centered"), ("Adam", "amsgrad"),
                                       ("AdamW", "maximize"), ("Adagrad", "maximize")])
def test_flags_must_be_bools(name, flag):
    with pytest.raises(TypeError, match=flag):
        opt_of(name, **{flag: 1})


def test_numpy_scalars_are_accepted_as_hyper_parameters(backend):
    x = np.ones(2)
    opt = fastgd.optim.SGD([x], lr=np.float32(0.5), momentum=np.float64(0.1), nesterov=np.True_,
                           backend=backend)
    opt.step([np.ones(2)])
    np.testing.assert_allclose(x, 1 - 0.5 * 1.1)


@pytest.mark.parametrize("key,value,err", [("lr", -1.0, ValueError), ("lr", "x", TypeError),
                                           ("betas", (0.9, 1.0), ValueError),
                                           ("amsgrad", 1, TypeError)])
def test_bad_hyper_parameter_set_between_steps(backend, key, value, err):
    a, b = np.ones(2), np.ones(3)
    opt = fastgd.optim.Adam([{"params": [a]}, {"params": [b]}], lr=0.1, backend=backend)
    opt.step([np.ones(2), np.ones(3)])
    before, pa, pb = snapshot(opt), a.copy(), b.copy()
    opt.param_groups[1][key] = value
    with pytest.raises(err, match=re.escape(f"param_groups[1]['{key}']")):
        opt.step([np.ones(2), np.ones(3)])
    np.testing.assert_array_equal(a, pa)
    np.testing.assert_array_equal(b, pb)
    # (the edited hyper-parameter is part of the snapshot; restore it before comparing)
    opt.param_groups[1][key] = before["param_groups"][1][key]
    assert_trees_equal(snapshot(opt), before)


# ---------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("name", OPTIMIZERS)
def test_gradient_dtype_mismatch(name, backend):
    opt = opt_of(name, [np.ones(2), np.ones(3, np.float32)], backend)
    with pytest.raises(TypeError, match=re.escape("grads[1]")):
        opt.step([np.ones(2), np.ones(3, np.float64)])
    with pytest.raises(TypeError, match=re.escape("grads[0]")):
        opt.step([np.ones(2, np.float32), np.ones(3, np.float32)])
    for bad in (np.int64, np.float16, np.complex64):
        with pytest.raises(TypeError, match=re.escape("grads[1]")):
            opt.step([np.ones(2), np.ones(3, bad)])


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_gradient_shape_mismatch(name, backend):
    opt = opt_of(name, [np.ones(2), np.ones((2, 3))], backend)
    for bad in (np.ones(6), np.ones((3, 2)), np.ones((2, 3, 1)), np.ones(()), np.ones((2, 4))):
        with pytest.raises(ValueError, match=re.escape("grads[1]")):
            opt.step([np.ones(2), bad])


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_gradient_not_an_array(name, backend):
    opt = opt_of(name, [np.ones(2), np.ones(3)], backend)
    for bad in ([1.0, 2.0, 3.0], 1.0, "abc"):
        with pytest.raises(TypeError, match=re.escape("grads[1]")):
            opt.step([np.ones(2), bad])


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_wrong_number_of_gradients(name, backend):
    opt = opt_of(name, [np.ones(2), np.ones(3)], backend)
    for grads in ([np.ones(2)], [np.ones(2), np.ones(3), np.ones(3)], []):
        with pytest.raises(ValueError, match="grads"):
            opt.step(grads)


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("grads", [np.ones(3), np.ones((1, 3)), 1.0, None, 3],
                         ids=["ndarray", "ndarray2d", "float", "None", "int"])
def test_gradients_not_a_sequence(name, grads, backend):
    opt = opt_of(name, [np.ones(3)], backend)
    with pytest.raises(TypeError, match="grads"):
        opt.step(grads)


def test_gradients_as_tuple_or_generator_are_fine(backend):
    x = np.ones(2)
    opt = fastgd.optim.SGD([x], lr=0.5, backend=backend)
    opt.step((np.ones(2),))
    opt.step(g for g in [np.ones(2)])
    np.testing.assert_allclose(x, 0.0)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_gradient_sharing_memory_with_its_parameter(name, backend):
    p = np.ones(4)
    opt = opt_of(name, [np.ones(2), p], backend)
    for g in (p, p[:], p.reshape(2, 2).reshape(4)):
        with pytest.raises(ValueError, match=re.escape("grads[1]")):
            opt.step([np.ones(2), g])
    np.testing.assert_array_equal(p, 1.0)


@pytest.mark.parametrize("case", [c for c in CASES if c[0] != "SGD" or "momentum" in c[1]],
                         ids=[i for c, i in zip(CASES, CASE_IDS)
                              if c[0] != "SGD" or "momentum" in c[1]])
def test_gradient_sharing_memory_with_its_state(case, backend):
    name, kw = case
    p = np.ones(4)
    opt = make(name, [p], backend, **kw)
    opt.step([np.full(4, 0.5)])
    for v in opt.state[0].values():
        if isinstance(v, np.ndarray):
            before = snapshot(opt)
            with pytest.raises(ValueError, match=re.escape("grads[0]")):
                opt.step([v])
            assert_trees_equal(snapshot(opt), before)


@pytest.mark.parametrize("backend", ["reference", "native"])
def test_byte_swapped_gradient_is_refused(backend):
    p = np.ones(5)
    opt = fastgd.optim.SGD([p], lr=1.0, backend=backend)
    g = np.full(5, 0.5).astype(">f8")
    with pytest.raises(TypeError, match=re.escape("grads[0]")):
        opt.step([g])
    np.testing.assert_array_equal(p, 1.0)


# ---------------------------------------------------------------------------- no partial update

def _bad_second_group_grads(p1):
    """Ways the gradient of the last parameter (in group 2) can be wrong."""
    n = p1.shape
    return {
        "dtype": np.ones(n, np.float32),
        "shape": np.ones((n[0] + 1,)),
        "not-array": [1.0] * n[0],
        "int": np.ones(n, np.int64),
        "aliases-param": p1,
    }


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("what", ["dtype", "shape", "not-array", "int", "aliases-param",
                                  "bad-lr", "too-few"])
def test_no_partial_update(case, what, backend, rng):
    name, kw = case
    params = [random_array(rng, (5,), np.float64), random_array(rng, (70,), np.float32),
              random_array(rng, (3, 2), np.float64), random_array(rng, (4,), np.float64)]
    groups = [{"params": params[:2]}, {"params": params[2:], "lr": kw["lr"] / 2}]
    opt = make(name, groups, backend, **kw)
    for _ in range(2):
        opt.step([random_array(rng, p.shape, p.dtype) for p in params])
    before_p, before = copies(params), snapshot(opt)

    grads = [random_array(rng, p.shape, p.dtype) for p in params]
    if what == "bad-lr":
        opt.param_groups[1]["lr"] = -1.0
        err, match = ValueError, re.escape("param_groups[1]['lr']")
    elif what == "too-few":
        grads = grads[:3]
        err, match = ValueError, "grads"
    else:
        grads[3] = _bad_second_group_grads(params[3])[what]
        err = ValueError if what in ("shape", "aliases-param") else TypeError
        match = re.escape("grads[3]")
    with pytest.raises(err, match=match):
        opt.step(grads)
    if what == "bad-lr":
        opt.param_groups[1]["lr"] = kw["lr"] / 2
    for x, y in zip(params, before_p):
        assert np.array_equal(x, y)
    assert_trees_equal(snapshot(opt), before)
    # the optimizer is still usable and continues exactly where it was
    good = [random_array(rng, p.shape, p.dtype) for p in params]
    twin_params = copies(before_p)
    twin = make(name, [{"params": twin_params[:2]},
                       {"params": twin_params[2:], "lr": kw["lr"] / 2}], backend, **kw)
    twin.load_state_dict(before)
    opt.step(good)
    twin.step(good)
    for x, y in zip(params, twin_params):
        assert np.array_equal(x, y)


# ---------------------------------------------------------------------------- threads

@pytest.mark.parametrize("n,err", [(0, ValueError), (-2, ValueError), (True, TypeError),
                                   (1.5, TypeError), ("2", TypeError)])
def test_set_num_threads_rejects_bad_values(threads, n, err):
    before = fastgd.get_num_threads()
    with pytest.raises(err):
        fastgd.set_num_threads(n)
    assert fastgd.get_num_threads() == before


def test_set_num_threads_round_trip(threads):
    threads(1)
    assert fastgd.get_num_threads() == 1
    threads(3)
    assert fastgd.get_num_threads() == 3
    threads(None)
    assert fastgd.get_num_threads() >= 1


@pytest.mark.parametrize("kw, error, match", [
    (dict(lr=-1.0), ValueError, "lr must be >= 0"),
    (dict(eps=-1e-8), ValueError, "eps must be >= 0"),
    (dict(betas=(1.0, 0.999)), ValueError, r"betas\[0\] must be < 1"),
    (dict(betas=(0.9, -0.1)), ValueError, r"betas\[1\] must be >= 0"),
    (dict(betas=0.9), TypeError, "betas must be a pair"),
    (dict(weight_decay=-0.1), ValueError, "weight_decay must be >= 0"),
    (dict(maximize=1), TypeError, "maximize"),
])
def test_adamax_refuses_bad_hyper_parameters(kw, error, match):
    p = np.ones(3)
    with pytest.raises(error, match=match):
        make("Adamax", [p], **kw)
    assert np.array_equal(p, np.ones(3))


@pytest.mark.parametrize("kw, error, match", [
    (dict(lr=-1.0), ValueError, "lr must be >= 0"),
    (dict(betas=(1.0, 0.99)), ValueError, r"betas\[0\] must be < 1"),
    (dict(betas=(0.9, -0.1)), ValueError, r"betas\[1\] must be >= 0"),
    (dict(weight_decay=-0.1), ValueError, "weight_decay must be >= 0"),
    (dict(eps=1e-8), TypeError, "eps"),
])
def test_lion_refuses_bad_hyper_parameters(kw, error, match):
    p = np.ones(3)
    with pytest.raises(error, match=match):
        make("Lion", [p], **kw)
    assert np.array_equal(p, np.ones(3))


@pytest.mark.parametrize("kw, error, match", [
    (dict(lr=-1.0), ValueError, "lr must be >= 0"),
    (dict(rho=1.5), ValueError, "rho must be <= 1"),
    (dict(rho=-0.1), ValueError, "rho must be >= 0"),
    (dict(eps=-1e-6), ValueError, "eps must be >= 0"),
    (dict(weight_decay=-0.1), ValueError, "weight_decay must be >= 0"),
])
def test_adadelta_refuses_bad_hyper_parameters(kw, error, match):
    p = np.ones(3)
    with pytest.raises(error, match=match):
        make("Adadelta", [p], **kw)
    assert np.array_equal(p, np.ones(3))


def test_adadelta_accepts_rho_at_both_ends():
    for rho in (0.0, 1.0):
        make("Adadelta", [np.ones(2)], rho=rho).step([np.ones(2)])


@pytest.mark.parametrize("kw, error, match", [
    (dict(lr=-1.0), ValueError, "lr must be >= 0"),
    (dict(betas=(1.0, 0.999)), ValueError, r"betas\[0\] must be < 1"),
    (dict(eps=-1e-8), ValueError, "eps must be >= 0"),
    (dict(weight_decay=-0.1), ValueError, "weight_decay must be >= 0"),
    (dict(decoupled_weight_decay="yes"), TypeError, "decoupled_weight_decay"),
])
def test_radam_refuses_bad_hyper_parameters(kw, error, match):
    p = np.ones(3)
    with pytest.raises(error, match=match):
        make("RAdam", [p], **kw)
    assert np.array_equal(p, np.ones(3))
