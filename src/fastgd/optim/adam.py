"""Adam and AdamW."""
from .. import _checks
from ..reference import optim as ref
from .optimizer import Optimizer, name


def hyper(g, where="", decoupled_weight_decay=False):
    """Checked kernel arguments from a parameter group (``where`` names it in errors)."""
    betas = _checks.pair(g["betas"], name(where, "betas"))
    return dict(lr=_checks.real(g["lr"], name(where, "lr"), low=0),
                beta1=_checks.real(betas[0], name(where, "betas") + "[0]", low=0, high=1,
                                   high_open=True),
                beta2=_checks.real(betas[1], name(where, "betas") + "[1]", low=0, high=1,
                                   high_open=True),
                eps=_checks.real(g["eps"], name(where, "eps"), low=0),
                weight_decay=_checks.real(g["weight_decay"], name(where, "weight_decay"), low=0),
                amsgrad=_checks.flag(g["amsgrad"], name(where, "amsgrad")),
                maximize=_checks.flag(g["maximize"], name(where, "maximize")),
                decoupled_weight_decay=decoupled_weight_decay)


class Adam(Optimizer):
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

    state_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _algorithm = "adam"
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, maximize=False, backend="native"):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize), backend=backend)

    def _hyper(self, g, where):
        return hyper(g, where, self._decoupled)

    def _needs(self, hp):
        return {"exp_avg": True, "exp_avg_sq": True, "max_exp_avg_sq": hp["amsgrad"]}

    def _reference(self, param, grad, state, step, is_new, hp):
        ref.adam(param, grad, state["exp_avg"], state["exp_avg_sq"], state["max_exp_avg_sq"],
                 step=step, **hp)


class AdamW(Adam):
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

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, backend="native"):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, backend=backend)
