"""fit(average=...): a weight average (EMA, SWA) updated after every optimizer step, in C
inside the fused loop, the same as the per-step loop and a hand-written loop; its
validation metrics; divergence restores it."""
import numpy as np
import pytest

import fastgd
from fastgd import nn, optim
from fastgd.optim import swa_utils as S

from nn_testutil import DTYPE_IDS, DTYPES, assert_params_equal, blobs

dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
AVERAGES = {"swa": lambda m: S.AveragedModel(m),
            "ema": lambda m: S.AveragedModel(m, multi_avg_fn=S.get_ema_multi_avg_fn(0.9)),
            "ema-fn": lambda m: S.AveragedModel(m, avg_fn=S.get_ema_avg_fn(0.8)),
            "custom": lambda m: S.AveragedModel(m, avg_fn=lambda a, p, n: 0.5 * (a + p))}


def setup(dtype, name):
    X, y = blobs(np.random.default_rng(0), n=50, d=4, classes=3, dtype=dtype)
    model = nn.MLP([4, 8, 3], dtype=dtype, seed=0)
    opt = optim.Adam(model.parameters(), lr=0.01)
    return model, opt, AVERAGES[name](model), X, y


def train(model, opt, avg, X, y, fused, epochs=3, **kw):
    return fastgd.fit(model, X, y, loss="cross_entropy", optimizer=opt, epochs=epochs,
                      batch_size=8, seed=0, progress=False, average=avg, fused=fused, **kw)


@dtypes
@pytest.mark.parametrize("name", sorted(AVERAGES))
def test_fused_equals_per_step_equals_a_hand_written_loop(name, dtype):
    runs = []
    for fused in ([None, False] if name == "custom" else [True, False]):
        model, opt, avg, X, y = setup(dtype, name)
        train(model, opt, avg, X, y, fused)
        runs.append((model, avg))
    (m1, a1), (m2, a2) = runs
    assert_params_equal(m1.parameters(), m2.parameters())
    assert_params_equal(a1.module.parameters(), a2.module.parameters())
    assert a1.n_averaged == a2.n_averaged == 3 * 7
    # by hand: update_parameters after every opt.step
    model, opt, avg, X, y = setup(dtype, name)
    rng = np.random.default_rng(0)
    loss = nn.CrossEntropyLoss()
    for _ in range(3):
        order = rng.permutation(len(X))
        for k in range(0, len(X), 8):
            idx = order[k:k + 8]
            loss.forward(model.forward(X[idx]), y[idx])
            model.backward(loss.backward())
            opt.step(model.gradients())
            avg.update_parameters(model)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    for a, b in zip(a1.module.parameters(), avg.module.parameters()):
        np.testing.assert_allclose(a, b, **tol)


def test_validation_metrics_of_the_average():
    model, opt, avg, X, y = setup(np.float64, "ema")
    h = train(model, opt, avg, X, y, None, validation_data=(X, y))
    assert len(h["avg_val_loss"]) == 3 and len(h["avg_val_accuracy"]) == 3
    out = avg.module.predict(X)
    assert h["avg_val_loss"][-1] == nn.CrossEntropyLoss().forward(out, y)
    assert h["avg_val_loss"][-1] != h["val_loss"][-1]


@dtypes
def test_divergence_restores_the_average(dtype, monkeypatch):
    from test_divergence import poison_fused_loop_from_epoch
    good, gopt, gavg, X, y = setup(dtype, "swa")
    train(good, gopt, gavg, X, y, True, epochs=1)
    model, opt, avg, X, y = setup(dtype, "swa")
    poison_fused_loop_from_epoch(monkeypatch, model, 1)
    with np.errstate(invalid="ignore"), pytest.raises(fastgd.DivergenceError):
        train(model, opt, avg, X, y, True)
    assert_params_equal(avg.module.parameters(), gavg.module.parameters())
    assert avg.n_averaged == gavg.n_averaged == 7


def test_bad_average():
    model, opt, avg, X, y = setup(np.float64, "ema")
    with pytest.raises(TypeError, match="average must be a fastgd.optim.swa_utils"):
        train(model, opt, "ema", X, y, None)
    other = S.AveragedModel(nn.MLP([4, 5, 3], dtype=np.float64, seed=0))
    with pytest.raises(ValueError, match="average must be an AveragedModel of model"):
        train(model, opt, other, X, y, None)
    custom = AVERAGES["custom"](model)
    with pytest.raises(ValueError, match="fused=True, but .* averaging function of its own"):
        train(model, opt, custom, X, y, True)
