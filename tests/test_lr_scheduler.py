"""fastgd.optim.lr_scheduler against torch.optim.lr_scheduler: the same learning rates for the
same calls, per parameter group; state dicts; bad arguments."""
import math
import pickle
import warnings

import numpy as np
import pytest

import fastgd
from fastgd.optim import lr_scheduler as S

torch = pytest.importorskip("torch")
T = torch.optim.lr_scheduler

STEPS = 30


def _f1(e):
    return 0.95 ** e


def _f2(e):
    return 1.0 / (1 + e)


CONFIGS = [
    ("LambdaLR", dict(lr_lambda=_f1)),
    ("LambdaLR", dict(lr_lambda=[_f1, _f2])),
    ("MultiplicativeLR", dict(lr_lambda=lambda e: 0.9)),
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("StepLR", dict(step_size=1)),
    ("MultiStepLR", dict(milestones=[2, 5, 5, 9], gamma=0.3)),
    ("ConstantLR", dict(factor=0.25, total_iters=4)),
    ("ConstantLR", dict()),
    ("LinearLR", dict(start_factor=0.2, end_factor=0.9, total_iters=6)),
    ("LinearLR", dict()),
    ("ExponentialLR", dict(gamma=0.8)),
    ("PolynomialLR", dict(total_iters=7, power=2.0)),
    ("PolynomialLR", dict()),
    ("CosineAnnealingLR", dict(T_max=5, eta_min=0.01)),
    ("CosineAnnealingLR", dict(T_max=12)),
]
IDS = [f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)]


def _pair(name, kw):
    params = [np.zeros(3), np.zeros(2)]
    ours = fastgd.optim.SGD([{"params": [params[0]]}, {"params": [params[1]], "lr": 0.05}],
                            lr=0.1, momentum=0.9)
    tp = [torch.zeros(3, requires_grad=True), torch.zeros(2, requires_grad=True)]
    theirs = torch.optim.SGD([{"params": [tp[0]]}, {"params": [tp[1]], "lr": 0.05}], lr=0.1,
                             momentum=0.9)
    return ours, params, theirs, tp, getattr(S, name)(ours, **kw), getattr(T, name)(theirs, **kw)


def _step(ours, params, theirs, tp):
    ours.step([np.ones_like(p) for p in params])
    for p in tp:
        p.grad = torch.ones_like(p)
    theirs.step()


@pytest.mark.parametrize("name, kw", CONFIGS, ids=IDS)
def test_same_learning_rates_as_torch(name, kw):
    ours, params, theirs, tp, s, ts = _pair(name, kw)
    assert s.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12)
    for _ in range(STEPS):
        _step(ours, params, theirs, tp)
        s.step()
        ts.step()
        assert s.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12, abs=1e-15)
        assert [g["lr"] for g in ours.param_groups] == s.get_last_lr()
        assert s.last_epoch == ts.last_epoch
    for g, tg in zip(ours.param_groups, theirs.param_groups):
        assert g["initial_lr"] == tg["initial_lr"]


@pytest.mark.parametrize("name, kw", [c for c in CONFIGS if c[0] not in
                                      ("LambdaLR", "MultiplicativeLR")],
                         ids=[i for c, i in zip(CONFIGS, IDS) if c[0] not in
                              ("LambdaLR", "MultiplicativeLR")])
def test_step_with_an_epoch_uses_the_closed_form_as_torch(name, kw):
    ours, params, theirs, tp, s, ts = _pair(name, kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for epoch in (3, 7, 1, 12):
            s.step(epoch)
            ts.step(epoch)
            assert s.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12, abs=1e-15)
    with pytest.warns(UserWarning, match="deprecated"):
        s.step(2)


@pytest.mark.parametrize("name, kw", [c for c in CONFIGS if c[0] != "MultiplicativeLR"],
                         ids=[i for c, i in zip(CONFIGS, IDS) if c[0] != "MultiplicativeLR"])
def test_state_dict_resumes_the_same_sequence(name, kw):
    ours, params, theirs, tp, s, ts = _pair(name, kw)
    for _ in range(10):
        _step(ours, params, theirs, tp)
        s.step()
    saved_opt, saved = ours.state_dict(), s.state_dict()
    assert {k for k in saved if k != "lr_lambdas"} <= set(ts.state_dict())
    rest = []
    for _ in range(10):
        _step(ours, params, theirs, tp)
        s.step()
        rest.append(s.get_last_lr())
    # a new optimizer and scheduler from the two state dicts
    params2 = [np.zeros(3), np.zeros(2)]
    opt2 = fastgd.optim.SGD([{"params": [params2[0]]}, {"params": [params2[1]], "lr": 0.05}],
                            lr=0.1, momentum=0.9)
    opt2.load_state_dict(saved_opt)
    s2 = getattr(S, name)(opt2, **kw)
    s2.load_state_dict(saved)
    opt2.load_state_dict(saved_opt)          # the constructor's first step moved some rates
    for expected in rest:
        opt2.step([np.ones_like(p) for p in params2])
        s2.step()
        assert s2.get_last_lr() == pytest.approx(expected, rel=1e-15)


