"""Minimising (or maximising) any function by gradient descent.

- `minimize` (in ``descent/minimize.py``, its loops in ``descent/_loops.py``): descent or
  ascent from one start or many, with every optimizer of `fastgd.optim`, stopping rules,
  backtracking line search and the accept-if-improves rule; returns a `MinimizeResult`.
- `numerical_gradient` (``descent/gradients.py``): central differences, for a function
  without a gradient of its own.
- `functions`: the test functions of the figures and the tests (quadratic, Rosenbrock,
  Himmelblau, ...), each an `Objective` with its gradient and known minima.
"""
from . import functions
from .gradients import numerical_gradient
from .minimize import Iterate, MinimizeResult, minimize

__all__ = ["minimize", "MinimizeResult", "Iterate", "numerical_gradient", "functions"]
