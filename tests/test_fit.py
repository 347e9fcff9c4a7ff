"""fastgd.fit: batch sizes, History, validation, early stopping, determinism, divergence,
accept_if_improves, callbacks, argument checks, native vs reference, and the digits MLP."""
import importlib
import math
import time

import numpy as np
import pytest

import fastgd
from fastgd import nn, optim

from nn_testutil import (DTYPE_IDS, DTYPES, assert_params_equal, blobs, fit_quiet, snapshot,
                         tol)

fit_module = importlib.import_module("fastgd.train.fit")   # (fastgd.train.fit is the function)

dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
backends = pytest.mark.parametrize("backend", ["native", "reference"])


@pytest.fixture
def rng(request):
    return np.random.default_rng(sum(map(ord, request.node.nodeid)))


def full_loss(model, X, y, kind="cross_entropy"):
    return nn.losses.by_name(kind)(backend="reference")(model.predict(X), y)


def classifier(dtype=np.float32, seed=0, backend="native", sizes=(4, 16, 3)):
    return nn.MLP(list(sizes), dtype=dtype, seed=seed, backend=backend)


# ----------------------------------------------------------------------------- batch sizes

@dtypes
@backends
@pytest.mark.parametrize("batch_size", [None, 1, 16, 1000])
def test_every_batch_size_reduces_the_loss(dtype, backend, batch_size, rng):
    X, y = blobs(rng, dtype=dtype)
    model = classifier(dtype, backend=backend)
    opt = optim.Adam(model.parameters(), lr=0.05, backend=backend)
    before = full_loss(model, X, y)
    epochs = 40 if batch_size in (None, 1000) else 8
    h = fit_quiet(model, X, y, loss="cross_entropy", optimizer=opt, epochs=epochs,
                  batch_size=batch_size, seed=0)
    after = full_loss(model, X, y)
    assert after < 0.5 * before
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    assert h.epochs == epochs and len(h["loss"]) == epochs
    # the optimizer took ceil(n / batch_size) steps per epoch
    bs = len(X) if batch_size is None else min(batch_size, len(X))
    assert opt.state[0]["step"] == epochs * math.ceil(len(X) / bs)
    assert all(np.isfinite(p).all() for p in model.parameters())


@dtypes
@pytest.mark.parametrize("batch_size", [None, 1, 7])
def test_regression_mse_reduces_the_loss(dtype, batch_size, rng):
    X = rng.standard_normal((60, 3)).astype(dtype)
    Y = np.stack([X[:, 0] - 2 * X[:, 1], np.sin(X[:, 2])], axis=1).astype(dtype)
    model = nn.MLP([3, 12, 2], activation="tanh", dtype=dtype, seed=1)
    lr, momentum = {None: (0.1, 0.9), 1: (0.01, 0.0), 7: (0.05, 0.5)}[batch_size]
    opt = optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    before = full_loss(model, X, Y, "mse")
    fit_quiet(model, X, Y, loss="mse", optimizer=opt, epochs=30 if batch_size is None else 10,
              batch_size=batch_size, seed=1)
    assert full_loss(model, X, Y, "mse") < 0.3 * before


@dtypes
def test_bce_with_one_output_and_1d_targets(dtype, rng):
    X = rng.standard_normal((80, 2)).astype(dtype)
    t = (X[:, 0] * X[:, 1] > 0).astype(dtype)             # XOR-like: needs the hidden layer
    model = nn.MLP([2, 16, 1], activation="tanh", dtype=dtype, seed=0)
    opt = optim.Adam(model.parameters(), lr=0.05)
    h = fit_quiet(model, X, t, loss=nn.BCEWithLogitsLoss(), optimizer=opt, epochs=60,
                  batch_size=16, seed=0, validation_data=(X, t))
    assert h["val_accuracy"][-1] >= 0.9
    acc = np.mean((model.predict(X)[:, 0] > 0) == (t > 0.5))
    assert h["val_accuracy"][-1] == pytest.approx(acc)