def test_get_lr_outside_step_warns_as_torch():
    opt = fastgd.optim.SGD([np.zeros(1)], lr=0.1)
    s = S.StepLR(opt, 2)
    with pytest.warns(UserWarning, match="get_last_lr"):
        s.get_lr()


def test_resuming_needs_initial_lr():
    opt = fastgd.optim.SGD([np.zeros(1)], lr=0.1)
    with pytest.raises(KeyError, match="initial_lr"):
        S.StepLR(opt, 2, last_epoch=3)
    S.StepLR(opt, 2)
    S.StepLR(opt, 2, last_epoch=3)           # now the group has it


@pytest.mark.parametrize("make, error, match", [
    (lambda o: S.StepLR("opt", 2), TypeError, "optimizer must be"),
    (lambda o: S.StepLR(o, 0), ValueError, "step_size"),
    (lambda o: S.StepLR(o, 2.5), TypeError, "step_size"),
    (lambda o: S.MultiStepLR(o, [5, 2]), ValueError, "increasing order"),
    (lambda o: S.MultiStepLR(o, [1, -2]), ValueError, r"milestones\[1\]"),
    (lambda o: S.MultiStepLR(o, 3), TypeError, "milestones"),
    (lambda o: S.ConstantLR(o, factor=1.5), ValueError, "factor"),
    (lambda o: S.LinearLR(o, start_factor=0), ValueError, "start_factor"),
    (lambda o: S.LinearLR(o, end_factor=2), ValueError, "end_factor"),
    (lambda o: S.LinearLR(o, total_iters=0), ValueError, "total_iters"),
    (lambda o: S.CosineAnnealingLR(o, T_max=0), ValueError, "T_max"),
    (lambda o: S.ExponentialLR(o, gamma="0.9"), TypeError, "gamma"),
    (lambda o: S.LambdaLR(o, [_f1, _f2]), ValueError, "expected 1 lr_lambda"),
    (lambda o: S.LambdaLR(o, 3), TypeError, "not callable"),
    (lambda o: S.StepLR(o, 2, last_epoch=-2), ValueError, "last_epoch"),
])
def test_bad_arguments_are_refused_before_the_optimizer_changes(make, error, match):
    opt = fastgd.optim.SGD([np.zeros(1)], lr=0.1)
    with pytest.raises(error, match=match):
        make(opt)
    assert opt.param_groups[0]["lr"] == 0.1 and "initial_lr" not in opt.param_groups[0]


def test_optimizer_accepts_the_schedules_initial_lr():
    """A group with initial_lr still steps, saves and loads."""
    p = np.ones(2)
    opt = fastgd.optim.Adam([p], lr=0.1)
    S.ExponentialLR(opt, gamma=0.5)
    opt.step([np.ones(2)])
    state = opt.state_dict()
    assert state["param_groups"][0]["initial_lr"] == 0.1
    opt.load_state_dict(state)
    bad = opt.state_dict()
    bad["param_groups"][0]["initial_lr"] = "x"
    with pytest.raises(TypeError, match="initial_lr"):
        opt.load_state_dict(bad)
    assert math.isclose(opt.param_groups[0]["initial_lr"], 0.1)


@pytest.mark.parametrize("kw", [dict(T_0=4), dict(T_0=3, T_mult=2, eta_min=0.001)])
def test_cosine_warm_restarts_matches_torch(kw):
    ours, params, theirs, tp, s, ts = _pair("CosineAnnealingWarmRestarts", kw)
    for _ in range(STEPS):
        _step(ours, params, theirs, tp)
        s.step()
        ts.step()
        assert s.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12, abs=1e-15)
    for epoch in (0.5, 7.25, 2, 40):          # fractional epochs, as torch allows here
        s.step(epoch)
        ts.step(epoch)
        assert s.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12, abs=1e-15)
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        s.step(-1)


def _build(lib, opt, which):
    if which == "sequential":
        a = lib.LinearLR(opt, start_factor=0.25, total_iters=3)
        b = lib.ExponentialLR(opt, gamma=0.8)
        c = lib.StepLR(opt, step_size=2, gamma=0.5)
        return lib.SequentialLR(opt, [a, b, c], milestones=[3, 8])
    a = lib.ExponentialLR(opt, gamma=0.9)
    b = lib.ConstantLR(opt, factor=0.5, total_iters=4)
    return lib.ChainedScheduler([a, b])


