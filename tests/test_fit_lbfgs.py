"""fit with fastgd.optim.LBFGS: full-batch training, one step(closure) an epoch; against
torch.optim.LBFGS on identical models, divergence, the refused combinations and schedules
(saving and resuming: test_serialization.py)."""
import math

import numpy as np
import pytest

import fastgd
from fastgd import nn, optim

EPOCHS = 4


def regression(n=120, dtype=np.float64):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 4))
    y = np.sin(X @ np.array([1.0, -2.0, 0.5, 0.3]))[:, None] + 0.05 * rng.standard_normal((n, 1))
    return X.astype(dtype), y.astype(dtype)


def classification(n=150, dtype=np.float64, noise=0.8):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, 4))
    score = X[:, 0] * X[:, 1] + noise * rng.standard_normal(n)   # noisy: the loss stays > 0
    y = (score > 0).astype(np.int64) + (X[:, 2] > 1)
    return X.astype(dtype), y


PROBLEMS = {"regression": (regression, "mse", 1), "classification": (classification,
                                                                     "cross_entropy", 3)}


def model_for(problem, backend="native", dtype=np.float64, seed=1):
    out = PROBLEMS[problem][2]
    return nn.MLP([4, 16, out], "tanh", dtype=dtype, seed=seed, backend=backend)


def lbfgs_fit(model, X, y, loss, epochs=EPOCHS, **kw):
    kw.setdefault("max_iter", 10)
    fit_kw = {k: kw.pop(k) for k in list(kw) if k in ("validation_data", "callbacks",
                                                       "scheduler", "early_stopping",
                                                       "batch_size", "validation_split")}
    opt = optim.LBFGS(model.parameters(), **kw)
    return fastgd.fit(model, X, y, loss=loss, optimizer=opt, epochs=epochs, progress=False,
                      **fit_kw), opt


