"""fastgd.sklearn's MLPClassifier, MLPRegressor and LinearRegression against scikit-learn's own
estimators: parameters, training step for step, quality, dtypes, the meta-estimators, pickle,
and scikit-learn's errors on bad input."""
import inspect
import pickle
import re
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn import neural_network as sknn  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits, make_classification, make_friedman1  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import (GridSearchCV, cross_val_score,  # noqa: E402
                                     train_test_split)
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from fastgd.sklearn import LinearRegression, MLPClassifier, MLPRegressor  # noqa: E402

DTYPES = [np.float32, np.float64]
# float64: the same arithmetic up to rounding; float32: rounding grows over the steps
TOL = {np.float32: 2e-4, np.float64: 1e-9}
# L-BFGS in float32: scikit-learn's weights become float64 after its first iteration
# (scipy's vector), fastgd's stay float32; the line searches then part slowly
TOL_LBFGS32 = 3e-2


def _tol(params, dtype):
    return TOL_LBFGS32 if params["solver"] == "lbfgs" and dtype == np.float32 else TOL[dtype]


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.fixture(scope="module")
def small(digits):
    X, y = digits
    return X[:400], y[:400]


def _quiet():
    warnings.simplefilter("ignore", ConvergenceWarning)


def _assert_same_weights(a, b, tol, dtype=np.float64):
    # (scikit-learn's L-BFGS returns float64 weights for float32 input; fastgd keeps float32)
    assert len(a.coefs_) == len(b.coefs_)
    for Wa, Wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert Wa.shape == Wb.shape and Wb.dtype == dtype
        np.testing.assert_allclose(Wa, Wb, rtol=tol, atol=tol)


# ---------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("ours, theirs", [(MLPClassifier, sknn.MLPClassifier),
                                          (MLPRegressor, sknn.MLPRegressor)])
def test_parameters_defaults_and_order_are_scikit_learns(ours, theirs):
    a, b = inspect.signature(ours).parameters, inspect.signature(theirs).parameters
    assert list(a) == list(b)
    for name in a:
        assert a[name].default == b[name].default, name
        assert a[name].kind == b[name].kind, name
    assert ours().get_params() == theirs().get_params()


def test_init_only_stores_its_arguments():
    m = MLPClassifier(hidden_layer_sizes="bad", solver="nope", alpha=-1)
    assert m.hidden_layer_sizes == "bad" and m.solver == "nope" and m.alpha == -1
    assert m.set_params(alpha=-2) is m and m.alpha == -2
    assert not any(k.endswith("_") for k in vars(m))


# ---------------------------------------------------------------------------- step for step
# SGD and L-BFGS are the same arithmetic as scikit-learn's (same initialisation, shuffling,
# batches, penalty scale per batch, output deltas, learning-rate schedules), so the weights
# agree to rounding. (Adam differs by where epsilon sits: scikit-learn adds it to sqrt(v)
# before the bias correction, fastgd after, as torch; see test_adam_is_close_to_sklearns.)
SAME = [
    dict(solver="sgd", learning_rate_init=0.1),
    dict(solver="sgd", learning_rate_init=0.1, nesterovs_momentum=False, alpha=0.5),
    dict(solver="sgd", learning_rate_init=0.1, momentum=0.0, batch_size=64),
    dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.5, power_t=0.3),
    dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.3, tol=0.05,
         n_iter_no_change=1, max_iter=12),
    dict(solver="sgd", learning_rate_init=0.1, early_stopping=True, validation_fraction=0.2,
         n_iter_no_change=2, max_iter=15),
    dict(solver="sgd", learning_rate_init=0.1, tol=1e-2, n_iter_no_change=2, max_iter=30),
    dict(solver="sgd", learning_rate_init=0.1, shuffle=False, activation="tanh"),
    dict(solver="sgd", learning_rate_init=0.1, activation="logistic", batch_size=50),
    dict(solver="sgd", learning_rate_init=0.05, activation="identity", hidden_layer_sizes=(8, 6)),
    dict(solver="lbfgs", max_iter=25),
    dict(solver="lbfgs", max_iter=25, alpha=1.0, activation="tanh"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["multiclass", "binary", "multilabel"])