def test_single_linear_layer_model(rng):
    """A bare Linear (not a Sequential) trains through the layer-by-layer runner."""
    X = rng.standard_normal((50, 3))
    w = np.array([[1.0], [-2.0], [0.5]])
    Y = X @ w + 0.3
    model = nn.Linear(3, 1, dtype=np.float64, seed=0)
    opt = optim.SGD(model.parameters(), lr=0.1)
    fit_quiet(model, X, Y, loss="mse", optimizer=opt, epochs=200)
    np.testing.assert_allclose(model.W, w, atol=1e-4)
    np.testing.assert_allclose(model.b, [0.3], atol=1e-4)


def test_inputs_are_converted(rng):
    """Lists, ints and float labels holding integers are accepted."""
    X, y = blobs(rng, n=30, dtype=np.float64)
    model = classifier(np.float32)
    opt = optim.SGD(model.parameters(), lr=0.1)
    h = fit_quiet(model, X.tolist(), y.astype(np.float64), loss="cross_entropy",
                  optimizer=opt, epochs=2)
    assert h.epochs == 2
    h = fit_quiet(model, np.round(X * 10).astype(np.int64), list(y), loss="cross_entropy",
                  optimizer=opt, epochs=1)
    assert math.isfinite(h["loss"][0])


def test_zero_epochs_changes_nothing(rng):
    X, y = blobs(rng)
    model = classifier()
    before = snapshot(model)
    h = fit_quiet(model, X, y, loss="cross_entropy",
                  optimizer=optim.SGD(model.parameters(), lr=0.1), epochs=0)
    assert h.epochs == 0 and h.history == {}
    assert_params_equal(before, model.parameters())


# ----------------------------------------------------------------------------- History

@backends
def test_history_contents(backend, rng):
    X, y = blobs(rng, n=90)
    Xv, yv = blobs(np.random.default_rng(1), n=30)
    model = classifier(np.float64, backend=backend)
    X, Xv = X.astype(np.float64), Xv.astype(np.float64)
    opt = optim.SGD(model.parameters(), lr=0.2)
    initial = full_loss(model, X, y)
    h = fit_quiet(model, X, y, loss="cross_entropy", optimizer=opt, epochs=4,
                  shuffle=False, validation_data=(Xv, yv))
    assert isinstance(h, fastgd.History)
    assert set(h.history) == {"loss", "val_loss", "val_accuracy", "lr", "time"}
    assert all(len(v) == 4 for v in h.history.values())
    assert "loss" in h and "nope" not in h
    assert h.epochs == 4 and h.stopped_epoch == 3
    assert h.stop_reason == "completed" and h.best_epoch is None
    # full batch: the epoch's loss is the loss before its step
    assert h["loss"][0] == pytest.approx(initial, rel=1e-10)
    assert h["loss"][-1] < h["loss"][0]
    # the last validation metrics are those of the final model
    assert h["val_loss"][-1] == pytest.approx(full_loss(model, Xv, yv), rel=1e-10)
    assert h["val_accuracy"][-1] == np.mean(model.predict(Xv).argmax(1) == yv)
    assert all(0 <= a <= 1 for a in h["val_accuracy"])
    assert h["lr"] == [0.2] * 4
    assert all(t > 0 for t in h["time"])
    assert "History(epochs=4" in repr(h)


def test_history_regression_has_no_accuracy(rng):
    X = rng.standard_normal((40, 4)).astype(np.float32)
    Y = rng.standard_normal((40, 3)).astype(np.float32)
    model = classifier()
    h = fit_quiet(model, X, Y, loss="mse", optimizer=optim.SGD(model.parameters(), lr=0.01),
                  epochs=2, validation_split=0.25)
    assert set(h.history) == {"loss", "val_loss", "lr", "time"}
    h2 = fit_quiet(model, X, Y, loss="mse", optimizer=optim.SGD(model.parameters(), lr=0.01),
                   epochs=2)
    assert set(h2.history) == {"loss", "lr", "time"}


