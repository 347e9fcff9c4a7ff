"""Losses: ``forward(pred, target) -> float`` (mean over the batch) and ``backward()``."""
from typing import TYPE_CHECKING

import numpy as np

from .. import _checks
from .. import _nn
from .._typing import Array, ArrayLike, FloatArray
from ..reference import nn as ref
from .module import check_input


class _Loss:
    kind: str = ""  # "mse", "cross_entropy", ... in each loss

    def __init__(self, *, backend: str = "native") -> None:
        self.backend = _checks.backend(backend)
        self._grad: FloatArray | None = None

    if TYPE_CHECKING:  # each loss's numpy twin (the reference backend): (mean loss, gradient)
        def _reference(self, pred: FloatArray, target: Array) -> tuple[float, FloatArray]: ...

    def __call__(self, pred: FloatArray, target: ArrayLike) -> float:
        return self.forward(pred, target)

    def forward(self, pred: FloatArray, target: ArrayLike) -> float:
        """The mean loss; remembers its gradient for ``backward``."""
        pred = check_input(pred, "input")
        target = self.check_target(pred, target)
        if pred.size == 0:
            raise ValueError("input is empty: the mean loss is undefined")
        if self.backend == "native":
            grad = np.empty(pred.shape, pred.dtype)
            value = _nn.loss(self.kind, np.ascontiguousarray(pred), target, grad)
        else:
            value, grad = self._reference(pred, target)
        self._grad = grad
        return float(value)

    def backward(self) -> FloatArray:
        """d loss / d input of the last ``forward``."""
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward() needs a forward() first")
        return self._grad

    def check_target(self, pred: FloatArray, target: ArrayLike) -> Array:
        """The target as the kernels take it; clear errors when it does not fit ``pred``."""
        if not isinstance(target, np.ndarray):
            target = np.asarray(target)
        if target.shape != pred.shape:
            raise ValueError(f"target has shape {target.shape} but input has {pred.shape}")
        if not (np.issubdtype(target.dtype, np.floating) or np.issubdtype(target.dtype, np.integer)
                or target.dtype == np.bool_):
            raise TypeError(f"target must be numeric, got {target.dtype}")
        return np.ascontiguousarray(target, dtype=pred.dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MSELoss(_Loss):
    r"""Mean squared error over all elements, :math:`L = \frac1N \sum (p - t)^2`,
    :math:`\partial L / \partial p = \frac2N (p - t)`.

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> fastgd.nn.MSELoss()(np.array([1.0, 2.0]), np.array([0.0, 0.0]))
    2.5
    """

    kind = "mse"

    def _reference(self, pred: FloatArray, target: Array) -> tuple[float, FloatArray]:
        return ref.mse(pred, target)


class CrossEntropyLoss(_Loss):
    r"""Softmax cross-entropy from logits and integer class labels, mean over the batch.

    .. math::
        L = \frac1n \sum_i \Big(\log \sum_j e^{z_{ij}} - z_{i y_i}\Big),\qquad
        \frac{\partial L}{\partial z} = \frac1n (\operatorname{softmax}(z) - \text{onehot}(y))

    Log-softmax is fused in and max-shifted, so large logits do not overflow.

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> round(fastgd.nn.CrossEntropyLoss()(np.zeros((2, 4)), np.array([0, 3])), 6)
    1.386294
    """

    kind = "cross_entropy"

    def check_target(self, pred: FloatArray, target: ArrayLike) -> Array:
        if pred.ndim != 2:
            raise ValueError(f"input must be 2-D logits (batch, classes), got shape {pred.shape}")
        target = np.asarray(target)
        if target.dtype == np.bool_ or not np.issubdtype(target.dtype, np.integer):
            raise TypeError(f"target must hold integer class labels, got dtype {target.dtype}")
        if target.shape != (pred.shape[0],):
            raise ValueError(f"target must have shape ({pred.shape[0]},), got {target.shape}")
        if target.size and (target.min() < 0 or target.max() >= pred.shape[1]):
            bad = target[(target < 0) | (target >= pred.shape[1])][0]
            raise ValueError(f"target holds the label {bad}, outside 0..{pred.shape[1] - 1} "
                             f"for {pred.shape[1]} classes")
        return np.ascontiguousarray(target, dtype=np.int64)

    def _reference(self, pred: FloatArray, target: Array) -> tuple[float, FloatArray]:
        return ref.cross_entropy(pred, target)


class BCEWithLogitsLoss(_Loss):
    r"""Binary cross-entropy of :math:`\sigma(x)` against targets in [0, 1], from the logits.

    .. math::
        L = \frac1N \sum \max(x, 0) - x t + \log(1 + e^{-|x|}),\qquad
        \frac{\partial L}{\partial x} = \frac1N(\sigma(x) - t)

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> round(fastgd.nn.BCEWithLogitsLoss()(np.zeros(3), np.array([0.0, 1.0, 1.0])), 6)
    0.693147
    """

    kind = "bce_with_logits"

    def _reference(self, pred: FloatArray, target: Array) -> tuple[float, FloatArray]:
        return ref.bce_with_logits(pred, target)


#: the one registry of losses: name (the class's ``kind``) -> class, read by `by_name`
LOSSES = {cls.kind: cls for cls in (MSELoss, CrossEntropyLoss, BCEWithLogitsLoss)}


def by_name(name: str) -> type[_Loss]:
    """A loss class from its name, a key of `LOSSES`: "mse", "cross_entropy" or
    "bce_with_logits"."""
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)} or a loss object, got {name!r}")
    return LOSSES[name]
