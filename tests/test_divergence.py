"""Recovery from divergence: a NaN gradient, a step to a NaN loss, an optimizer whose
``step`` is overridden. Restoring "the last good state" means the parameters *and* the
optimizer state (state arrays, step counters, flags), on every path of ``fit``: the fused
epoch loop, the per-step loop over a compiled program, the layer-by-layer loop, native and
reference."""
import importlib

import numpy as np
import pytest

import fastgd
from fastgd import _optim, nn, optim

from helpers import assert_trees_equal
from nn_testutil import DTYPE_IDS, DTYPES, assert_params_equal, blobs, snapshot

fit_module = importlib.import_module("fastgd.train.fit")
dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)


class PoisonedAdam(optim.Adam):
    """Adam whose ``step`` replaces the gradients by NaN from call ``poison_from`` on (for
    ``count`` calls). Overriding ``step`` sends fit down the per-step loop."""

    poison_from, count = None, 1 << 30

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.calls = 0

    def step(self, grads):
        self.calls += 1
        if self.poison_from is not None and \
                self.poison_from <= self.calls < self.poison_from + self.count:
            grads = [None if g is None else np.full_like(g, np.nan) for g in grads]
        super().step(grads)


def poison_fused_loop_from_epoch(monkeypatch, model, epoch):
    """Inside the fused C loop, turn the model's gradients into NaN before every update of
    epoch ``epoch`` and later: an SGD update bound over the gradient arrays themselves
    (g <- g - 1 * NaN) runs as the first hook of each step."""
    grads = model.gradients()
    poison = optim.SGD(grads, lr=1.0).bind([np.full_like(g, np.nan) for g in grads])
    real = fit_module.FusedLoop.begin_epoch
    seen = []

    def begin_epoch(self):
        real(self)
        if len(seen) >= epoch:
            self.hooks = [u.hook() for u in poison] + self.hooks
        seen.append(True)

    monkeypatch.setattr(fit_module.FusedLoop, "begin_epoch", begin_epoch)


class Layers(nn.Module):
    """A model of one's own (not a Sequential, so no compiled program): fit drives it layer
    by layer through forward and backward."""

    def __init__(self, layers):
        super().__init__(backend=layers[0].backend)
        self.layers = layers
        self.dtype = layers[0].dtype
        self.in_features, self.out_features = layers[0].in_features, layers[-1].out_features

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_output):
        for layer in reversed(self.layers):
            grad_output = layer.backward(grad_output)
        return grad_output

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def gradients(self):
        return [g for layer in self.layers for g in layer.gradients()]


def model_and_data(dtype, backend="native", compiled=True):
    X, y = blobs(np.random.default_rng(0), n=40, d=4, classes=3, dtype=dtype)
    model = nn.MLP([4, 8, 3], dtype=dtype, seed=0, backend=backend)
    if not compiled:
        model = Layers(model.layers)
        assert getattr(model, "program", None) is None
    return model, X, y


PATHS = ["fused", "per-step", "layers", "reference"]


def setup(path, dtype, poison_from=None):
    backend = "reference" if path == "reference" else "native"
    model, X, y = model_and_data(dtype, backend, compiled=path != "layers")
    cls = optim.Adam if path == "fused" else PoisonedAdam
    opt = cls(model.parameters(), lr=0.01, backend=backend)
    if poison_from is not None:
        opt.poison_from = poison_from
    return model, opt, X, y


def train(model, opt, X, y, epochs, batch_size=8, **kw):
    return fastgd.fit(model, X, y, loss="cross_entropy", optimizer=opt, epochs=epochs,
                      batch_size=batch_size, seed=0, progress=False, **kw)


def runner_kind(model, opt, accept=False):
    loss = nn.CrossEntropyLoss(backend=model.backend)
    return type(fit_module.loop_for(model, loss, opt, opt.backup(), accept, 3)).__name__