def test_lr_changes_are_recorded(rng):
    X, y = blobs(rng)
    model = classifier()
    opt = optim.SGD(model.parameters(), lr=0.4)
    seen = []

    def halve(epoch, logs):
        seen.append(logs["lr"])
        opt.param_groups[0]["lr"] /= 2

    h = fit_quiet(model, X, y, loss="cross_entropy", optimizer=opt, epochs=4, batch_size=32,
                  callbacks=[halve])
    assert h["lr"] == [0.4, 0.2, 0.1, 0.05] == seen
    assert opt.param_groups[0]["lr"] == 0.025


def test_history_record_fills_gaps():
    h = fastgd.History()
    h.record(loss=1.0, lr=0.1)
    h.record(loss=0.5, lr=0.1, val_loss=0.7)
    h.record(loss=0.4)
    assert h["loss"] == [1.0, 0.5, 0.4]
    assert h["val_loss"] == [None, 0.7, None]
    assert h["lr"] == [0.1, 0.1, None]
    assert h.epochs == 3


# ----------------------------------------------------------------------------- validation

def test_validation_split_holds_out_the_last_rows(rng):
    X, y = blobs(rng, n=120, dtype=np.float64)
    model = classifier(np.float64)
    initial = full_loss(model, X[:90], y[:90])
    opt = optim.SGD(model.parameters(), lr=0.1)
    h = fit_quiet(model, X, y, loss="cross_entropy", optimizer=opt, epochs=3,
                  validation_split=0.25, shuffle=False)
    assert h["loss"][0] == pytest.approx(initial, rel=1e-10)          # trained on X[:90]
    assert h["val_loss"][-1] == pytest.approx(full_loss(model, X[90:], y[90:]), rel=1e-10)
    assert h["val_accuracy"][-1] == np.mean(model.predict(X[90:]).argmax(1) == y[90:])


@pytest.mark.parametrize("split, exc, match", [
    (1.0, ValueError, "validation_split must be < 1"),
    (-0.1, ValueError, "validation_split must be >= 0"),
    (0.001, ValueError, "validation_split=0.001 leaves no"),
    (0.999, ValueError, "leaves no training"),
    ("0.2", TypeError, "validation_split must be a real number"),
])
def test_validation_split_errors(split, exc, match, rng):
    X, y = blobs(rng)
    model = classifier()
    with pytest.raises(exc, match=match):
        fit_quiet(model, X, y, loss="cross_entropy",
                  optimizer=optim.SGD(model.parameters(), lr=0.1), validation_split=split)


# ----------------------------------------------------------------------------- early stopping

@backends
def test_early_stopping_restores_the_best_parameters(backend, rng):
    X, y = blobs(rng, n=150, dtype=np.float64)
    y_wrong = (y + 1) % 3                    # validation labels the training moves away from
    model = classifier(np.float64, backend=backend)
    opt = optim.SGD(model.parameters(), lr=0.3, backend=backend)
    per_epoch = []
    h = fit_quiet(model, X, y, loss="cross_entropy", optimizer=opt, epochs=60, batch_size=30,
                  seed=0, validation_data=(X, y_wrong), early_stopping=3,
                  callbacks=[lambda e, logs: per_epoch.append(snapshot(model))])
    assert h.stop_reason == "early_stopping"
    best = h.best_epoch
    assert best is not None
    assert h.stopped_epoch == best + 3 == h.epochs - 1 < 59
    assert h["val_loss"][best] == min(h["val_loss"])
    assert all(v >= h["val_loss"][best] for v in h["val_loss"][best + 1:])
    # the model ends with the parameters it had at the end of the best epoch
    assert_params_equal(per_epoch[best], model.parameters())
    assert not np.array_equal(per_epoch[-1][0], model.parameters()[0])
    assert full_loss(model, X, y_wrong) == pytest.approx(h["val_loss"][best], rel=1e-12)


def test_early_stopping_that_never_triggers_keeps_best(rng):
    X, y = blobs(rng, n=90)
    model = classifier()
    h = fit_quiet(model, X, y, loss="cross_entropy",
                  optimizer=optim.Adam(model.parameters(), lr=0.01), epochs=5, batch_size=30,
                  validation_data=(X, y), early_stopping=10, seed=0)
    assert h.stop_reason == "completed" and h.epochs == 5
    assert h["val_loss"][h.best_epoch] == min(h["val_loss"])


