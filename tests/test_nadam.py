"""NAdam's scalar state (``mu_product``): its float32 rounding as torch keeps it, the state
dict, files, back-ups in fit, the functional form's argument and bad input. The update itself
is in the shared option matrix (helpers.CASES: torch parity, native vs reference, state)."""
import importlib

import numpy as np
import pytest

import fastgd
from fastgd import nn, optim
from fastgd.functional import nadam_

from helpers import assert_trees_equal
from nn_testutil import DTYPE_IDS, DTYPES, assert_params_equal, blobs

torch = pytest.importorskip("torch")
fit_module = importlib.import_module("fastgd.train.fit")
dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("kw", [dict(), dict(betas=(0.5, 0.9), momentum_decay=0.3)])
def test_mu_product_is_torchs_float32_product_for_float64_params(backend, kw):
    rng = np.random.default_rng(0)
    ours = [rng.standard_normal(4), rng.standard_normal((2, 3))]
    theirs = [torch.from_numpy(p.copy()) for p in ours]
    opt = optim.NAdam(ours, backend=backend, **kw)
    topt = torch.optim.NAdam(theirs, foreach=False, **kw)
    products = []
    for _ in range(40):
        g = [rng.standard_normal(p.shape) for p in ours]
        opt.step(g)
        for p, gi in zip(theirs, g):
            p.grad = torch.from_numpy(gi.copy())
        topt.step()
        mine = opt.state[0]["mu_product"]
        assert mine == topt.state[theirs[0]]["mu_product"].item()   # exactly
        assert mine == float(np.float32(mine))                      # a float32 value
        products.append(mine)
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b.numpy(), rtol=1e-12, atol=1e-14)
    # kept in float32, the product is not the float64 product of the mu_t
    mu = [kw.get("betas", (0.9,))[0] * (1 - 0.5 * 0.96 ** (t * kw.get("momentum_decay", 4e-3)))
          for t in range(1, 41)]
    assert products[-1] != float(np.prod(mu))


def test_per_tensor_products_follow_their_own_steps():
    a, b = np.ones(3), np.ones(2)
    opt = optim.NAdam([a, b])
    opt.step([np.ones(3), np.ones(2)])
    opt.step([np.ones(3), None])              # b skips a step: its product stays
    s = opt.state
    assert s[0]["step"] == 2 and s[1]["step"] == 1
    assert s[1]["mu_product"] > s[0]["mu_product"]
    first = optim.NAdam([np.ones(1)])
    first.step([np.ones(1)])
    assert s[1]["mu_product"] == first.state[0]["mu_product"]


def test_state_dict_round_trip_mid_run_is_bit_for_bit():
    rng = np.random.default_rng(1)
    grads = [[rng.standard_normal(5).astype(np.float32)] for _ in range(12)]
    full = [np.zeros(5, np.float32)]
    opt = optim.NAdam(full, lr=0.05)
    for g in grads:
        opt.step(g)
    half = [np.zeros(5, np.float32)]
    first = optim.NAdam(half, lr=0.05)
    for g in grads[:6]:
        first.step(g)
    sd = first.state_dict()
    resumed = optim.NAdam(half, lr=0.05)
    resumed.load_state_dict(sd)
    for g in grads[6:]:
        resumed.step(g)
    assert np.array_equal(full[0], half[0])
    assert_trees_equal(opt.state_dict(), resumed.state_dict())


@pytest.mark.parametrize("value, error, match", [
    (None, ValueError, "has no 'mu_product'"),
    ("0.5", TypeError, r"\['mu_product'\]"),
    (float("nan"), ValueError, r"\['mu_product'\]"),
    (np.ones(2), TypeError, r"\['mu_product'\]"),
])
def test_load_state_dict_checks_mu_product(value, error, match):
    p = np.ones(3)
    opt = optim.NAdam([p])
    opt.step([np.ones(3)])
    sd = opt.state_dict()
    if value is None:
        del sd["state"][0]["mu_product"]
    else:
        sd["state"][0]["mu_product"] = value
    before = opt.state_dict()
    with pytest.raises(error, match=match):
        opt.load_state_dict(sd)
    assert_trees_equal(opt.state_dict(), before)


def test_saved_with_the_model_and_loaded_back(tmp_path):
    X, y = blobs(np.random.default_rng(2), n=48, d=4, classes=3, dtype=np.float32)
    model = nn.MLP([4, 8, 3], dtype=np.float32, seed=0)
    opt = optim.NAdam(model.parameters(), lr=0.01, decoupled_weight_decay=True,
                      weight_decay=0.01)
    fastgd.fit(model, X, y, loss="cross_entropy", optimizer=opt, epochs=2, batch_size=16,
               seed=0, progress=False)
    path = tmp_path / "m.npz"
    model.save(path, optimizer=opt)
    loaded, lopt = fastgd.load(path, optimizer=True)
    assert_trees_equal(lopt.state_dict(), opt.state_dict())
    for m, o in ((model, opt), (loaded, lopt)):   # and training goes on identically
        fastgd.fit(m, X, y, loss="cross_entropy", optimizer=o, epochs=1, batch_size=16,
                   seed=1, progress=False)
    assert_params_equal(loaded.parameters(), model.parameters())
    assert_trees_equal(lopt.state_dict(), opt.state_dict())


