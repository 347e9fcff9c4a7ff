"""RMSprop: gradients scaled by a running root-mean-square."""
from ..reference import optim as ref
from ._spec import Hyper, Spec, State, flag, is_positive, is_true, nonnegative
from .optimizer import Optimizer

SPEC = Spec(
    name="rmsprop",
    hypers=(Hyper("lr", 1e-2, nonnegative),
            Hyper("alpha", 0.99, nonnegative),
            Hyper("eps", 1e-8, nonnegative),
            Hyper("weight_decay", 0, nonnegative),
            Hyper("momentum", 0, nonnegative),
            Hyper("centered", False, flag),
            Hyper("maximize", False, flag, keyword_only=True)),
    # the order of fgd_rmsprop's arguments
    states=(State("square_avg"),
            State("grad_avg", when=is_true("centered")),
            State("momentum_buffer", when=is_positive("momentum"))),
    kernel="rmsprop",
    reference=ref.rmsprop,
    example="""
    >>> import numpy as np
    >>> x, v = np.array([1.0]), np.zeros(1)
    >>> rmsprop_(x, np.array([1.0]), v, lr=0.01, alpha=0.75)
    >>> np.round(x, 6), v
    (array([0.98]), array([0.25]))
""")


class RMSprop(Optimizer, spec=SPEC):
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