@pytest.mark.parametrize("which", ["sequential", "chained"])
def test_composite_schedules_match_torch(which):
    params = [np.zeros(3), np.zeros(2)]
    ours = fastgd.optim.SGD([{"params": [params[0]]}, {"params": [params[1]], "lr": 0.05}],
                            lr=0.1)
    tp = [torch.zeros(3, requires_grad=True), torch.zeros(2, requires_grad=True)]
    theirs = torch.optim.SGD([{"params": [tp[0]]}, {"params": [tp[1]], "lr": 0.05}], lr=0.1)
    s, ts = _build(S, ours, which), _build(T, theirs, which)
    assert s.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12)
    for k in range(STEPS):
        _step(ours, params, theirs, tp)
        s.step()
        ts.step()
        assert s.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12, abs=1e-15), k
        if k == 12:
            saved = s.state_dict()
            assert len(saved["_schedulers"]) == len(ts.state_dict()["_schedulers"])
    s.load_state_dict(saved)                   # back to step 13's schedule state
    assert s.last_epoch == saved["last_epoch"] if "last_epoch" in saved else True


def test_composite_schedules_check_their_parts():
    opt = fastgd.optim.SGD([np.zeros(1)], lr=0.1)
    other = fastgd.optim.SGD([np.zeros(1)], lr=0.1)
    a, b = S.StepLR(opt, 2), S.StepLR(other, 2)
    with pytest.raises(ValueError, match="same optimizer"):
        S.SequentialLR(opt, [a, b], milestones=[3])
    with pytest.raises(ValueError, match="one milestone fewer"):
        S.SequentialLR(opt, [a, S.StepLR(opt, 3)], milestones=[3, 4])
    with pytest.raises(TypeError, match=r"schedulers\[1\]"):
        S.ChainedScheduler([a, "x"])
    with pytest.raises(ValueError, match="at least one"):
        S.SequentialLR(opt, [], milestones=[])
    with pytest.raises(ValueError, match="T_0"):
        S.CosineAnnealingWarmRestarts(opt, T_0=0)
    with pytest.raises(ValueError, match="T_mult"):
        S.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=0)


@pytest.mark.parametrize("kw", [dict(), dict(mode="max", factor=0.5, patience=2, cooldown=1),
                                dict(threshold_mode="abs", threshold=0.05, patience=1,
                                     min_lr=[0.02, 0.04]),
                                dict(patience=0, factor=0.3, eps=0.01)])
def test_reduce_on_plateau_matches_torch(kw):
    ours, params, theirs, tp = _pair("StepLR", dict(step_size=1000))[:4]
    s, ts = S.ReduceLROnPlateau(ours, **kw), T.ReduceLROnPlateau(theirs, **kw)
    metrics = np.random.default_rng(4).normal(1.0, 0.05, 60)
    metrics[:10] = np.linspace(1.5, 1.0, 10)
    for m in metrics:
        _step(ours, params, theirs, tp)
        s.step(float(m))
        ts.step(float(m))
        assert s.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-15)
        assert (s.num_bad_epochs, s.cooldown_counter, s.best) == (
            ts.num_bad_epochs, ts.cooldown_counter, ts.best)
    assert s.get_last_lr() != [0.1, 0.05]      # it did reduce
    state = s.state_dict()
    s2 = S.ReduceLROnPlateau(ours, **kw)
    s2.load_state_dict(state)
    assert (s2.best, s2.num_bad_epochs, s2.last_epoch) == (s.best, s.num_bad_epochs,
                                                           s.last_epoch)


@pytest.mark.parametrize("kw, error, match", [
    (dict(factor=1.0), ValueError, "factor"),
    (dict(mode="lowest"), ValueError, "mode must be one of"),
    (dict(threshold_mode="pct"), ValueError, "threshold_mode"),
    (dict(patience=-1), ValueError, "patience"),
    (dict(min_lr=[0.1]), ValueError, "expected 2 min_lrs"),
])
def test_reduce_on_plateau_refuses_bad_arguments(kw, error, match):
    opt = fastgd.optim.SGD([{"params": [np.zeros(1)]}, {"params": [np.zeros(1)]}], lr=0.1)
    with pytest.raises(error, match=match):
        S.ReduceLROnPlateau(opt, **kw)
    with pytest.raises(TypeError, match="metrics"):
        S.ReduceLROnPlateau(opt).step("low")


# ----------------------------------------------------------------------------- CyclicLR, OneCycleLR

def _inverse_cycle(c):
    return 1.0 / c


def _slow_decay(t):
    return 0.99 ** t


class _Halving:
    """A scale_fn that is a callable object: its attributes are saved (as torch)."""

    def __init__(self, base=0.5):
        self.base = base

    def __call__(self, x):
        return self.base ** (x - 1)


CYCLIC_STEPS = 30
ONE_CYCLE_STEPS = 24

