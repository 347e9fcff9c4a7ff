"""Adadelta: steps scaled by the ratio of running RMS of updates and of gradients."""
from ..reference import optim as ref
from ._spec import Hyper, Spec, State, closed_unit_interval, flag, nonnegative
from .optimizer import Optimizer

SPEC = Spec(
    name="adadelta",
    hypers=(Hyper("lr", 1.0, nonnegative),
            Hyper("rho", 0.9, closed_unit_interval),
            Hyper("eps", 1e-6, nonnegative),
            Hyper("weight_decay", 0, nonnegative),
            Hyper("maximize", False, flag, keyword_only=True)),
    states=(State("square_avg"),
            State("acc_delta")),
    kernel="adadelta",
    reference=ref.adadelta,
    example="""
    >>> import numpy as np
    >>> x, v, u = np.array([1.0]), np.zeros(1), np.zeros(1)
    >>> adadelta_(x, np.array([2.0]), v, u, lr=1.0, rho=0.75, eps=1e-6)
    >>> v                # 0.25 * 2^2
    array([1.])
""")


class Adadelta(Optimizer, spec=SPEC):
    r"""Adadelta, as ``torch.optim.Adadelta``.

    .. math::
        v_t &= \rho v_{t-1} + (1 - \rho) g_t^2\\
        \Delta_t &= \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}}\, g_t\\
        u_t &= \rho u_{t-1} + (1 - \rho) \Delta_t^2\\
        \theta_t &= \theta_{t-1} - \gamma \Delta_t

    where :math:`g_t` includes the L2 term :math:`\lambda\theta_{t-1}` and is negated when
    maximising; :math:`v_0 = u_0 = 0`.

    Parameters
    ----------
    params : list of ndarray or list of dict
    lr : float, default 1.0
    rho : float, default 0.9
        In [0, 1].
    eps : float, default 1e-6
    weight_decay : float, default 0
    maximize : bool, default False
    backend : {"native", "reference"}, default "native"

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> x = np.array([1.0])
    >>> fastgd.optim.Adadelta([x], lr=1.0, rho=0.0, eps=0.0).step([np.array([2.0])])
    >>> x        # rho = 0, eps = 0, u_0 = 0: the first step is 0
    array([1.])
    """
