"""scikit-learn estimators trained on fastgd's native path.

`LinearRegression` is `fastgd.linear_model.LinearRegression` with scikit-learn's input
validation. `MLPClassifier` and `MLPRegressor` take scikit-learn's parameters, defaults and meaning
(`sklearn.neural_network`), and train the network compiled into one `fastgd._nn.Program`,
each epoch in one C call with the optimizer fused in. scikit-learn is needed to import this
subpackage (``import fastgd`` does not import it).
"""
from ._linear import LinearRegression
from ._mlp import MLPClassifier, MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor", "LinearRegression"]
