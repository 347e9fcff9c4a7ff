"""fit(scheduler=..., scheduler_interval=...): schedules once an epoch or once a step, the
fused epoch loop (its per-step table) against the per-step loop and a hand-written loop,
divergence, bad arguments."""
import importlib

import numpy as np
import pytest

import fastgd
from fastgd import nn, optim
from fastgd.optim import lr_scheduler as L

from helpers import assert_trees_equal
from nn_testutil import DTYPE_IDS, DTYPES, assert_params_equal, blobs

fit_module = importlib.import_module("fastgd.train.fit")
dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)

#: (optimizer, its kwargs, schedule factory taking (optimizer, total steps))
SCHEDULES = {
    "sgd-steplr": ("SGD", dict(lr=0.1, momentum=0.9), lambda o, n: L.StepLR(o, 7, 0.5)),
    "adam-cosine": ("Adam", dict(lr=0.01), lambda o, n: L.CosineAnnealingLR(o, n // 2)),
    "adam-onecycle": ("Adam", dict(lr=0.01),
                      lambda o, n: L.OneCycleLR(o, max_lr=0.05, total_steps=n)),
    "sgd-onecycle": ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True),
                     lambda o, n: L.OneCycleLR(o, max_lr=0.2, total_steps=n)),
    "rmsprop-cyclic": ("RMSprop", dict(lr=0.01, momentum=0.5),
                       lambda o, n: L.CyclicLR(o, 0.001, 0.01, step_size_up=5)),
    "nadam-lambda": ("NAdam", dict(lr=0.01), lambda o, n: L.LambdaLR(o, lambda t: 0.97 ** t)),
    "adagrad-sequential": ("Adagrad", dict(lr=0.1), lambda o, n: L.SequentialLR(
        o, [L.LinearLR(o, 0.1, total_iters=5), L.ExponentialLR(o, 0.95)], milestones=[5])),
}


def problem(dtype, n=50):
    X, y = blobs(np.random.default_rng(0), n=n, d=4, classes=3, dtype=dtype)
    return X, y


def build(name, dtype, groups=False):
    opt_name, kw, make = SCHEDULES[name]
    model = nn.MLP([4, 8, 3], dtype=dtype, seed=0)
    params = model.parameters()
    if groups:
        params = [{"params": params[:2]}, {"params": params[2:], "lr": kw["lr"] / 2}]
    opt = getattr(optim, opt_name)(params, **kw)
    return model, opt, make


def train(model, opt, sched, X, y, interval, epochs, fused, **kw):
    return fastgd.fit(model, X, y, loss="cross_entropy", optimizer=opt, epochs=epochs,
                      batch_size=8, seed=0, progress=False, scheduler=sched,
                      scheduler_interval=interval, fused=fused, **kw)


@dtypes
@pytest.mark.parametrize("groups", [False, True], ids=["one-group", "two-groups"])
@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_per_step_schedule_fused_equals_per_step_loop(name, groups, dtype):
    X, y = problem(dtype)
    epochs, steps = 4, 7          # 50 rows, batches of 8: 7 steps an epoch
    runs = {}
    for fused in (True, False):
        model, opt, make = build(name, dtype, groups)
        sched = make(opt, epochs * steps)
        h = train(model, opt, sched, X, y, "step", epochs, fused)
        runs[fused] = model, opt, sched, h
    (m1, o1, s1, h1), (m2, o2, s2, h2) = runs[True], runs[False]
    assert_params_equal(m1.parameters(), m2.parameters())
    assert_trees_equal(o1.state_dict(), o2.state_dict())
    assert s1.get_last_lr() == s2.get_last_lr()
    assert s1.last_epoch == s2.last_epoch == epochs * steps
    assert h1["lr"] == h2["lr"]


@dtypes
def test_per_step_schedule_equals_a_hand_written_loop(dtype):
    """The steps the docs describe: update, then scheduler.step(), for every batch."""
    X, y = problem(dtype)
    model, opt, make = build("adam-onecycle", dtype)
    sched = make(opt, 21)
    h = train(model, opt, sched, X, y, "step", 3, None)
    ref, ropt, _ = build("adam-onecycle", dtype)
    rsched = make(ropt, 21)
    rng = np.random.default_rng(0)
    loss = nn.CrossEntropyLoss()
    lrs = []
    for _epoch in range(3):
        order = rng.permutation(len(X))
        lrs.append(ropt.param_groups[0]["lr"])
        for k in range(0, len(X), 8):
            idx = order[k:k + 8]
            loss.forward(ref.forward(X[idx]), y[idx])
            ref.backward(loss.backward())
            ropt.step(ref.gradients())
            rsched.step()
    np.testing.assert_allclose(np.concatenate([p.ravel() for p in model.parameters()]),
                               np.concatenate([p.ravel() for p in ref.parameters()]),
                               rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)
    assert h["lr"] == lrs
    assert sched.get_last_lr() == rsched.get_last_lr()
    assert opt.param_groups[0]["betas"] == ropt.param_groups[0]["betas"]   # cycled beta1


