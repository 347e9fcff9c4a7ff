r"""The running averages of `fastgd.optim.swa_utils` in numpy, one array at a time.

Each function states what the native kernel (``fgd_average_*``, csrc/kernels/average.c)
computes, operation by operation, in the arrays' dtype: the expressions of
``torch.optim.swa_utils``. ``averaged`` is updated in place; nothing is returned.

.. math::
    \text{ema:}\ \bar w \leftarrow \operatorname{lerp}(\bar w, w, 1 - \text{decay}),\quad
    \text{ema\_sum:}\ \bar w \leftarrow \text{decay}\,\bar w + (1 - \text{decay})\,w,

    \text{swa:}\ \bar w \leftarrow \bar w + \frac{w - \bar w}{n + 1},\quad
    \text{swa\_lerp:}\ \bar w \leftarrow \operatorname{lerp}\bigl(\bar w, w,
    \operatorname{fl}_{32}(1 / (n + 1))\bigr)
"""
import numpy as np

from .._typing import FloatArray
from .optim import _lerp_

#: the kinds, as `fastgd._optim.AVERAGES` names them
KINDS = ("ema", "ema_sum", "swa", "swa_lerp")


def copy_(averaged: FloatArray, current: FloatArray) -> None:
    """The first update: ``averaged = current``."""
    averaged[...] = current


def average_(averaged: FloatArray, current: FloatArray, kind: str, decay: float,
             n_averaged: int) -> None:
    """One average of ``kind`` (see the module) into ``averaged``; ``decay`` is read by the
    EMA kinds, ``n_averaged`` (the models averaged so far) by the SWA kinds."""
    t = averaged.dtype.type
    if kind == "ema":
        _lerp_(averaged, current, 1 - decay)
    elif kind == "ema_sum":
        averaged[...] = t(decay) * averaged + t(1 - decay) * current
    elif kind == "swa":
        averaged += (current - averaged) / t(n_averaged + 1)
    elif kind == "swa_lerp":
        # torch's weight: 1 / (n + 1) of an int64 tensor, a float32 tensor
        _lerp_(averaged, current, np.float32(1) / np.float32(n_averaged + 1))
    else:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