CYCLES = [
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=4)),
    ("CyclicLR", dict(base_lr=[0.01, 0.02], max_lr=[0.1, 0.3], step_size_up=3,
                      step_size_down=5, mode="triangular2")),
    ("CyclicLR", dict(base_lr=0.01, max_lr=[0.2, 0.1], step_size_up=4, mode="exp_range",
                      gamma=0.97, base_momentum=[0.7, 0.75], max_momentum=[0.9, 0.95])),
    ("CyclicLR", dict(base_lr=0.02, max_lr=0.1, step_size_up=2, step_size_down=3,
                      scale_fn=_inverse_cycle)),
    ("CyclicLR", dict(base_lr=0.02, max_lr=0.1, step_size_up=5, scale_fn=_slow_decay,
                      scale_mode="iterations")),
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=4, step_size_down=0)),
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=3, cycle_momentum=False)),
    ("OneCycleLR", dict(max_lr=0.5, total_steps=ONE_CYCLE_STEPS)),
    ("OneCycleLR", dict(max_lr=[0.5, 1.0], total_steps=ONE_CYCLE_STEPS,
                        anneal_strategy="linear", pct_start=0.25)),
    ("OneCycleLR", dict(max_lr=0.5, total_steps=ONE_CYCLE_STEPS, three_phase=True)),
    ("OneCycleLR", dict(max_lr=[0.5, 0.2], total_steps=ONE_CYCLE_STEPS, three_phase=True,
                        anneal_strategy="linear", pct_start=0.4, base_momentum=[0.8, 0.7],
                        max_momentum=0.9)),
    ("OneCycleLR", dict(max_lr=0.3, epochs=4, steps_per_epoch=6, div_factor=10.0,
                        final_div_factor=100.0)),
    ("OneCycleLR", dict(max_lr=0.3, total_steps=ONE_CYCLE_STEPS, pct_start=0.0)),
    ("OneCycleLR", dict(max_lr=0.3, total_steps=ONE_CYCLE_STEPS, cycle_momentum=False)),
]
CYCLE_IDS = [f"{n}-{i}" for i, (n, _) in enumerate(CYCLES)]
#: fastgd's optimizer, torch's, and their common arguments: one cycles ``momentum``, one
#: ``betas[0]``
MOMENTUM_OPTIMIZERS = {"sgd": ("SGD", dict(lr=0.1, momentum=0.9)),
                       "adam": ("Adam", dict(lr=0.1, betas=(0.9, 0.99)))}
GROUP_KEYS = ("initial_lr", "max_lr", "min_lr", "base_momentum", "max_momentum")


def _steps(name):
    return ONE_CYCLE_STEPS if name == "OneCycleLR" else CYCLIC_STEPS


def _cycle_pair(which, name, kw):
    cls, okw = MOMENTUM_OPTIMIZERS[which]
    params = [np.zeros(3), np.zeros(2)]
    ours = getattr(fastgd.optim, cls)([{"params": [params[0]]},
                                       {"params": [params[1]], "lr": 0.05}], **okw)
    tp = [torch.zeros(3, requires_grad=True, dtype=torch.float64),
          torch.zeros(2, requires_grad=True, dtype=torch.float64)]
    theirs = getattr(torch.optim, cls)([{"params": [tp[0]]}, {"params": [tp[1]], "lr": 0.05}],
                                       **okw)
    return ours, params, theirs, tp, getattr(S, name)(ours, **kw), getattr(T, name)(theirs, **kw)


def _momenta(opt):
    return [g["betas"][0] if "betas" in g else g["momentum"] for g in opt.param_groups]


def _same_schedule_state(s, ts, ours, theirs):
    assert s.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12, abs=1e-15)
    assert [g["lr"] for g in ours.param_groups] == s.get_last_lr()
    assert _momenta(ours) == pytest.approx(_momenta(theirs), rel=1e-12, abs=1e-15)
    assert s.last_epoch == ts.last_epoch
    for g, tg in zip(ours.param_groups, theirs.param_groups):
        if "betas" in g:
            assert type(g["betas"]) is tuple and g["betas"][1] == tg["betas"][1]
        for k in GROUP_KEYS:
            assert (k in g) == (k in tg), k
            if k in g:
                assert g[k] == pytest.approx(tg[k], rel=1e-15), k


@pytest.mark.parametrize("which", MOMENTUM_OPTIMIZERS)
@pytest.mark.parametrize("name, kw", CYCLES, ids=CYCLE_IDS)
def test_cycles_match_torch_with_their_momentum(name, kw, which):
    """Learning rates, momentum or beta1 and the group keys of every group at every step,
    the optimizer stepping in between (its momentum or betas replaced at each step)."""
    ours, params, theirs, tp, s, ts = _cycle_pair(which, name, kw)
    _same_schedule_state(s, ts, ours, theirs)
    lrs = []
    for _ in range(_steps(name)):
        _step(ours, params, theirs, tp)
        s.step()
        ts.step()
        _same_schedule_state(s, ts, ours, theirs)
        lrs.append(s.get_last_lr())
    assert len({tuple(v) for v in lrs}) > 3                     # the rate did move
    for g in ours.param_groups:
        assert ("base_momentum" in g) == kw.get("cycle_momentum", True)


