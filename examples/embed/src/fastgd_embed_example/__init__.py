"""fastgd's Adam, embedded: `cytrain` (Cython) and `ctrain` (C) have the same two functions.

adam_step(params, grads, exp_avgs, exp_avg_sqs, step, *, lr=1e-3, beta1=0.9, beta2=0.999,
          eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False,
          decoupled_weight_decay=False, max_exp_avg_sqs=None, nthreads=0)
    One Adam step in place over lists of contiguous float32 or float64 arrays (one dtype
    per call), with the GIL released: fastgd.functional.adam_'s update.

fit(params, targets, steps, *, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
    weight_decay=0.0, nthreads=0)
    Train: `steps` Adam steps minimising sum(0.5 * (param - target)**2) over every pair,
    the gradients and the moments in buffers of the extension's own, the whole loop
    without the GIL. Returns the loss before the last step.
"""
from . import ctrain, cytrain

__all__ = ["ctrain", "cytrain"]
