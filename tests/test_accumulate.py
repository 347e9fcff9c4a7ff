"""fit(accumulate_steps=k): one optimizer step per group of k micro-batches on their
row-weighted mean gradient. k = 1 changes nothing; the fused C loop and the per-step loop
take the same steps bit for bit (clipping, per-step schedules, partial groups, uneven last
batches, chunks); k micro-batches of b rows match one step on k * b rows to float
rounding; divergence inside a group; bad arguments."""
import importlib
import math

import numpy as np
import pytest

import fastgd
from fastgd import nn, optim
from fastgd.optim import lr_scheduler as L

from helpers import assert_trees_equal
from nn_testutil import DTYPE_IDS, DTYPES, assert_params_equal, blobs, snapshot

fit_module = importlib.import_module("fastgd.train.fit")
dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)

#: 53 rows, batches of 4: 13 full micro-batches and one of a single row
N, BS = 53, 4


def data(kind, dtype, n=N, seed=3):
    rng = np.random.default_rng(seed)
    X, labels = blobs(rng, n=n, d=5, classes=3, dtype=dtype)
    if kind == "cross_entropy":
        return X, labels
    if kind == "mse":
        return X, rng.standard_normal((n, 3)).astype(dtype)
    return X, (rng.random((n, 3)) > 0.5).astype(dtype)


def run(dtype, *, kind="cross_entropy", opt=("Adam", dict(lr=0.01)), schedule=None,
        epochs=3, batch_size=BS, data_=None, **kw):
    X, y = data(kind, dtype) if data_ is None else data_
    model = nn.MLP([5, 9, 7, 3], dtype=dtype, seed=1, activation="tanh")
    o = getattr(optim, opt[0])(model.parameters(), **opt[1])
    sched = None if schedule is None else schedule(o)
    h = fastgd.fit(model, X, y, loss=kind, optimizer=o, epochs=epochs, batch_size=batch_size,
                   seed=4, progress=False, scheduler=sched,
                   scheduler_interval="epoch" if sched is None else "step", **kw)
    return model, o, h, sched


def assert_same_run(a, b):
    assert_params_equal(a[0].parameters(), b[0].parameters())
    assert_trees_equal(a[1].state_dict(), b[1].state_dict())
    assert a[2]["loss"] == b[2]["loss"]
    if a[3] is not None:
        assert a[3].last_epoch == b[3].last_epoch
        assert a[3].get_last_lr() == b[3].get_last_lr()


def onecycle(o):
    return L.OneCycleLR(o, max_lr=0.05, total_steps=200)


# ----------------------------------------------------------------------------- k = 1

@dtypes
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("extra", [{}, dict(clip_grad_norm=0.5), dict(schedule=onecycle)],
                         ids=["plain", "clip", "schedule"])
def test_one_step_each_is_the_default_bit_for_bit(dtype, fused, extra):
    assert_same_run(run(dtype, fused=fused, **extra),
                    run(dtype, fused=fused, accumulate_steps=1, **extra))


# ----------------------------------------------------------------------------- fused == per step

