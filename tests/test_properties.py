"""Property tests (hypothesis): random valid hyper-parameters, shapes and gradients."""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import array_shapes

import fastgd
from helpers import TOL, copies, make, random_array

dtypes = st.sampled_from([np.dtype(np.float32), np.dtype(np.float64)])
shapes = st.lists(array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=7), min_size=1,
                  max_size=4)
lrs = st.floats(0.0, 1.0)
small = st.one_of(st.just(0.0), st.floats(1e-4, 0.5))
momenta = st.one_of(st.just(0.0), st.floats(1e-3, 0.99))
decays = st.floats(0.0, 0.999)
epss = st.floats(1e-10, 1e-2)


@st.composite
def sgd_hp(draw):
    momentum = draw(momenta)
    nesterov = momentum > 0 and draw(st.booleans())
    return dict(lr=draw(lrs), momentum=momentum, nesterov=nesterov,
                dampening=0.0 if nesterov else draw(st.floats(0.0, 1.0)),
                weight_decay=draw(small), maximize=draw(st.booleans()))


@st.composite
def adagrad_hp(draw):
    return dict(lr=draw(lrs), lr_decay=draw(st.floats(0.0, 2.0)), weight_decay=draw(small),
                initial_accumulator_value=draw(st.floats(0.0, 2.0)), eps=draw(epss),
                maximize=draw(st.booleans()))


@st.composite
def rmsprop_hp(draw):
    return dict(lr=draw(lrs), alpha=draw(decays), eps=draw(st.floats(1e-8, 1e-2)),
                weight_decay=draw(small), momentum=draw(momenta),
                centered=draw(st.booleans()), maximize=draw(st.booleans()))


@st.composite
def adam_hp(draw):
    return dict(lr=draw(lrs), betas=(draw(decays), draw(decays)),
                eps=draw(st.floats(1e-8, 1e-2)), weight_decay=draw(small),
                amsgrad=draw(st.booleans()), maximize=draw(st.booleans()))


optimizers = st.one_of(
    st.tuples(st.just("SGD"), sgd_hp()),
    st.tuples(st.just("Adagrad"), adagrad_hp()),
    st.tuples(st.just("RMSprop"), rmsprop_hp()),
    st.tuples(st.sampled_from(["Adam", "AdamW"]), adam_hp()),
)


def _data(seed, shapes, dtype, steps):
    rng = np.random.default_rng(seed)
    init = [random_array(rng, s, dtype) for s in shapes]
    scales = 10.0 ** rng.uniform(-3, 3, size=steps)
    grads = [[random_array(rng, s, dtype, scale=sc) for s in shapes] for sc in scales]
    return init, grads


@given(opt=optimizers, shapes=shapes, dtype=dtypes, seed=st.integers(0, 2**32 - 1))
def test_native_equals_reference_for_any_hyper_parameters(opt, shapes, dtype, seed):
    name, kw = opt
    init, grads = _data(seed, shapes, dtype, steps=4)
    runs = []
    for backend in ("native", "reference"):
        params = copies(init)
        o = make(name, params, backend, **kw)
        with np.errstate(all="ignore"):
            for g in grads:
                o.step(g)
        runs.append((params, o.state))
    (pn, sn), (pr, sr) = runs
    for a, b in zip(pn, pr):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, **TOL[dtype])
    assert sn.keys() == sr.keys()
    for i in sn:
        for k, v in sn[i].items():
            if isinstance(v, np.ndarray):
                np.testing.assert_allclose(v, sr[i][k], **TOL[dtype], err_msg=f"{i} {k}")
            else:
                assert v == sr[i][k]


@given(lr=lrs, shapes=shapes, dtype=dtypes, seed=st.integers(0, 2**32 - 1),
       backend=st.sampled_from(["native", "reference"]))
def test_plain_sgd_is_x_minus_lr_g(lr, shapes, dtype, seed, backend):
    init, grads = _data(seed, shapes, dtype, steps=2)
    params = copies(init)
    opt = fastgd.optim.SGD(params, lr=lr, momentum=0, backend=backend)
    expected = copies(init)
    for g in grads:
        opt.step(g)
        for x, gi in zip(expected, g):
            x -= dtype.type(lr) * gi
    for a, b in zip(params, expected):
        assert np.array_equal(a, b)
    assert all(v == {"step": 2} for v in opt.state.values())