def test_a_file_with_a_bad_mu_product_is_refused(tmp_path):
    import json
    model = nn.MLP([2, 2], seed=0)
    opt = optim.NAdam(model.parameters())
    opt.step([np.ones_like(p) for p in model.parameters()])
    path = tmp_path / "m.npz"
    model.save(path, optimizer=opt)
    arrays = dict(np.load(path))
    meta = json.loads(str(arrays["__fastgd__"]))
    for bad in ("x", None, 1e400, True):
        meta["optimizer"]["state"]["0"]["mu_product"] = bad
        arrays["__fastgd__"] = np.array(json.dumps(meta))
        bad_path = tmp_path / "bad.npz"
        np.savez(bad_path, **arrays)
        with pytest.raises(ValueError, match="mu_product"):
            fastgd.load(bad_path, optimizer=True)


@dtypes
def test_fit_divergence_restores_mu_product_in_the_fused_loop(dtype, monkeypatch):
    """A NaN gradient in epoch 1: parameters, moments, steps and mu_product are put back to
    their values after epoch 0, the checkpoint replay included."""
    from test_divergence import poison_fused_loop_from_epoch

    def setup():
        X, y = blobs(np.random.default_rng(0), n=40, d=4, classes=3, dtype=dtype)
        model = nn.MLP([4, 8, 3], dtype=dtype, seed=0)
        return model, optim.NAdam(model.parameters(), lr=0.01), X, y

    def train(model, opt, X, y, epochs):
        return fastgd.fit(model, X, y, loss="cross_entropy", optimizer=opt, epochs=epochs,
                          batch_size=8, seed=0, progress=False)

    good, good_opt, X, y = setup()
    train(good, good_opt, X, y, 1)
    model, opt, X, y = setup()
    poison_fused_loop_from_epoch(monkeypatch, model, 1)
    with np.errstate(invalid="ignore"), pytest.raises(fastgd.DivergenceError):
        train(model, opt, X, y, 3)
    assert_params_equal(model.parameters(), good.parameters())
    assert_trees_equal(opt.state_dict(), good_opt.state_dict())
    assert all(s["mu_product"] < 1 for s in opt.state.values())


def test_minimize_with_nadam_reaches_the_minimum():
    res = fastgd.minimize(lambda p: float((p ** 2).sum()), np.array([1.0, -2.0]),
                          grad=lambda p: 2 * p, method="nadam", lr=0.05, max_iter=4000)
    np.testing.assert_allclose(res.x, 0, atol=1e-3)


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_functional_mu_product_argument(backend):
    w, m, v = np.ones(3), np.zeros(3), np.zeros(3)
    g = np.ones(3)
    for bad, error, match in [(1.0, TypeError, "mu_product must be a float64 numpy.ndarray"),
                              (np.ones(1, np.float32), TypeError, "dtype float64"),
                              (np.ones(2), ValueError, r"shape \(1,\)"),
                              (np.ones((1, 1)), ValueError, r"shape \(1,\)")]:
        with pytest.raises(error, match=match):
            nadam_(w, g, m, v, bad, step=1, backend=backend)
    ro = np.ones(1)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="mu_product is read-only"):
        nadam_(w, g, m, v, ro, step=1, backend=backend)
    assert np.array_equal(w, np.ones(3)) and not m.any() and not v.any()
    # a 0-d array for one parameter array, a vector for a list
    mu0 = np.ones(())
    nadam_(w, g, m, v, mu0, step=1, backend=backend)
    assert 0 < mu0 < 1
    ws = [np.ones(2), np.ones(3)]
    mus = np.ones(2)
    nadam_(ws, [np.ones(2), np.ones(3)], [np.zeros(2), np.zeros(3)], [np.zeros(2), np.zeros(3)],
           mus, step=1, backend=backend)
    assert mus[0] == mus[1] == mu0
    with pytest.raises(ValueError, match=r"mu_product must have shape \(2,\)"):
        nadam_(ws, [np.ones(2), np.ones(3)], [np.zeros(2), np.zeros(3)],
               [np.zeros(2), np.zeros(3)], np.ones(1), step=2, backend=backend)


@pytest.mark.parametrize("kw, error, match", [
    (dict(lr=-1.0), ValueError, "lr must be >= 0"),
    (dict(betas=(0.9, 1.0)), ValueError, r"betas\[1\] must be < 1"),
    (dict(eps=-1e-8), ValueError, "eps must be >= 0"),
    (dict(momentum_decay=-1e-3), ValueError, "momentum_decay must be >= 0"),
    (dict(weight_decay=float("nan")), ValueError, "weight_decay"),
    (dict(decoupled_weight_decay=1.5), TypeError, "decoupled_weight_decay"),
])
def test_bad_hyper_parameters(kw, error, match):
    p = np.ones(3)
    with pytest.raises(error, match=match):
        optim.NAdam([p], **kw)
    assert np.array_equal(p, np.ones(3))
