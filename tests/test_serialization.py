"""Saving and loading models (and optimizer state): round trips, resumed training, atomic
writes, and clear errors on files that are not fastgd models (the atomic writer itself:
test_atomic.py; crafted and fuzzed files: test_load_untrusted.py)."""
import json
import math
import os
import pathlib

import numpy as np
import pytest

import fastgd
from fastgd import nn, optim

from nn_testutil import (ARCHS, DTYPE_IDS, DTYPES, assert_params_equal, blobs, build, fit_quiet,
                         snapshot)

dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
backends = pytest.mark.parametrize("backend", ["native", "reference"])

OPTIMIZERS = [
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.95))),
    ("AdamW", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5)),
    ("Adagrad", dict(lr=0.05, lr_decay=0.01)),
    ("NAdam", dict(lr=0.01, weight_decay=1e-3)),
]
OPT_IDS = ["sgd_momentum", "sgd_nesterov", "adam_amsgrad", "adam_betas", "adamw",
           "rmsprop_centered", "adagrad", "nadam"]


@pytest.fixture
def rng(request):
    return np.random.default_rng(sum(map(ord, request.node.nodeid)))


def leftovers(folder):
    return [f for f in os.listdir(folder) if f.startswith(".fastgd-") or f.endswith(".tmp")]


# ----------------------------------------------------------------------------- round trips

@dtypes
@backends
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_round_trip_model(dtype, backend, arch, tmp_path, rng):
    model = build(arch, dtype, backend, seed=4)
    for p in model.parameters():
        p[...] = rng.standard_normal(p.shape)
    path = tmp_path / "model.npz"
    model.save(path)
    assert leftovers(tmp_path) == []
    loaded = fastgd.load(path)
    assert isinstance(loaded, nn.Sequential)
    assert loaded.backend == backend and loaded.dtype == dtype
    assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]
    assert [repr(a) for a in loaded.layers] == [repr(b) for b in model.layers]
    for a, b in zip(loaded.layers, model.layers):
        assert a.backend == b.backend
        if isinstance(a, nn.Linear):
            assert a.init == b.init and (a.b is None) == (b.b is None)
        if isinstance(a, nn.LeakyReLU):
            assert a.slope == b.slope
    assert_params_equal(snapshot(model), loaded.parameters())
    assert all(p.dtype == dtype for p in loaded.parameters())
    x = rng.standard_normal((9, model.in_features)).astype(dtype)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))
    # the loaded model's parameters are its own storage
    loaded.parameters()[0][...] = 0
    assert not np.array_equal(loaded.predict(x), model.predict(x))


def test_round_trip_str_path_and_overwrite(tmp_path, rng):
    a = nn.MLP([3, 5, 2], seed=0)
    b = nn.MLP([3, 5, 2], seed=1)
    path = str(tmp_path / "m.npz")
    fastgd.nn.serialization.save(a, path)
    b.save(path)                             # replaces the earlier file
    loaded = fastgd.load(path)
    assert_params_equal(snapshot(b), loaded.parameters())
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]
    model, opt = fastgd.load(pathlib.Path(path), optimizer=True)
    assert opt is None
    assert_params_equal(snapshot(b), model.parameters())


@pytest.mark.parametrize("name, kw", OPTIMIZERS, ids=OPT_IDS)
@dtypes
def test_round_trip_with_optimizer_state(name, kw, dtype, tmp_path, rng):
    X, y = blobs(rng, n=60, dtype=dtype)
    model = nn.MLP([4, 8, 3], dtype=dtype, seed=0)
    opt = getattr(optim, name)(model.parameters(), **kw)
    fit_quiet(model, X, y, loss="cross_entropy", optimizer=opt, epochs=2, batch_size=16, seed=0)
    path = tmp_path / "ckpt.npz"
    model.save(path, optimizer=opt)
    loaded, lopt = fastgd.load(path, optimizer=True)
    assert type(lopt) is type(opt) and lopt.backend == opt.backend
    held = [p for g in lopt.param_groups for p in g["params"]]
    assert all(a is b for a, b in zip(held, loaded.parameters()))
    sa, sb = opt.state_dict(), lopt.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert sa["state"].keys() == sb["state"].keys()
    for i in sa["state"]:
        assert sa["state"][i].keys() == sb["state"][i].keys()
        for k, v in sa["state"][i].items():
            if isinstance(v, np.ndarray):
                assert v.dtype == sb["state"][i][k].dtype
                np.testing.assert_array_equal(v, sb["state"][i][k])
            else:
                assert v == sb["state"][i][k]
    # loading without asking for the optimizer gives the model only
    assert isinstance(fastgd.load(path), nn.Sequential)


