"""RMSprop: gradients scaled by a running root-mean-square."""
from .. import _checks
from ..reference import optim as ref
from .optimizer import Optimizer, name


def hyper(g, where=""):
    """Checked kernel arguments from a parameter group (``where`` names it in errors)."""
    return dict(lr=_checks.real(g["lr"], name(where, "lr"), low=0),
                alpha=_checks.real(g["alpha"], name(where, "alpha"), low=0),
                eps=_checks.real(g["eps"], name(where, "eps"), low=0),
                weight_decay=_checks.real(g["weight_decay"], name(where, "weight_decay"), low=0),
                momentum=_checks.real(g["momentum"], name(where, "momentum"), low=0),
                centered=_checks.flag(g["centered"], name(where, "centered")),
                maximize=_checks.flag(g["maximize"], name(where, "maximize")))


class RMSprop(Optimizer):
    r"""RMSprop, as ``torch.optim.RMSprop``.

    .. math::
        v_t &= \alpha v_{t-1} + (1 - \alpha) g_t^2\\
        \bar g_t &= \alpha \bar g_{t-1} + (1 - \alpha) g_t, \quad
            \tilde v_t = v_t - \bar g_t^2 \quad(\text{centered; else } \tilde v_t = v_t)\\
        b_t &= \mu b_{t-1} + g_t / (\sqrt{\tilde v_t} + \epsilon), \quad
            \theta_t = \theta_{t-1} - \gamma b_t \quad(\text{momentum} > 0)\\
        \theta_t &= \theta_{t-1} - \gamma\, g_t / (\sqrt{\tilde v_t} + \epsilon)
            \quad(\text{otherwise})

    Parameters
    ----------
    params : list of ndarray or list of dict
    lr : float, default 1e-2
    alpha : float, default 0.99
        Smoothing constant.
    eps : float, default 1e-8
    weight_decay : float, default 0
    momentum : float, default 0
    centered : bool, default False
        Normalise by an estimate of the gradient's variance.
    maximize : bool, default False
    backend : {"native", "reference"}, default "native"

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> x = np.array([1.0, -1.0])
    >>> fastgd.optim.RMSprop([x], lr=0.01).step([x.copy()])
    >>> np.round(x, 4)    # first step moves each coordinate by lr / sqrt(1 - alpha)
    array([ 0.9, -0.9])
    """

    state_names = ("square_avg", "momentum_buffer", "grad_avg")
    _algorithm = "rmsprop"

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, *, maximize=False, backend="native"):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize),
                         backend=backend)

    def _hyper(self, g, where):
        return hyper(g, where)

    def _needs(self, hp):
        return {"square_avg": True, "momentum_buffer": hp["momentum"] > 0,
                "grad_avg": hp["centered"]}

    def _reference(self, param, grad, state, step, is_new, hp):
        ref.rmsprop(param, grad, state["square_avg"], state["grad_avg"],
                    state["momentum_buffer"], **hp)