@pytest.mark.parametrize("fused", [True, False])
def test_epoch_schedule_steps_once_an_epoch(fused):
    X, y = problem(np.float64)
    model, opt, _ = build("sgd-steplr", np.float64)
    sched = L.StepLR(opt, step_size=2, gamma=0.1)
    h = train(model, opt, sched, X, y, "epoch", 5, fused)
    np.testing.assert_allclose(h["lr"], [0.1, 0.1, 0.01, 0.01, 0.001], rtol=1e-12)
    assert sched.last_epoch == 5


@pytest.mark.parametrize("validation", [True, False])
def test_reduce_on_plateau_reads_the_validation_loss_else_the_training_loss(validation):
    X, y = problem(np.float64)
    model, opt, _ = build("adam-cosine", np.float64)
    sched = L.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    seen = []
    real = sched.step
    sched.step = lambda metric, *a: (seen.append(metric), real(metric))[1]
    kw = dict(validation_data=(X[:20], y[:20])) if validation else {}
    h = train(model, opt, sched, X, y, "epoch", 3, None, **kw)
    assert seen == (h["val_loss"] if validation else h["loss"])


@dtypes
def test_divergence_puts_a_per_step_schedule_back_with_the_optimizer(dtype, monkeypatch):
    """A NaN gradient from epoch 1 on: the state after epoch 0, schedule included, on the
    fused loop and on the per-step loop."""
    from test_divergence import poison_fused_loop_from_epoch
    X, y = problem(dtype)
    good, gopt, make = build("adam-onecycle", dtype)
    gsched = make(gopt, 40)
    train(good, gopt, gsched, X, y, "step", 1, True)
    model, opt, _ = build("adam-onecycle", dtype)
    sched = make(opt, 40)
    poison_fused_loop_from_epoch(monkeypatch, model, 1)
    with np.errstate(invalid="ignore"), pytest.raises(fastgd.DivergenceError):
        train(model, opt, sched, X, y, "step", 3, True)
    assert_params_equal(model.parameters(), good.parameters())
    assert_trees_equal(opt.state_dict(), gopt.state_dict())
    # the first update of epoch 1 made the NaN: it and its schedule step are taken back,
    # so the schedule stands after epoch 0's 7 steps... less the one undone
    assert sched.last_epoch == gsched.last_epoch
    assert sched.get_last_lr() == gsched.get_last_lr()
    assert opt.param_groups[0]["lr"] == gopt.param_groups[0]["lr"]


@dtypes
def test_divergence_mid_epoch_rewinds_the_schedule_on_both_loops(dtype):
    """A real divergence (lr far too large, rising per step): both loops stop at the same
    step with the same parameters, optimizer state and schedule."""
    X, y = problem(dtype)
    X = X * 50
    out = []
    for fused in (True, False):
        model = nn.MLP([4, 8, 3], dtype=dtype, seed=0)
        opt = optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        sched = L.ExponentialLR(opt, gamma=1.5)
        with np.errstate(all="ignore"), pytest.raises(fastgd.DivergenceError) as err:
            train(model, opt, sched, X, y, "step", 50, fused)
        out.append((model, opt, sched, (err.value.epoch, err.value.step)))
    (m1, o1, s1, e1), (m2, o2, s2, e2) = out
    assert e1 == e2
    assert_params_equal(m1.parameters(), m2.parameters())
    assert_trees_equal(o1.state_dict(), o2.state_dict())
    assert s1.last_epoch == s2.last_epoch and s1.get_last_lr() == s2.get_last_lr()
    steps_kept = o1.state[0]["step"]
    assert s1.last_epoch == steps_kept     # one schedule step per kept update


def test_bad_scheduler_arguments():
    X, y = problem(np.float64)
    model, opt, _ = build("sgd-steplr", np.float64)
    other = optim.SGD([np.zeros(2)], lr=0.1)
    with pytest.raises(TypeError, match="scheduler must be a fastgd.optim.lr_scheduler"):
        train(model, opt, "steplr", X, y, "epoch", 1, None)
    with pytest.raises(ValueError, match="scheduler must be built on fit's optimizer"):
        train(model, opt, L.StepLR(other, 2), X, y, "epoch", 1, None)
    with pytest.raises(ValueError, match="scheduler_interval must be 'epoch' or 'step'"):
        train(model, opt, L.StepLR(opt, 2), X, y, "batch", 1, None)
    with pytest.raises(ValueError, match="ReduceLROnPlateau steps on a metric"):
        train(model, opt, L.ReduceLROnPlateau(opt), X, y, "step", 1, None)


