"""Adagrad: per-coordinate learning rates from the running sum of squared gradients."""
from ..reference import optim as ref
from ._spec import Hyper, Spec, State, flag, nonnegative
from .optimizer import Optimizer

SPEC = Spec(
    name="adagrad",
    hypers=(Hyper("lr", 1e-2, nonnegative),
            Hyper("lr_decay", 0, nonnegative),
            Hyper("weight_decay", 0, nonnegative),
            # the state's initial value, not a kernel argument
            Hyper("initial_accumulator_value", 0, nonnegative, kernel=()),
            Hyper("eps", 1e-10, nonnegative),
            Hyper("maximize", False, flag, keyword_only=True)),
    states=(State("sum", initial="initial_accumulator_value", arg="state_sum"),),
    kernel="adagrad",
    reference=ref.adagrad,
    counts_steps=True,
    example="""
    >>> import numpy as np
    >>> x, s = np.array([2.0]), np.zeros(1)
    >>> adagrad_(x, np.array([4.0]), s, step=1, lr=0.5)
    >>> x, s
    (array([1.5]), array([16.]))
""")


class Adagrad(Optimizer, spec=SPEC):
    r"""Adagrad, as ``torch.optim.Adagrad``.

    .. math::
        \tilde\gamma_t &= \gamma / (1 + (t - 1)\eta)\\
        s_t &= s_{t-1} + g_t^2 \quad (s_0 = \text{initial\_accumulator\_value})\\
        \theta_t &= \theta_{t-1} - \tilde\gamma_t\, g_t / (\sqrt{s_t} + \epsilon)

    where :math:`g_t` includes the L2 term :math:`\lambda\theta_{t-1}` and is negated when
    maximising.

    Parameters
    ----------
    params : list of ndarray or list of dict
    lr : float, default 1e-2
    lr_decay : float, default 0
        :math:`\eta`.
    weight_decay : float, default 0
    initial_accumulator_value : float, default 0
    eps : float, default 1e-10
    maximize : bool, default False
    backend : {"native", "reference"}, default "native"

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> x = np.array([1.0, -2.0])
    >>> fastgd.optim.Adagrad([x], lr=0.5).step([x.copy()])
    >>> np.round(x, 6)
    array([ 0.5, -1.5])
    """
