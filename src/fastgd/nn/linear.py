"""The fully connected layer."""
from typing import Any, cast

import numpy as np

from .. import _checks
from .. import _nn
from .._typing import Array, ArrayLike, DTypeLike, FloatArray
from ..reference import nn as ref
from . import init as _init
from .module import Module, check_input


class Linear(Module):
    r"""Fully connected layer, :math:`Z = X W + b`.

    .. math::
        \frac{\partial L}{\partial W} = X^\top \frac{\partial L}{\partial Z},\quad
        \frac{\partial L}{\partial b} = \sum_{\text{rows}} \frac{\partial L}{\partial Z},\quad
        \frac{\partial L}{\partial X} = \frac{\partial L}{\partial Z} W^\top

    Parameters
    ----------
    in_features, out_features : int
        Sizes of the input and of the output (>= 1).
    bias : bool, default True
    dtype : float32 or float64, default float32
        ``np.float32``, ``"float64"``, ``np.dtype(...)``: anything numpy reads as one of the
        two (None, which numpy would read as float64, is refused).
    init : str, default "auto"
        "he_uniform", "he_normal", "xavier_uniform", "xavier_normal", "zeros", or "auto":
        Xavier, switched to He by `Sequential` when a ReLU/LeakyReLU follows the layer.
    seed : None, int >= 0, numpy.random.Generator or numpy.random.SeedSequence, optional
        Randomness of the initial weights (same seed, same weights).
    backend : {"native", "reference"}, default "native"
        BLAS products and C epilogues, or the numpy twin.

    Raises
    ------
    TypeError, ValueError
        For an argument of the wrong type or out of range, naming it.

    Attributes
    ----------
    W : ndarray, shape (in_features, out_features)
        The transpose of ``torch.nn.Linear.weight``, which is ``(out_features, in_features)``.
    b : ndarray, shape (out_features,) or None
    dW, db : ndarray
        The gradients written by ``backward``, of the shapes of ``W`` and ``b`` (``db`` is
        None without a bias).

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> layer = fastgd.nn.Linear(3, 2, init="zeros")
    >>> layer.b[...] = [1, 2]
    >>> layer(np.ones((4, 3), np.float32))[0]
    array([1., 2.], dtype=float32)

    Coming from PyTorch, copy a ``torch.nn.Linear`` into a layer of the same sizes with
    ``layer.W[...] = torch_linear.weight.detach().numpy().T`` and
    ``layer.b[...] = torch_linear.bias.detach().numpy()``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 dtype: DTypeLike = np.float32, init: str = "auto",
                 seed: _init.SeedLike = None, *, backend: str = "native") -> None:
        super().__init__(backend)
        self.in_features = _checks.integer(in_features, "in_features", low=1)
        self.out_features = _checks.integer(out_features, "out_features", low=1)
        bias = _checks.flag(bias, "bias")
        self.dtype = _checks.float_dtype(dtype)
        if not isinstance(init, str) or (init != "auto" and init not in _init.SCHEMES):
            raise ValueError(f"init must be one of {_init.SCHEMES} or 'auto', got {init!r}")
        self.init = init
        self.seed = _checks.seed(seed)
        self._W = np.empty((self.in_features, self.out_features), self.dtype)
        self._b: FloatArray | None = np.zeros(self.out_features, self.dtype) if bias else None
        self.dW = np.zeros_like(self._W)
        self.db: FloatArray | None = np.zeros_like(self._b) if bias else None
        self.reset_parameters("xavier_uniform" if init == "auto" else init)
        self._cache = None

    def reset_parameters(self, scheme: str | None = None) -> None:
        """Draw W again (by ``scheme``, default the layer's own) from the layer's seed; b = 0."""
        if scheme is not None and (not isinstance(scheme, str) or scheme not in _init.SCHEMES):
            raise ValueError(f"scheme must be one of {_init.SCHEMES} or None, got {scheme!r}")
        rng = self.seed if isinstance(self.seed, np.random.Generator) \
            else np.random.default_rng(self.seed)
        scheme = scheme or ("xavier_uniform" if self.init == "auto" else self.init)
        self._W[...] = _init.draw(scheme, self.in_features, self.out_features, rng, self.dtype)
        if self._b is not None:
            self._b[...] = 0

    # W and b are the layer's own storage: assignment copies into it, so optimizers and
    # compiled models that hold the arrays keep seeing the layer's parameters.
    @property
    def W(self) -> FloatArray:
        return self._W

    @W.setter
    def W(self, value: ArrayLike) -> None:
        self._W[...] = _checked_value(value, self._W, "W")

    @property
    def b(self) -> FloatArray | None:
        return self._b

    @b.setter
    def b(self, value: ArrayLike) -> None:
        if self._b is None:
            raise ValueError("this Linear layer has no bias")
        self._b[...] = _checked_value(value, self._b, "b")

    def parameters(self) -> list[FloatArray]:
        return [self._W] if self._b is None else [self._W, self._b]

    def gradients(self) -> list[FloatArray]:
        # db is an array exactly when b is
        return [self.dW] if self._b is None else [self.dW, cast(FloatArray, self.db)]

    def forward(self, x: FloatArray) -> FloatArray:
        x = check_input(x, dtype=self.dtype, ndim=2, features=self.in_features)
        if self.backend == "native":
            x = np.ascontiguousarray(x)
            z = np.empty((x.shape[0], self.out_features), self.dtype)
            _nn.linear_forward(x, self._W, self._b, z)
        else:
            z = ref.linear_forward(x, self._W, self._b)
        self._cache = x
        return z

    def backward(self, grad_output: FloatArray) -> FloatArray:
        x = self._saved()
        g = check_input(grad_output, "grad_output", dtype=self.dtype, ndim=2)
        if g.shape != (x.shape[0], self.out_features):
            raise ValueError(f"grad_output has shape {g.shape}, expected "
                             f"{(x.shape[0], self.out_features)}")
        if self.backend == "native":
            dx = np.empty_like(x)
            _nn.linear_backward(x, self._W, np.ascontiguousarray(g), self.dW, self.db, dx)
            return dx
        dW, db, dx = ref.linear_backward(x, self._W, g)
        self.dW[...] = dW
        if self.db is not None:
            self.db[...] = db
        return dx

    def _config(self) -> dict[str, Any]:
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self._b is not None, "dtype": self.dtype.name, "init": self.init}

    def __repr__(self) -> str:
        return (f"Linear(in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self._b is not None}, dtype={self.dtype.name})")


def _checked_value(value: ArrayLike, like: FloatArray, name: str) -> Array:
    v = np.asarray(value)
    if v.shape != like.shape:
        raise ValueError(f"{name} must have shape {like.shape}, got {v.shape}")
    if not np.issubdtype(v.dtype, np.number):
        raise TypeError(f"{name} must be numeric, got {v.dtype}")
    return v