@dtypes
@pytest.mark.parametrize("path", PATHS)
def test_a_nan_gradient_restores_parameters_and_optimizer_state(path, dtype, monkeypatch):
    # the clean run: one epoch of 5 steps
    good, good_opt, X, y = setup(path, dtype)
    train(good, good_opt, X, y, epochs=1)
    # the same, then a NaN gradient in the first step of epoch 1
    model, opt, X, y = setup(path, dtype, poison_from=6)
    assert runner_kind(model, opt) == ("FusedLoop" if path == "fused" else "StepLoop")
    if path == "fused":
        poison_fused_loop_from_epoch(monkeypatch, model, 1)
    with np.errstate(invalid="ignore"), pytest.raises(fastgd.DivergenceError) as err:
        train(model, opt, X, y, epochs=3)
    assert (err.value.epoch, err.value.step) == (1, 1)   # step 0's update made the NaN
    assert "optimizer state were restored" in str(err.value)
    # parameters, Adam's exp_avg/exp_avg_sq and the step counters: as after epoch 0
    assert_params_equal(model.parameters(), good.parameters())
    assert_trees_equal(opt.state_dict(), good_opt.state_dict())
    assert all(s["step"] == 5 for s in opt.state.values())
    assert all(np.isfinite(a).all() for s in opt.state.values() for a in s.values()
               if isinstance(a, np.ndarray))
    # what the error advises (a smaller lr, the same optimizer) then trains cleanly
    monkeypatch.undo()
    opt.poison_from = None
    opt.param_groups[0]["lr"] = 0.001
    h = train(model, opt, X, y, epochs=2)
    assert np.isfinite(h["loss"]).all()
    assert all(s["step"] == 15 for s in opt.state.values())


@dtypes
@pytest.mark.parametrize("path", PATHS)
def test_a_nan_gradient_in_the_last_step_is_caught_before_fit_returns(path, dtype,
                                                                       monkeypatch):
    """Full batch: one step an epoch, so no later loss would see the NaN parameters."""
    good, good_opt, X, y = setup(path, dtype)
    train(good, good_opt, X, y, epochs=1, batch_size=None)
    model, opt, X, y = setup(path, dtype, poison_from=2)
    if path == "fused":
        poison_fused_loop_from_epoch(monkeypatch, model, 1)
    with np.errstate(invalid="ignore"), pytest.raises(fastgd.DivergenceError,
                                                       match="parameters became non-finite") as err:
        train(model, opt, X, y, epochs=2, batch_size=None, validation_data=(X, y))
    assert (err.value.epoch, err.value.step) == (1, 0)
    assert err.value.history.epochs == 1            # epoch 1 was never recorded
    assert_params_equal(model.parameters(), good.parameters())
    assert_trees_equal(opt.state_dict(), good_opt.state_dict())


@dtypes
@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=10.0, momentum=0.9)),
                                     ("SGD", dict(lr=10.0, momentum=0.9, nesterov=True,
                                                  weight_decay=0.01)),
                                     ("SGD", dict(lr=30.0))])
def test_a_real_divergence_restores_every_state_in_the_fused_loop(dtype, name, kw):
    """lr far too large: the fused loop and the per-step loop stop at the same step with
    the same restored state (momentum buffers and counters included), which is finite."""
    X, _ = blobs(np.random.default_rng(3), n=40, d=4, classes=3, dtype=dtype)
    X = X * 50
    y = np.random.default_rng(1).standard_normal((40, 3)).astype(dtype)

    def run(cls, epochs=30):
        model = nn.MLP([4, 8, 3], dtype=dtype, seed=1, activation="leaky_relu")
        opt = cls(model.parameters(), **kw)
        with np.errstate(all="ignore"), pytest.raises(fastgd.DivergenceError) as err:
            fastgd.fit(model, X, y, loss="mse", optimizer=opt,
                       epochs=epochs, batch_size=8, seed=0, progress=False)
        return model, opt, err.value

    class Stepped(getattr(optim, name)):
        def step(self, grads):          # an override: fit steps it from Python
            super().step(grads)

    fused, slow = run(getattr(optim, name)), run(Stepped)
    assert (fused[2].epoch, fused[2].step) == (slow[2].epoch, slow[2].step)
    assert_params_equal(fused[0].parameters(), slow[0].parameters())
    assert_trees_equal(fused[1].state_dict(), slow[1].state_dict())
    for s in fused[1].state.values():
        assert all(np.isfinite(a).all() for a in s.values() if isinstance(a, np.ndarray))


