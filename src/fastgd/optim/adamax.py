"""Adamax: Adam with the infinity norm in place of the second moment."""
from ..reference import optim as ref
from ._spec import Hyper, Spec, State, flag, nonnegative, unit_interval
from .optimizer import Optimizer

SPEC = Spec(
    name="adamax",
    hypers=(Hyper("lr", 2e-3, nonnegative),
            Hyper("betas", (0.9, 0.999), unit_interval, kernel=("beta1", "beta2")),
            Hyper("eps", 1e-8, nonnegative),
            Hyper("weight_decay", 0, nonnegative),
            Hyper("maximize", False, flag, keyword_only=True)),
    states=(State("exp_avg"),
            State("exp_inf")),
    kernel="adamax",
    reference=ref.adamax,
    counts_steps=True,
    example="""
    >>> import numpy as np
    >>> w, m, u = np.ones(2), np.zeros(2), np.zeros(2)
    >>> adamax_(w, np.array([0.5, -2.0]), m, u, step=1, lr=0.1)
    >>> np.round(w, 6)      # the first step moves each coordinate by about lr
    array([0.9, 1.1])
""")


class Adamax(Optimizer, spec=SPEC):
    r"""Adamax, as ``torch.optim.Adamax``: Adam with the infinity norm.

    .. math::
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t\\
        u_t &= \max(\beta_2 u_{t-1},\ |g_t| + \epsilon)\\
        \theta_t &= \theta_{t-1} - \frac{\gamma}{1 - \beta_1^t}\,\frac{m_t}{u_t}

    where :math:`g_t` includes the L2 term :math:`\lambda\theta_{t-1}` and is negated when
    maximising; :math:`m_0 = u_0 = 0`.

    Parameters
    ----------
    params : list of ndarray or list of dict
    lr : float, default 2e-3
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 0
    maximize : bool, default False
    backend : {"native", "reference"}, default "native"

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> x = np.array([1.0, -2.0])
    >>> fastgd.optim.Adamax([x], lr=0.1).step([np.array([2.0, -4.0])])
    >>> np.round(x, 6)
    array([ 0.9, -1.9])
    """
