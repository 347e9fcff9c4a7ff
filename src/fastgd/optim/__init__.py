"""Optimizers with PyTorch's names, defaults and update rules, for numpy arrays.

>>> import numpy as np, fastgd
>>> w = np.zeros(4, dtype=np.float32)
>>> opt = fastgd.optim.Adam([w], lr=0.01)
>>> opt.step([np.ones(4, dtype=np.float32)])

Each algorithm is declared once, by the spec of its class (``Adam.spec``, see
``fastgd/optim/_spec.py``); `ALGORITHMS` lists them by name. `LBFGS`, which steps with a
closure over all parameters as one vector, has no spec and is not among them.
"""
from types import MappingProxyType

from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from . import lr_scheduler
from .adamax import Adamax
from .lbfgs import LBFGS
from .lion import Lion
from .nadam import NAdam
from .optimizer import Optimizer
from .radam import RAdam
from .rmsprop import RMSprop
from .sgd import SGD
from . import swa_utils

#: every algorithm's class by its spec's name (``"sgd"``, ``"adam"``, ...); the class's
#: ``spec`` declares it. Read-only.
ALGORITHMS = MappingProxyType({cls.spec.name: cls for cls in (SGD, Adagrad, RMSprop, Adam, AdamW,
                                                               Adamax, Lion, Adadelta, RAdam,
                                                               NAdam)})


def by_name(name: str) -> type[Optimizer]:
    """The optimizer class of the algorithm ``name`` (a key of `ALGORITHMS`), for
    ``by_name("adam")(params, lr=0.01)``; its spec is ``by_name(name).spec``."""
    if not isinstance(name, str) or name not in ALGORITHMS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(ALGORITHMS)}")
    return ALGORITHMS[name]


__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "Adamax", "Lion",
           "Adadelta", "RAdam", "NAdam", "LBFGS", "ALGORITHMS", "by_name", "lr_scheduler",
           "swa_utils"]
