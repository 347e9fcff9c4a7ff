"""fastgd.linear_model.LinearRegression: every solver reaches the least-squares answer, the
update rules are the issue's, and the scikit-learn conventions hold."""
import warnings

import numpy as np
import pytest

from fastgd.optim import _stepper
from fastgd.descent.gradients import numerical_gradient
from fastgd.linear_model import ConvergenceWarning, LinearRegression, NotFittedError

#: how close a gradient-descent solution is to the closed form, per dtype
CLOSE = {np.dtype(np.float32): dict(rtol=0, atol=2e-4), np.dtype(np.float64): dict(rtol=0, atol=1e-8)}

SOLVERS = ["gd", "sgd", "minibatch"]
OBJECTIVES = ["mse", "l2"]


def make_data(rng, n=300, p=4, noise=0.1, dtype=np.float64):
    """Well-conditioned data: standard normal features, intercept 1.5."""
    X = rng.standard_normal((n, p))
    beta = np.linspace(-2, 2, p)
    y = X @ beta + 1.5 + noise * rng.standard_normal(n)
    return X.astype(dtype), y.astype(dtype)


def closed_form(X, y, fit_intercept=True):
    m = LinearRegression(solver="closed_form", fit_intercept=fit_intercept).fit(X, y)
    return m.coef_.astype(np.float64), m.intercept_


# ---------------------------------------------------------------------------- convergence
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_full_batch_gd_converges_to_closed_form(objective, dtype, rng):
    X, y = make_data(rng, noise=0.3, dtype=dtype)
    coef, icpt = closed_form(X, y)
    lr = 0.1 if objective == "mse" else 0.3
    m = LinearRegression(solver="gd", objective=objective, lr=lr, max_iter=3000, tol=None).fit(X, y)
    assert m.coef_.dtype == dtype and m.n_iter_ == 3000
    np.testing.assert_allclose(m.coef_, coef, **CLOSE[dtype])
    assert m.intercept_ == pytest.approx(icpt, abs=CLOSE[dtype]["atol"])


@pytest.mark.parametrize("solver", ["sgd", "minibatch"])
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_stochastic_solvers_converge_to_closed_form_on_exact_data(solver, objective, dtype, rng):
    # a consistent system: every sample's gradient vanishes at the least-squares answer
    X, y = make_data(rng, noise=0.0, dtype=dtype)
    coef, icpt = closed_form(X, y)
    lr = {"sgd": 0.01, "minibatch": 0.05}[solver] * (0.2 if objective == "l2" else 1)
    m = LinearRegression(solver=solver, objective=objective, lr=lr, max_iter=300, tol=None,
                         batch_size=16, random_state=0).fit(X, y)
    # the l2 objective's per-sample steps have length lr |x_i| whatever the residual: they
    # end in an lr-sized neighbourhood
    atol = CLOSE[dtype]["atol"] if objective == "mse" else 30 * lr
    np.testing.assert_allclose(m.coef_, coef, rtol=0, atol=max(atol, 5e-4 if dtype == np.float32 else 0))
    assert m.intercept_ == pytest.approx(icpt, abs=max(atol, 5e-4 if dtype == np.float32 else 0))


@pytest.mark.parametrize("solver", ["sgd", "minibatch"])
def test_stochastic_solvers_approach_closed_form_on_noisy_data_as_lr_shrinks(solver, dtype, rng):
    X, y = make_data(rng, noise=0.5, dtype=dtype)
    coef, _ = closed_form(X, y)
    errors = []
    # constant-lr noise keeps the iterates in a neighbourhood whose size shrinks with lr;
    # the epochs give every run the same lr * steps, enough to forget the start
    for lr in {"sgd": (0.01, 0.001), "minibatch": (0.1, 0.01)}[solver]:
        epochs = int(round(0.3 / lr)) if solver == "sgd" else int(round(30 / lr))
        m = LinearRegression(solver=solver, lr=lr, max_iter=epochs, tol=None,
                             random_state=1).fit(X, y)
        errors.append(float(np.abs(m.coef_ - coef).max()))
    assert errors[1] < errors[0] / 2 and errors[1] < 0.02