def test_early_stopping_errors(rng):
    X, y = blobs(rng)
    model = classifier()
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="early_stopping needs validation_data or validation_split"):
        fit_quiet(model, X, y, loss="cross_entropy", optimizer=opt, early_stopping=2)
    with pytest.raises(ValueError, match="early_stopping must be >= 1"):
        fit_quiet(model, X, y, loss="cross_entropy", optimizer=opt, early_stopping=0,
                  validation_split=0.2)


# ----------------------------------------------------------------------------- determinism

@dtypes
@pytest.mark.parametrize("n_threads", [1, 2])
@backends
def test_same_seed_same_threads_bit_identical(dtype, n_threads, backend, threads, rng):
    threads(n_threads)
    X, y = blobs(rng, n=200, dtype=dtype)

    def run(seed):
        model = classifier(dtype, seed=3, backend=backend, sizes=(4, 64, 3))
        opt = optim.Adam(model.parameters(), lr=0.01, backend=backend)
        h = fit_quiet(model, X, y, loss="cross_entropy", optimizer=opt, epochs=3,
                      batch_size=16, seed=seed)
        return snapshot(model), h["loss"]

    p1, l1 = run(11)
    p2, l2 = run(11)
    p3, l3 = run(12)
    assert_params_equal(p1, p2)
    assert l1 == l2
    assert not np.array_equal(p1[0], p3[0])
    assert l1 != l3


def test_without_shuffle_the_seed_does_not_matter(rng):
    X, y = blobs(rng)

    def run(seed):
        model = classifier(seed=3)
        fit_quiet(model, X, y, loss="cross_entropy",
                  optimizer=optim.SGD(model.parameters(), lr=0.1), epochs=2, batch_size=16,
                  shuffle=False, seed=seed)
        return snapshot(model)

    assert_params_equal(run(1), run(2))


# ----------------------------------------------------------------------------- divergence

@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy overflow on purpose
@backends
@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_divergence_error(backend, opt_name, rng):
    X = rng.standard_normal((64, 4)).astype(np.float32) * 10
    Y = rng.standard_normal((64, 3)).astype(np.float32) * 10
    model = classifier(backend=backend)
    lr = 1e12 if opt_name == "SGD" else 1e30
    opt = getattr(optim, opt_name)(model.parameters(), lr=lr, backend=backend)
    with pytest.raises(fastgd.DivergenceError) as info:
        fit_quiet(model, X, Y, loss="mse", optimizer=opt, epochs=20, batch_size=8, seed=0)
    e = info.value
    assert isinstance(e, ArithmeticError)
    assert isinstance(e.epoch, int) and isinstance(e.step, int)
    assert 0 <= e.step < 8 and 0 <= e.epoch < 20
    assert (e.epoch, e.step) != (0, 0)
    msg = str(e)
    assert f"epoch {e.epoch}, step {e.step}" in msg
    assert "smaller learning rate" in msg and "restored" in msg
    assert isinstance(e.history, fastgd.History) and e.history.epochs == e.epoch
    # restored to the last step whose loss was finite
    assert all(np.isfinite(p).all() for p in model.parameters())
    assert math.isfinite(full_loss(model, X, Y, "mse"))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy overflow on purpose
@backends
def test_divergence_at_the_first_step_leaves_the_parameters(backend):
    X = np.full((8, 4), 3e38, np.float32)                 # the loss overflows right away
    Y = np.zeros((8, 3), np.float32)
    model = classifier(backend=backend)
    before = snapshot(model)
    with pytest.raises(fastgd.DivergenceError, match="initial parameters already give it") as info:
        fit_quiet(model, X, Y, loss="mse", optimizer=optim.SGD(model.parameters(), lr=0.1),
                  epochs=1)
    assert (info.value.epoch, info.value.step) == (0, 0)
    assert_params_equal(before, model.parameters())