@pytest.mark.parametrize("params", SAME, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
def test_classifier_trains_as_sklearns(small, params, kind, dtype):
    _quiet()
    X, y = small
    X = X.astype(dtype)
    if kind == "binary":
        y = np.where(y > 4, "big", "small")
    elif kind == "multilabel":
        y = np.c_[y > 4, y % 2 == 0, y == 3].astype(int)
    if params.get("early_stopping") and kind == "multiclass":
        pytest.skip("scikit-learn does not stratify a multiclass validation split "
                    "(n_outputs_ > 1); fastgd does (test_early_stopping_split_is_stratified)")
    kw = dict(hidden_layer_sizes=(16,), random_state=0, max_iter=6) | params
    a = sknn.MLPClassifier(**kw).fit(X, y)
    b = MLPClassifier(**kw).fit(X, y)
    tol = _tol(params, dtype)
    _assert_same_weights(a, b, tol, dtype)
    for name in ("n_iter_", "t_", "n_layers_", "n_outputs_", "out_activation_",
                 "n_features_in_"):
        assert getattr(a, name) == getattr(b, name), name
    np.testing.assert_array_equal(a.classes_, b.classes_)
    if params["solver"] == "lbfgs":
        np.testing.assert_allclose(a.loss_, b.loss_, rtol=max(tol, 1e-7))
    else:
        # the penalty in the epoch loss is taken at the epoch's end weights here, at each
        # batch's weights in scikit-learn: the same with a small alpha
        rtol = 2e-3 if params.get("alpha", 1e-4) > 0.01 else max(tol, 1e-4)
        np.testing.assert_allclose(a.loss_, b.loss_, rtol=rtol)
        np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=rtol)
        if params.get("early_stopping"):
            np.testing.assert_allclose(a.validation_scores_, b.validation_scores_)
            assert a.best_validation_score_ == b.best_validation_score_
            assert b.best_loss_ is None
        else:
            assert b.validation_scores_ is None and b.best_validation_score_ is None
    pa, pb = a.predict_proba(X), b.predict_proba(X)
    assert pb.dtype == dtype
    np.testing.assert_allclose(pa, pb, rtol=10 * tol, atol=10 * tol)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("params", [
    dict(solver="sgd", learning_rate_init=0.01),
    dict(solver="sgd", learning_rate_init=0.01, alpha=0.3, batch_size=70),
    dict(solver="lbfgs", max_iter=30),
    dict(loss="poisson", solver="sgd", learning_rate_init=0.01),
    dict(loss="poisson", solver="lbfgs", max_iter=30),
], ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
@pytest.mark.parametrize("n_outputs", [1, 3])
def test_regressor_trains_as_sklearns(small, params, n_outputs, dtype):
    _quiet()
    X, _ = small
    X = X.astype(dtype)
    rng = np.random.default_rng(0)
    Z = X[:, [10, 20, 30]][:, :n_outputs] * [1.0, 2.0, -1.0][:n_outputs]
    if params.get("loss") == "poisson":
        Y = rng.poisson(np.exp(Z)).astype(dtype)
    else:
        Y = (Z + 0.1 * rng.standard_normal(Z.shape)).astype(dtype)
    Y = Y[:, 0] if n_outputs == 1 else Y
    kw = dict(hidden_layer_sizes=(16,), random_state=0, max_iter=5) | params
    a = sknn.MLPRegressor(**kw).fit(X, Y)
    b = MLPRegressor(**kw).fit(X, Y)
    tol = _tol(kw, dtype)
    _assert_same_weights(a, b, tol, dtype)
    assert a.out_activation_ == b.out_activation_
    assert a.n_iter_ == b.n_iter_ and a.n_outputs_ == b.n_outputs_
    rtol = max(tol, 1e-7 if kw["solver"] == "lbfgs" else 2e-3)   # (as above)
    np.testing.assert_allclose(a.loss_, b.loss_, rtol=rtol)
    pa, pb = a.predict(X), b.predict(X)
    assert pa.shape == pb.shape and pb.dtype == dtype
    np.testing.assert_allclose(pa, pb, rtol=10 * tol, atol=10 * tol)


@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
@pytest.mark.parametrize("kind", ["multiclass", "binary"])
def test_sample_weight_as_sklearns(small, solver, kind):
    _quiet()
    X, y = small
    y = y if kind == "multiclass" else (y > 4).astype(int)
    w = np.random.default_rng(1).uniform(0, 3, len(y))
    w[:30] = 0
    kw = dict(hidden_layer_sizes=(12,), random_state=0, max_iter=5, solver=solver,
              learning_rate_init=0.1, batch_size=40)
    a = sknn.MLPClassifier(**kw).fit(X, y, sample_weight=w)
    b = MLPClassifier(**kw).fit(X, y, sample_weight=w)
    _assert_same_weights(a, b, 1e-9)
    # integer weights are repeated rows (L-BFGS, full batch)
    if solver == "lbfgs":
        wi = np.arange(len(y)) % 3
        c = MLPClassifier(**kw).fit(X, y, sample_weight=wi)
        d = MLPClassifier(**kw).fit(np.repeat(X, wi, axis=0), np.repeat(y, wi))
        np.testing.assert_allclose(c.predict_proba(X), d.predict_proba(X), atol=1e-6)


def test_partial_fit_and_warm_start_as_sklearns(small):
    _quiet()
    X, y = small
    kw = dict(hidden_layer_sizes=(16,), random_state=0, solver="sgd",
              learning_rate_init=0.1, learning_rate="invscaling")
    a, b = sknn.MLPClassifier(**kw), MLPClassifier(**kw)
    for lo, hi in [(0, 150), (150, 400), (0, 37)]:       # another batch count each time
        a.partial_fit(X[lo:hi], y[lo:hi], classes=np.arange(10))
        b.partial_fit(X[lo:hi], y[lo:hi], classes=np.arange(10))
    _assert_same_weights(a, b, 1e-9)
    assert a.n_iter_ == b.n_iter_ == 1 and a.t_ == b.t_ == 437   # (epochs of the last call)
    kw = dict(hidden_layer_sizes=(16,), random_state=0, solver="sgd", learning_rate_init=0.1,
              warm_start=True, max_iter=3)
    a, b = sknn.MLPClassifier(**kw), MLPClassifier(**kw)
    for _ in range(2):
        a.fit(X, y)
        b.fit(X, y)
    _assert_same_weights(a, b, 1e-9)
    assert a.n_iter_ == b.n_iter_ == 3 and a.t_ == b.t_ == 6 * len(X)
    r1 = sknn.MLPRegressor(hidden_layer_sizes=(8,), random_state=0, solver="sgd",
                           learning_rate_init=0.01)
    r2 = MLPRegressor(hidden_layer_sizes=(8,), random_state=0, solver="sgd",
                      learning_rate_init=0.01)
    for _ in range(3):
        r1.partial_fit(X, X[:, 20])
        r2.partial_fit(X, X[:, 20])
    _assert_same_weights(r1, r2, 1e-9)


def test_early_stopping_split_is_stratified(small, monkeypatch):
    # the validation split of a classifier keeps the class proportions (binary and
    # multiclass; multilabel is not stratified), as scikit-learn documents
    import fastgd.sklearn._mlp as mod
    seen = {}

    def split(*arrays, **kw):
        seen.update(kw)
        out = train_test_split(*arrays, **kw)
        seen["yv"] = out[5]
        return out

    monkeypatch.setattr(mod, "train_test_split", split)
    _quiet()
    X, y = small
    m = MLPClassifier((8,), early_stopping=True, validation_fraction=0.25, max_iter=3,
                      random_state=0).fit(X, y)
    np.testing.assert_array_equal(seen["stratify"], y)
    counts = np.bincount(seen["yv"], minlength=10)
    np.testing.assert_allclose(counts, 0.25 * np.bincount(y), atol=1)
    assert len(m.validation_scores_) == m.n_iter_ == 3
    MLPClassifier((8,), early_stopping=True, max_iter=2).fit(X, np.c_[y > 4, y % 2])
    assert seen["stratify"] is None
    MLPRegressor(hidden_layer_sizes=(8,), early_stopping=True, max_iter=2).fit(X, X[:, 20])
    assert seen["stratify"] is None


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_is_close_to_sklearns(small, dtype):
    _quiet()
    X, y = small
    X = X.astype(dtype)
    kw = dict(hidden_layer_sizes=(32,), random_state=0, max_iter=10)
    a = sknn.MLPClassifier(**kw).fit(X, y)
    b = MLPClassifier(**kw).fit(X, y)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=2e-3)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=0.02)
    assert b.coefs_[0].dtype == dtype