@given(lr=st.floats(1e-4, 1.0), betas=st.tuples(decays, decays), shapes=shapes,
       seed=st.integers(0, 2**32 - 1), backend=st.sampled_from(["native", "reference"]))
def test_first_adam_step_moves_at_most_lr(lr, betas, shapes, seed, backend):
    """After bias correction the first step is lr * g / (|g| + eps): never more than lr."""
    init, grads = _data(seed, shapes, np.float64, steps=1)
    params = copies(init)
    fastgd.optim.Adam(params, lr=lr, betas=betas, backend=backend).step(grads[0])
    for x0, x1, g in zip(init, params, grads[0]):
        delta = x0 - x1
        assert np.all(np.abs(delta) <= lr * (1 + 1e-12))
        big = np.abs(g) > 1e-4
        np.testing.assert_allclose(delta[big], lr * np.sign(g[big]), rtol=1e-3)


@pytest.mark.parametrize("name", ["SGD", "RMSprop"])
def test_tiny_momentum_float32_state_matches_reference(name):
    states = []
    for backend in ("native", "reference"):
        x = np.ones(3, np.float32)
        opt = make(name, [x], backend, lr=0.1, momentum=1e-50)
        for _ in range(2):
            opt.step([np.ones(3, np.float32)])
        states.append(opt.state[0]["momentum_buffer"].copy())
    np.testing.assert_allclose(states[0], states[1], **TOL[np.dtype(np.float32)])


def _functional_step(name, x, g, states, t, kw):
    """One step of ``fastgd.functional`` for a class's keyword arguments ``kw``."""
    spec = getattr(fastgd.optim, name).spec
    hp = {k: v for k, v in spec.kernel_args(kw).items() if k not in spec.fixed}
    extra = {"step": t} if spec.counts_steps else {}
    if spec.lazy is not None:
        extra[f"init_{spec.lazy.arg_name}"] = t == 1
    getattr(fastgd.functional, f"{spec.name}_")(x, g, **states, **hp, **extra)


def _stepper_method(name, kw):
    if name != "SGD":
        return name.lower(), {k: v for k, v in kw.items() if k not in ("lr", "maximize")}
    if kw["momentum"] == 0:
        return "gd", dict(weight_decay=kw["weight_decay"])
    keep = ("momentum", "weight_decay") if kw["nesterov"] else ("momentum", "dampening",
                                                                 "weight_decay")
    return ("nesterov" if kw["nesterov"] else "momentum"), {k: kw[k] for k in keep}


@given(opt=optimizers, shape=array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=9),
       dtype=dtypes, seed=st.integers(0, 2**32 - 1))
def test_class_functional_and_stepper_take_the_same_steps(opt, shape, dtype, seed):
    """The three native step paths, all built from the algorithm's spec, agree bit for bit."""
    from fastgd.optim import _stepper
    name, kw = opt
    spec = getattr(fastgd.optim, name).spec
    init, grads = _data(seed, [shape], dtype, steps=4)
    by_class = copies(init)
    o = make(name, by_class, **kw)
    by_function = copies(init)[0]
    hp = spec.kernel_args(kw)
    states = {s.arg_name: np.full_like(by_function, spec.initial_value(s, kw))
              for s, need in zip(spec.states, spec.needs(hp)) if need}
    method, hyper = _stepper_method(name, kw)
    stepper = _stepper.Stepper(method, copies(init)[0], kw["lr"], kw["maximize"], hyper) \
        if kw["lr"] > 0 else None
    with np.errstate(all="ignore"):
        for t, g in enumerate(grads, 1):
            o.step(g)
            _functional_step(name, by_function, g[0].copy(), states, t, kw)
            if stepper is not None:
                stepper.step(g[0].copy())
    assert np.array_equal(by_class[0], by_function, equal_nan=True)
    if stepper is not None:
        assert np.array_equal(by_class[0], stepper.param, equal_nan=True)
    names = {s.arg_name: s.name for s in spec.states}
    for k, v in states.items():
        assert np.array_equal(o.state[0][names[k]], v, equal_nan=True), k