def test_divergence_at_first_step_of_second_fit_leaves_the_parameters(rng):
    X = rng.standard_normal((40, 4)).astype(np.float32)
    Y = rng.standard_normal((40, 3)).astype(np.float32)
    model = classifier()
    opt = optim.SGD(model.parameters(), lr=0.01)
    fit_quiet(model, X, Y, loss="mse", optimizer=opt, epochs=2, batch_size=10, seed=0)
    before = snapshot(model)
    Xbad = np.full((40, 4), 3e38, np.float32)
    with pytest.raises(fastgd.DivergenceError) as info:
        fit_quiet(model, Xbad, Y, loss="mse", optimizer=opt, epochs=1, batch_size=10, seed=0)
    assert (info.value.epoch, info.value.step) == (0, 0)
    assert_params_equal(before, model.parameters())


# ----------------------------------------------------------------------------- accept_if_improves

class _Spy:
    """Watches a per-step runner's ``train``: checks that each step did not raise its own
    batch's loss."""

    def __init__(self, inner, model, kind):
        self.model, self.kind = model, kind
        self.prev = None
        self.increases = 0
        self.steps = 0
        self._train = inner.train
        inner.train = self.train

    def check(self, X, y):
        if self.prev is not None:
            value, idx = self.prev
            after = nn.losses.by_name(self.kind)(backend="reference")(
                self.model.predict(X[idx]), y[idx])
            if after > value * (1 + 1e-12):
                self.increases += 1

    def train(self, X, y, order, start, stop):
        self.check(X, y)
        value = self._train(X, y, order, start, stop)
        self.prev = (value, order[start:stop].copy())
        self.steps += 1
        self.X, self.y = X, y
        return value


@backends
@pytest.mark.parametrize("batch_size", [None, 8])
def test_accept_if_improves_never_increases_the_batch_loss(backend, batch_size, rng,
                                                           monkeypatch):
    X, y = blobs(np.random.default_rng(5), n=64, dtype=np.float64)
    spies = []
    real_runner = fit_module.loop_for

    def spying(model, loss, optimizer, *args, fused=True, clip=None, schedule=None, **kw):
        inner = real_runner(model, loss, optimizer, *args, fused=False, clip=clip,
                            schedule=schedule, **kw)  # per step
        spies.append(_Spy(inner, model, loss.kind))
        return inner

    monkeypatch.setattr(fit_module, "loop_for", spying)
    results = {}
    for accept in (False, True):
        model = classifier(np.float64, backend=backend, sizes=(4, 32, 3))
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, backend=backend)
        h = fit_quiet(model, X, y, loss="cross_entropy", optimizer=opt, epochs=10,
                      batch_size=batch_size, seed=0, accept_if_improves=accept)
        spy = spies[-1]
        spy.check(spy.X, spy.y)
        results[accept] = (spy.increases, spy.steps, h)
    assert results[False][0] > 0          # the spy does see increases without the option
    assert results[True][0] == 0
    assert results[True][1] == results[False][1]
    if batch_size is None:
        losses = results[True][2]["loss"]
        # (the rows come in a new order each epoch: equal up to summation rounding)
        assert all(b <= a * (1 + 1e-12) for a, b in zip(losses, losses[1:]))
        assert losses[-1] < losses[0]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy overflow on purpose
@backends
@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_accept_if_improves_undoes_absurd_steps(backend, opt_name, rng):
    """A step to a NaN loss is undone, but it is not "a step that did not improve": three in
    a row raise DivergenceError, with parameters and optimizer state as before them."""
    X, y = blobs(rng, n=48)
    model = classifier(backend=backend)
    before = snapshot(model)
    kw = dict(momentum=0.9) if opt_name == "SGD" else {}
    opt = getattr(optim, opt_name)(model.parameters(), lr=1e30, backend=backend, **kw)
    with pytest.raises(fastgd.DivergenceError, match="3 consecutive steps gave a non-finite "
                       "loss") as err:
        fit_quiet(model, X, y, loss="cross_entropy", optimizer=opt, epochs=3, batch_size=16,
                  seed=0, accept_if_improves=True)
    assert (err.value.epoch, err.value.step) == (0, 2)
    assert_params_equal(before, model.parameters())
    assert opt.state == {}                # the optimizer state was rolled back too
    # and a sane learning rate afterwards trains normally from there
    opt.param_groups[0]["lr"] = 0.01
    h = fit_quiet(model, X, y, loss="cross_entropy", optimizer=opt, epochs=5, batch_size=16,
                  seed=0, accept_if_improves=True)
    assert h["loss"][-1] < h["loss"][0]
    assert h["nonfinite_steps"] == [0] * 5