def test_other_fastgd_optimizers_by_name(small):
    _quiet()
    X, y = small
    scores = {}
    for solver in ("rmsprop", "adamw", "nadam", "adagrad"):
        m = MLPClassifier((32,), solver=solver, learning_rate_init=0.01, max_iter=30,
                          random_state=0).fit(X, y)
        scores[solver] = m.score(X, y)
        assert m.loss_curve_[-1] < 0.5 * m.loss_curve_[0], solver
    assert min(scores.values()) > 0.9


# ---------------------------------------------------------------------------- attributes
def test_fitted_attributes_as_sklearns(small):
    _quiet()
    X, y = small
    for cls_ours, cls_theirs, yy in [(MLPClassifier, sknn.MLPClassifier, y),
                                     (MLPRegressor, sknn.MLPRegressor, X[:, :2])]:
        for kw in (dict(), dict(early_stopping=True), dict(solver="lbfgs")):
            kw = dict(hidden_layer_sizes=(7, 5), max_iter=3, random_state=0) | kw
            a, b = cls_theirs(**kw).fit(X, yy), cls_ours(**kw).fit(X, yy)
            names = {k for k in vars(a) if k.endswith("_") and not k.startswith("_")}
            assert names == {k for k in vars(b) if k.endswith("_") and not k.startswith("_")}
            for k in names:
                va, vb = getattr(a, k), getattr(b, k)
                assert type(va) is type(vb) or (va is None) == (vb is None), k
            assert [W.shape for W in a.coefs_] == [W.shape for W in b.coefs_]
            assert [c.shape for c in a.intercepts_] == [c.shape for c in b.intercepts_]