# ----------------------------------------------------------------------------- torch


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("line_search", [None, "strong_wolfe"])
@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_losses_per_epoch_match_torch(problem, line_search, backend):
    torch = pytest.importorskip("torch")
    make, loss, _ = PROBLEMS[problem]
    X, y = make()
    model = model_for(problem, backend)
    layers = []
    for layer in model.layers:
        if isinstance(layer, nn.Linear):
            t = torch.nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
            with torch.no_grad():       # fastgd's W is (in, out): torch's weight transposed
                t.weight.copy_(torch.from_numpy(layer.W.T.copy()))
                t.bias.copy_(torch.from_numpy(layer.b.copy()))
            layers.append(t)
        else:
            layers.append(torch.nn.Tanh())
    tmodel = torch.nn.Sequential(*layers)
    kw = dict(lr=1.0 if line_search else 0.5, max_iter=10, history_size=8,
              line_search_fn=line_search)
    topt = torch.optim.LBFGS(tmodel.parameters(), **kw)
    tloss = torch.nn.MSELoss() if loss == "mse" else torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    def closure():
        topt.zero_grad()
        value = tloss(tmodel(Xt), yt)
        value.backward()
        return value

    theirs = [topt.step(closure).item() for _ in range(EPOCHS)]
    # fastgd.nn's own loss on the reference backend: the layer-by-layer closure
    fit_loss = loss if backend == "native" else nn.losses.by_name(loss)(backend=backend)
    history, _ = lbfgs_fit(model, X, y, fit_loss, **kw)
    np.testing.assert_allclose(history["loss"], theirs, rtol=1e-6)
    assert theirs[-1] < 0.5 * theirs[0]
    for p, tp in zip(model.parameters()[::2], [m.weight for m in layers[::2]]):
        np.testing.assert_allclose(p, tp.detach().numpy().T, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("line_search", [None, "strong_wolfe"])
def test_regression_and_classification_reach_a_low_loss(line_search):
    X, y = regression()
    history, _ = lbfgs_fit(model_for("regression"), X, y, "mse", epochs=15, max_iter=20,
                           line_search_fn=line_search, lr=1.0 if line_search else 0.5)
    assert history["loss"][-1] < 0.01 * history["loss"][0]
    assert history["loss"][-1] < 0.01       # the noise's variance is 0.0025
    X, y = classification(noise=0.2)
    model = model_for("classification")
    history, _ = lbfgs_fit(model, X, y, "cross_entropy", epochs=10, max_iter=20,
                           line_search_fn=line_search, lr=1.0 if line_search else 0.5)
    assert history["loss"][-1] < 0.1
    assert np.mean(model.predict(X).argmax(axis=1) == y) > 0.95


def test_float32_trains_and_closure_gradients_are_copied():
    X, y = regression(dtype=np.float32)
    model = model_for("regression", dtype=np.float32)
    history, opt = lbfgs_fit(model, X, y, "mse", epochs=5, line_search_fn="strong_wolfe")
    assert history["loss"][-1] < 0.2 * history["loss"][0]
    state = opt.state[0]
    grads = model.gradients()
    # what L-BFGS keeps is its own: no array shares memory with the model's gradients
    for kept in [state["prev_flat_grad"], state["d"], *state["old_dirs"], *state["old_stps"]]:
        assert kept.dtype == np.float32
        assert not any(np.shares_memory(kept, g) for g in grads)


# ----------------------------------------------------------------------------- the loop


def test_history_validation_callbacks_and_the_loss_recorded():
    X, y = classification()
    Xv, yv = classification(60)
    seen = []
    model = model_for("classification")
    history, opt = lbfgs_fit(model, X, y, "cross_entropy", epochs=3,
                             validation_data=(Xv, yv), lr=0.8,
                             callbacks=[lambda e, logs: seen.append((e, logs))])
    assert history.epochs == 3 and [e for e, _ in seen] == [0, 1, 2]
    for key in ("loss", "val_loss", "val_accuracy", "lr", "time"):
        assert len(history[key]) == 3
    assert history["lr"] == [0.8] * 3
    # "loss" is what step returned: the full-batch loss before each epoch's step
    again = model_for("classification")
    assert history["loss"][0] == pytest.approx(
        nn.CrossEntropyLoss()(again.predict(X), y), rel=1e-12)
    assert history["val_loss"][-1] == pytest.approx(
        nn.CrossEntropyLoss()(model.predict(Xv), yv), rel=1e-12)


def test_batch_size_of_all_rows_is_full_batch_and_shuffle_changes_nothing():
    X, y = regression()
    a, _ = lbfgs_fit(model_for("regression"), X, y, "mse", epochs=2)
    b, _ = lbfgs_fit(model_for("regression"), X, y, "mse", epochs=2, batch_size=len(X))
    c, _ = lbfgs_fit(model_for("regression"), X, y, "mse", epochs=2, batch_size=10 ** 6)
    model = model_for("regression")
    opt = optim.LBFGS(model.parameters(), max_iter=10)
    d = fastgd.fit(model, X, y, loss="mse", optimizer=opt, epochs=2, shuffle=False, seed=3,
                   progress=False)
    assert a["loss"] == b["loss"] == c["loss"] == d["loss"]


def test_early_stopping_keeps_the_best_epoch_and_a_callback_stops():
    X, y = classification()
    Xv, yv = classification(60)
    model = model_for("classification")
    best = {}

    def remember(epoch, logs):
        best[epoch] = [p.copy() for p in model.parameters()]

    opt = optim.LBFGS(model.parameters(), max_iter=20)
    history = fastgd.fit(model, X, y, loss="cross_entropy", optimizer=opt, epochs=40,
                         validation_data=(Xv, yv), early_stopping=2, callbacks=[remember],
                         progress=False)
    assert history.stop_reason == "early_stopping"   # it overfits the noisy labels
    for p, b in zip(model.parameters(), best[history.best_epoch]):
        np.testing.assert_array_equal(p, b)
    history, _ = lbfgs_fit(model_for("classification"), X, y, "cross_entropy", epochs=9,
                           callbacks=[lambda e, logs: e == 1])
    assert history.epochs == 2 and history.stop_reason == "callback"


def test_progress_bar(capsys):
    X, y = regression()
    model = model_for("regression")
    opt = optim.LBFGS(model.parameters(), max_iter=3)
    fastgd.fit(model, X, y, loss="mse", optimizer=opt, epochs=2, progress=True)
    assert "2/2" in capsys.readouterr().err


@pytest.mark.parametrize("interval", ["epoch", "step"])
def test_a_schedule_steps_once_an_epoch(interval):
    X, y = regression()
    model = model_for("regression")
    opt = optim.LBFGS(model.parameters(), lr=0.8, max_iter=5)
    sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    history = fastgd.fit(model, X, y, loss="mse", optimizer=opt, epochs=5, scheduler=sched,
                         scheduler_interval=interval, progress=False)
    assert history["lr"] == [0.8, 0.8, 0.4, 0.4, 0.2]
    assert opt.param_groups[0]["lr"] == 0.2


def test_reduce_on_plateau_steps_on_the_validation_loss():
    X, y = classification()
    Xv, yv = classification(60)
    model = model_for("classification")
    opt = optim.LBFGS(model.parameters(), max_iter=20)
    sched = optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    history = fastgd.fit(model, X, y, loss="cross_entropy", optimizer=opt, epochs=12,
                         validation_data=(Xv, yv), scheduler=sched, progress=False)
    assert min(history["lr"]) < 1.0     # the validation loss rose: the rate was lowered
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        fastgd.fit(model, X, y, loss="cross_entropy", optimizer=opt, scheduler=sched,
                   scheduler_interval="step", validation_data=(Xv, yv), progress=False)


# ----------------------------------------------------------------------------- refused


@pytest.mark.parametrize("kw, match", [
    (dict(batch_size=32), r"batch_size=32, but LBFGS trains full batch: pass batch_size=None"),
    (dict(batch_size=119), r"batch_size=119.*LBFGS.*120 training rows"),
    (dict(accept_if_improves=True), "accept_if_improves is not supported with LBFGS"),
    (dict(clip_grad_norm=1.0), "clip_grad_norm is not supported with LBFGS"),
    (dict(fused=True), "fused=True, but the fused epoch loop cannot be used: LBFGS"),
    (dict(scheduler_interval="batch"), "scheduler_interval must be"),
])
def test_bad_combinations_are_refused_before_anything_changes(kw, match):
    X, y = regression()
    model = model_for("regression")
    before = [p.copy() for p in model.parameters()]
    opt = optim.LBFGS(model.parameters())
    with pytest.raises(ValueError, match=match):
        fastgd.fit(model, X, y, loss="mse", optimizer=opt, epochs=2, progress=False, **kw)
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p, b)
    assert opt.state == {}


