"""Adam and AdamW (the same kernel: AdamW decouples the weight decay)."""
from ..reference import optim as ref
from ._spec import Hyper, Spec, State, flag, is_true, nonnegative, unit_interval
from .optimizer import Optimizer

SPEC = Spec(
    name="adam",
    hypers=(Hyper("lr", 1e-3, nonnegative),
            Hyper("betas", (0.9, 0.999), unit_interval, kernel=("beta1", "beta2")),
            Hyper("eps", 1e-8, nonnegative),
            Hyper("weight_decay", 0, nonnegative),
            Hyper("amsgrad", False, flag),
            Hyper("maximize", False, flag, keyword_only=True)),
    states=(State("exp_avg"),
            State("exp_avg_sq"),
            State("max_exp_avg_sq", when=is_true("amsgrad"))),
    kernel="adam",
    reference=ref.adam,
    counts_steps=True,
    fixed={"decoupled_weight_decay": False},
    example="""
    >>> import numpy as np
    >>> w, m, v = np.ones(2), np.zeros(2), np.zeros(2)
    >>> adam_(w, np.array([0.5, -2.0]), m, v, step=1, lr=0.1)
    >>> np.round(w, 6)      # the first Adam step moves each coordinate by lr
    array([0.9, 1.1])
""")

ADAMW_SPEC = SPEC.variant(
    "adamw", defaults={"weight_decay": 1e-2}, fixed={"decoupled_weight_decay": True},
    example="""
    >>> import numpy as np
    >>> w, m, v = np.ones(1), np.zeros(1), np.zeros(1)
    >>> adamw_(w, np.zeros(1), m, v, step=1, lr=0.1, weight_decay=0.5)
    >>> w
    array([0.95])
""")


class Adam(Optimizer, spec=SPEC):
    r"""Adam, as ``torch.optim.Adam``.

    .. math::
        g_t &= \nabla f(\theta_{t-1}) + \lambda\theta_{t-1}
            \quad(\text{negated first when maximize})\\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2\\
        \theta_t &= \theta_{t-1} - \frac{\gamma}{1 - \beta_1^t}\,
            \frac{m_t}{\sqrt{v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    With ``amsgrad=True``, :math:`v_t` in the last line is :math:`\max_{s \le t} v_s`.

    Parameters
    ----------
    params : list of ndarray or list of dict
        Arrays updated in place, or parameter groups.
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
        :math:`\beta_1, \beta_2`, each in [0, 1).
    eps : float, default 1e-8
    weight_decay : float, default 0
        L2 penalty added to the gradient (see `AdamW` for the decoupled form).
    amsgrad : bool, default False
    maximize : bool, default False
    backend : {"native", "reference"}, default "native"

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> w = np.zeros(3, dtype=np.float32)
    >>> opt = fastgd.optim.Adam([w], lr=0.1)
    >>> for _ in range(100):
    ...     opt.step([2 * (w - 1)])        # minimise |w - 1|^2
    >>> bool(np.allclose(w, 1, atol=0.05))
    True
    """


class AdamW(Adam, spec=ADAMW_SPEC):
    r"""AdamW (Adam with decoupled weight decay), as ``torch.optim.AdamW``.

    Each step first shrinks the parameters, :math:`\theta \leftarrow \theta(1 - \gamma\lambda)`,
    then takes the Adam step without the L2 term.

    Parameters are those of `Adam`, with ``weight_decay`` defaulting to 1e-2.

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> w = np.ones(2)
    >>> fastgd.optim.AdamW([w], lr=0.1, weight_decay=0.5).step([np.zeros(2)])
    >>> w                                 # only the decay acts on a zero gradient
    array([0.95, 0.95])
    """
