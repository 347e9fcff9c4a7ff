"""Training a `fastgd.nn` model: `fit` and what it reports or raises.

- `fit` (in ``train/fit.py``): the training loop by batch, mini-batch or stochastic steps,
  with validation, early stopping, divergence handling and the accept-if-improves rule. Its
  two loops share the `Loop` interface: `FusedLoop` runs a whole epoch of a compiled model with a
  native optimizer in one C call, `StepLoop` runs any model and optimizer step by step;
  `loop_for` picks one.
- `History`: the losses and metrics per epoch that `fit` returns.
- `DivergenceError`: raised when training or minimisation diverges.
- `gradcheck`: a model's backward pass against central differences.
"""
from .errors import DivergenceError
from .fit import FusedLoop, Loop, StepLoop, fit, loop_for
from .gradcheck import gradcheck
from .history import History

__all__ = ["fit", "History", "DivergenceError", "gradcheck", "Loop", "StepLoop", "FusedLoop",
           "loop_for"]