@pytest.mark.parametrize("name, kw", OPTIMIZERS, ids=OPT_IDS)
@backends
def test_resumed_training_is_bit_identical(name, kw, backend, tmp_path, rng):
    X, y = blobs(rng, n=80)

    def start():
        model = nn.MLP([4, 8, 3], seed=0, backend=backend)
        return model, getattr(optim, name)(model.parameters(), backend=backend, **kw)

    def train(model, opt, epochs, seed):
        fit_quiet(model, X, y, loss="cross_entropy", optimizer=opt, epochs=epochs,
                  batch_size=16, seed=seed)

    # uninterrupted
    a, oa = start()
    train(a, oa, 2, seed=1)
    train(a, oa, 3, seed=2)
    # interrupted: save, load, go on
    b, ob = start()
    train(b, ob, 2, seed=1)
    path = tmp_path / "ckpt.npz"
    b.save(path, optimizer=ob)
    c, oc = fastgd.load(path, optimizer=True)
    train(c, oc, 3, seed=2)
    assert_params_equal(snapshot(a), c.parameters())
    for i, entry in oa.state_dict()["state"].items():
        for k, v in entry.items():
            if isinstance(v, np.ndarray):
                np.testing.assert_array_equal(v, oc.state_dict()["state"][i][k])
    # and a fresh optimizer (state lost) would not have been identical
    d = fastgd.load(path)
    train(d, getattr(optim, name)(d.parameters(), backend=backend, **kw), 3, seed=2)
    assert not all(np.array_equal(p, q) for p, q in zip(a.parameters(), d.parameters()))


def test_optimizer_saved_before_any_step(tmp_path):
    model = nn.MLP([3, 4, 2], seed=0)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.save(tmp_path / "m.npz", optimizer=opt)
    _, lopt = fastgd.load(tmp_path / "m.npz", optimizer=True)
    assert lopt.state == {} and lopt.param_groups[0]["momentum"] == 0.9


def test_changed_hyper_parameters_are_saved(tmp_path):
    model = nn.MLP([3, 4, 2], seed=0)
    opt = optim.Adam(model.parameters(), lr=0.1)
    opt.param_groups[0]["lr"] = 0.0123
    model.save(tmp_path / "m.npz", optimizer=opt)
    _, lopt = fastgd.load(tmp_path / "m.npz", optimizer=True)
    assert lopt.param_groups[0]["lr"] == 0.0123
    assert lopt.param_groups[0]["betas"] == (0.9, 0.999)


@pytest.mark.parametrize("kw", [dict(lr=np.float32(0.1)), dict(lr=0.1, momentum=np.float32(0.5)),
                                dict(lr=0.1, nesterov=np.bool_(False))],
                         ids=["lr_float32", "momentum_float32", "nesterov_bool_"])
def test_numpy_scalar_hyper_parameters_are_saved(kw, tmp_path):
    model = nn.MLP([3, 4, 2], seed=0)
    opt = optim.SGD(model.parameters(), **kw)
    model.save(tmp_path / "m.npz", optimizer=opt)
    _, lopt = fastgd.load(tmp_path / "m.npz", optimizer=True)
    for k, v in kw.items():
        assert lopt.param_groups[0][k] == pytest.approx(v)


SCHEDULES = [
    ("SGD", dict(lr=0.05, momentum=0.9), "CyclicLR",
     dict(base_lr=0.01, max_lr=0.1, step_size_up=3)),
    ("Adam", dict(lr=0.01), "OneCycleLR", dict(max_lr=0.05, total_steps=12)),
]