def test_closed_form_matches_scikit_learn(dtype, rng):
    sk = pytest.importorskip("sklearn.linear_model")
    X, y = make_data(rng, noise=1.0, dtype=dtype)
    ref = sk.LinearRegression().fit(X.astype(np.float64), y.astype(np.float64))
    for solver, kw in [("closed_form", {}), ("gd", dict(lr=0.1, max_iter=3000, tol=None))]:
        m = LinearRegression(solver=solver, **kw).fit(X, y)
        np.testing.assert_allclose(m.coef_, ref.coef_, **CLOSE[dtype])
        assert m.intercept_ == pytest.approx(ref.intercept_, abs=CLOSE[dtype]["atol"])
        assert m.score(X, y) == pytest.approx(ref.score(X.astype(np.float64), y.astype(np.float64)),
                                              abs=1e-5)
    nofit = sk.LinearRegression(fit_intercept=False).fit(X.astype(np.float64), y.astype(np.float64))
    m = LinearRegression(solver="closed_form", fit_intercept=False).fit(X, y)
    np.testing.assert_allclose(m.coef_, nofit.coef_, **CLOSE[dtype])
    assert m.intercept_ == 0.0


def test_without_intercept_gd_matches_lstsq(dtype, rng):
    X, y = make_data(rng, dtype=dtype)
    expected = np.linalg.lstsq(X.astype(np.float64), y.astype(np.float64), rcond=None)[0]
    m = LinearRegression(fit_intercept=False, lr=0.1, max_iter=2000, tol=None).fit(X, y)
    np.testing.assert_allclose(m.coef_, expected, **CLOSE[dtype])
    assert m.intercept_ == 0.0