def test_cycle_momentum_needs_momentum_or_betas():
    for make in (lambda o: S.CyclicLR(o, 0.01, 0.1), lambda o: S.OneCycleLR(o, 0.1, 10)):
        opt = fastgd.optim.Adagrad([np.zeros(1)], lr=0.1)
        with pytest.raises(ValueError, match="'momentum' or 'betas'.*Adagrad has neither"):
            make(opt)
        assert set(opt.param_groups[0]) == set(fastgd.optim.Adagrad([np.zeros(1)]).param_groups[0])
    opt = fastgd.optim.Adagrad([np.zeros(1)], lr=0.1)
    S.OneCycleLR(opt, 0.1, 10, cycle_momentum=False)
    opt.step([np.ones(1)])
    assert "max_momentum" not in opt.param_groups[0]


def test_one_cycle_refuses_a_step_past_total_steps_as_torch():
    ours, params, theirs, tp, s, ts = _cycle_pair("sgd", "OneCycleLR", dict(max_lr=0.5,
                                                                            total_steps=5))
    for _ in range(5):
        _step(ours, params, theirs, tp)
        s.step()
        ts.step()
    before = [dict(g) for g in ours.param_groups]
    with pytest.raises(ValueError, match="stepped 6 times, past its total_steps=5"):
        s.step()
    with pytest.raises(ValueError, match="total steps is 5"):
        ts.step()
    assert ours.param_groups == before                         # the optimizer is unchanged
    assert s.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12)


def test_one_cycle_refuses_an_empty_phase_where_torch_divides_by_zero():
    """pct_start * total_steps == 1 makes the first phase empty (torch's constructor divides
    by zero); pct_start=1 the last one (torch's last step does)."""
    for kw in (dict(pct_start=0.1), dict(pct_start=0.1, three_phase=True)):
        opt = fastgd.optim.SGD([np.zeros(1)], lr=0.1, momentum=0.9)
        with pytest.raises(ValueError, match="no steps.*pct_start"):
            S.OneCycleLR(opt, 1.0, total_steps=10, **kw)
        assert set(opt.param_groups[0]) == {"params", "lr", "momentum", "dampening",
                                            "weight_decay", "nesterov", "maximize"}
        with pytest.raises(ZeroDivisionError):
            T.OneCycleLR(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1,
                                         momentum=0.9), 1.0, total_steps=10, **kw)
    ours, params, theirs, tp, s, ts = _cycle_pair("sgd", "OneCycleLR",
                                                  dict(max_lr=0.5, total_steps=6, pct_start=1.0))
    for _ in range(5):
        _step(ours, params, theirs, tp)
        s.step()
        ts.step()
        _same_schedule_state(s, ts, ours, theirs)
    with pytest.raises(ValueError, match="phase 2 of 2, which has no steps"):
        s.step()
    with pytest.raises(ZeroDivisionError):
        ts.step()


@pytest.mark.parametrize("name, kw", [c for c in CYCLES if c[1].get("scale_fn") is None],
                         ids=[i for c, i in zip(CYCLES, CYCLE_IDS) if c[1].get("scale_fn") is None])
def test_cycles_resume_from_last_epoch_as_torch(name, kw):
    """A new scheduler with last_epoch=k on the groups of a schedule (torch's resume)."""
    ours, params, theirs, tp, s, ts = _cycle_pair("adam", name, kw)
    for _ in range(7):
        _step(ours, params, theirs, tp)
        s.step()
        ts.step()
    s, ts = getattr(S, name)(ours, last_epoch=7, **kw), getattr(T, name)(theirs, last_epoch=7,
                                                                          **kw)
    for _ in range(10):
        _same_schedule_state(s, ts, ours, theirs)
        _step(ours, params, theirs, tp)
        s.step()
        ts.step()


def test_one_cycle_resuming_needs_its_group_keys():
    opt = fastgd.optim.SGD([np.zeros(1)], lr=0.1, momentum=0.9)
    S.StepLR(opt, 2)                                   # initial_lr, but no max_lr
    with pytest.raises(KeyError, match="'max_lr' is not specified in param_groups"):
        S.OneCycleLR(opt, 1.0, total_steps=10, last_epoch=3)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["momentum"] == 0.9
    S.OneCycleLR(opt, 1.0, total_steps=10)
    opt.param_groups[0]["min_lr"] = "low"
    with pytest.raises(TypeError, match=r"param_groups\[0\]\['min_lr'\]"):
        S.OneCycleLR(opt, 1.0, total_steps=10, last_epoch=3)


