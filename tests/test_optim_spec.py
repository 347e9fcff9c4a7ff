"""The one declaration of each algorithm (``fastgd.optim.<Class>.spec``): the registry, what
is derived from it (class and functional signatures), its agreement with the C kernels and
the numpy twins, and a new algorithm declared by a spec alone."""
import inspect
import pathlib
import re

import numpy as np
import pytest

from fastgd import _optim, optim
from fastgd.optim import functional as F
from fastgd.optim._spec import Hyper, Spec, State, flag, is_true, nonnegative
from helpers import assert_trees_equal

NAMES = ["sgd", "adagrad", "rmsprop", "adam", "adamw", "adamax", "lion", "adadelta",
         "radam", "nadam"]
HEADER = pathlib.Path(__file__).resolve().parents[1] / "csrc" / "kernels" / "fastgd_optim.h"


# ----------------------------------------------------------------------------- registry

def test_registry_names_every_class():
    assert list(optim.ALGORITHMS) == NAMES
    for name, cls in optim.ALGORITHMS.items():
        assert cls.spec.name == name
        assert optim.by_name(name) is cls
        assert getattr(optim, cls.__name__) is cls
        assert cls.state_names == cls.spec.state_names
        assert cls._lazy_buffer == cls.spec.lazy_state      # serialization reads it
    assert [c.__name__ for c in optim.ALGORITHMS.values()] == [
        "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "Adamax", "Lion", "Adadelta", "RAdam",
        "NAdam"]


@pytest.mark.parametrize("name", ["nadamw", "Adam", "", 3, None])
def test_unknown_name(name):
    with pytest.raises(ValueError, match="unknown optimizer .*expected one of"):
        optim.by_name(name)


def test_registry_is_read_only():
    with pytest.raises(TypeError):
        optim.ALGORITHMS["x"] = optim.SGD


# ----------------------------------------------------------------------------- signatures

#: the algorithms torch.optim has (Lion follows optax.lion: test_lion_defaults_are_optax_s)
TORCH_NAMES = [n for n in NAMES if n != "lion"]


@pytest.mark.parametrize("name", TORCH_NAMES)
def test_names_and_defaults_are_torchs(name):
    torch = pytest.importorskip("torch")
    cls = optim.by_name(name)
    theirs = inspect.signature(getattr(torch.optim, cls.__name__)).parameters
    for h in cls.spec.hypers:
        assert h.name in theirs, h.name
        assert theirs[h.name].default == h.default, h.name


@pytest.mark.parametrize("name", NAMES)
def test_class_signature_is_the_spec(name):
    cls = optim.by_name(name)
    params = list(inspect.signature(cls).parameters.values())
    spec = cls.spec
    positional = [h for h in spec.hypers if not h.keyword_only]
    keyword = [h for h in spec.hypers if h.keyword_only]
    assert [p.name for p in params] == (["params"] + [h.name for h in positional]
                                        + [h.name for h in keyword] + ["backend"])
    for p, h in zip(params[1:], positional + keyword):
        assert p.default == h.default
        assert p.kind == (p.KEYWORD_ONLY if h.keyword_only else p.POSITIONAL_OR_KEYWORD)
    assert params[-1].default == "native" and params[-1].kind == params[-1].KEYWORD_ONLY
    w = np.zeros(2)
    with pytest.raises(TypeError, match=rf"{cls.__name__}.__init__\(\) got an unexpected "
                                        "keyword argument 'bogus'"):
        cls([w], bogus=1)
    assert cls([w]).defaults == dict(spec.defaults)


@pytest.mark.parametrize("name", NAMES)
def test_functional_signature_is_the_kernels(name):
    cls = optim.by_name(name)
    spec = cls.spec
    fn = getattr(F, f"{name}_")
    assert fn.__name__ in F.__all__
    params = inspect.signature(fn).parameters
    positional = [p.name for p in params.values() if p.kind == p.POSITIONAL_OR_KEYWORD]
    assert positional == ["param", "grad"] + [s.arg_name for s in spec.states
                                              if s.when is None] + (
        [] if spec.scalar is None else [spec.scalar.name]) + [
        s.arg_name for s in spec.states if s.when is not None]
    for s in spec.states:
        assert params[s.arg_name].default is (inspect.Parameter.empty if s.when is None else None)
    if spec.counts_steps:
        assert params["step"].default is inspect.Parameter.empty
    else:
        assert "step" not in params
    hp = spec.kernel_args(spec.defaults)
    for k, v in hp.items():
        if k in spec.fixed:
            assert k not in params
        else:
            assert params[k].default == v, k      # the class's defaults, split as the kernel
    assert cls.__name__ in fn.__doc__
    assert params["backend"].default == "native"