# ----------------------------------------------------------------------------- accept_if_improves

@dtypes
@pytest.mark.parametrize("backend", ["native", "reference"])
def test_one_nonfinite_trial_step_is_counted_warned_and_undone(dtype, backend):
    model, X, y = model_and_data(dtype, backend)
    opt = PoisonedAdam(model.parameters(), lr=0.01, backend=backend)
    opt.poison_from, opt.count = 3, 1
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning, match=r"1 step\(s\) of "
                                                     "epoch 0 gave a non-finite loss"):
        h = train(model, opt, X, y, epochs=2, accept_if_improves=True)
    assert h["nonfinite_steps"] == [1, 0]
    assert all(r >= 0 for r in h["rejected_steps"])
    assert all(np.isfinite(p).all() for p in model.parameters())
    # the undone step left no trace: the counters count only the kept steps
    kept = 10 - 1 - sum(h["rejected_steps"])
    assert all(s["step"] == kept for s in opt.state.values())


@dtypes
def test_consecutive_nonfinite_trial_steps_raise(dtype):
    model, X, y = model_and_data(dtype)
    opt = PoisonedAdam(model.parameters(), lr=0.01)
    opt.poison_from = 4                  # every step from the 4th on
    good = [p.copy() for p in model.parameters()]
    with np.errstate(invalid="ignore"), pytest.raises(
            fastgd.DivergenceError, match="2 consecutive steps gave a non-finite loss") as err:
        train(model, opt, X, y, epochs=2, accept_if_improves=True, nonfinite_limit=2)
    assert (err.value.epoch, err.value.step) == (0, 4)
    assert all(np.isfinite(p).all() for p in model.parameters())
    assert not all(np.array_equal(a, b) for a, b in zip(good, model.parameters()))
    steps = {s["step"] for s in opt.state.values()}
    assert len(steps) == 1 and steps.pop() <= 3    # only steps 1-3 can have been kept


@pytest.mark.parametrize("value,error", [(0, ValueError), (-1, ValueError), ("3", TypeError),
                                         (2.0, TypeError), (True, TypeError)])
def test_nonfinite_limit_is_checked(value, error):
    model, X, y = model_and_data(np.float64)
    opt = optim.Adam(model.parameters())
    before = snapshot(model)
    with pytest.raises(error, match="nonfinite_limit"):
        train(model, opt, X, y, epochs=1, accept_if_improves=True, nonfinite_limit=value)
    assert_params_equal(model.parameters(), before)


# ----------------------------------------------------------------------------- overrides

class CountingAdam(optim.Adam):
    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.calls = 0

    def step(self, grads):
        self.calls += 1
        super().step(grads)


class ClippedSGD(optim.SGD):
    def step(self, grads):
        super().step([None if g is None else np.clip(g, -0.01, 0.01) for g in grads])


@dtypes
def test_an_overridden_step_is_never_bypassed(dtype):
    model, X, y = model_and_data(dtype)
    opt = CountingAdam(model.parameters(), lr=0.01)
    assert not opt.binds_exactly
    assert runner_kind(model, opt) == "StepLoop"
    train(model, opt, X, y, epochs=3)
    assert opt.calls == 15
    # and it takes the steps of the plain class (the override only counts)
    plain, X, y = model_and_data(dtype)
    popt = optim.Adam(plain.parameters(), lr=0.01)
    assert runner_kind(plain, popt) == "FusedLoop"
    train(plain, popt, X, y, epochs=3)
    assert_params_equal(model.parameters(), plain.parameters())
    assert_trees_equal(opt.state_dict(), popt.state_dict())


