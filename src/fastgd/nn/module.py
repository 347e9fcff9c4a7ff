"""The layer protocol: ``forward`` keeps what ``backward`` needs; ``backward`` returns the
gradient with respect to the input and overwrites the layer's parameter gradients."""
from typing import Any

import numpy as np

from .. import _checks
from .._typing import DTypeLike, FloatArray


class Module:
    """Base class of layers and models.

    A module maps an array to an array. ``forward(x)`` computes the output and remembers
    what the chain rule needs; ``backward(grad_output)`` takes d loss / d output and returns
    d loss / d input, writing d loss / d parameter into the arrays of ``gradients()``
    (overwritten, not accumulated: there is nothing to zero between steps). Calling a
    module, ``module(x)``, is ``module.forward(x)``.
    """

    #: what ``forward`` keeps for ``backward`` (set by the layers that have one)
    _cache: Any

    def __init__(self, backend: str = "native") -> None:
        self.backend = _checks.backend(backend)

    def forward(self, x: FloatArray) -> FloatArray:  # pragma: no cover - abstract
        """The output for a batch ``x``; remembers what ``backward`` needs.

        ``module(x)`` is ``module.forward(x)``.
        """
        raise NotImplementedError

    def backward(self, grad_output: FloatArray) -> FloatArray:  # pragma: no cover - abstract
        """Backpropagate d loss / d output of the last ``forward``: return d loss / d input
        and overwrite the arrays of ``gradients()`` with d loss / d parameter."""
        raise NotImplementedError

    def parameters(self) -> list[FloatArray]:
        """The parameter arrays (the module's own storage), e.g. ``[W, b]``."""
        return []

    def gradients(self) -> list[FloatArray]:
        """The gradient arrays, aligned with ``parameters()``."""
        return []

    def __call__(self, x: FloatArray) -> FloatArray:
        return self.forward(x)

    def predict(self, X: FloatArray, batch_size: int = 1024) -> FloatArray:
        """The outputs for all rows of ``X``, in batches, leaving no backward state behind."""
        batch_size = _checks.integer(batch_size, "batch_size", low=1)
        parts = [stateless_forward(self, X[s:s + batch_size])
                 for s in range(0, len(X), batch_size)]
        return np.concatenate(parts) if parts else self.forward(X)

    def _config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this module (for saving)."""
        return {}

    def _saved(self) -> Any:
        if getattr(self, "_cache", None) is None:
            raise RuntimeError(f"{type(self).__name__}.backward() needs a forward() first")
        return self._cache


def check_input(x: object, name: str = "x", dtype: DTypeLike | None = None,
                ndim: int | None = None, features: int | None = None) -> FloatArray:
    """A float array (of ``dtype`` when given); clear errors otherwise."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{name} has dtype {x.dtype} but the layer is {np.dtype(dtype)}; "
                        f"convert it with {name}.astype(np.{np.dtype(dtype)})")
    if x.dtype not in _checks.FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {x.shape}")
    if features is not None and x.shape[-1] != features:
        raise ValueError(f"{name} has {x.shape[-1]} features, expected {features}")
    return x


def stateless_forward(module: Module, x: FloatArray) -> FloatArray:
    """module.forward(x) without replacing the cache a pending backward() needs."""
    cache = getattr(module, "_cache", None)
    y = module.forward(x)
    module._cache = cache
    return y