@pytest.mark.parametrize("name, kw, sched, skw", SCHEDULES, ids=["sgd_cyclic", "adam_one_cycle"])
def test_the_schedules_group_keys_are_saved_and_training_resumes(name, kw, sched, skw,
                                                                 tmp_path, rng):
    """Groups carrying a schedule's initial_lr, max_lr, min_lr, base_momentum and
    max_momentum (and a cycled momentum or beta1) save, load and resume the same run."""
    X, y = blobs(rng, n=40)
    make = getattr(optim.lr_scheduler, sched)

    def train(model, opt, s, steps):
        for _ in range(steps):
            fit_quiet(model, X, y, loss="cross_entropy", optimizer=opt, epochs=1,
                      batch_size=40, shuffle=False)
            s.step()

    a = nn.MLP([4, 8, 3], seed=0)
    oa = getattr(optim, name)(a.parameters(), **kw)
    sa = make(oa, **skw)
    train(a, oa, sa, 5)
    keys = {"initial_lr", "base_momentum", "max_momentum"} | (
        {"max_lr", "min_lr"} if sched == "OneCycleLR" else set())
    assert keys <= set(oa.param_groups[0])
    path = tmp_path / "ckpt.npz"
    a.save(path, optimizer=oa)
    b, ob = fastgd.load(path, optimizer=True)
    assert ob.state_dict()["param_groups"] == oa.state_dict()["param_groups"]
    # resumed from the saved groups: the constructor's step goes on to the next batch, so
    # torch's last_epoch is the one before sa's
    sb = make(ob, last_epoch=sa.last_epoch - 1, **skw)
    assert sb.get_last_lr() == sa.get_last_lr()
    train(a, oa, sa, 6)
    train(b, ob, sb, 6)
    assert_params_equal(a.parameters(), b.parameters())
    assert sb.get_last_lr() == sa.get_last_lr()
    assert ob.param_groups[0].get("betas") == oa.param_groups[0].get("betas")
    assert ob.param_groups[0]["max_momentum"] == oa.param_groups[0]["max_momentum"]


# ----------------------------------------------------------------------------- save errors

def test_save_errors(tmp_path):
    model = nn.MLP([3, 4, 2], seed=0)
    with pytest.raises(TypeError, match="model must be a fastgd.nn.Sequential"):
        fastgd.nn.serialization.save(nn.Linear(2, 2), tmp_path / "x.npz")
    with pytest.raises(TypeError, match="optimizer must be a fastgd.optim optimizer"):
        model.save(tmp_path / "x.npz", optimizer="adam")
    other = optim.SGD(nn.MLP([3, 4, 2]).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="optimizer must be built on model.parameters()"):
        model.save(tmp_path / "x.npz", optimizer=other)
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- atomic writes

@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_interrupted_save_keeps_the_earlier_file(exc, tmp_path, monkeypatch, rng):
    old = nn.MLP([3, 5, 2], seed=0)
    path = tmp_path / "model.npz"
    old.save(path)
    before = path.read_bytes()
    new = nn.MLP([3, 5, 2], seed=1)
    real_savez = np.savez

    def failing_savez(file, *args, **kwds):
        file.write(b"PK\x03\x04 partial zip data")      # half a file, then the failure
        file.flush()
        raise exc

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(type(exc)):
        new.save(path)
    monkeypatch.setattr(np, "savez", real_savez)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]          # no temporary file left
    loaded = fastgd.load(path)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), old.predict(x))


def test_interrupted_first_save_leaves_nothing(tmp_path, monkeypatch):
    def failing_savez(file, *args, **kwds):
        file.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        nn.MLP([3, 2], seed=0).save(tmp_path / "model.npz")
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- load errors

def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        fastgd.load(tmp_path / "nope.npz")


def test_load_text_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is not a model\n")
    with pytest.raises(ValueError, match="is not a fastgd model file"):
        fastgd.load(path)


def test_load_truncated_file(tmp_path):
    path = tmp_path / "model.npz"
    nn.MLP([3, 2], seed=0).save(path)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match="is not a fastgd model file"):
        fastgd.load(path)


def test_load_plain_npz(tmp_path):
    path = tmp_path / "arrays.npz"
    np.savez(path, a=np.zeros(3), b=np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"not a fastgd model file \(no __fastgd__ entry\)"):
        fastgd.load(path)


def test_load_npy_file(tmp_path):
    npy = tmp_path / "array.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(ValueError, match="not a fastgd model file"):
        fastgd.load(npy)


def _tampered(tmp_path, edit_meta=None, drop=None, reshape=None):
    path = tmp_path / "model.npz"
    nn.MLP([3, 4, 2], seed=0).save(path)
    with np.load(path) as f:
        files = {k: f[k] for k in f.files}
    meta = json.loads(str(files["__fastgd__"]))
    if edit_meta:
        edit_meta(meta)
    files["__fastgd__"] = np.array(json.dumps(meta))
    if drop:
        del files[drop]
    if reshape:
        files[reshape] = files[reshape].reshape(-1)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **files)
    return bad