def test_cyclic_lr_after_a_warm_up_matches_torch():
    """Inside SequentialLR after LinearLR: the groups' initial_lr is the warm-up's, not
    base_lr (torch's constructor step takes it; so does fastgd's)."""
    ours, params, theirs, tp = _cycle_pair("sgd", "StepLR", dict(step_size=100))[:4]
    s = S.SequentialLR(ours, [S.LinearLR(ours, start_factor=0.5, total_iters=3),
                              S.CyclicLR(ours, 0.01, [0.2, 0.1], step_size_up=3)], [3])
    ts = T.SequentialLR(theirs, [T.LinearLR(theirs, start_factor=0.5, total_iters=3),
                                 T.CyclicLR(theirs, 0.01, [0.2, 0.1], step_size_up=3)], [3])
    for _ in range(15):
        _same_schedule_state(s, ts, ours, theirs)
        _step(ours, params, theirs, tp)
        s.step()
        ts.step()


@pytest.mark.parametrize("which", MOMENTUM_OPTIMIZERS)
@pytest.mark.parametrize("name, kw", CYCLES, ids=CYCLE_IDS)
def test_cycles_state_dict_resumes_the_same_sequence(name, kw, which):
    ours, params, theirs, tp, s, ts = _cycle_pair(which, name, kw)
    for _ in range(10):
        _step(ours, params, theirs, tp)
        s.step()
    saved_opt, saved = ours.state_dict(), s.state_dict()
    params2 = [p.copy() for p in params]
    assert set(saved) <= set(ts.state_dict())
    assert saved.get("_scale_fn_custom") is None               # a function is not saved
    pickle.dumps(saved)
    rest = []
    for _ in range(_steps(name) - 10):
        _step(ours, params, theirs, tp)
        s.step()
        rest.append((s.get_last_lr(), _momenta(ours), [dict(g) for g in ours.param_groups]))
    cls, okw = MOMENTUM_OPTIMIZERS[which]
    opt2 = getattr(fastgd.optim, cls)([{"params": [params2[0]]},
                                       {"params": [params2[1]], "lr": 0.05}], **okw)
    opt2.load_state_dict(saved_opt)
    s2 = getattr(S, name)(opt2, **kw)
    s2.load_state_dict(saved)
    opt2.load_state_dict(saved_opt)          # the constructor's first step moved the rates
    for lrs, momenta, groups in rest:
        opt2.step([np.ones_like(p) for p in params2])
        s2.step()
        assert s2.get_last_lr() == lrs and _momenta(opt2) == momenta
        assert [{k: v for k, v in g.items() if k != "params"} for g in opt2.param_groups] \
            == [{k: v for k, v in g.items() if k != "params"} for g in groups]
    for p, q in zip(params, params2):
        np.testing.assert_array_equal(p, q)


def test_cyclic_lr_saves_a_callable_objects_attributes():
    opt = fastgd.optim.SGD([np.zeros(1)], lr=0.1, momentum=0.9)
    s = S.CyclicLR(opt, 0.01, 0.1, step_size_up=2, scale_fn=_Halving(0.8))
    for _ in range(5):
        s.step()
    saved = s.state_dict()
    assert saved["_scale_fn_custom"] == {"base": 0.8}
    state = pickle.loads(pickle.dumps(saved))
    s2 = S.CyclicLR(fastgd.optim.SGD([np.zeros(1)], lr=0.1, momentum=0.9), 0.01, 0.1,
                    step_size_up=2, scale_fn=_Halving())
    s2.load_state_dict(state)
    assert s2._scale_fn_custom.base == 0.8 and state["_scale_fn_custom"] == {"base": 0.8}
    s.step()
    s2.step()
    assert s2.get_last_lr() == s.get_last_lr()
    with pytest.raises(ValueError, match="custom scale_fn"):
        S.CyclicLR(opt, 0.01, 0.1).load_state_dict(saved)
    # torch saves the same attributes
    ts = T.CyclicLR(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1,
                                    momentum=0.9), 0.01, 0.1, scale_fn=_Halving(0.8))
    assert ts.state_dict()["_scale_fn_custom"] == {"base": 0.8}


def _problem(dtype=np.float64):
    rng = np.random.default_rng(12)
    A, b = rng.normal(size=(8, 5)), rng.normal(size=8)
    return A, b


def _grads(A, b, w1, w2):
    """The gradient of 0.5 |A [w1; w2] - b|^2 (+ 0.1 |w|^4 so Adam's steps differ)."""
    w = np.concatenate([w1, w2])
    g = A.T @ (A @ w - b) + 0.4 * (w @ w) * w
    return [g[:3], g[3:]]


@pytest.mark.parametrize("cls, okw", [("SGD", dict(lr=0.02, momentum=0.9)),
                                      ("SGD", dict(lr=0.02, momentum=0.9, nesterov=True)),
                                      ("RMSprop", dict(lr=0.01, momentum=0.5)),
                                      ("Adam", dict(lr=0.01)),
                                      ("AdamW", dict(lr=0.01, amsgrad=True))],
                         ids=["sgd", "sgd_nesterov", "rmsprop", "adam", "adamw_amsgrad"])
