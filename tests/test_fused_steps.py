"""The fused training loop: ``Program.train_steps`` with optimizer updates bound in C
(``_optim.BoundUpdate``), which ``fastgd.fit`` uses for a compiled model, a native loss and a
native optimizer. It must take exactly the steps of the per-step loop, bit for bit, and
refuse bad input before touching anything."""
import importlib
import math

import numpy as np
import pytest

import fastgd
from fastgd import nn, optim

from helpers import assert_trees_equal
from nn_testutil import DTYPE_IDS, DTYPES, assert_params_equal, blobs, snapshot

fit_module = importlib.import_module("fastgd.train.fit")
dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)

OPTIMIZERS = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.2, maximize=False)),
    ("Adagrad", dict(lr=0.05, lr_decay=1e-3, initial_accumulator_value=0.1)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=1e-2)),
    ("AdamW", dict(lr=0.01)),
]


def per_step(monkeypatch):
    """Make fit take the per-step loop (train_batch, then optimizer.step from Python)."""
    real = fit_module.loop_for

    def loop_for(*args, fused=True, clip=None, schedule=None, **kw):
        inner = real(*args, fused=False, clip=clip, schedule=schedule, **kw)
        assert isinstance(inner, fit_module.StepLoop)
        return inner

    monkeypatch.setattr(fit_module, "loop_for", loop_for)


def data(kind, dtype, rng):
    X, labels = blobs(rng, n=53, d=5, classes=3, dtype=dtype)
    if kind == "cross_entropy":
        return X, labels
    if kind == "mse":
        return X, rng.standard_normal((len(X), 3)).astype(dtype)
    return X, (rng.random((len(X), 3)) > 0.5).astype(dtype)


def run(kind, dtype, name, kw, batch_size, progress=False, epochs=3, callbacks=(),
        activation="tanh"):
    X, y = data(kind, dtype, np.random.default_rng(3))
    model = nn.MLP([5, 9, 7, 3], dtype=dtype, seed=1, activation=activation)
    opt = getattr(optim, name)(model.parameters(), **kw)
    h = fastgd.fit(model, X, y, loss=kind, optimizer=opt, epochs=epochs,
                   batch_size=batch_size, seed=4, progress=progress, callbacks=callbacks)
    return model, opt, h


def assert_same_run(a, b):
    assert_params_equal(a[0].parameters(), b[0].parameters())
    assert_trees_equal(a[1].state_dict(), b[1].state_dict())
    assert a[2]["loss"] == b[2]["loss"]


@dtypes
@pytest.mark.parametrize("name,kw", OPTIMIZERS, ids=lambda v: v if isinstance(v, str) else
                         ",".join(f"{k}={x}" for k, x in v.items()))
@pytest.mark.parametrize("batch_size", [None, 1, 8])
def test_fused_fit_equals_the_per_step_loop(dtype, name, kw, batch_size, monkeypatch):
    fused = run("cross_entropy", dtype, name, kw, batch_size)
    assert isinstance(fit_module.loop_for(fused[0], nn.CrossEntropyLoss(), fused[1],
                                          fused[1].backup(), False, 3), fit_module.FusedLoop)
    per_step(monkeypatch)
    assert_same_run(fused, run("cross_entropy", dtype, name, kw, batch_size))


@dtypes
@pytest.mark.parametrize("kind", ["mse", "bce_with_logits"])
@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_fused_fit_equals_the_per_step_loop_for_every_loss(dtype, kind, activation,
                                                          monkeypatch):
    fused = run(kind, dtype, "Adam", dict(lr=0.01), 6, activation=activation)
    per_step(monkeypatch)
    assert_same_run(fused, run(kind, dtype, "Adam", dict(lr=0.01), 6, activation=activation))


class FixedChunks:
    def __init__(self, size):
        self.size = size

    def took(self, count, elapsed):
        pass