# ----------------------------------------------------------------------------- callbacks

def test_callbacks_receive_epoch_and_logs_and_can_stop(rng):
    X, y = blobs(rng)
    model = classifier()
    calls, other = [], []

    def cb(epoch, logs):
        calls.append((epoch, dict(logs)))
        logs["loss"] = -1.0                 # a copy: History is not affected
        return epoch == 2

    h = fit_quiet(model, X, y, loss="cross_entropy",
                  optimizer=optim.SGD(model.parameters(), lr=0.1), epochs=10, batch_size=40,
                  validation_split=0.2, callbacks=[cb, lambda e, logs: other.append(e)])
    assert [c[0] for c in calls] == [0, 1, 2]
    assert h.epochs == 3 and h.stop_reason == "callback" and h.stopped_epoch == 2
    assert other[:2] == [0, 1]
    for e, logs in calls:
        assert set(logs) == {"loss", "val_loss", "val_accuracy", "lr", "time"}
        assert logs["loss"] == h["loss"][e] > 0


def test_every_callback_sees_the_epoch_that_stops(rng):
    X, y = blobs(rng, n=40)
    model = classifier()
    seen = []
    h = fit_quiet(model, X, y, loss="cross_entropy",
                  optimizer=optim.SGD(model.parameters(), lr=0.1), epochs=10,
                  callbacks=[lambda e, logs: e == 1, lambda e, logs: seen.append(e)])
    assert h.epochs == 2
    assert seen == [0, 1]


def test_callback_returning_non_true_does_not_stop(rng):
    X, y = blobs(rng, n=30)
    model = classifier()
    h = fit_quiet(model, X, y, loss="cross_entropy",
                  optimizer=optim.SGD(model.parameters(), lr=0.1), epochs=3,
                  callbacks=(lambda e, logs: None, lambda e, logs: False))
    assert h.epochs == 3 and h.stop_reason == "completed"


def test_callback_errors(rng):
    X, y = blobs(rng, n=30)
    model = classifier()
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"callbacks\[1\] is not callable"):
        fit_quiet(model, X, y, loss="cross_entropy", optimizer=opt, callbacks=[print, 3])
    with pytest.raises(TypeError, match="callbacks must be a sequence of callables"):
        fit_quiet(model, X, y, loss="cross_entropy", optimizer=opt, callbacks="abc")
    with pytest.raises(TypeError, match="callbacks must be a sequence of callables"):
        fit_quiet(model, X, y, loss="cross_entropy", optimizer=opt, callbacks=print)


# ----------------------------------------------------------------------------- bad inputs

