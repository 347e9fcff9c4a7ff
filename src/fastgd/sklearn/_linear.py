"""`LinearRegression`: `fastgd.linear_model.LinearRegression` as a scikit-learn estimator
(scikit-learn's input validation, error messages, tags and feature names)."""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from .. import linear_model as _lm


class LinearRegression(RegressorMixin, _lm.LinearRegression, BaseEstimator):
    """`fastgd.linear_model.LinearRegression` (same parameters, solvers and attributes) with
    scikit-learn's input validation: `sklearn.utils.validation.validate_data` in ``fit`` and
    ``predict`` (its errors for NaN, the wrong number of features, mismatched lengths; float32
    stays float32, other input becomes float64), ``feature_names_in_`` from a DataFrame, and
    `RegressorMixin.score`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd.sklearn import LinearRegression
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> LinearRegression(solver="closed_form").fit(X, 2 * X[:, 0] + 1).predict([[4.0]])
    array([9.])
    """

    def fit(self, X: Any, y: Any) -> LinearRegression:
        """Validate ``X`` and ``y`` as scikit-learn does, then fit as
        `fastgd.linear_model.LinearRegression.fit`; returns ``self``."""
        self._validate_params()
        X, y = validate_data(self, X, y, dtype=(np.float64, np.float32), y_numeric=True,
                             multi_output=True)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D (n_samples,), got shape {y.shape}; fit one model "
                             "per target column")
        names = getattr(self, "feature_names_in_", None)
        _lm.LinearRegression.fit(self, X, y)
        if names is not None:
            self.feature_names_in_ = names
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predictions for the rows of ``X`` (validated as scikit-learn does)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=(np.float64, np.float32), reset=False)
        return _lm.LinearRegression.predict(self, X)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """:math:`R^2` of the predictions (`sklearn.base.RegressorMixin.score`)."""
        return float(RegressorMixin.score(self, X, y, sample_weight=sample_weight))

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        return BaseEstimator.__repr__(self, N_CHAR_MAX)