@pytest.mark.parametrize("name, kw", [
    ("CyclicLR", dict(base_lr=0.001, max_lr=[0.02, 0.01], step_size_up=3, step_size_down=4,
                      mode="triangular2")),
    ("OneCycleLR", dict(max_lr=[0.02, 0.03], total_steps=25, three_phase=True)),
    ("OneCycleLR", dict(max_lr=0.02, total_steps=25, anneal_strategy="linear")),
], ids=["cyclic", "one_cycle_three_phase", "one_cycle_linear"])
def test_optimizers_driven_by_the_cycles_take_torchs_steps(cls, okw, name, kw):
    A, b = _problem()
    w = [np.full(3, 0.5), np.full(2, -0.5)]
    ours = getattr(fastgd.optim, cls)([{"params": [w[0]]}, {"params": [w[1]]}], **okw)
    tw = [torch.tensor(p, requires_grad=True) for p in w]
    theirs = getattr(torch.optim, cls)([{"params": [tw[0]]}, {"params": [tw[1]]}], **okw)
    s, ts = getattr(S, name)(ours, **kw), getattr(T, name)(theirs, **kw)
    tA, tb = torch.tensor(A), torch.tensor(b)
    for _ in range(25):
        ours.step(_grads(A, b, *w))
        theirs.zero_grad()
        tx = torch.cat(tw)
        (0.5 * ((tA @ tx - tb) ** 2).sum() + 0.1 * (tx @ tx) ** 2).backward()
        theirs.step()
        s.step()
        ts.step()
    for p, tp_ in zip(w, tw):
        np.testing.assert_allclose(p, tp_.detach().numpy(), rtol=1e-9, atol=1e-12)
    assert not np.allclose(w[0], 0.5)


def test_optimizer_accepts_the_cycles_group_keys():
    """Groups with max_lr, min_lr, base_momentum and max_momentum (and a tuple replacing
    betas at each step) still step, save and load; a new optimizer takes them too."""
    p, q = np.ones(2), np.ones(2)
    opt = fastgd.optim.Adam([p], lr=0.1)
    S.OneCycleLR(opt, 0.5, total_steps=10)
    sgd = fastgd.optim.SGD([q], lr=0.1, momentum=0.9)
    S.CyclicLR(sgd, 0.01, 0.1, step_size_up=2)
    for o, x in ((opt, p), (sgd, q)):
        o.step([np.ones(2)])
        state = o.state_dict()
        assert {"base_momentum", "max_momentum"} <= set(state["param_groups"][0])
        fresh = type(o)([x.copy()])
        fresh.load_state_dict(state)
        assert fresh.param_groups[0]["max_momentum"] == o.param_groups[0]["max_momentum"]
        fresh.step([np.ones(2)])
    assert {"max_lr", "min_lr"} <= set(opt.state_dict()["param_groups"][0])
    again = fastgd.optim.Adam([{"params": [p.copy()], "max_lr": 0.5, "min_lr": 1e-5,
                                "base_momentum": 0.85, "max_momentum": 0.95}])
    again.step([np.ones(2)])
    with pytest.raises(ValueError, match="unknown hyper-parameter 'peak_lr'"):
        fastgd.optim.Adam([{"params": [p.copy()], "peak_lr": 0.5}])


def _two_groups(cls="SGD", **kw):
    defaults = {"lr": 0.1, "momentum": 0.9} if cls == "SGD" else {"lr": 0.1}
    return getattr(fastgd.optim, cls)([{"params": [np.zeros(1)]},
                                       {"params": [np.zeros(1)], "lr": 0.05}],
                                      **defaults, **kw)