def _bad_cases():
    rng = np.random.default_rng(0)
    X, y = blobs(rng, n=40)
    Xnan = X.copy()
    Xnan[3, 1] = np.nan
    Xinf = X.copy()
    Xinf[0, 0] = np.inf
    return [
        ("features", dict(X=X[:, :3]), ValueError, "X has 3 features but the model takes 4"),
        ("X_1d", dict(X=X[:, 0]), ValueError, "X must be 2-D"),
        ("X_str", dict(X="data"), TypeError, "X must be a 2-D numeric array"),
        ("X_none", dict(X=None), TypeError, "X must be a 2-D numeric array"),
        ("X_object", dict(X=np.array([[object()] * 4] * 40)), TypeError, "X must be numeric"),
        ("X_complex", dict(X=X.astype(np.complex64)), TypeError, "X must be real"),
        ("X_nan", dict(X=Xnan), ValueError, "X contains NaN or infinite"),
        ("X_inf", dict(X=Xinf), ValueError, "X contains NaN or infinite"),
        ("X_empty", dict(X=np.zeros((0, 4), np.float32), y=np.zeros(0, np.int64)), ValueError,
         "X is empty"),
        ("label_high", dict(y=np.where(np.arange(40) == 5, 3, y)), ValueError,
         r"y holds labels 0..3 but the model has 3 outputs"),
        ("label_negative", dict(y=np.where(np.arange(40) == 5, -1, y)), ValueError,
         "y holds labels -1..2"),
        ("label_float", dict(y=y + 0.5), TypeError, "y must hold integer class labels"),
        ("label_bool", dict(y=y > 0), TypeError, "y must hold integer class labels"),
        ("label_2d", dict(y=y.reshape(-1, 1)), ValueError, "y must be 1-D class labels"),
        ("y_length", dict(y=y[:10]), ValueError, "y has 10 rows but X has 40"),
        ("y_none", dict(y=None), TypeError, "y must be an array"),
        ("batch_size_0", dict(batch_size=0), ValueError, "batch_size must be >= 1"),
        ("batch_size_float", dict(batch_size=2.0), TypeError, "batch_size must be an int"),
        ("batch_size_bool", dict(batch_size=True), TypeError, "batch_size must be an int"),
        ("epochs_negative", dict(epochs=-1), ValueError, "epochs must be >= 0"),
        ("epochs_float", dict(epochs=1.5), TypeError, "epochs must be an int"),
        ("epochs_numpy_float", dict(epochs=np.float64(2)), TypeError, "epochs must be an int"),
        ("seed_str", dict(seed="abc"), TypeError, "seed must be None, an int >= 0"),
        ("seed_float", dict(seed=1.5), TypeError, "seed must be None, an int >= 0"),
        ("seed_negative", dict(seed=-1), ValueError, "seed must be >= 0"),
        ("nonfinite_limit_0", dict(nonfinite_limit=0), ValueError, "nonfinite_limit must be >= 1"),
        ("shuffle", dict(shuffle=1), TypeError, "shuffle must be a bool"),
        ("accept", dict(accept_if_improves="yes"), TypeError, "accept_if_improves must be a bool"),
        ("progress", dict(progress=0), TypeError, "progress must be a bool"),
        ("both_validations", dict(validation_data=(X, y), validation_split=0.2), ValueError,
         "give validation_data or validation_split, not both"),
        ("validation_data_triple", dict(validation_data=(X, y, y)), TypeError,
         r"validation_data must be a pair \(X_val, y_val\)"),
        ("validation_data_array", dict(validation_data=X), TypeError,
         "validation_data must be a pair"),
        ("validation_features", dict(validation_data=(X[:, :2], y)), ValueError,
         r"validation_data\[0\] has 2 features"),
        ("validation_labels", dict(validation_data=(X, y + 5)), ValueError,
         r"validation_data\[1\] holds labels"),
        ("validation_length", dict(validation_data=(X, y[:5])), ValueError,
         r"validation_data\[1\] has 5 rows but X has 40"),
        ("loss_name", dict(loss="hinge"), ValueError, "loss must be one of"),
        ("loss_type", dict(loss=np.mean), TypeError, "loss must be a fastgd.nn loss"),
        ("model", dict(model=lambda x: x), TypeError, "model must be a fastgd.nn module"),
        ("optimizer_type", dict(optimizer="adam"), TypeError,
         "optimizer must be a fastgd.optim optimizer"),
    ]


BAD = _bad_cases()


@pytest.mark.parametrize("name, override, exc, match", BAD, ids=[c[0] for c in BAD])
def test_bad_arguments_raise_before_touching_anything(name, override, exc, match):
    X, y = blobs(np.random.default_rng(0), n=40)
    model = classifier()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    kw = dict(model=model, X=X, y=y, loss="cross_entropy", optimizer=opt, epochs=2,
              batch_size=8)
    kw.update(override)
    kw.setdefault("progress", False)
    before = snapshot(model)
    with pytest.raises(exc, match=match):
        fastgd.fit(kw.pop("model"), kw.pop("X"), kw.pop("y"), **kw)
    assert_params_equal(before, model.parameters())
    assert opt.state == {}


