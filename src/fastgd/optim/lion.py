"""Lion: the sign of an interpolated momentum (Chen et al. 2023; ``optax.lion``)."""
from ..reference import optim as ref
from ._spec import Hyper, Spec, State, flag, nonnegative, unit_interval
from .optimizer import Optimizer

SPEC = Spec(
    name="lion",
    hypers=(Hyper("lr", 1e-4, nonnegative),
            Hyper("betas", (0.9, 0.99), unit_interval, kernel=("beta1", "beta2")),
            Hyper("weight_decay", 0.0, nonnegative),
            Hyper("maximize", False, flag, keyword_only=True)),
    states=(State("exp_avg"),),
    kernel="lion",
    reference=ref.lion,
    example="""
    >>> import numpy as np
    >>> w, m = np.ones(2), np.zeros(2)
    >>> lion_(w, np.array([0.5, -2.0]), m, lr=0.1)
    >>> w, m       # every coordinate moves by lr, the sign of its gradient's
    (array([0.9, 1.1]), array([ 0.005, -0.02 ]))
""")


class Lion(Optimizer, spec=SPEC):
    r"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"), with the
    rule and defaults of ``optax.lion`` (PyTorch has no Lion).

    .. math::
        u_t &= \operatorname{sign}(\beta_1 m_{t-1} + (1 - \beta_1) g_t)\\
        \theta_t &= \theta_{t-1} - \gamma\,(u_t + \lambda\theta_{t-1})\\
        m_t &= \beta_2 m_{t-1} + (1 - \beta_2) g_t

    where :math:`g_t` is negated when maximising and :math:`m_0 = 0`. Every coordinate moves
    by exactly :math:`\gamma` (plus the decoupled weight decay), so Lion wants a learning
    rate 3-10x smaller than Adam's.

    Parameters
    ----------
    params : list of ndarray or list of dict
    lr : float, default 1e-4
    betas : (float, float), default (0.9, 0.99)
    weight_decay : float, default 0.0
    maximize : bool, default False
    backend : {"native", "reference"}, default "native"

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> x = np.array([1.0, -2.0])
    >>> fastgd.optim.Lion([x], lr=0.1).step([np.array([3.0, -0.5])])
    >>> x
    array([ 0.9, -1.9])
    """