def test_feature_names_in_from_a_dataframe(small):
    pd = pytest.importorskip("pandas")
    X, y = small
    df = pd.DataFrame(X[:, :5], columns=[f"f{i}" for i in range(5)])
    m = MLPClassifier((8,), max_iter=3, random_state=0)
    with warnings.catch_warnings():
        _quiet()
        m.fit(df, y)
    np.testing.assert_array_equal(m.feature_names_in_, df.columns)
    with pytest.warns(UserWarning, match="feature names"):
        m.predict(X[:, :5])
    with pytest.raises(ValueError, match="The feature names should match"):
        m.predict(df.rename(columns={"f0": "g0"}))
    r = LinearRegression(solver="closed_form").fit(df, X[:, 7])
    np.testing.assert_array_equal(r.feature_names_in_, df.columns)


@pytest.mark.parametrize("in_dtype, out_dtype", [(np.float32, np.float32),
                                                  (np.float64, np.float64),
                                                  (np.int64, np.float64),
                                                  (np.uint8, np.float64)])
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_dtype_kept_end_to_end(small, in_dtype, out_dtype, solver):
    _quiet()
    X, y = small
    X = (X * 16).astype(in_dtype)
    m = MLPClassifier((8,), solver=solver, max_iter=3, random_state=0).fit(X, y)
    assert all(W.dtype == out_dtype for W in m.coefs_ + m.intercepts_)
    assert m.predict_proba(X).dtype == out_dtype
    assert all(g.dtype == out_dtype for g in m._model.gradients())
    if solver != "lbfgs":
        for entry in m._optimizer.state.values():
            assert all(v.dtype == out_dtype for v in entry.values() if hasattr(v, "dtype"))
    r = MLPRegressor(hidden_layer_sizes=(8,), solver=solver, max_iter=3,
                     random_state=0).fit(X, X[:, 20].astype(np.float64))
    assert r.coefs_[0].dtype == out_dtype and r.predict(X).dtype == out_dtype
    lr = LinearRegression(solver="closed_form").fit(X, X[:, 20])
    assert lr.coef_.dtype == out_dtype and lr.predict(X).dtype == out_dtype