@pytest.mark.parametrize("make_opt, make, error, match", [
    (_two_groups, lambda o: S.CyclicLR("opt", 0.01, 0.1), TypeError, "optimizer must be"),
    (_two_groups, lambda o: S.CyclicLR(o, -0.01, 0.1), ValueError, "base_lr must be >= 0"),
    (_two_groups, lambda o: S.CyclicLR(o, [0.01, "x"], 0.1), TypeError, r"base_lr\[1\]"),
    (_two_groups, lambda o: S.CyclicLR(o, 0.01, [0.1]), ValueError, "expected 2 max_lr"),
    (_two_groups, lambda o: S.CyclicLR(o, 0.01, np.array([0.1, 0.2])), TypeError, "max_lr"),
    (_two_groups, lambda o: S.CyclicLR(o, 0.01, 0.1, step_size_up=0), ValueError,
     "step_size_up"),
    (_two_groups, lambda o: S.CyclicLR(o, 0.01, 0.1, step_size_up=2.5), TypeError,
     "step_size_up"),
    (_two_groups, lambda o: S.CyclicLR(o, 0.01, 0.1, step_size_down=-1), ValueError,
     "step_size_down"),
    (_two_groups, lambda o: S.CyclicLR(o, 0.01, 0.1, mode="cosine"), ValueError,
     "mode must be one of"),
    (_two_groups, lambda o: S.CyclicLR(o, 0.01, 0.1, scale_mode="epochs"), ValueError,
     "scale_mode must be one of"),
    (_two_groups, lambda o: S.CyclicLR(o, 0.01, 0.1, scale_fn=3), TypeError, "scale_fn"),
    (_two_groups, lambda o: S.CyclicLR(o, 0.01, 0.1, gamma=0), ValueError, "gamma"),
    (_two_groups, lambda o: S.CyclicLR(o, 0.01, 0.1, cycle_momentum=1), TypeError,
     "cycle_momentum must be a bool"),
    (_two_groups, lambda o: S.CyclicLR(o, 0.01, 0.1, base_momentum=[0.8]), ValueError,
     "expected 2 base_momentum"),
    (_two_groups, lambda o: S.CyclicLR(o, 0.01, 0.1, max_momentum=-0.5), ValueError,
     "max_momentum=-0.5 cannot be the momentum of param_groups"),
    (lambda: _two_groups("Adam"), lambda o: S.CyclicLR(o, 0.01, 0.1, max_momentum=1.0),
     ValueError, r"max_momentum=1.0 cannot be the betas\[0\]"),
    (lambda: _two_groups(nesterov=True), lambda o: S.CyclicLR(o, 0.01, 0.1, base_momentum=0),
     ValueError, "base_momentum=0.0 cannot be .*Nesterov"),
    (lambda: _two_groups("Adagrad"), lambda o: S.CyclicLR(o, 0.01, 0.1), ValueError,
     "cycle_momentum=True needs"),
    (_two_groups, lambda o: S.CyclicLR(o, 0.01, 0.1, last_epoch=-2), ValueError, "last_epoch"),
    (_two_groups, lambda o: S.CyclicLR(o, 0.01, 0.1, last_epoch=4), KeyError, "initial_lr"),
    (_two_groups, lambda o: S.OneCycleLR([], 0.1, 10), TypeError, "optimizer must be"),
    (_two_groups, lambda o: S.OneCycleLR(o, 0.1, total_steps=0), ValueError, "total_steps"),
    (_two_groups, lambda o: S.OneCycleLR(o, 0.1, total_steps=10.0), TypeError, "total_steps"),
    (_two_groups, lambda o: S.OneCycleLR(o, 0.1), ValueError,
     "needs total_steps, or epochs and steps_per_epoch"),
    (_two_groups, lambda o: S.OneCycleLR(o, 0.1, epochs=3), ValueError, "needs total_steps"),
    (_two_groups, lambda o: S.OneCycleLR(o, 0.1, epochs=0, steps_per_epoch=5), ValueError,
     "epochs must be >= 1"),
    (_two_groups, lambda o: S.OneCycleLR(o, 0.1, epochs=2, steps_per_epoch=-1), ValueError,
     "steps_per_epoch"),
    (_two_groups, lambda o: S.OneCycleLR(o, 0.1, 10, pct_start=1.5), ValueError, "pct_start"),
    (_two_groups, lambda o: S.OneCycleLR(o, 0.1, 10, pct_start=-0.1), ValueError,
     "pct_start"),
    (_two_groups, lambda o: S.OneCycleLR(o, 0.1, 10, anneal_strategy="cosine"), ValueError,
     "anneal_strategy must be one of"),
    (_two_groups, lambda o: S.OneCycleLR(o, 0.1, 10, three_phase=1), TypeError, "three_phase"),
    (_two_groups, lambda o: S.OneCycleLR(o, 0.1, 10, div_factor=0), ValueError, "div_factor"),
    (_two_groups, lambda o: S.OneCycleLR(o, 0.1, 10, final_div_factor=-1), ValueError,
     "final_div_factor"),
    (_two_groups, lambda o: S.OneCycleLR(o, [0.1, 0.2, 0.3], 10), ValueError,
     "expected 2 max_lr"),
    (_two_groups, lambda o: S.OneCycleLR(o, -1.0, 10), ValueError, "max_lr must be >= 0"),
    (_two_groups, lambda o: S.OneCycleLR(o, 0.1, 10, max_momentum=[0.9, -1]), ValueError,
     "max_momentum=-1.0 cannot be the momentum of param_groups"),
    (lambda: _two_groups("Adam"), lambda o: S.OneCycleLR(o, 0.1, 10, base_momentum=1.5),
     ValueError, r"base_momentum=1.5 cannot be the betas\[0\]"),
    (lambda: _two_groups("Adadelta"), lambda o: S.OneCycleLR(o, 0.1, 10), ValueError,
     "Adadelta has neither"),
    (_two_groups, lambda o: S.OneCycleLR(o, 0.1, 10, pct_start=0.1), ValueError, "no steps"),
    (_two_groups, lambda o: S.OneCycleLR(o, 0.1, 10, last_epoch=4), KeyError, "initial_lr"),
])
def test_cycles_refuse_bad_arguments_before_the_optimizer_changes(make_opt, make, error,
                                                                   match):
    opt = make_opt()
    before = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    with pytest.raises(error, match=match):
        make(opt)
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == before
