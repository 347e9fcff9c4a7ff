r"""Weight initialisation.

For a layer with ``fan_in`` inputs and ``fan_out`` outputs, weights are drawn uniformly from
:math:`[-a, a]` or normally with standard deviation :math:`\sigma`:

- He (Kaiming), for ReLU: :math:`a = \sqrt{6 / \text{fan\_in}}`, :math:`\sigma = \sqrt{2 / \text{fan\_in}}`;
- Xavier (Glorot), for tanh, sigmoid and linear outputs:
  :math:`a = \sqrt{6 / (\text{fan\_in} + \text{fan\_out})}`,
  :math:`\sigma = \sqrt{2 / (\text{fan\_in} + \text{fan\_out})}`.
"""
from typing import Any, Union

import numpy as np

from .._typing import DTypeLike, FloatArray

#: what a ``seed`` argument takes: None (fresh randomness), an int >= 0, a generator or a
#: seed sequence
SeedLike = Union[None, int, np.integer[Any], np.random.Generator, np.random.SeedSequence]

SCHEMES = ("he_uniform", "he_normal", "xavier_uniform", "xavier_normal", "zeros")


def draw(scheme: str, fan_in: int, fan_out: int, rng: np.random.Generator,
         dtype: DTypeLike) -> FloatArray:
    """A (fan_in, fan_out) weight matrix by ``scheme``, in ``dtype``."""
    if scheme not in SCHEMES:
        raise ValueError(f"init must be one of {SCHEMES} or 'auto', got {scheme!r}")
    shape = (fan_in, fan_out)
    if scheme == "zeros":
        return np.zeros(shape, dtype)
    fan = fan_in if scheme.startswith("he") else (fan_in + fan_out) / 2
    fan = max(fan, 1)
    if scheme.endswith("uniform"):
        a = np.sqrt(3.0 / fan) * (np.sqrt(2.0) if scheme.startswith("he") else 1.0)
        return rng.uniform(-a, a, size=shape).astype(dtype)
    sigma = np.sqrt(1.0 / fan) * (np.sqrt(2.0) if scheme.startswith("he") else 1.0)
    return rng.normal(0.0, sigma, size=shape).astype(dtype)


def for_activation(activation: str) -> str:
    """The scheme 'auto' picks for a layer followed by ``activation`` (a class name)."""
    return "he_uniform" if activation in ("ReLU", "LeakyReLU") else "xavier_uniform"
