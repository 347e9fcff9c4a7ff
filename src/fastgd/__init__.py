"""fastgd: fast, clear gradient descent.

Native (C, OpenMP, SIMD) kernels behind a small numpy API, each with a plain-numpy reference
twin (``backend="reference"``) that states the math.
"""
from . import _openmp

_openmp.load()

import os as _os  # noqa: E402

from ._optim import get_flush_denormal, get_num_threads  # noqa: E402
from ._optim import set_num_threads  # noqa: E402
from . import _optim, kernels  # noqa: E402
from . import datasets, descent, functional, functions, linear_model, nn, optim, reference, train
from . import _blas, selfcheck
from ._blas import get_blas_pool, set_blas_pool
from ._config import config, show_config
from .descent import MinimizeResult, minimize, numerical_gradient
from .nn.serialization import load
from .train import DivergenceError, History, fit, gradcheck

__version__ = "0.1.0"


def set_flush_denormal(mode: bool) -> bool:
    """Flush subnormal numbers to zero in the optimizer updates (``True``) or not (``False``,
    the default: IEEE gradual underflow, as numpy and PyTorch compute).

    Returns True where it is supported (x86-64), False elsewhere, as
    ``torch.set_flush_denormal`` does. Unlike torch's, it applies to fastgd's optimizer
    kernels only (those the extensions embedding them call too, see `get_include`), on
    every thread that runs them and only while they run: numpy and the rest of the process
    keep their own setting."""
    supported = _optim.set_flush_denormal(mode)
    kernels._set_flush_denormal(mode)
    return supported


def get_include() -> str:
    """The folder of fastgd's C headers, for extensions that embed its kernels.

    As ``numpy.get_include()``: put it on the include path of a C or Cython extension, then
    ``#include <fastgd/fastgd.h>`` and call ``import_fastgd()`` in the module's init (C), or
    ``from fastgd.kernels cimport adam_f32, fgd_adam_hparams`` (Cython; the ``.pxd`` is
    installed in the package). The extension links against nothing of fastgd. The headers
    are ``fastgd/optim.h`` (the kernels, their arguments and rules) and ``fastgd/fastgd.h``
    (``import_fastgd()`` and the ABI version); see the embedding guide of the docs.

    Examples
    --------
    >>> import os, fastgd
    >>> os.path.isfile(os.path.join(fastgd.get_include(), "fastgd", "optim.h"))
    True
    """
    return _os.path.join(_os.path.dirname(_os.path.abspath(kernels.__file__)), "include")


_blas.install()   # the pool of large products: numpy's where that is safe (see _blas.py)

__all__ = ["datasets", "descent", "functional", "functions", "linear_model", "nn", "optim",
           "reference", "train", "selfcheck",
           "minimize", "MinimizeResult", "numerical_gradient", "fit", "History",
           "DivergenceError", "gradcheck", "load", "get_num_threads", "set_num_threads",
           "show_config", "config", "set_blas_pool", "get_blas_pool",
           "set_flush_denormal", "get_flush_denormal", "get_include", "kernels",
           "__version__"]