def test_outputs_binary_multiclass_multilabel(small):
    _quiet()
    X, y = small
    yb = np.where(y > 4, "b", "a")
    m = MLPClassifier((8,), max_iter=5, random_state=0).fit(X, yb)
    assert m.out_activation_ == "logistic" and m.n_outputs_ == 1
    p = m.predict_proba(X)
    assert p.shape == (len(X), 2)
    np.testing.assert_allclose(p.sum(axis=1), 1)
    np.testing.assert_allclose(m.predict_log_proba(X), np.log(p))
    assert set(m.predict(X)) <= {"a", "b"}
    m = MLPClassifier((8,), max_iter=5, random_state=0).fit(X, y)
    assert m.out_activation_ == "softmax" and m.predict_proba(X).shape == (len(X), 10)
    np.testing.assert_allclose(m.predict_proba(X).sum(axis=1), 1)
    Y = np.c_[y > 4, y % 2 == 0].astype(int)
    m = MLPClassifier((8,), max_iter=5, random_state=0).fit(X, Y)
    assert m.out_activation_ == "logistic" and m.n_outputs_ == 2
    assert m.predict(X).shape == Y.shape and m.predict_proba(X).shape == Y.shape
    r = MLPRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X, X[:, :3])
    assert r.predict(X).shape == (len(X), 3) and r.n_outputs_ == 3


def test_verbose_prints_sklearns_lines(small, capsys):
    _quiet()
    X, y = small
    m = MLPClassifier((8,), max_iter=3, verbose=True, random_state=0).fit(X, y)
    out = capsys.readouterr().out.splitlines()
    assert out == [f"Iteration {i + 1}, loss = {m.loss_curve_[i]:.8f}" for i in range(3)]


@pytest.mark.parametrize("params", [
    dict(solver="sgd", learning_rate_init=0.1, tol=0.05, n_iter_no_change=2),
    dict(solver="sgd", learning_rate_init=0.1, early_stopping=True, tol=0.05,
         n_iter_no_change=2),
    dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.3, tol=0.05,
         n_iter_no_change=1),
], ids=["loss", "early_stopping", "adaptive"])
def test_verbose_output_is_sklearns(small, capsys, params):
    # binary target: the early-stopping split is the same as scikit-learn's
    _quiet()
    X, y = small
    y = (y > 4).astype(int)
    kw = dict(hidden_layer_sizes=(8,), max_iter=40, verbose=True, random_state=0) | params
    sknn.MLPClassifier(**kw).fit(X, y)
    theirs = capsys.readouterr().out.splitlines()
    MLPClassifier(**kw).fit(X, y)
    ours = capsys.readouterr().out.splitlines()
    number = re.compile(r"\d+\.\d+")
    assert [number.sub("#", line) for line in ours] == [number.sub("#", line) for line in theirs]
    assert any("Stopping" in line for line in ours)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose([float(v) for v in number.findall(a)],
                                   [float(v) for v in number.findall(b)], rtol=1e-4)


def test_convergence_warning_at_max_iter(small):
    X, y = small
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(2\) reached"):
        MLPClassifier((8,), max_iter=2, random_state=0).fit(X, y)
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        MLPClassifier((8,), solver="lbfgs", max_iter=2, random_state=0).fit(X, y)
    with pytest.warns(ConvergenceWarning, match="EVALUATIONS EXCEEDS LIMIT"):
        m = MLPClassifier((8,), solver="lbfgs", max_fun=5, random_state=0).fit(X, y)
    assert m.n_iter_ <= 5
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        m = MLPClassifier((8,), max_iter=500, tol=0.1, n_iter_no_change=1,
                          random_state=0).fit(X, y)
    assert m.n_iter_ < 500