@pytest.mark.parametrize("how", ["other_model", "copies", "subset", "reordered"])
def test_optimizer_must_hold_the_model_parameters(how, rng):
    X, y = blobs(rng, n=30)
    model = classifier()
    params = model.parameters()
    held = {"other_model": classifier().parameters(),
            "copies": [p.copy() for p in params],
            "subset": params[:2],
            "reordered": params[2:] + params[:2]}[how]
    with pytest.raises(ValueError, match=r"optimizer must be built on model.parameters\(\), "
                                         "in that order"):
        fit_quiet(model, X, y, loss="cross_entropy", optimizer=optim.SGD(held, lr=0.1))


def test_regression_target_errors(rng):
    X = rng.standard_normal((20, 4)).astype(np.float32)
    model = classifier()
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"y must have shape \(20, 3\), got \(20, 2\)"):
        fit_quiet(model, X, np.zeros((20, 2)), loss="mse", optimizer=opt)
    Y = np.zeros((20, 3))
    Y[4, 1] = np.nan
    with pytest.raises(ValueError, match="y contains NaN"):
        fit_quiet(model, X, Y, loss="mse", optimizer=opt)
    with pytest.raises(TypeError, match="y must be numeric"):
        fit_quiet(model, X, np.full((20, 3), "a"), loss="mse", optimizer=opt)


# ----------------------------------------------------------------------------- native vs reference

@dtypes
@pytest.mark.parametrize("opt_name, kw", [("SGD", dict(lr=0.1, momentum=0.9)),
                                          ("Adam", dict(lr=0.01))])
@pytest.mark.parametrize("kind", ["cross_entropy", "mse"])
def test_native_runner_matches_reference_model(dtype, opt_name, kw, kind, rng):
    X, y = blobs(rng, n=100, dtype=dtype)
    if kind == "mse":
        y = rng.standard_normal((100, 3)).astype(dtype)
    runs = []
    for backend in ("native", "reference"):
        model = classifier(dtype, seed=0, backend=backend, sizes=(4, 16, 8, 3))
        opt = getattr(optim, opt_name)(model.parameters(), backend=backend, **kw)
        h = fit_quiet(model, X, y, loss=kind, optimizer=opt, epochs=3, batch_size=16, seed=5,
                      validation_split=0.2)
        runs.append((snapshot(model), h))
    assert runs[0][0][0] is not runs[1][0][0]
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_allclose(a, b, **tol(dtype))
    for key in runs[0][1].history:
        if key != "time":
            np.testing.assert_allclose(runs[0][1][key], runs[1][1][key], **tol(dtype))


def test_native_model_with_reference_loss_object(rng):
    """A reference loss object on a native model runs layer by layer, with the same result."""
    X, y = blobs(rng, n=60, dtype=np.float64)
    runs = []
    for loss in (nn.CrossEntropyLoss(), nn.CrossEntropyLoss(backend="reference")):
        model = classifier(np.float64, seed=0)
        fit_quiet(model, X, y, loss=loss, optimizer=optim.SGD(model.parameters(), lr=0.1),
                  epochs=2, batch_size=16, seed=0)
        runs.append(snapshot(model))
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, **tol(np.float64))


# ----------------------------------------------------------------------------- digits

def test_digits_mlp_reaches_96_percent(record_property):
    X, y = fastgd.datasets.load_digits()
    X = (X / 16).astype(np.float32)
    Xtr, Xte, ytr, yte = fastgd.datasets.train_test_split(X, y, test_size=0.25, seed=0)
    model = nn.MLP([64, 128, 10], activation="relu", seed=0)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    h = fit_quiet(model, Xtr, ytr, loss="cross_entropy", optimizer=opt, epochs=30,
                  batch_size=32, seed=0, validation_data=(Xte, yte))
    elapsed = time.perf_counter() - t0
    accuracy = float(np.mean(model.predict(Xte).argmax(axis=1) == yte))
    record_property("digits_test_accuracy", accuracy)
    print(f"digits test accuracy {accuracy:.4f} in {elapsed:.2f} s")
    assert accuracy >= 0.96
    assert h["val_accuracy"][-1] == pytest.approx(accuracy)
    assert h["loss"][-1] < 0.1 < h["loss"][0]
    assert elapsed < 10
