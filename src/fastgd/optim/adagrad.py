"""Adagrad: per-coordinate learning rates from the running sum of squared gradients."""
from .. import _checks
from ..reference import optim as ref
from .optimizer import Optimizer, name


def hyper(g, where=""):
    """Checked kernel arguments from a parameter group (``where`` names it in errors)."""
    _checks.real(g["initial_accumulator_value"], name(where, "initial_accumulator_value"), low=0)
    return dict(lr=_checks.real(g["lr"], name(where, "lr"), low=0),
                lr_decay=_checks.real(g["lr_decay"], name(where, "lr_decay"), low=0),
                weight_decay=_checks.real(g["weight_decay"], name(where, "weight_decay"), low=0),
                eps=_checks.real(g["eps"], name(where, "eps"), low=0),
                maximize=_checks.flag(g["maximize"], name(where, "maximize")))


class Adagrad(Optimizer):
    r"""Adagrad, as ``torch.optim.Adagrad``.

    .. math::
        \tilde\gamma_t &= \gamma / (1 + (t - 1)\eta)\\
        s_t &= s_{t-1} + g_t^2 \quad (s_0 = \text{initial\_accumulator\_value})\\
        \theta_t &= \theta_{t-1} - \tilde\gamma_t\, g_t / (\sqrt{s_t} + \epsilon)

    where :math:`g_t` includes the L2 term :math:`\lambda\theta_{t-1}` and is negated when
    maximising.

    Parameters
    ----------
    params : list of ndarray or list of dict
    lr : float, default 1e-2
    lr_decay : float, default 0
        :math:`\eta`.
    weight_decay : float, default 0
    initial_accumulator_value : float, default 0
    eps : float, default 1e-10
    maximize : bool, default False
    backend : {"native", "reference"}, default "native"

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> x = np.array([1.0, -2.0])
    >>> fastgd.optim.Adagrad([x], lr=0.5).step([x.copy()])
    >>> np.round(x, 6)
    array([ 0.5, -1.5])
    """

    state_names = ("sum",)
    _algorithm = "adagrad"

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, *, maximize=False, backend="native"):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps, maximize=maximize), backend=backend)

    def _hyper(self, g, where):
        return hyper(g, where)

    def _needs(self, hp):
        return {"sum": True}

    def _initial_value(self, name, group):
        return float(group["initial_accumulator_value"])

    def _reference(self, param, grad, state, step, is_new, hp):
        ref.adagrad(param, grad, state["sum"], step=step, **hp)