# ---------------------------------------------------------------------------- quality
def test_digits_accuracy_within_001_of_sklearn(digits):
    _quiet()
    X, y = digits
    ours, theirs = [], []
    for seed in range(3):
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=seed)
        for solver in ("adam", "lbfgs"):
            kw = dict(hidden_layer_sizes=(64,), solver=solver, max_iter=60, random_state=seed)
            ours.append(MLPClassifier(**kw).fit(Xtr, ytr).score(Xte, yte))
            theirs.append(sknn.MLPClassifier(**kw).fit(Xtr, ytr).score(Xte, yte))
    assert np.mean(theirs) > 0.95
    assert abs(np.mean(ours) - np.mean(theirs)) <= 0.01


def test_regression_r2_within_001_of_sklearn():
    # Friedman's #1 regression problem: y = 10 sin(pi x1 x2) + 20 (x3 - 1/2)^2 + 10 x4 + 5 x5
    # + noise, 10 features (5 unused), 25% held out
    _quiet()
    ours, theirs = [], []
    for seed in range(3):
        X, y = make_friedman1(1000, noise=1.0, random_state=seed)
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=seed)
        for solver in ("adam", "lbfgs"):
            kw = dict(hidden_layer_sizes=(32,), solver=solver, max_iter=300,
                      learning_rate_init=0.01, random_state=seed)
            for est, out in ((MLPRegressor(**kw), ours), (sknn.MLPRegressor(**kw), theirs)):
                model = make_pipeline(StandardScaler(), est).fit(Xtr, ytr)
                out.append(model.score(Xte, yte))
    assert np.mean(theirs) > 0.85
    assert abs(np.mean(ours) - np.mean(theirs)) <= 0.01


# ---------------------------------------------------------------------------- meta-estimators
def test_pipeline_grid_search_cross_val_clone_pickle(small):
    _quiet()
    X, y = small
    pipe = make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=20, random_state=0))
    grid = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-1],
                               "mlpclassifier__solver": ["adam", "lbfgs"]}, cv=3)
    grid.fit(X, y)
    assert grid.best_score_ > 0.85
    assert set(grid.cv_results_["param_mlpclassifier__solver"]) == {"adam", "lbfgs"}
    scores = cross_val_score(MLPRegressor(hidden_layer_sizes=(16,), solver="lbfgs",
                                          max_iter=50, random_state=0), X, X[:, 20], cv=3)
    assert scores.shape == (3,) and np.all(scores > 0.5)
    scores = cross_val_score(LinearRegression(solver="closed_form"), X, X[:, 20] + X[:, 3],
                             cv=3)
    np.testing.assert_allclose(scores, 1.0)
    for est in (MLPClassifier((16,), max_iter=5, random_state=0),
                MLPClassifier((16,), solver="lbfgs", max_iter=5, random_state=0),
                MLPRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0),
                LinearRegression(solver="minibatch", max_iter=5, random_state=0)):
        c = clone(est)
        assert c.get_params() == est.get_params() and not hasattr(c, "n_features_in_")
        target = y if isinstance(est, MLPClassifier) else X[:, 20]
        est.fit(X, target)
        copy = pickle.loads(pickle.dumps(est))
        np.testing.assert_array_equal(copy.predict(X), est.predict(X))
        if hasattr(est, "predict_proba"):
            np.testing.assert_array_equal(copy.predict_proba(X), est.predict_proba(X))
        if hasattr(copy, "partial_fit") and isinstance(copy, MLPRegressor):
            copy.partial_fit(X, target)          # an unpickled model trains on
            assert copy.t_ == est.t_ + len(X) and copy.n_iter_ == 1
            assert not np.array_equal(copy.predict(X), est.predict(X))
        assert not hasattr(clone(est), "coefs_")


