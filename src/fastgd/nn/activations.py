"""Element-wise activations and softmax, each forward beside its backward."""
from typing import TYPE_CHECKING

import numpy as np

from .. import _checks
from .. import _nn
from .._typing import FloatArray, Real
from ..reference import nn as ref
from .module import Module, check_input


class _Activation(Module):
    kind = "identity"

    def __init__(self, *, backend: str = "native") -> None:
        super().__init__(backend)
        self._cache = None
        self.slope: float = 0.0

    if TYPE_CHECKING:  # the numpy twin of each activation (the reference backend)
        def _ref_forward(self, z: FloatArray) -> FloatArray: ...

        def _ref_backward(self, z: FloatArray, a: FloatArray, g: FloatArray) -> FloatArray: ...

    def forward(self, x: FloatArray) -> FloatArray:
        x = check_input(x)
        if self.backend == "native":
            a = np.empty_like(x, order="C")
            _nn.activation_forward(self.kind, self.slope, np.ascontiguousarray(x), a)
        else:
            a = self._ref_forward(x)
        self._cache = (x, a)
        return a

    def backward(self, grad_output: FloatArray) -> FloatArray:
        z, a = self._saved()
        g = check_input(grad_output, "grad_output", dtype=z.dtype)
        if g.shape != a.shape:
            raise ValueError(f"grad_output has shape {g.shape}, expected {a.shape}")
        if self.backend == "native":
            dz = np.empty_like(a)
            _nn.activation_backward(self.kind, self.slope, np.ascontiguousarray(z), a,
                                    np.ascontiguousarray(g), dz)
            return dz
        return self._ref_backward(z, a, g)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Identity(_Activation):
    """y = x."""

    kind = "identity"

    def _ref_forward(self, z: FloatArray) -> FloatArray:
        return z.copy()

    def _ref_backward(self, z: FloatArray, a: FloatArray, g: FloatArray) -> FloatArray:
        return g.copy()


class ReLU(_Activation):
    r"""Rectified linear unit, :math:`y = \max(x, 0)`, :math:`y' = [x > 0]`.

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> fastgd.nn.ReLU()(np.array([-1.0, 2.0]))
    array([0., 2.])
    """

    kind = "relu"

    def _ref_forward(self, z: FloatArray) -> FloatArray:
        return ref.relu(z)

    def _ref_backward(self, z: FloatArray, a: FloatArray, g: FloatArray) -> FloatArray:
        return ref.relu_backward(a, g)


class LeakyReLU(_Activation):
    r""":math:`y = x` for :math:`x > 0`, else :math:`\text{negative\_slope}\cdot x`.

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> fastgd.nn.LeakyReLU(0.1)(np.array([-1.0, 2.0]))
    array([-0.1,  2. ])
    """

    kind = "leaky_relu"

    def __init__(self, negative_slope: Real = 0.01, *, backend: str = "native") -> None:
        super().__init__(backend=backend)
        self.slope = _checks.real(negative_slope, "negative_slope")

    def _ref_forward(self, z: FloatArray) -> FloatArray:
        return ref.leaky_relu(z, self.slope)

    def _ref_backward(self, z: FloatArray, a: FloatArray, g: FloatArray) -> FloatArray:
        return ref.leaky_relu_backward(z, g, self.slope)

    def _config(self) -> dict[str, float]:
        return {"negative_slope": self.slope}

    def __repr__(self) -> str:
        return f"LeakyReLU(negative_slope={self.slope})"


class Sigmoid(_Activation):
    r""":math:`y = 1 / (1 + e^{-x})`, :math:`y' = y (1 - y)`; computed without overflow.

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> fastgd.nn.Sigmoid()(np.array([0.0]))
    array([0.5])
    """

    kind = "sigmoid"

    def _ref_forward(self, z: FloatArray) -> FloatArray:
        return ref.sigmoid(z)

    def _ref_backward(self, z: FloatArray, a: FloatArray, g: FloatArray) -> FloatArray:
        return ref.sigmoid_backward(a, g)


class Tanh(_Activation):
    r""":math:`y = \tanh x`, :math:`y' = 1 - y^2`.

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> fastgd.nn.Tanh()(np.array([0.0]))
    array([0.])
    """

    kind = "tanh"

    def _ref_forward(self, z: FloatArray) -> FloatArray:
        return ref.tanh(z)

    def _ref_backward(self, z: FloatArray, a: FloatArray, g: FloatArray) -> FloatArray:
        return ref.tanh_backward(a, g)


class Softmax(_Activation):
    r"""Softmax over the last axis, :math:`y_j = e^{x_j} / \sum_k e^{x_k}` (max-shifted).

    Its backward is :math:`dx = y \odot (dy - \langle dy, y \rangle)`. For classification,
    feed logits to `CrossEntropyLoss` instead (it fuses log-softmax).

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> fastgd.nn.Softmax()(np.zeros((1, 4)))
    array([[0.25, 0.25, 0.25, 0.25]])
    """

    kind = "softmax"

    def forward(self, x: FloatArray) -> FloatArray:
        x = check_input(x)
        if x.ndim == 0:
            raise ValueError("x must have at least one axis for softmax")
        if self.backend == "native":
            flat: FloatArray = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
            a = np.empty_like(flat)
            _nn.softmax_forward(flat, a)
            a = a.reshape(x.shape)
        else:
            a = ref.softmax(x)
        self._cache = (x, a)
        return a

    def backward(self, grad_output: FloatArray) -> FloatArray:
        z, a = self._saved()
        g = check_input(grad_output, "grad_output", dtype=a.dtype)
        if g.shape != a.shape:
            raise ValueError(f"grad_output has shape {g.shape}, expected {a.shape}")
        if self.backend == "native":
            width = a.shape[-1]
            dx = np.empty((a.size // max(width, 1), width), a.dtype)
            _nn.softmax_backward(a.reshape(-1, width), np.ascontiguousarray(g).reshape(-1, width), dx)
            return dx.reshape(a.shape)
        return ref.softmax_backward(a, g)


#: the one registry of activations: name (the class's ``kind``) -> class; `Sequential`,
#: `MLP`, ``fastgd train --activation`` and the model files read it
ACTIVATIONS = {cls.kind: cls for cls in (Identity, ReLU, LeakyReLU, Sigmoid, Tanh, Softmax)}

#: the activations `MLP` puts between its layers (``fastgd train --activation``), by name
HIDDEN_ACTIVATIONS = {name: ACTIVATIONS[name]
                      for name in ("relu", "leaky_relu", "sigmoid", "tanh")}