# ---------------------------------------------------------------------------- update rules
def test_gd_mse_step_is_the_issues_rule(dtype, rng):
    # beta <- beta + (2 lr / n) X^T (y - X beta), from beta = 0 with a column of ones
    X, y = make_data(rng, n=50, p=3, dtype=dtype)
    Xa = np.hstack([X, np.ones((50, 1), dtype)]).astype(np.float64)
    lr = 0.05
    beta = np.zeros(4)
    for k in range(1, 4):
        beta = beta + (2 * lr / 50) * Xa.T @ (y.astype(np.float64) - Xa @ beta)
        m = LinearRegression(lr=lr, max_iter=k, tol=None).fit(X, y)
        np.testing.assert_allclose(np.append(m.coef_, m.intercept_), beta,
                                   rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_gd_l2_step_is_the_issues_rule(dtype, rng):
    # |r|_2 = sqrt(mean(r^2)); gradient -X^T r / (n |r|_2)
    X, y = make_data(rng, n=40, p=2, dtype=dtype)
    Xa = np.hstack([X, np.ones((40, 1), dtype)]).astype(np.float64)
    yd = y.astype(np.float64)
    lr = 0.1
    beta = np.zeros(3)
    for k in range(1, 4):
        r = yd - Xa @ beta
        beta = beta + lr * Xa.T @ r / (40 * np.sqrt(np.mean(r ** 2)))
        m = LinearRegression(objective="l2", lr=lr, max_iter=k, tol=None).fit(X, y)
        np.testing.assert_allclose(np.append(m.coef_, m.intercept_), beta,
                                   rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_sgd_and_minibatch_epochs_follow_the_rule_row_by_row(objective, dtype, rng):
    # without shuffling, an epoch applies the gd rule to each sample (sgd) or to each
    # consecutive batch of rows (minibatch), in order
    X, y = make_data(rng, n=10, p=2, dtype=dtype)
    Xa = np.hstack([X, np.ones((10, 1), dtype)]).astype(np.float64)
    yd = y.astype(np.float64)
    lr = 0.05
    for solver, bs in [("sgd", 1), ("minibatch", 4)]:
        beta = np.zeros(3)
        for s in range(0, 10, bs):
            Xb, yb = Xa[s:s + bs], yd[s:s + bs]
            r = yb - Xb @ beta
            if objective == "mse":
                beta = beta + (2 * lr / len(yb)) * Xb.T @ r
            else:
                norm = np.sqrt(np.mean(r ** 2))
                beta = beta + lr * Xb.T @ r / (len(yb) * norm)
        m = LinearRegression(solver=solver, objective=objective, lr=lr, batch_size=bs,
                             max_iter=1, tol=None, shuffle=False).fit(X, y)
        np.testing.assert_allclose(np.append(m.coef_, m.intercept_), beta,
                                   rtol=1e-5 if dtype == np.float32 else 1e-12, err_msg=solver)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_gradient_formula_matches_numerical_gradient(objective, rng):
    from fastgd.linear_model import _loss_and_grad
    X, y = make_data(rng, n=30, p=3)
    Xa = np.hstack([X, np.ones((30, 1))])
    beta = rng.standard_normal(4)
    g = np.empty(4)
    loss = _loss_and_grad(objective, Xa, y, beta, np.empty(30), g)

    def L(b):
        r = y - Xa @ b
        return np.mean(r ** 2) if objective == "mse" else np.sqrt(np.mean(r ** 2))

    assert loss == pytest.approx(L(beta), rel=1e-12)
    np.testing.assert_allclose(g, numerical_gradient(L, beta), rtol=1e-6, atol=1e-8)


def test_steps_run_on_the_native_kernel(monkeypatch, rng):
    calls = []
    kernel = _stepper._optim.sgd

    def counting(plan, **hp):
        calls.append("gd" if hp["momentum"] == 0 else "momentum")
        return kernel(plan, **hp)

    monkeypatch.setattr(_stepper._optim, "sgd", counting)
    X, y = make_data(rng, n=50)
    LinearRegression(solver="gd", max_iter=7, tol=None).fit(X, y)
    assert calls == ["gd"] * 7
    calls.clear()
    LinearRegression(solver="sgd", max_iter=2, tol=None).fit(X, y)
    assert len(calls) == 100                       # one step per sample and epoch
    calls.clear()
    LinearRegression(solver="minibatch", batch_size=16, max_iter=3, tol=None).fit(X, y)
    assert len(calls) == 3 * 4                     # ceil(50 / 16) batches per epoch
    calls.clear()
    LinearRegression(solver="closed_form").fit(X, y)
    assert calls == []


# ---------------------------------------------------------------------------- attributes
@pytest.mark.parametrize("solver", SOLVERS)
def test_loss_curve_and_n_iter(solver, rng):
    X, y = make_data(rng)
    m = LinearRegression(solver=solver, lr=0.01, random_state=0).fit(X, y)
    assert 0 < m.n_iter_ < 1000                   # stopped by tol
    assert m.loss_curve_.shape == (m.n_iter_,)
    r = y - m.predict(X)
    assert m.loss_curve_[-1] == pytest.approx(np.mean(r ** 2), rel=1e-9)
    if solver == "gd":
        assert np.all(np.diff(m.loss_curve_) <= 0)
    assert m.n_features_in_ == X.shape[1]


def test_closed_form_attributes(rng):
    X, y = make_data(rng)
    m = LinearRegression(solver="closed_form").fit(X, y)
    assert m.n_iter_ == 0 and m.loss_curve_.shape == (0,)


def test_max_iter_without_convergence_warns(rng):
    X, y = make_data(rng)
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        LinearRegression(max_iter=3).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LinearRegression(max_iter=3, tol=None).fit(X, y)      # a fixed budget: no warning


def test_predict_and_score(dtype, rng):
    X, y = make_data(rng, noise=0.0, dtype=dtype)
    m = LinearRegression(solver="closed_form").fit(X, y)
    pred = m.predict(X)
    assert pred.shape == (len(y),) and pred.dtype == dtype
    np.testing.assert_allclose(pred, y, atol=1e-4 if dtype == np.float32 else 1e-10)
    assert m.score(X, y) == pytest.approx(1.0, abs=1e-6)
    assert m.score(X, y + np.asarray(np.random.default_rng(0).standard_normal(len(y)), dtype)) < 0.95
    assert m.predict(X[:1].tolist()).shape == (1,)


def test_deterministic_for_a_random_state(rng):
    X, y = make_data(rng)
    a = LinearRegression(solver="sgd", random_state=3, max_iter=5, tol=None).fit(X, y)
    b = LinearRegression(solver="sgd", random_state=3, max_iter=5, tol=None).fit(X, y)
    c = LinearRegression(solver="sgd", random_state=4, max_iter=5, tol=None).fit(X, y)
    assert np.array_equal(a.coef_, b.coef_) and np.array_equal(a.loss_curve_, b.loss_curve_)
    assert not np.array_equal(a.coef_, c.coef_)
    d = LinearRegression(solver="minibatch", shuffle=False, max_iter=5, tol=None).fit(X, y)
    e = LinearRegression(solver="minibatch", shuffle=False, max_iter=5, tol=None,
                         random_state=9).fit(X, y)
    assert np.array_equal(d.coef_, e.coef_)


def test_float32_stays_float32(rng):
    X, y = make_data(rng, dtype=np.float32)
    for solver in SOLVERS + ["closed_form"]:
        m = LinearRegression(solver=solver, max_iter=3, tol=None).fit(X, y.astype(np.float64))
        assert m.coef_.dtype == np.float32, solver


def test_column_vector_y_is_accepted(rng):
    X, y = make_data(rng)
    a = LinearRegression(solver="closed_form").fit(X, y)
    b = LinearRegression(solver="closed_form").fit(X, y[:, None])
    np.testing.assert_allclose(a.coef_, b.coef_)


def test_divergence_raises_naming_lr(rng):
    X, y = make_data(rng)
    with pytest.raises(ValueError, match="lr=10 is too large"):
        LinearRegression(lr=10.0).fit(X, y)
    with pytest.raises(ValueError, match="diverged"):
        LinearRegression(solver="sgd", lr=5.0).fit(X, y)


def test_scikit_learn_estimator_api(rng):
    m = LinearRegression(solver="sgd", lr=0.05)
    assert m.get_params()["solver"] == "sgd" and m.get_params()["lr"] == 0.05
    assert m.set_params(batch_size=8) is m and m.batch_size == 8
    with pytest.raises(ValueError, match="invalid parameter 'alpha'"):
        m.set_params(alpha=1.0)
    m.set_params(solver="newton")                             # stored; fit validates it
    with pytest.raises(ValueError, match="solver"):
        m.fit(rng.standard_normal((5, 2)), rng.standard_normal(5))
    m.set_params(solver="sgd")
    assert repr(m) == "LinearRegression(solver='sgd', lr=0.05, batch_size=8)"
    base = pytest.importorskip("sklearn.base")
    c = base.clone(m)
    assert c is not m and c.get_params() == m.get_params()


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kw, exc, match", [
    (dict(solver="newton"), ValueError, "solver must be one of"),
    (dict(solver=None), ValueError, "solver must be one of"),
    (dict(objective="mae"), ValueError, "objective must be one of"),
    (dict(lr=0), ValueError, "lr must be > 0"),
    (dict(lr=-1), ValueError, "lr must be > 0"),
    (dict(lr="1"), TypeError, "lr must be a real number"),
    (dict(max_iter=0), ValueError, "max_iter must be >= 1"),
    (dict(max_iter=2.5), TypeError, "max_iter must be an int"),
    (dict(tol=-1), ValueError, "tol must be >= 0"),
    (dict(n_iter_no_change=0), ValueError, "n_iter_no_change must be >= 1"),
    (dict(batch_size=0), ValueError, "batch_size must be >= 1"),
    (dict(batch_size=True), TypeError, "batch_size must be an int"),
    (dict(fit_intercept=1), TypeError, "fit_intercept must be a bool"),
    (dict(shuffle="yes"), TypeError, "shuffle must be a bool"),
    (dict(random_state=-1), ValueError, "random_state must be >= 0"),
    (dict(random_state="seed"), TypeError, "random_state must be None, an int >= 0"),
])
def test_bad_parameters_raise(kw, exc, match):
    m = LinearRegression(**kw)          # stored as given (scikit-learn's contract)
    assert all(getattr(m, k) is v for k, v in kw.items())
    with pytest.raises(exc, match=match):
        m.fit(np.ones((4, 1)), np.arange(4.0))
    assert not hasattr(m, "coef_")


