"""fastgd: fast, clear gradient descent.

Native (C, OpenMP, SIMD) kernels behind a small numpy API, each with a plain-numpy reference
twin (``backend="reference"``) that states the math.
"""
from . import _openmp

_openmp.load()

from ._optim import get_flush_denormal, get_num_threads, set_flush_denormal  # noqa: E402
from ._optim import set_num_threads  # noqa: E402
from . import datasets, descent, functional, functions, linear_model, nn, optim, reference, train
from . import _blas, selfcheck
from ._blas import get_blas_pool, set_blas_pool
from ._config import config, show_config
from .descent import MinimizeResult, minimize, numerical_gradient
from .nn.serialization import load
from .train import DivergenceError, History, fit, gradcheck

__version__ = "0.1.0"

_blas.install()   # the pool of large products: numpy's where that is safe (see _blas.py)

__all__ = ["datasets", "descent", "functional", "functions", "linear_model", "nn", "optim",
           "reference", "train", "selfcheck",
           "minimize", "MinimizeResult", "numerical_gradient", "fit", "History",
           "DivergenceError", "gradcheck", "load", "get_num_threads", "set_num_threads",
           "show_config", "config", "set_blas_pool", "get_blas_pool",
           "set_flush_denormal", "get_flush_denormal",
           "__version__"]
