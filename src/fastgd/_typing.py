"""The type aliases of fastgd's annotations (for readers and type checkers; nothing here runs
at import time beyond the aliases themselves)."""
from typing import Any, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

#: a floating-point array: what parameters, gradients and state arrays are
FloatArray = NDArray[np.floating[Any]]
#: any numpy array (labels, indices, inputs before their checks)
Array = NDArray[Any]
#: what an optimizer is built from: arrays, or parameter groups (dicts with a "params" list)
Params = Union[Sequence[FloatArray], Sequence[dict]]
#: a real number as the public functions accept it (Python or numpy scalars)
Real = Union[float, int, np.floating[Any], np.integer[Any]]

__all__ = ["FloatArray", "Array", "Params", "Real", "ArrayLike", "DTypeLike"]
