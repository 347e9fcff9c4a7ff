"""Stochastic gradient descent with momentum and Nesterov momentum."""
from ..reference import optim as ref
from ._spec import Hyper, Spec, State, flag, is_nonzero, label, nonnegative, real
from .optimizer import Optimizer


def _nesterov_needs_momentum(hp, where):
    if hp["nesterov"] and (hp["momentum"] <= 0 or hp["dampening"] != 0):
        raise ValueError(f"{label(where, 'nesterov')}: Nesterov momentum requires a momentum > 0 and zero "
                         "dampening")


SPEC = Spec(
    name="sgd",
    hypers=(Hyper("lr", 1e-3, nonnegative),
            Hyper("momentum", 0, nonnegative),
            Hyper("dampening", 0, real),
            Hyper("weight_decay", 0, nonnegative),
            Hyper("nesterov", False, flag),
            Hyper("maximize", False, flag, keyword_only=True)),
    states=(State("momentum_buffer", when=is_nonzero("momentum"), first_grad=True),),
    kernel="sgd",
    reference=ref.sgd,
    validate=_nesterov_needs_momentum,
    example="""
    >>> import numpy as np
    >>> x = np.array([1.0, 3.0])
    >>> sgd_(x, 2 * x + 0.0, lr=0.25)
    >>> x
    array([0.5, 1.5])
""")


class SGD(Optimizer, spec=SPEC):
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
