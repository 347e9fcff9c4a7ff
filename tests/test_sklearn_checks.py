"""scikit-learn's own estimator checks over fastgd.sklearn's estimators."""
import pytest

pytest.importorskip("sklearn")
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastgd.sklearn import MLPClassifier, MLPRegressor  # noqa: E402


def _estimators():
    # small and short: the checks fit many times
    return [MLPClassifier(random_state=0), MLPRegressor(random_state=0),
            MLPClassifier(solver="lbfgs", random_state=0),
            MLPRegressor(solver="sgd", random_state=0)]


@parametrize_with_checks(_estimators())
def test_sklearn_compatible(estimator, check):
    check(estimator)