def test_other_bad_arguments_are_checked_as_for_any_optimizer():
    X, y = regression()
    model = model_for("regression")
    opt = optim.LBFGS(model.parameters())
    with pytest.raises(TypeError, match="scheduler must be"):
        fastgd.fit(model, X, y, loss="mse", optimizer=opt, scheduler="step", progress=False)
    other = optim.LBFGS([p.copy() for p in model.parameters()])
    with pytest.raises(ValueError, match="scheduler must be built on fit's optimizer"):
        fastgd.fit(model, X, y, loss="mse", optimizer=opt, progress=False,
                   scheduler=optim.lr_scheduler.StepLR(other, 2))
    with pytest.raises(ValueError, match="optimizer must be built on model.parameters"):
        fastgd.fit(model, X, y, loss="mse", optimizer=other, progress=False)
    with pytest.raises(ValueError, match="epochs"):
        fastgd.fit(model, X, y, loss="mse", optimizer=opt, epochs=-1, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        fastgd.fit(model, X, y, loss="mse", optimizer=opt, batch_size=0, progress=False)


# ----------------------------------------------------------------------------- divergence


def snapshot(model, opt):
    return [p.copy() for p in model.parameters()], opt.state_dict()


def assert_state(model, opt, snap):
    params, sd = snap
    for p, b in zip(model.parameters(), params):
        np.testing.assert_array_equal(p, b)
    got = opt.state_dict()["state"]
    assert set(got) == set(sd["state"])
    for k, v in sd["state"].get(0, {}).items():
        w = got[0][k]
        if isinstance(v, list):
            assert len(w) == len(v) and all(np.array_equal(a, b) for a, b in zip(w, v))
        else:
            assert np.array_equal(w, v) and type(w) is type(v), k


def test_a_step_that_ends_non_finite_restores_the_state_before_it():
    X, y = regression()
    model = model_for("regression")
    opt = optim.LBFGS(model.parameters(), max_iter=5)
    saved = {}

    def blow_up(epoch, logs):
        if epoch == 1:
            saved["state"] = snapshot(model, opt)
            opt.param_groups[0]["lr"] = 1e300

    with pytest.raises(fastgd.DivergenceError) as info:
        fastgd.fit(model, X, y, loss="mse", optimizer=opt, epochs=5, callbacks=[blow_up],
                   progress=False)
    err = info.value
    assert (err.epoch, err.step) == (2, 0) and err.history.epochs == 2
    assert "training diverged at epoch 2, step 0" in str(err)
    assert "restored to those before the last step with a finite loss" in str(err)
    assert_state(model, opt, saved["state"])
    assert _all_finite(model.parameters())
    # training again with a sane rate goes on from there
    opt.param_groups[0]["lr"] = 0.5
    fastgd.fit(model, X, y, loss="mse", optimizer=opt, epochs=2, progress=False)


def test_the_line_search_survives_a_huge_rate():
    X, y = regression()
    model = model_for("regression")
    opt = optim.LBFGS(model.parameters(), max_iter=5, line_search_fn="strong_wolfe")

    def huge(epoch, logs):
        opt.param_groups[0]["lr"] = 1e300

    history = fastgd.fit(model, X, y, loss="mse", optimizer=opt, epochs=4, callbacks=[huge],
                         progress=False)
    assert _all_finite(model.parameters())
    assert all(math.isfinite(v) for v in history["loss"])
    assert history["loss"][-1] <= history["loss"][1]


@pytest.mark.parametrize("line_search", [None, "strong_wolfe"])
def test_a_nan_parameter_restores_the_state_before_the_last_step_with_a_finite_loss(
        line_search):
    X, y = regression()
    model = model_for("regression")
    opt = optim.LBFGS(model.parameters(), max_iter=5, line_search_fn=line_search)
    saved = {}

    def poison(epoch, logs):
        if epoch == 0:
            saved["state"] = snapshot(model, opt)
        if epoch == 1:
            model.layers[0].W[0, 0] = np.nan

    with pytest.raises(fastgd.DivergenceError, match="the loss became nan") as info:
        fastgd.fit(model, X, y, loss="mse", optimizer=opt, epochs=5, callbacks=[poison],
                   progress=False)
    assert (info.value.epoch, info.value.history.epochs) == (2, 2)
    assert_state(model, opt, saved["state"])


def test_a_non_finite_loss_at_a_steps_start_restores_the_state_before_the_step_before():
    X, y = regression()
    model = model_for("regression")
    # max_iter=1 without a line search: a step does not evaluate where it ends
    opt = optim.LBFGS(model.parameters(), max_iter=1)
    saved = {}

    def blow_up(epoch, logs):
        if epoch == 1:
            saved["state"] = snapshot(model, opt)
            opt.param_groups[0]["lr"] = 1e160      # finite parameters, an infinite loss

    with pytest.raises(fastgd.DivergenceError) as info:
        fastgd.fit(model, X, y, loss="mse", optimizer=opt, epochs=6, callbacks=[blow_up],
                   progress=False)
    err = info.value
    assert (err.epoch, err.step) == (3, 0) and err.history.epochs == 3
    assert "the loss became inf" in str(err)
    assert_state(model, opt, saved["state"])


def test_initial_parameters_with_an_infinite_loss():
    X, y = regression()
    model = model_for("regression")
    model.layers[-1].W[...] = 1e160
    before = [p.copy() for p in model.parameters()]
    opt = optim.LBFGS(model.parameters())
    with pytest.raises(fastgd.DivergenceError, match="initial parameters already give it") \
            as info:
        fastgd.fit(model, X, y, loss="mse", optimizer=opt, epochs=3, progress=False)
    assert (info.value.epoch, info.value.history.epochs) == (0, 0)
    assert "line_search_fn='strong_wolfe'" in str(info.value)
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p, b)
    assert opt.state == {}


def test_divergence_restores_a_schedule():
    X, y = regression()
    model = model_for("regression")
    opt = optim.LBFGS(model.parameters(), lr=0.5, max_iter=1)
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.9)
    saved = {}

    def blow_up(epoch, logs):
        if epoch == 2:
            saved["sched"] = sched.state_dict()
            saved["lr"] = opt.param_groups[0]["lr"]
            opt.param_groups[0]["lr"] = sched.base_lrs[0] = 1e160

    with pytest.raises(fastgd.DivergenceError):
        fastgd.fit(model, X, y, loss="mse", optimizer=opt, epochs=6, scheduler=sched,
                   callbacks=[blow_up], progress=False)
    # restored to before epoch 3's step: the schedule after 3 steps, the rate it set
    assert sched.state_dict()["last_epoch"] == saved["sched"]["last_epoch"]
    assert opt.param_groups[0]["lr"] == 1e160     # the callback's, before that step


def _all_finite(arrays):
    return all(np.isfinite(a).all() for a in arrays)