@pytest.mark.parametrize("size", [1, 5, 16])
def test_chunks_take_the_same_steps(size, monkeypatch, capsys):
    # fit returns to Python every few steps (53 rows, batch 2: 27 steps an epoch)
    whole = run("cross_entropy", np.float64, "Adam", dict(lr=0.01), 2)
    monkeypatch.setattr(fit_module, "Chunks", lambda: FixedChunks(size))
    chunked = run("cross_entropy", np.float64, "Adam", dict(lr=0.01), 2, progress=True)
    assert_same_run(chunked, whole)
    assert "81/81" in capsys.readouterr().err   # the bar counted every step


def test_chunk_size_follows_the_time_a_step_takes():
    c = fit_module.Chunks(seconds=0.1)
    assert c.size == 16
    c.took(16, 16e-6)          # 1 us a step: 100000 steps make 0.1 s, capped
    assert c.size == 1 << 16
    c.took(10, 0.5)            # 50 ms a step: two steps a chunk
    assert c.size == 2
    c.took(1, 3.0)             # slower than the budget: one step at a time
    assert c.size == 1
    c.took(4, 0.0)             # a clock that did not move
    assert c.size == 1 << 16


@dtypes
def test_hyper_parameters_changed_by_a_callback_take_effect(dtype, monkeypatch):
    box = []

    def decay(epoch, logs):
        box[0].param_groups[0]["lr"] *= 0.5

    def with_schedule():
        X, y = data("cross_entropy", dtype, np.random.default_rng(3))
        model = nn.MLP([5, 9, 3], dtype=dtype, seed=1)
        opt = optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
        box[:] = [opt]
        h = fastgd.fit(model, X, y, loss="cross_entropy", optimizer=opt, epochs=4,
                       batch_size=10, seed=0, progress=False, callbacks=[decay])
        return model, opt, h

    fused = with_schedule()
    assert fused[2]["lr"] == [0.2, 0.1, 0.05, 0.025]
    per_step(monkeypatch)
    assert_same_run(fused, with_schedule())


def _amsgrad_on(group, epoch):
    if epoch == 1:
        group["amsgrad"] = True


def _betas(group, epoch):
    group["betas"] = (0.8, 0.99) if epoch % 2 else (0.9, 0.999)


def _weight_decay(group, epoch):
    group["weight_decay"] = 0.01 * epoch


@pytest.mark.parametrize("change", [_amsgrad_on, _betas, _weight_decay, None],
                         ids=["amsgrad-on", "betas", "weight-decay", "no-change"])
def test_updates_are_bound_again_exactly_when_a_callback_changed_something(change,
                                                                           monkeypatch):
    """The fused loop keeps its bound updates from epoch to epoch unless the
    hyper-parameters or the optimizer's arrays changed: every change takes effect at the
    next epoch, as in the per-step loop."""
    box = []

    def callback(epoch, logs):
        if change is not None:
            change(box[0].param_groups[0], epoch)

    def train():
        X, y = data("cross_entropy", np.float64, np.random.default_rng(5))
        model = nn.MLP([5, 9, 3], dtype=np.float64, seed=2)
        opt = optim.Adam(model.parameters(), lr=0.02)
        box[:] = [opt]
        h = fastgd.fit(model, X, y, loss="cross_entropy", optimizer=opt, epochs=4,
                       batch_size=10, seed=0, progress=False, callbacks=[callback])
        return model, opt, h

    fused = train()
    per_step(monkeypatch)
    assert_same_run(fused, train())


@dtypes
def test_fused_divergence_restores_the_last_finite_step(dtype, monkeypatch):
    def diverge():
        X, y = data("mse", dtype, np.random.default_rng(3))
        X = X * 50
        model = nn.MLP([5, 9, 3], dtype=dtype, seed=1, activation="leaky_relu")
        opt = optim.SGD(model.parameters(), lr=10.0)
        with np.errstate(all="ignore"), pytest.raises(fastgd.DivergenceError) as err:
            fastgd.fit(model, X, y, loss="mse", optimizer=opt, epochs=50, batch_size=8,
                       seed=0, progress=False)
        return model, opt, err.value

    fused = diverge()
    assert all(np.isfinite(p).all() for p in fused[0].parameters())
    per_step(monkeypatch)
    slow = diverge()
    assert (fused[2].epoch, fused[2].step) == (slow[2].epoch, slow[2].step)
    assert_params_equal(fused[0].parameters(), slow[0].parameters())
    assert_trees_equal(fused[1].state_dict(), slow[1].state_dict())