@dtypes
def test_an_override_that_changes_the_step_takes_effect(dtype):
    model, X, y = model_and_data(dtype)
    opt = ClippedSGD(model.parameters(), lr=1.0)
    before = [p.copy() for p in model.parameters()]
    train(model, opt, X, y, epochs=1, batch_size=None)
    for p, b in zip(model.parameters(), before):   # one step of at most 0.01 per entry
        assert np.abs(p - b).max() <= 0.01 * (1 + 1e-6)


def test_binds_exactly_only_for_the_library_step():
    p = [np.zeros(3)]

    class OwnKernel(optim.SGD):
        def _native(self, plan, hp):
            super()._native(plan, hp)

    assert optim.SGD(p).binds_exactly
    assert optim.AdamW([np.zeros(3)]).binds_exactly
    assert not optim.SGD([np.zeros(3)], backend="reference").binds_exactly
    assert not OwnKernel([np.zeros(3)]).binds_exactly


# ----------------------------------------------------------------------------- the back-up

@dtypes
def test_backup_covers_parameters_state_and_counters(dtype):
    p = [np.arange(6, dtype=dtype).reshape(2, 3), np.ones(4, dtype)]
    opt = optim.SGD(p, lr=0.1, momentum=0.9)
    b = opt.backup()
    assert b is opt.backup()                       # reused while the arrays are the same
    assert not b.restore()                         # nothing saved yet: nothing written
    b.save()
    before = (snapshot_of(p), opt.state_dict())
    opt.step([np.ones((2, 3), dtype), np.ones(4, dtype)])
    opt.step([np.ones((2, 3), dtype), np.ones(4, dtype)])
    assert opt.state[0]["step"] == 2
    assert b.restore()
    assert_params_equal(p, before[0])
    assert_trees_equal(opt.state_dict(), before[1])
    assert opt.state == {}                         # counters and "buffer is new" flags too
    b.discard()
    assert not b.saved and not b.restore()
    n = sum(a.nbytes for a in p)
    assert b.nbytes == 2 * n + 2 * 8 + 2           # params, momentum, steps, is_new


def snapshot_of(arrays):
    return [a.copy() for a in arrays]


def test_backup_refuses_bad_arrays():
    with pytest.raises(TypeError, match=r"arrays\[1\]"):
        _optim.Backup([np.zeros(2), [1.0]])
    with pytest.raises(ValueError, match=r"arrays\[0\] is not contiguous"):
        _optim.Backup([np.zeros((4, 4))[:, ::2]])
    ro = np.zeros(2)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"arrays\[0\] is read-only"):
        _optim.Backup([ro])


def test_a_backup_hook_keeps_its_backup_alive():
    import gc
    model = nn.MLP([2, 2], dtype=np.float64, seed=0)
    opt = optim.SGD(model.parameters(), lr=0.5)
    hook = _optim.Backup(list(model.parameters())).hook()   # no other reference to the Backup
    gc.collect()
    X, y, losses = np.zeros((3, 2)), np.zeros(3, np.int64), np.empty(3)
    updates = [u.hook() for u in opt.bind(model.gradients())]
    assert model.program.train_steps(X, y, np.arange(3), 0, 3, 1, "cross_entropy", hook,
                                      updates, losses) == 3


# ----------------------------------------------------------------------------- UB found by UBSan

@dtypes
@pytest.mark.parametrize("backend", ["native", "reference"])
def test_zero_rows_forward_and_backward_of_a_fresh_model(dtype, backend):
    model = nn.MLP([3, 4, 2], dtype=dtype, seed=0, backend=backend)
    out = model.forward(np.zeros((0, 3), dtype))
    assert out.shape == (0, 2) and out.dtype == dtype
    dx = model.backward(np.zeros((0, 2), dtype))
    assert dx.shape == (0, 3)
    for g in model.gradients():
        np.testing.assert_array_equal(g, 0)


