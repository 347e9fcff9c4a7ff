"""fastgd.optim.lr_scheduler against torch.optim.lr_scheduler: the same learning rates for the
same calls, per parameter group; state dicts; bad arguments."""
import math
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