# ----------------------------------------------------------------------------- BoundUpdate

@dtypes
@pytest.mark.parametrize("name,kw", OPTIMIZERS[1:], ids=lambda v: v if isinstance(v, str)
                         else ",".join(f"{k}={x}" for k, x in v.items()))
def test_bound_update_takes_the_steps_of_optimizer_step(dtype, name, kw):
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (4,), (2, 2, 2)]
    pa = [rng.standard_normal(s).astype(dtype) for s in shapes]
    pb = [p.copy() for p in pa]
    ga = [np.empty_like(p) for p in pa]
    a = getattr(optim, name)(pa, **kw)
    b = getattr(optim, name)(pb, **kw)
    bound = a.bind(ga)
    for _ in range(5):
        for g in ga:
            g[...] = rng.standard_normal(g.shape)
        for u in bound:
            u.run()
        b.step(ga)
    assert_params_equal(pa, pb)
    assert_trees_equal(a.state_dict(), b.state_dict())


def test_bound_update_checks_its_gradients_once():
    p = [np.zeros((3, 4)), np.zeros(4)]
    opt = optim.Adam(p)
    with pytest.raises(ValueError, match="memory layout"):
        opt.bind([np.zeros((4, 3)).T, np.zeros(4)])   # same shape, Fortran order
    with pytest.raises(TypeError, match=r"grads\[1\]"):
        opt.bind([np.zeros((3, 4)), np.zeros(4, np.float32)])
    with pytest.raises(ValueError, match="grads has 1"):
        opt.bind([np.zeros((3, 4))])
    with pytest.raises(ValueError, match="native"):
        optim.Adam([np.zeros(2)], backend="reference").bind([np.zeros(2)])
    assert opt.state == {}                    # nothing was touched


def test_a_hook_keeps_its_update_alive():
    p, g = np.zeros(4), np.ones(4)
    hook = optim.SGD([p], lr=0.5).bind([g])[0].hook()   # the only reference
    import gc
    gc.collect()
    model = nn.MLP([2, 2], dtype=np.float64, seed=0)
    prog = model.program
    X, y = np.zeros((3, 2)), np.zeros(3, np.int64)
    losses = np.empty(3)
    done = prog.train_steps(X, y, np.arange(3), 0, 3, 1, "cross_entropy", None, [hook], losses)
    assert done == 3 and np.allclose(losses, math.log(2))
    np.testing.assert_array_equal(p, -1.5)    # three SGD steps of lr 0.5 on a gradient of 1


# ----------------------------------------------------------------------------- bad input

def _program():
    model = nn.MLP([2, 3, 2], dtype=np.float64, seed=0)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, opt, [u.hook() for u in opt.bind(model.gradients())]


@pytest.mark.parametrize("change,error,match", [
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(losses=np.empty(1)), ValueError, "losses has room"),
    (dict(idx=np.array([0, 1, 9])), ValueError, "idx holds 9"),
    (dict(y=np.array([0, 1, 2, 0])), ValueError, "label 2"),
    (dict(X=np.zeros((4, 2), np.float32)), TypeError, "X has dtype"),
    (dict(X=np.zeros((4, 3))), ValueError, "columns"),
    (dict(stop=9), ValueError, "bad batch range"),
    (dict(hooks=["not a capsule"]), TypeError, "capsule"),
    (dict(backup="not a capsule"), TypeError, "backup"),
])
def test_train_steps_refuses_bad_input_before_any_step(change, error, match):
    model, opt, hooks = _program()
    args = dict(X=np.ones((4, 2)), y=np.array([0, 1, 1, 0]), idx=np.arange(4), start=0,
                stop=3, batch_size=2, loss_kind="cross_entropy", backup=opt.backup().hook(),
                hooks=hooks, losses=np.full(8, -1.0))
    args.update(change)
    before = snapshot(model)
    with pytest.raises(error, match=match):
        model.program.train_steps(**args)
    assert_params_equal(model.parameters(), before)