# ----------------------------------------------------------------------------- kernels, twins

def _c_kernels():
    """{kernel: (state argument names, hyper-parameter field names)} from the C header."""
    text = HEADER.read_text()
    fields = {}
    for body, name in re.findall(r"typedef struct \{(.*?)\} fgd_(\w+)_hparams;", text, re.S):
        fields[name] = set(re.findall(r"(\w+)\s*[,;]", re.sub(r"\b(double|int)\b", "", body)))
    out = {}
    for name, args in re.findall(r"void fgd_(\w+)_##SFX\((.*?)\);", text, re.S):
        args = [a.strip().split()[-1].lstrip("*") for a in re.sub(r"\\\n", " ", args).split(",")]
        args = [re.sub(r"\W", "", a) for a in args]
        states = args[args.index("grad") + 1:args.index("numel")]
        states = [a for a in states if a != "buffer_is_new"]
        out[name] = (states, fields[name])
    return out


@pytest.mark.skipif(not HEADER.exists(), reason="needs the source tree's C header")
@pytest.mark.parametrize("name", NAMES)
def test_states_in_the_c_kernels_order_and_its_hyper_parameters(name):
    spec = optim.by_name(name).spec
    states, fields = _c_kernels()[spec.kernel]
    scalar = [] if spec.scalar is None else [spec.scalar.name]   # after the state arrays
    assert [s.arg_name for s in spec.states] + scalar == states
    assert set(spec.kernel_args(spec.defaults)) == fields
    assert spec.kernel in _optim.ALGORITHMS
    assert len(spec.states) <= 4


def test_rmsprop_declares_the_kernels_order():
    assert optim.RMSprop.state_names == ("square_avg", "grad_avg", "momentum_buffer")


@pytest.mark.parametrize("name", NAMES)
def test_reference_twin_takes_what_the_spec_says(name):
    spec = optim.by_name(name).spec
    params = inspect.signature(spec.reference).parameters.values()
    positional = [p.name for p in params if p.kind == p.POSITIONAL_OR_KEYWORD]
    keyword = {p.name for p in params if p.kind == p.KEYWORD_ONLY}
    assert positional == ["param", "grad"] + [s.arg_name for s in spec.states]
    expected = set(spec.kernel_args(spec.defaults))
    expected |= {"step"} if spec.counts_steps else set()
    expected |= {"buffer_is_new"} if spec.lazy is not None else set()
    expected |= {spec.scalar.name} if spec.scalar is not None else set()
    assert keyword == expected


def test_base_class_without_a_spec():
    with pytest.raises(TypeError, match="no spec"):
        optim.Optimizer([np.zeros(2)], {"lr": 0.1})


def test_variant_refuses_unknown_defaults():
    with pytest.raises(ValueError, match="not hyper-parameters of adam"):
        optim.Adam.spec.variant("x", defaults={"momentum": 0.9})


# ----------------------------------------------------------------------------- a new algorithm

#: a "new" algorithm declared by a spec alone, on an existing kernel and twin
HEAVY_BALL = optim.SGD.spec.variant("heavy_ball", defaults={"lr": 0.05, "momentum": 0.9})


