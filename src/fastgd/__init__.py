"""fastgd: fast, clear gradient descent.

Native (C, OpenMP, SIMD) kernels behind a small numpy API, each with a plain-numpy reference
twin (``backend="reference"``) that states the math.
"""
from . import _openmp

_openmp.load()

from ._optim import get_num_threads, set_num_threads  # noqa: E402
from . import datasets, functional, functions, linear_model, nn, optim, reference
from .errors import DivergenceError
from .fit import fit
from .gradcheck import gradcheck
from .gradients import numerical_gradient
from .minimize import MinimizeResult, minimize
from .serialization import load
from .history import History

__version__ = "0.1.0"

__all__ = ["datasets", "functional", "functions", "linear_model", "nn", "optim", "reference",
           "minimize", "MinimizeResult", "numerical_gradient", "fit", "History",
           "DivergenceError", "gradcheck", "load", "get_num_threads", "set_num_threads",
           "__version__"]