def test_train_steps_stops_after_a_non_finite_loss():
    model, opt, hooks = _program()
    X = np.ones((4, 2))
    X[2] = np.inf
    losses = np.full(4, -1.0)
    backup = opt.backup()
    backup.discard()
    done = model.program.train_steps(X, np.array([0, 1, 1, 0]), np.arange(4), 0, 4, 1,
                                      "cross_entropy", backup.hook(), hooks, losses)
    assert done == 3 and not math.isfinite(losses[2]) and losses[3] == -1.0
    assert backup.saved
    # the backup holds the state before the second step (the parameters and the optimizer
    # state, momentum buffers and step counters, of after step 1), and the parameters are
    # left there too: restore() puts back what is already there
    assert opt.state[0]["step"] == 1
    after = (snapshot(model), opt.state_dict())
    replay, ropt, rhooks = _program()
    replay.program.train_steps(X, np.array([0, 1, 1, 0]), np.arange(4), 0, 1, 1,
                                "cross_entropy", None, rhooks, losses)
    assert_params_equal(model.parameters(), replay.parameters())
    assert_trees_equal(opt.state_dict(), ropt.state_dict())
    assert backup.restore()
    assert_params_equal(model.parameters(), after[0])
    assert_trees_equal(opt.state_dict(), after[1])


@pytest.mark.parametrize("bad_step", [1, 2, 3, 31, 32, 33, 34, 63, 64, 65, 70])
def test_train_steps_rebuilds_the_last_good_state_from_its_checkpoint(bad_step):
    """The back-up is saved only every TRAIN_CHECKPOINT_EVERY steps; after a non-finite
    loss at any step, parameters, optimizer state and back-up are exactly those before the
    update of the last finite step, as a run of that many clean steps gives them."""
    from fastgd import _nn
    every = _nn.TRAIN_CHECKPOINT_EVERY
    assert every == 32
    n = 72
    rng = np.random.default_rng(bad_step)
    X = rng.standard_normal((n, 2))
    y = rng.integers(0, 2, n)
    X[bad_step] = np.nan
    model, opt, hooks = _program()
    backup = opt.backup()
    backup.discard()
    losses = np.full(n, -1.0)
    done = model.program.train_steps(X, y, np.arange(n), 0, n, 1, "cross_entropy",
                                      backup.hook(), hooks, losses)
    assert done == bad_step + 1 and not math.isfinite(losses[bad_step])
    clean, copt, chooks = _program()
    closses = np.full(n, -1.0)
    if bad_step > 1:
        clean.program.train_steps(X, y, np.arange(n), 0, bad_step - 1, 1, "cross_entropy",
                                  None, chooks, closses)
    # the losses of the steps taken again are the same bits
    np.testing.assert_array_equal(losses[:bad_step - 1], closses[:bad_step - 1])
    assert_params_equal(model.parameters(), clean.parameters())
    assert_trees_equal(opt.state_dict(), copt.state_dict())
    model.parameters()[0][...] = 123.0
    assert backup.restore()
    assert_params_equal(model.parameters(), clean.parameters())
    assert_trees_equal(opt.state_dict(), copt.state_dict())


def test_train_steps_back_up_holds_the_last_step_after_a_clean_call():
    """After a call with only finite losses, the back-up holds the state before the last
    step's update (saved at the last step whatever the checkpoint interval), so that a
    non-finite loss at the first step of the next call can be undone."""
    n = 40
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((n, 2)), rng.integers(0, 2, n)
    model, opt, hooks = _program()
    backup = opt.backup()
    backup.discard()
    losses = np.full(n, -1.0)
    assert model.program.train_steps(X, y, np.arange(n), 0, n, 1, "cross_entropy",
                                     backup.hook(), hooks, losses) == n
    clean, copt, chooks = _program()
    clean.program.train_steps(X, y, np.arange(n), 0, n - 1, 1, "cross_entropy", None, chooks,
                              np.full(n, -1.0))
    assert backup.restore()
    assert_params_equal(model.parameters(), clean.parameters())
    assert_trees_equal(opt.state_dict(), copt.state_dict())