class HeavyBall(optim.Optimizer, spec=HEAVY_BALL):
    """SGD with momentum 0.9 by default."""


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_a_spec_is_all_a_new_algorithm_needs(backend, rng):
    assert list(inspect.signature(HeavyBall).parameters)[:3] == ["params", "lr", "momentum"]
    a = [rng.standard_normal(5), rng.standard_normal((2, 3)).astype(np.float32)]
    b = [x.copy() for x in a]
    mine = HeavyBall(a, backend=backend)
    ref = optim.SGD(b, lr=0.05, momentum=0.9, backend=backend)
    for _ in range(4):
        grads = [rng.standard_normal(x.shape).astype(x.dtype) for x in a]
        mine.step(grads)
        ref.step([g.copy() for g in grads])
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    assert_trees_equal(mine.state_dict()["state"], ref.state_dict()["state"])
    again = HeavyBall([x.copy() for x in a], backend=backend)
    again.load_state_dict(mine.state_dict())
    assert_trees_equal(again.state_dict(), mine.state_dict())
    heavy_ball_ = F.functional_for(HeavyBall)
    assert heavy_ball_.__name__ == "heavy_ball_"
    x, y = np.ones(3), np.ones(3)
    bx, by = np.zeros(3), np.zeros(3)
    heavy_ball_(x, np.full(3, 2.0), bx, init_momentum_buffer=True, backend=backend)
    F.sgd_(y, np.full(3, 2.0), by, lr=0.05, momentum=0.9, init_momentum_buffer=True,
           backend=backend)
    assert np.array_equal(x, y) and np.array_equal(bx, by)


def test_a_new_algorithm_binds_for_loops_in_c(rng):
    w = rng.standard_normal(4)
    v = w.copy()
    g = rng.standard_normal(4)
    (bound,) = HeavyBall([w]).bind([g])
    for _ in range(3):
        bound.run()
    ref = optim.SGD([v], lr=0.05, momentum=0.9)
    for _ in range(3):
        ref.step([g])
    assert np.array_equal(w, v)


def test_a_spec_with_a_new_state_and_a_check():
    """A hand-written spec: a flag-dependent state, a fixed kernel argument, a pair."""
    spec = Spec(
        name="toy", kernel="adam", reference=optim.Adam.spec.reference, counts_steps=True,
        hypers=(Hyper("lr", 1e-3, nonnegative),
                Hyper("betas", (0.5, 0.75), nonnegative, kernel=("beta1", "beta2")),
                Hyper("eps", 1e-8, nonnegative),
                Hyper("weight_decay", 0, nonnegative),
                Hyper("amsgrad", True, flag),
                Hyper("maximize", False, flag, keyword_only=True)),
        states=(State("exp_avg"), State("exp_avg_sq", initial="eps"),
                State("max_exp_avg_sq", when=is_true("amsgrad"))),
        fixed={"decoupled_weight_decay": True})
    assert spec.kernel_args(spec.defaults) == dict(
        lr=1e-3, beta1=0.5, beta2=0.75, eps=1e-8, weight_decay=0.0, amsgrad=True,
        maximize=False, decoupled_weight_decay=True)
    assert spec.needs(spec.kernel_args(spec.defaults)) == (True, True, True)
    assert spec.initial_value(spec.states[1], spec.defaults) == 1e-8
    with pytest.raises(ValueError, match=re.escape("param_groups[1]['betas'][1]")):
        spec.kernel_args({**spec.defaults, "betas": (0.5, -1)}, "param_groups[1]")
    with pytest.raises(TypeError, match="betas must be a pair"):
        spec.kernel_args({**spec.defaults, "betas": 0.5})


@pytest.mark.parametrize("change,match", [
    (dict(hypers=optim.SGD.spec.hypers * 2), "declared twice"),
    (dict(states=(State("a"),) * 2), "at most four state arrays"),
    (dict(states=tuple(State(f"s{i}") for i in range(5))), "at most four state arrays"),
    (dict(states=(State("a", first_grad=True), State("b", first_grad=True))),
     "at most one state"),
    (dict(states=(State("a", initial="nope"),)), "'nope', which is not a hyper-parameter"),
    (dict(states=(State("a", when=is_true("centered")),)), "'centered' is not a kernel"),
    (dict(hypers=(Hyper("lr", 1.0, nonnegative, kernel=("a", "b", "c")),)), "at most two"),
])
def test_a_spec_that_cannot_be_followed_is_refused(change, match):
    from dataclasses import replace
    with pytest.raises(ValueError, match=match):
        replace(optim.SGD.spec, **change)
