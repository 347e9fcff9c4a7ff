"""RAdam: Adam with the variance of its adaptive learning rate rectified."""
from ..reference import optim as ref
from ._spec import Hyper, Spec, State, flag, nonnegative, unit_interval
from .optimizer import Optimizer

SPEC = Spec(
    name="radam",
    hypers=(Hyper("lr", 1e-3, nonnegative),
            Hyper("betas", (0.9, 0.999), unit_interval, kernel=("beta1", "beta2")),
            Hyper("eps", 1e-8, nonnegative),
            Hyper("weight_decay", 0, nonnegative),
            Hyper("decoupled_weight_decay", False, flag),
            Hyper("maximize", False, flag, keyword_only=True)),
    states=(State("exp_avg"),
            State("exp_avg_sq")),
    kernel="radam",
    reference=ref.radam,
    counts_steps=True,
    example="""
    >>> import numpy as np
    >>> w, m, v = np.ones(2), np.zeros(2), np.zeros(2)
    >>> radam_(w, np.array([0.5, -2.0]), m, v, step=1, lr=0.1)
    >>> np.round(w, 6)      # the first steps are SGD with momentum (rho_t <= 5)
    array([0.95, 1.2 ])
""")


class RAdam(Optimizer, spec=SPEC):
    r"""RAdam, as ``torch.optim.RAdam``: Adam with a rectified adaptive step.

    .. math::
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t,\qquad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2\\
        \rho_\infty &= \frac{2}{1 - \beta_2} - 1,\qquad
        \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1 - \beta_2^t}\\
        \theta_t &= \theta_{t-1} - \gamma\,\frac{m_t}{1 - \beta_1^t}\cdot
            \begin{cases} r_t\,\sqrt{1 - \beta_2^t}\,/\,(\sqrt{v_t} + \epsilon)
                & \text{if } \rho_t > 5\\ 1 & \text{otherwise}\end{cases}\\
        r_t &= \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\,\rho_\infty}
                          {(\rho_\infty - 4)(\rho_\infty - 2)\,\rho_t}}

    where :math:`g_t` includes the L2 term :math:`\lambda\theta_{t-1}` (or, with
    ``decoupled_weight_decay``, :math:`\theta` is first multiplied by :math:`1 - \gamma\lambda`)
    and is negated when maximising.

    Parameters
    ----------
    params : list of ndarray or list of dict
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 0
    decoupled_weight_decay : bool, default False
    maximize : bool, default False
    backend : {"native", "reference"}, default "native"

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> x = np.array([1.0, -2.0])
    >>> fastgd.optim.RAdam([x], lr=0.1).step([np.array([2.0, -4.0])])
    >>> np.round(x, 6)       # the first step: lr times the gradient
    array([ 0.8, -1.6])
    """