def _misaligned(a):
    u = np.zeros(a.nbytes + 1, np.uint8)[1:].view(a.dtype).reshape(a.shape)
    u[...] = a
    assert not u.flags.aligned
    return u


@dtypes
def test_train_steps_reads_misaligned_inputs_like_aligned_ones(dtype):
    """X, y and the indices may be misaligned: the program reads aligned copies that live
    for the whole call (large inputs, so that a freed copy would be reused)."""
    n = 200_000
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 6)).astype(dtype)
    Y = rng.standard_normal((n, 4)).astype(dtype)
    idx = rng.permutation(n).astype(np.int64)
    results = []
    for args in [(_misaligned(X), _misaligned(Y), _misaligned(idx)), (X, Y, idx)]:
        prog = nn.Sequential(nn.Linear(6, 4, dtype=dtype, seed=2)).program
        losses = np.zeros(50)
        done = prog.train_steps(*args, 0, n, 5000, "mse", None, [], losses)
        results.append((done, losses[:done].tolist(), prog.train_batch(*args, 0, n, "mse"),
                        prog.loss_batch(*args, 0, n, "mse")))
    assert results[0] == results[1]


@dtypes
@pytest.mark.parametrize("name, kw", [("Adam", dict(lr=0.05)), ("SGD", dict(lr=0.5))])
@pytest.mark.parametrize("clip", [0.05, 1e6])
def test_clip_grad_norm_in_the_fused_loop_equals_the_per_step_loop_and_by_hand(
        dtype, name, kw, clip, monkeypatch):
    """fit(clip_grad_norm=c) clips between the backward pass and the update: the fused C
    loop, the per-step loop and a hand-written loop with fastgd.nn.utils.clip_grad_norm_
    take the same steps, bit for bit."""
    from fastgd.nn.utils import clip_grad_norm_

    def train(fused, limit=clip):
        rng = np.random.default_rng(2)
        X, y = data("cross_entropy", dtype, rng)
        model = nn.MLP([X.shape[1], 9, 3], dtype=dtype, seed=1)
        opt = getattr(optim, name)(model.parameters(), **kw)
        fastgd.fit(model, X, y, loss="cross_entropy", optimizer=opt, epochs=2,
                   batch_size=10, seed=0, progress=False, clip_grad_norm=limit,
                   fused=fused)
        return model, opt, X, y

    fused = train(True)
    stepped = train(False)
    assert_params_equal(fused[0].parameters(), stepped[0].parameters())
    # by hand: the same batches (fit's seed-0 permutation), clip, step
    _, _, X, y = fused
    model = nn.MLP([X.shape[1], 9, 3], dtype=dtype, seed=1)
    opt = getattr(optim, name)(model.parameters(), **kw)
    rng = np.random.default_rng(0)
    prog, grads = model.program, model.gradients()
    for _ in range(2):
        order = rng.permutation(len(X)).astype(np.int64)
        for start in range(0, len(X), 10):
            prog.train_batch(X, y, order, start, min(start + 10, len(X)), "cross_entropy")
            clip_grad_norm_(grads, clip)
            opt.step(grads)
    assert_params_equal(fused[0].parameters(), model.parameters())
    # a small limit changes the run; a huge one leaves it as without clipping
    unclipped = train(True, limit=None)[0].parameters()
    same = all(np.array_equal(a, b) for a, b in zip(fused[0].parameters(), unclipped))
    assert same == (clip > 1)


def test_clip_grad_norm_argument_is_checked():
    X, y = np.zeros((4, 2)), np.array([0, 1, 1, 0])
    model = nn.MLP([2, 3, 2], dtype=np.float64, seed=0)
    opt = optim.SGD(model.parameters(), lr=0.1)
    before = [p.copy() for p in model.parameters()]
    for bad, err in (("1", TypeError), (-1.0, ValueError), (math.inf, ValueError)):
        with pytest.raises(err, match="clip_grad_norm"):
            fastgd.fit(model, X, y, loss="cross_entropy", optimizer=opt, clip_grad_norm=bad,
                       progress=False)
    assert_params_equal(model.parameters(), before)