@pytest.mark.parametrize("X, y, exc, match", [
    (np.ones(5), np.ones(5), ValueError, r"X must be 2-D .*reshape\(-1, 1\)"),
    (np.ones((5, 2)), np.ones(4), ValueError, "X has 5 rows, y has 4"),
    (np.ones((5, 2)), np.ones((5, 2)), ValueError, "y must be 1-D"),
    (np.array([[1.0, np.nan]] * 5), np.ones(5), ValueError, "X contains NaN"),
    (np.ones((5, 2)), np.array([1, 2, np.inf, 4, 5.0]), ValueError, "y contains NaN"),
    (np.array([["a", "b"]] * 5), np.ones(5), TypeError, "X must be an array of real numbers"),
    (np.ones((5, 2)), ["a"] * 5, TypeError, "y must be an array of real numbers"),
    (np.ones((0, 2)), np.ones(0), ValueError, "X is empty"),
    (np.ones((5, 2)) * 1j, np.ones(5), TypeError, "X must be .*complex"),
])
def test_bad_data_raises_naming_the_argument(X, y, exc, match):
    with pytest.raises(exc, match=match):
        LinearRegression().fit(X, y)


def test_predict_errors(rng):
    X, y = make_data(rng)
    with pytest.raises(NotFittedError, match="not fitted"):
        LinearRegression().predict(X)
    m = LinearRegression(solver="closed_form").fit(X, y)
    with pytest.raises(ValueError, match="X has 2 features, but LinearRegression was fitted with 4"):
        m.predict(X[:, :2])
    with pytest.raises(ValueError, match="X contains NaN"):
        m.predict(np.full_like(X, np.nan))
