"""NAdam: Adam with Nesterov momentum and a momentum schedule."""
from ..reference import optim as ref
from ._spec import Hyper, ScalarState, Spec, State, flag, nonnegative, unit_interval
from .optimizer import Optimizer

SPEC = Spec(
    name="nadam",
    hypers=(Hyper("lr", 2e-3, nonnegative),
            Hyper("betas", (0.9, 0.999), unit_interval, kernel=("beta1", "beta2")),
            Hyper("eps", 1e-8, nonnegative),
            Hyper("weight_decay", 0, nonnegative),
            Hyper("momentum_decay", 4e-3, nonnegative),
            Hyper("decoupled_weight_decay", False, flag),
            Hyper("maximize", False, flag, keyword_only=True)),
    states=(State("exp_avg"),
            State("exp_avg_sq")),
    kernel="nadam",
    reference=ref.nadam,
    counts_steps=True,
    scalar=ScalarState("mu_product", 1.0),
    example="""
    >>> import numpy as np
    >>> w, m, v = np.ones(2), np.zeros(2), np.zeros(2)
    >>> mu_product = np.ones(1)          # one per parameter array, 1 before the first step
    >>> nadam_(w, np.array([0.5, -2.0]), m, v, mu_product, step=1, lr=0.1)
    >>> np.round(w, 4), np.round(mu_product, 4)
    (array([0.8944, 1.1056]), array([0.4501]))
""")


class NAdam(Optimizer, spec=SPEC):
    r"""NAdam, as ``torch.optim.NAdam``: Adam with Nesterov momentum (Dozat 2016).

    .. math::
        \mu_t &= \beta_1\left(1 - \tfrac12\, 0.96^{t\psi}\right)\\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t,\qquad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2\\
        \theta_t &= \theta_{t-1} - \gamma\left(
            \frac{(1 - \mu_t)\, g_t}{1 - \prod_{i=1}^{t}\mu_i}
            + \frac{\mu_{t+1}\, m_t}{1 - \prod_{i=1}^{t+1}\mu_i}\right)
            \Big/ \left(\sqrt{v_t / (1 - \beta_2^t)} + \epsilon\right)

    where :math:`\psi` is ``momentum_decay`` and :math:`g_t` includes the L2 term
    :math:`\lambda\theta_{t-1}` (or, with ``decoupled_weight_decay``, :math:`\theta` is first
    multiplied by :math:`1 - \gamma\lambda`, NAdamW) and is negated when maximising. Each
    parameter's state holds the running product :math:`\prod_{i\le t}\mu_i` as
    ``mu_product``, rounded to float32 after each step as PyTorch keeps it (a float32
    scalar tensor), for float64 parameters too.

    Parameters
    ----------
    params : list of ndarray or list of dict
    lr : float, default 2e-3
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 0
    momentum_decay : float, default 4e-3
    decoupled_weight_decay : bool, default False
    maximize : bool, default False
    backend : {"native", "reference"}, default "native"

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> x = np.array([1.0, -2.0])
    >>> opt = fastgd.optim.NAdam([x], lr=0.1)
    >>> opt.step([np.array([2.0, -4.0])])
    >>> np.round(x, 4)
    array([ 0.8944, -1.8944])
    >>> round(opt.state[0]["mu_product"], 4)
    0.4501
    """