def test_a_schedule_value_the_fused_loop_cannot_take_is_refused_before_it_is_used():
    X, y = problem(np.float64)
    model, opt, _ = build("sgd-steplr", np.float64)
    sched = L.LambdaLR(opt, lambda t: 1.0 if t < 3 else -1.0)
    before = [p.copy() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"param_groups\[0\]\['lr'\] to -0.1 at step 3"):
        train(model, opt, sched, X, y, "step", 1, True)
    assert_params_equal(model.parameters(), before)     # the chunk never ran
    assert sched.last_epoch == 0 and opt.param_groups[0]["lr"] == 0.1


AHEAD = {
    "step": lambda o: L.StepLR(o, 3, 0.7),
    "multistep": lambda o: L.MultiStepLR(o, [2, 5, 5, 9], 0.5),
    "constant": lambda o: L.ConstantLR(o, 0.25, total_iters=4),
    "linear": lambda o: L.LinearLR(o, 0.1, 1.0, total_iters=6),
    "exponential": lambda o: L.ExponentialLR(o, 0.93),
    "polynomial": lambda o: L.PolynomialLR(o, total_iters=8, power=1.7),
    "cosine": lambda o: L.CosineAnnealingLR(o, 5, eta_min=0.001),
    "lambda": lambda o: L.LambdaLR(o, lambda t: 1 / (1 + t)),
    "multiplicative": lambda o: L.MultiplicativeLR(o, lambda t: 0.9),
    "onecycle": lambda o: L.OneCycleLR(o, max_lr=[0.5, 0.2], total_steps=30),
    "onecycle-linear-3": lambda o: L.OneCycleLR(o, max_lr=0.4, total_steps=28, pct_start=0.25,
                                                anneal_strategy="linear", three_phase=True),
    "cyclic-exp": lambda o: L.CyclicLR(o, [0.01, 0.02], 0.1, step_size_up=3, step_size_down=5,
                                       mode="exp_range", gamma=0.97, cycle_momentum=False),
    "cyclic": lambda o: L.CyclicLR(o, 0.01, 0.1, step_size_up=4, mode="triangular2"),
    "warm-restarts": lambda o: L.CosineAnnealingWarmRestarts(o, 4, T_mult=2),
    "sequential": lambda o: L.SequentialLR(o, [L.ConstantLR(o, 0.5, total_iters=3),
                                               L.ExponentialLR(o, 0.9)], milestones=[3]),
}


@pytest.mark.parametrize("name", sorted(AHEAD))
@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_stepping_ahead_is_stepping_bit_for_bit(name, opt_name):
    """What fit's per-step table takes from a schedule (LRScheduler._ahead, its own loops
    for the chainable factors and the cosine) is what step() after step() gives."""
    def make():
        ps = [np.zeros(2), np.zeros(3)]
        kw = dict(momentum=0.9) if opt_name == "SGD" else {}
        opt = getattr(optim, opt_name)([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.3}],
                                       lr=0.1, **kw)
        return opt, AHEAD[name](opt)
    o1, s1 = make()
    o2, s2 = make()
    second = "momentum" if opt_name == "SGD" else "beta1"
    for chunk in (1, 4, 7, 13):
        ahead = s1._ahead(chunk, second)
        got = None
        if ahead is not None:
            lrs, seconds = ahead
            if seconds and not isinstance(seconds[0], list):   # the same for every step
                seconds = [seconds] * chunk
            got = [x for lr_row, m_row in zip(lrs, seconds) for pair in zip(lr_row, m_row)
                   for x in pair]
        want = []
        for _ in range(chunk):
            s2.step()
            want += [x for g in o2.param_groups
                     for x in (g["lr"], g["momentum"] if second == "momentum" else g["betas"][0])]
        if ahead is None:          # a schedule with its own step(): fit steps it instead
            assert type(s1).step is not L.LRScheduler.step
            for _ in range(chunk):
                s1.step()
            continue
        assert got == want
        assert s1.state_dict().keys() == s2.state_dict().keys()
        assert s1.last_epoch == s2.last_epoch and s1._step_count == s2._step_count
        assert s1.get_last_lr() == s2.get_last_lr()
        assert [g["lr"] for g in o1.param_groups] == [g["lr"] for g in o2.param_groups]