def _unaligned_copy(a):
    raw = np.zeros(a.nbytes + 1, np.uint8)
    u = raw[1:].view(a.dtype).reshape(a.shape)
    u[...] = a
    assert not u.flags.aligned
    return u


@dtypes
def test_misaligned_inputs_are_read_through_aligned_copies(dtype):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((7, 3)).astype(dtype)
    model = nn.MLP([3, 4, 2], dtype=dtype, seed=0)
    expected = model.forward(X)
    np.testing.assert_array_equal(model.forward(_unaligned_copy(X)), expected)
    g = rng.standard_normal((7, 2)).astype(dtype)
    dx = model.backward(g)
    model.forward(X)
    np.testing.assert_array_equal(model.backward(_unaligned_copy(g)), dx)
    relu = nn.ReLU()
    np.testing.assert_array_equal(relu.forward(_unaligned_copy(X)), np.maximum(X, 0))
    loss = nn.MSELoss()
    target = rng.standard_normal((7, 3)).astype(dtype)
    assert loss.forward(_unaligned_copy(X), _unaligned_copy(target)) == \
        nn.MSELoss().forward(X, target)


# ----------------------------------------------------------------------------- fused=

@dtypes
def test_fused_false_takes_the_same_steps_from_python(dtype):
    a, X, y = model_and_data(dtype)
    b, _, _ = model_and_data(dtype)
    oa, ob = optim.Adam(a.parameters(), lr=0.01), optim.Adam(b.parameters(), lr=0.01)
    train(a, oa, X, y, epochs=2, fused=True)
    train(b, ob, X, y, epochs=2, fused=False)
    assert_params_equal(a.parameters(), b.parameters())
    assert_trees_equal(oa.state_dict(), ob.state_dict())


@pytest.mark.parametrize("case,match", [
    ("reference optimizer", "the optimizer is not native"),
    ("overridden step", "overrides step"),
    ("accept", "accept_if_improves"),
    ("reference model", "not a compiled native Sequential"),
    ("fused='yes'", "fused must be a bool"),
])
def test_fused_true_says_why_it_cannot(case, match):
    model, X, y = model_and_data(np.float64, "reference" if case == "reference model"
                                 else "native")
    kw = {}
    if case == "reference optimizer":
        opt = optim.Adam(model.parameters(), backend="reference")
    elif case == "overridden step":
        opt = CountingAdam(model.parameters())
    else:
        opt = optim.Adam(model.parameters(), backend=model.backend)
    kw["fused"] = "yes" if case == "fused='yes'" else True
    kw["accept_if_improves"] = case == "accept"
    before = snapshot(model)
    with pytest.raises(TypeError if case == "fused='yes'" else ValueError, match=match):
        train(model, opt, X, y, epochs=1, **kw)
    assert_params_equal(model.parameters(), before)


@dtypes
@pytest.mark.parametrize("path", PATHS)
def test_state_added_by_a_callback_is_restored_too(path, dtype, monkeypatch):
    """A callback turns on amsgrad after epoch 0, which adds max_exp_avg_sq: the back-up
    taken from then on covers it."""
    def amsgrad_on(opt):
        def cb(epoch, logs):
            opt.param_groups[0]["amsgrad"] = True
        return cb

    good, good_opt, X, y = setup(path, dtype)
    train(good, good_opt, X, y, epochs=2, callbacks=[amsgrad_on(good_opt)])
    assert all("max_exp_avg_sq" in s for s in good_opt.state.values())
    model, opt, X, y = setup(path, dtype, poison_from=11)
    if path == "fused":
        poison_fused_loop_from_epoch(monkeypatch, model, 2)
    with np.errstate(invalid="ignore"), pytest.raises(fastgd.DivergenceError) as err:
        train(model, opt, X, y, epochs=4, callbacks=[amsgrad_on(opt)])
    assert (err.value.epoch, err.value.step) == (2, 1)
    assert_params_equal(model.parameters(), good.parameters())
    assert_trees_equal(opt.state_dict(), good_opt.state_dict())