OPTIMIZERS = [("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)), ("Adam", dict(lr=0.01)),
              ("RMSprop", dict(lr=0.01, momentum=0.5))]


@dtypes
@pytest.mark.parametrize("k", [2, 3, 5, 14, 20])   # 14 micro-batches an epoch
@pytest.mark.parametrize("opt", OPTIMIZERS, ids=lambda o: o[0])
@pytest.mark.parametrize("extra", [{}, dict(clip_grad_norm=0.05), dict(schedule=onecycle),
                                   dict(clip_grad_norm=0.05, schedule=onecycle)],
                         ids=["plain", "clip", "schedule", "clip+schedule"])
def test_fused_loop_equals_the_per_step_loop(dtype, k, opt, extra):
    fused = run(dtype, opt=opt, accumulate_steps=k, fused=True, **extra)
    slow = run(dtype, opt=opt, accumulate_steps=k, fused=False, **extra)
    assert_same_run(fused, slow)
    # one optimizer step (and one schedule step) per group, the epoch's last one partial
    updates = 3 * -(-14 // k)
    assert fused[1].state[0]["step"] == updates
    if fused[3] is not None:
        assert fused[3].last_epoch == updates


@dtypes
@pytest.mark.parametrize("kind", ["mse", "bce_with_logits"])
def test_fused_loop_equals_the_per_step_loop_for_every_loss(dtype, kind):
    assert_same_run(run(dtype, kind=kind, accumulate_steps=3, fused=True),
                    run(dtype, kind=kind, accumulate_steps=3, fused=False))


class FixedChunks:
    def __init__(self, size):
        self.size = size

    def took(self, count, elapsed):
        pass


@pytest.mark.parametrize("size", [1, 2, 5, 16])
def test_chunks_take_whole_groups_and_the_same_steps(size, monkeypatch):
    whole = run(np.float64, accumulate_steps=3, schedule=onecycle)
    monkeypatch.setattr(fit_module, "Chunks", lambda: FixedChunks(size))
    assert_same_run(run(np.float64, accumulate_steps=3, schedule=onecycle), whole)


# ----------------------------------------------------------------------------- the big batch

TOL = {np.float64: dict(rtol=1e-12, atol=1e-14), np.float32: dict(rtol=1e-5, atol=1e-6)}


def assert_close_runs(acc, big, dtype):
    for a, b in zip(acc[0].parameters(), big[0].parameters()):
        np.testing.assert_allclose(a, b, **TOL[dtype])
    # the History's losses: the per-row means over the epoch, at the same parameters
    np.testing.assert_allclose(acc[2]["loss"], big[2]["loss"], rtol=10 * TOL[dtype]["rtol"])


@dtypes
@pytest.mark.parametrize("kind", ["cross_entropy", "mse", "bce_with_logits"])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("fused", [True, False])
def test_k_micro_batches_are_one_step_on_the_k_times_larger_batch(dtype, kind, shuffle, fused):
    # 53 rows: groups of 3 micro-batches of 4 rows (12 rows) and a last group of 2
    # micro-batches (4 rows and 1): batches of 12 rows, the last of 5, in the same order
    # (the permutation of each epoch does not depend on the batch size)
    opt = ("SGD", dict(lr=0.1, momentum=0.9))
    acc = run(dtype, kind=kind, opt=opt, epochs=2, shuffle=shuffle, fused=fused,
              accumulate_steps=3)
    big = run(dtype, kind=kind, opt=opt, epochs=2, shuffle=shuffle, fused=fused,
              batch_size=3 * BS)
    assert acc[1].state[0]["step"] == big[1].state[0]["step"] == 10
    assert_close_runs(acc, big, dtype)


@dtypes
def test_clipping_and_the_schedule_act_on_the_accumulated_gradient(dtype):
    opt = ("SGD", dict(lr=0.1, momentum=0.9))
    kw = dict(opt=opt, epochs=2, clip_grad_norm=0.05, schedule=onecycle)
    acc = run(dtype, accumulate_steps=3, **kw)
    big = run(dtype, batch_size=3 * BS, **kw)
    assert_close_runs(acc, big, dtype)
    assert acc[3].last_epoch == big[3].last_epoch == 10
    assert acc[1].param_groups[0]["lr"] == big[1].param_groups[0]["lr"]
    # the clip is active: without it the run differs
    unclipped = run(dtype, accumulate_steps=3, opt=opt, epochs=2, schedule=onecycle)
    assert not np.allclose(unclipped[0].parameters()[0], acc[0].parameters()[0], rtol=1e-3)


def test_the_layer_by_layer_loop_accumulates_too():
    """A model without a compiled program (the reference backend) takes the per-step loop
    layer by layer; it matches the big batch to rounding as well."""
    X, y = data("cross_entropy", np.float64)
    out = []
    for kw in (dict(accumulate_steps=3), dict(batch_size=3 * BS)):
        model = nn.MLP([5, 9, 3], dtype=np.float64, seed=1, backend="reference")
        o = optim.SGD(model.parameters(), lr=0.1)
        fastgd.fit(model, X, y, loss=nn.CrossEntropyLoss(backend="reference"), optimizer=o,
                   epochs=2, batch_size=kw.pop("batch_size", BS), shuffle=False,
                   progress=False, **kw)
        out.append(model.parameters())
    for a, b in zip(*out):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------- divergence

def _poisoned(dtype, row):
    """MSE data whose target at ``row`` overflows the squared error: the loss of that row's
    micro-batch is infinite (shuffle=False keeps it where it is)."""
    X, y = data("mse", dtype)
    y[row] = 1e200
    return X, y


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("schedule", [None, onecycle], ids=["plain", "schedule"])
def test_divergence_inside_a_group_keeps_the_state_before_the_last_update(fused, schedule):
    """Row 29 is in micro-batch 7, the second of group 2 (micro-batches 6, 7, 8): training
    stops there with the state from before group 1's update (the last update whose losses
    were finite), which is that of one clean step on group 0's 12 rows."""
    dtype = np.float64
    opt = ("Adam", dict(lr=0.01))
    X, y = _poisoned(dtype, 29)
    model = nn.MLP([5, 9, 7, 3], dtype=dtype, seed=1, activation="tanh")
    o = optim.Adam(model.parameters(), **opt[1])
    sched = None if schedule is None else schedule(o)
    with np.errstate(over="ignore", invalid="ignore"), \
            pytest.raises(fastgd.DivergenceError) as err:
        fastgd.fit(model, X, y, loss="mse", optimizer=o, epochs=3, batch_size=BS,
                   shuffle=False, progress=False, accumulate_steps=3, fused=fused,
                   scheduler=sched, scheduler_interval="step")
    assert (err.value.epoch, err.value.step) == (0, 7)
    assert "step 7" in str(err.value) and "restored" in str(err.value)
    clean = run(dtype, kind="mse", opt=opt, data_=(X[:12], y[:12]), shuffle=False, epochs=1,
                accumulate_steps=3, fused=fused, schedule=schedule)
    assert o.state[0]["step"] == clean[1].state[0]["step"] == 1
    assert_params_equal(model.parameters(), clean[0].parameters())
    assert_trees_equal(o.state_dict(), clean[1].state_dict())
    if schedule is not None:
        assert sched.last_epoch == clean[3].last_epoch == 1
        assert o.param_groups[0]["lr"] == clean[1].param_groups[0]["lr"]


@dtypes
@pytest.mark.parametrize("k", [2, 3])
def test_a_real_divergence_stops_both_loops_alike(dtype, k):
    X, y = data("mse", dtype)
    X = X * 50
    out = []
    for fused in (True, False):
        model = nn.MLP([5, 9, 3], dtype=dtype, seed=1, activation="leaky_relu")
        opt = optim.SGD(model.parameters(), lr=10.0)
        with np.errstate(all="ignore"), pytest.raises(fastgd.DivergenceError) as err:
            fastgd.fit(model, X, y, loss="mse", optimizer=opt, epochs=50, batch_size=BS,
                       seed=0, progress=False, accumulate_steps=k, fused=fused)
        out.append((model, opt, (err.value.epoch, err.value.step)))
    assert out[0][2] == out[1][2]
    assert all(np.isfinite(p).all() for p in out[0][0].parameters())
    assert_params_equal(out[0][0].parameters(), out[1][0].parameters())
    assert_trees_equal(out[0][1].state_dict(), out[1][1].state_dict())


def _program():
    model = nn.MLP([2, 3, 2], dtype=np.float64, seed=0)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, opt, [u.hook() for u in opt.bind(model.gradients())]


@pytest.mark.parametrize("bad_row", [0, 1, 2, 3, 5, 63, 64, 65, 66, 67, 130, 131, 140])
def test_train_steps_rebuilds_the_last_good_group_from_its_checkpoint(bad_row):
    """accumulate=2, batches of 1: group g holds rows 2g and 2g + 1; checkpoints every 32
    groups. After a non-finite loss in group g, parameters, optimizer state and back-up
    are those before group g - 1's update: a clean call over groups 0 .. g - 2."""
    from fastgd import _nn
    assert _nn.TRAIN_CHECKPOINT_EVERY == 32
    n = 144
    rng = np.random.default_rng(bad_row)
    X = rng.standard_normal((n, 2))
    y = rng.integers(0, 2, n)
    X[bad_row] = np.nan
    model, opt, hooks = _program()
    backup = opt.backup()
    backup.discard()
    losses = np.full(n, -1.0)
    done = model.program.train_steps(X, y, np.arange(n), 0, n, 1, "cross_entropy",
                                      backup.hook(), hooks, losses, 2)
    assert done == bad_row + 1 and not math.isfinite(losses[bad_row])
    assert (losses[done:] == -1).all()
    g = bad_row // 2
    clean, copt, chooks = _program()
    closses = np.full(n, -1.0)
    if g > 1:
        clean.program.train_steps(X, y, np.arange(n), 0, 2 * (g - 1), 1, "cross_entropy",
                                  None, chooks, closses, 2)
        np.testing.assert_array_equal(losses[:2 * (g - 1)], closses[:2 * (g - 1)])
    assert opt.state.get(0, {}).get("step", 0) == max(g - 1, 0)
    assert_params_equal(model.parameters(), clean.parameters())
    assert_trees_equal(opt.state_dict(), copt.state_dict())
    assert backup.saved == (g >= 1)
    model.parameters()[0][...] = 123.0
    if g >= 1:
        assert backup.restore()
        assert_params_equal(model.parameters(), clean.parameters())
        assert_trees_equal(opt.state_dict(), copt.state_dict())


def test_train_steps_back_up_holds_the_last_group_after_a_clean_call():
    n = 41            # groups of 3 batches of 2 rows: 6 whole groups and one of 5 rows
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((n, 2)), rng.integers(0, 2, n)
    model, opt, hooks = _program()
    backup = opt.backup()
    backup.discard()
    assert model.program.train_steps(X, y, np.arange(n), 0, n, 2, "cross_entropy",
                                     backup.hook(), hooks, np.full(21, -1.0), 3) == 21
    assert opt.state[0]["step"] == 7
    clean, copt, chooks = _program()
    clean.program.train_steps(X, y, np.arange(n), 0, 36, 2, "cross_entropy", None, chooks,
                              np.full(21, -1.0), 3)
    assert backup.restore()
    assert_params_equal(model.parameters(), clean.parameters())
    assert_trees_equal(opt.state_dict(), copt.state_dict())


def test_train_steps_sums_the_group_as_train_batch_and_numpy_do():
    """One group by hand: train_batch(grad_rows=R) for each batch, the gradients summed
    in order, ((g0 + g1) + g2), give the bits train_steps updates with."""
    model, opt, hooks = _program()
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((7, 2)), rng.integers(0, 2, 7)
    grads = model.gradients()
    total = None
    for a, b in ((0, 3), (3, 6), (6, 7)):
        model.program.train_batch(X, y, np.arange(7), a, b, "cross_entropy", 7)
        total = [g.copy() for g in grads] if total is None else \
            [t + g for t, g in zip(total, grads)]
    hand, hopt, _ = _program()
    hopt.step(total)
    assert model.program.train_steps(X, y, np.arange(7), 0, 7, 3, "cross_entropy", None,
                                     hooks, np.empty(3), 3) == 3
    assert_params_equal(model.parameters(), hand.parameters())
    assert_trees_equal(opt.state_dict(), hopt.state_dict())


# ----------------------------------------------------------------------------- bad arguments

@pytest.mark.parametrize("value,error", [(0, ValueError), (-2, ValueError), (1.5, TypeError),
                                         (2.0, TypeError), (True, TypeError), ("2", TypeError),
                                         (None, TypeError)])
def test_bad_accumulate_steps_is_refused_before_anything_is_touched(value, error):
    X, y = data("cross_entropy", np.float64)
    model = nn.MLP([5, 9, 3], dtype=np.float64, seed=1)
    opt = optim.Adam(model.parameters(), lr=0.01)
    before, state = snapshot(model), opt.state_dict()
    with pytest.raises(error, match="accumulate_steps"):
        fastgd.fit(model, X, y, loss="cross_entropy", optimizer=opt, batch_size=4,
                   progress=False, accumulate_steps=value)
    assert_params_equal(model.parameters(), before)
    assert_trees_equal(opt.state_dict(), state)


def test_accept_if_improves_is_refused_with_accumulation():
    X, y = data("cross_entropy", np.float64)
    model = nn.MLP([5, 9, 3], dtype=np.float64, seed=1)
    opt = optim.Adam(model.parameters(), lr=0.01)
    with pytest.raises(ValueError, match="accept_if_improves.*accumulate_steps"):
        fastgd.fit(model, X, y, loss="cross_entropy", optimizer=opt, batch_size=4,
                   progress=False, accumulate_steps=2, accept_if_improves=True)
    # with one micro-batch a step, accept_if_improves stays as it is
    fastgd.fit(model, X, y, loss="cross_entropy", optimizer=opt, batch_size=4,
               progress=False, accumulate_steps=1, accept_if_improves=True)


@pytest.mark.parametrize("value", [0, -1])
def test_train_steps_refuses_a_bad_accumulate(value):
    model, opt, hooks = _program()
    before = snapshot(model)
    with pytest.raises(ValueError, match="accumulate"):
        model.program.train_steps(np.ones((4, 2)), np.array([0, 1, 1, 0]), np.arange(4), 0, 4,
                                  2, "cross_entropy", None, hooks, np.empty(4), value)
    assert_params_equal(model.parameters(), before)


def test_train_batch_refuses_negative_grad_rows():
    model, _, _ = _program()
    with pytest.raises(ValueError, match="grad_rows"):
        model.program.train_batch(np.ones((4, 2)), np.array([0, 1, 1, 0]), np.arange(4), 0, 4,
                                  "cross_entropy", -1)