@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_unpickled_estimator_trains_on_as_the_original(small, solver, dtype):
    # the optimizer's state (Adam's moments and step, SGD's velocity) travels in the pickle
    _quiet()
    X, y = small
    X = X.astype(dtype)
    kw = dict(hidden_layer_sizes=(16,), solver=solver, learning_rate_init=0.01,
              random_state=0)
    a = MLPClassifier(**kw).partial_fit(X, y, classes=np.arange(10))
    b = pickle.loads(pickle.dumps(a))
    for _ in range(2):
        a.partial_fit(X, y)
        b.partial_fit(X, y)
    _assert_same_weights(a, b, 0.0, dtype)
    s = sknn.MLPClassifier(**kw).partial_fit(X, y, classes=np.arange(10))
    s = pickle.loads(pickle.dumps(s))
    for _ in range(2):
        s.partial_fit(X, y)
    if solver == "sgd":
        _assert_same_weights(s, a, TOL[dtype], dtype)


# ---------------------------------------------------------------------------- bad input
def _error(call):
    with pytest.raises(Exception) as info:
        call()
    return info.value


def _fit(est, X, y, **kw):
    _quiet()
    return est.fit(X, y, **kw)


@pytest.mark.parametrize("name, make", [
    ("wrong n_features at predict", lambda c, X, y: _fit(c(max_iter=2), X, y).predict(X[:, :5])),
    ("NaN in X", lambda c, X, y: c().fit(np.where(X == X.max(), np.nan, X), y)),
    ("inf in X", lambda c, X, y: c().fit(np.where(X == X.max(), np.inf, X), y)),
    ("y of the wrong length", lambda c, X, y: c().fit(X, y[:-3])),
    ("unknown activation", lambda c, X, y: c(activation="softplus").fit(X, y)),
    ("hidden_layer_sizes 0", lambda c, X, y: c(hidden_layer_sizes=(3, 0)).fit(X, y)),
    ("alpha < 0", lambda c, X, y: c(alpha=-1.0).fit(X, y)),
    ("learning_rate", lambda c, X, y: c(learning_rate="cyclic").fit(X, y)),
    ("X 1-D", lambda c, X, y: c().fit(X[:, 0], y)),
    ("X 3-D", lambda c, X, y: c().fit(X[:, :, None], y)),
    ("X of strings", lambda c, X, y: c().fit(np.full(X.shape, "a"), y)),
    ("not fitted", lambda c, X, y: c().predict(X)),
    ("NaN at predict", lambda c, X, y: _fit(c(max_iter=2), X, y).predict(X * np.nan)),
    ("empty X", lambda c, X, y: c().fit(X[:0], y[:0])),
])
@pytest.mark.parametrize("pair", ["classifier", "regressor"])
def test_bad_input_gives_sklearns_error(small, name, make, pair):
    X, y = small
    ours, theirs = ((MLPClassifier, sknn.MLPClassifier) if pair == "classifier" else
                    (MLPRegressor, sknn.MLPRegressor))
    yy = y if pair == "classifier" else X[:, 20]
    a = _error(lambda: make(theirs, X, yy))
    b = _error(lambda: make(ours, X, yy))
    assert type(a) is type(b), (a, b)
    assert _norm(str(b)) == _norm(str(a).replace("MLPClassifier", ours.__name__))


def _norm(message):
    """The message with the items of each {...} set sorted (a set prints in hash order)."""
    return re.sub(r"\{([^{}]*)\}",
                  lambda m: "{" + ", ".join(sorted(m.group(1).split(", "))) + "}", message)


def test_unknown_solver_names_the_choices(small):
    X, y = small
    with pytest.raises(ValueError, match=r"'solver' parameter of MLPClassifier .*'lbfgs'.*"
                       r"rmsprop.*Got 'newton' instead") as info:
        MLPClassifier(solver="newton").fit(X, y)
    assert isinstance(info.value, type(_error(
        lambda: sknn.MLPClassifier(solver="newton").fit(X, y))))
    with pytest.raises(ValueError, match="'solver' parameter"):
        MLPRegressor(solver=3).fit(X, X[:, 0])


