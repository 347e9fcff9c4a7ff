"""scikit-learn's own estimator checks over fastgd.sklearn's estimators."""
import pytest

pytest.importorskip("sklearn")
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastgd.sklearn import LinearRegression, MLPClassifier, MLPRegressor  # noqa: E402


def _estimators():
    # max_iter=100 for the networks: scikit-learn's own test suite runs its MLPClassifier and
    # MLPRegressor through these checks with max_iter=100 (PER_ESTIMATOR_CHECK_PARAMS); with
    # 200 L-BFGS iterations its own MLPClassifier saturates a logistic output to exactly 1.0
    # in check_classifiers_multilabel_output_format_predict_proba, and so does this one
    return [MLPClassifier(max_iter=100, random_state=0),
            MLPRegressor(max_iter=100, random_state=0),
            MLPClassifier(solver="lbfgs", max_iter=100, random_state=0),
            MLPRegressor(solver="sgd", max_iter=100, random_state=0),
            MLPClassifier(solver="rmsprop", max_iter=100, random_state=0),
            MLPRegressor(loss="poisson", max_iter=100, random_state=0),
            LinearRegression(), LinearRegression(solver="closed_form"),
            LinearRegression(solver="minibatch", random_state=0)]


_DIVERGES = ("the check fits X ~ N(100, 1) (features not standardised): gradient descent with "
             "the default lr=0.01 diverges on it and fastgd raises ValueError naming lr "
             "(scikit-learn's SGDRegressor returns coefficients of 1e11 there instead)")


def _expected_failures(estimator):
    if isinstance(estimator, MLPRegressor) and estimator.loss == "poisson":
        # the check asks for R^2 > 0.5 after fitting its (shifted to y >= 0) regression data
        # with an exponential output; scikit-learn's own MLPRegressor(loss="poisson",
        # max_iter=100) fails it the same way (asserted in tests/test_sklearn_mlp.py)
        return {name: "a Poisson model of y = a linear target: R^2 under 0.5, as "
                "scikit-learn's own MLPRegressor(loss='poisson')" for name in
                ("check_regressors_train", "check_regressors_train(readonly_memmap=True)",
                 "check_regressors_train(readonly_memmap=True,X_dtype=float32)")}
    if not isinstance(estimator, LinearRegression):
        return {}
    if estimator.solver == "closed_form":
        return {"check_non_transformer_estimators_n_iter":
                "closed_form solves least squares directly (numpy.linalg.lstsq): no "
                "iterations, n_iter_ = 0 as documented; max_iter applies to the iterative "
                "solvers only"}
    return {name: _DIVERGES for name in
            ("check_fit_idempotent", "check_fit_check_is_fitted", "check_n_features_in")}


@parametrize_with_checks(_estimators(), expected_failed_checks=_expected_failures,
                         xfail_strict=True)
def test_sklearn_compatible(estimator, check):
    check(estimator)
