"""Stochastic gradient descent with momentum and Nesterov momentum."""
from .. import _checks
from ..reference import optim as ref
from .optimizer import Optimizer, name


def hyper(g, where=""):
    """Checked kernel arguments from a parameter group (``where`` names it in errors)."""
    hp = dict(lr=_checks.real(g["lr"], name(where, "lr"), low=0),
              momentum=_checks.real(g["momentum"], name(where, "momentum"), low=0),
              dampening=_checks.real(g["dampening"], name(where, "dampening")),
              weight_decay=_checks.real(g["weight_decay"], name(where, "weight_decay"), low=0),
              nesterov=_checks.flag(g["nesterov"], name(where, "nesterov")),
              maximize=_checks.flag(g["maximize"], name(where, "maximize")))
    if hp["nesterov"] and (hp["momentum"] <= 0 or hp["dampening"] != 0):
        raise ValueError(f"{name(where, 'nesterov')}: Nesterov momentum requires a momentum "
                         "> 0 and zero dampening")
    return hp


class SGD(Optimizer):
    r"""Stochastic gradient descent, as ``torch.optim.SGD``.

    .. math::
        g_t &= \nabla f(\theta_{t-1}) + \lambda \theta_{t-1}
            \quad(\text{negated first when maximize})\\
        b_t &= \mu b_{t-1} + (1 - \tau) g_t \quad (b_1 = g_1)\\
        \theta_t &= \theta_{t-1} - \gamma\,(g_t + \mu b_t \text{ if nesterov else } b_t)

    With ``momentum=0`` this is plain gradient descent, :math:`\theta \leftarrow \theta - \gamma g`.

    Parameters
    ----------
    params : list of ndarray or list of dict
        Arrays updated in place, or parameter groups.
    lr : float, default 1e-3
        Learning rate :math:`\gamma`.
    momentum : float, default 0
        Momentum factor :math:`\mu`.
    dampening : float, default 0
        Dampening :math:`\tau` of the momentum.
    weight_decay : float, default 0
        L2 penalty :math:`\lambda`.
    nesterov : bool, default False
        Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
    maximize : bool, default False
        Gradient ascent instead of descent.
    backend : {"native", "reference"}, default "native"

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> x = np.array([1.0, 3.0])
    >>> opt = fastgd.optim.SGD([x], lr=0.1)
    >>> opt.step([2 * x])          # gradient of |x|^2
    >>> x
    array([0.8, 2.4])
    """

    state_names = ("momentum_buffer",)
    _algorithm = "sgd"
    _lazy_buffer = "momentum_buffer"

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False, backend="native"):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize), backend=backend)

    def _hyper(self, g, where):
        return hyper(g, where)

    def _needs(self, hp):
        return {"momentum_buffer": hp["momentum"] != 0}

    def _reference(self, param, grad, state, step, is_new, hp):
        ref.sgd(param, grad, state["momentum_buffer"], buffer_is_new=is_new, **hp)