def test_load_wrong_format_version(tmp_path):
    bad = _tampered(tmp_path, edit_meta=lambda m: m.update(format=99))
    with pytest.raises(ValueError, match="has format 99, this fastgd reads 1"):
        fastgd.load(bad)


def test_load_unknown_layer(tmp_path):
    bad = _tampered(tmp_path, edit_meta=lambda m: m["layers"][1].update(type="GELU"))
    with pytest.raises(ValueError, match="unknown layer type 'GELU'"):
        fastgd.load(bad)


@pytest.mark.parametrize("how", ["drop", "reshape"])
def test_load_missing_or_misshapen_parameter(tmp_path, how):
    bad = _tampered(tmp_path, **({"drop": "param_2"} if how == "drop" else {"reshape": "param_0"}))
    with pytest.raises(ValueError, match="parameter (2|0) is missing or has the wrong shape"):
        fastgd.load(bad)


# ----------------------------------------------------------------------------- LBFGS


def lbfgs_state_equal(opt, other):
    a, b = opt.state_dict(), other.state_dict()
    assert a["param_groups"] == b["param_groups"]
    assert set(a["state"]) == set(b["state"])
    for k, v in a["state"].get(0, {}).items():
        w = b["state"][0][k]
        if isinstance(v, list):
            assert len(w) == len(v)
            assert all(np.array_equal(x, y) and type(x) is type(y) for x, y in zip(v, w)), k
        else:
            assert np.array_equal(v, w) and type(v) is type(w), k


def lbfgs_problem(dtype):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((150, 4))
    y = ((X[:, 0] * X[:, 1] + 0.8 * rng.standard_normal(150)) > 0).astype(np.int64)
    return X.astype(dtype), y + (X[:, 2] > 1)


def lbfgs_fit(model, opt, X, y, epochs):
    return fastgd.fit(model, X, y, loss="cross_entropy", optimizer=opt, epochs=epochs,
                      progress=False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("line_search", [None, "strong_wolfe"])
def test_lbfgs_round_trip_resumes_bit_for_bit(dtype, line_search, tmp_path):
    X, y = lbfgs_problem(dtype)
    model = nn.MLP([4, 16, 3], "tanh", dtype=dtype, seed=1)
    opt = optim.LBFGS(model.parameters(), max_iter=7, history_size=5,
                      line_search_fn=line_search)
    lbfgs_fit(model, opt, X, y, 3)
    assert len(opt.state[0]["old_dirs"]) == 5        # the history is full
    path = str(tmp_path / "m.npz")
    model.save(path, optimizer=opt)
    model2, opt2 = fastgd.load(path, optimizer=True)
    assert isinstance(opt2, optim.LBFGS)
    assert opt2.param_groups[0]["history_size"] == 5
    assert opt2.param_groups[0]["line_search_fn"] == line_search
    assert_params_equal(model2.parameters(), model.parameters())
    lbfgs_state_equal(opt, opt2)
    h1 = lbfgs_fit(model, opt, X, y, 3)
    h2 = lbfgs_fit(model2, opt2, X, y, 3)
    assert h1["loss"] == h2["loss"]
    assert_params_equal(model2.parameters(), model.parameters())
    lbfgs_state_equal(opt, opt2)


def test_lbfgs_saved_before_any_step_and_after_an_immediate_exit(tmp_path):
    model = nn.MLP([4, 16, 1], "tanh", dtype=np.float64, seed=1)
    opt = optim.LBFGS(model.parameters(), lr=0.3, max_iter=4)
    path = str(tmp_path / "m.npz")
    model.save(path, optimizer=opt)
    _, opt2 = fastgd.load(path, optimizer=True)
    assert opt2.state == {} and opt2.param_groups[0]["lr"] == 0.3
    # a step that stops at its first evaluation keeps the counters only
    opt3 = optim.LBFGS(model.parameters(), tolerance_grad=1e9)
    opt3.step(lambda: (1.0, [np.zeros_like(p) for p in model.parameters()]))
    assert opt3.state[0] == {"func_evals": 1, "n_iter": 0}
    model.save(path, optimizer=opt3)
    _, opt4 = fastgd.load(path, optimizer=True)
    assert opt4.state[0] == {"func_evals": 1, "n_iter": 0}
    assert math.isclose(opt4.param_groups[0]["tolerance_grad"], 1e9)