def test_partial_fit_errors_as_sklearns(small):
    _quiet()
    X, y = small
    for cls in (sknn.MLPClassifier, MLPClassifier):
        m = cls((8,), random_state=0)
        with pytest.raises(ValueError, match="classes must be passed on the first call"):
            m.partial_fit(X, y)
        m.partial_fit(X[y < 5], y[y < 5], classes=np.arange(5))
        with pytest.raises(ValueError, match=re.escape("`y` has classes not in "
                                                       "`self.classes_`")):
            m.partial_fit(X, y)
        with pytest.raises(ValueError, match="X has 10 features, but"):
            m.partial_fit(X[:, :10], y % 5)
        lb = cls((8,), solver="lbfgs")
        assert not hasattr(lb, "partial_fit")
        with pytest.raises(AttributeError, match="has no attribute 'partial_fit'"):
            lb.partial_fit(X, y, classes=np.arange(10))
    with pytest.raises(ValueError, match="negative"):
        MLPRegressor(loss="poisson", max_iter=2).fit(X, X[:, 20] - 1)


def test_warm_start_with_other_classes_is_refused_as_sklearn(small):
    _quiet()
    X, y = small
    for yy in (y % 5, np.c_[y > 4, y % 2]):
        errors = []
        for cls in (sknn.MLPClassifier, MLPClassifier):
            m = cls((8,), warm_start=True, max_iter=2, random_state=0).fit(X, y)
            before = [W.copy() for W in m.coefs_]
            errors.append(_error(lambda m=m, yy=yy: m.fit(X, yy)))
            np.testing.assert_array_equal(m.classes_, np.arange(10))
            if cls is MLPClassifier:
                assert all(np.array_equal(a, b) for a, b in zip(before, m.coefs_))
        assert type(errors[0]) is type(errors[1]) is ValueError
        if yy.ndim == 1:
            assert str(errors[1]) == str(errors[0])
    m = MLPClassifier((8,), warm_start=True, max_iter=2, random_state=0).fit(X, y)
    m.fit(X[::-1], y[::-1])                     # the same classes: trains on
    assert m.n_iter_ == 2
    r = MLPRegressor(hidden_layer_sizes=(8,), warm_start=True, max_iter=2).fit(X, X[:, :2])
    t_, before = r.t_, [W.copy() for W in r.coefs_]
    for Y in (X[:, :3], X[:, 0]):
        with pytest.raises(ValueError, match="y has [13] outputs, but MLPRegressor was fitted "
                           "with 2"):
            r.fit(X, Y)
        with pytest.raises(ValueError, match="outputs"):
            r.partial_fit(X, Y)
    assert r.t_ == t_ and all(np.array_equal(a, b) for a, b in zip(before, r.coefs_))


def test_column_y_warns_as_sklearn(small):
    X, y = small
    from sklearn.exceptions import DataConversionWarning
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        MLPClassifier((4,), max_iter=1).fit(X, y[:, None])


def test_not_fitted_is_sklearns_error(small):
    X, _ = small
    for est in (MLPClassifier(), MLPRegressor(), LinearRegression()):
        with pytest.raises(NotFittedError):
            est.predict(X)


def test_non_finite_training_is_reported(small):
    _quiet()
    X, y = small
    for cls in (sknn.MLPRegressor, MLPRegressor):
        with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
            cls(hidden_layer_sizes=(8,), solver="sgd", activation="identity",
                learning_rate_init=1.0, max_iter=50, random_state=0).fit(X * 100, X[:, 20] * 100)


def test_synthetic_wide_case_trains(small):
    # the bench's second case, scaled down: several hidden layers, batch 64, float32
    _quiet()
    X, y = make_classification(2000, 40, n_informative=20, n_classes=4, random_state=0)
    Xtr, Xte, ytr, yte = train_test_split(X.astype(np.float32), y, random_state=0)
    kw = dict(hidden_layer_sizes=(64, 32), batch_size=64, max_iter=10, random_state=0)
    a = sknn.MLPClassifier(**kw).fit(Xtr, ytr).score(Xte, yte)
    b = MLPClassifier(**kw).fit(Xtr, ytr).score(Xte, yte)
    assert abs(a - b) < 0.03 and b > 0.7


def test_import_fastgd_does_not_import_sklearn():
    import subprocess
    import sys
    code = ("import sys, fastgd, fastgd.linear_model, fastgd.nn, fastgd.optim; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'pandas')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
    code = "import sys, fastgd.sklearn; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "True"
