"""Backpropagation checked against central finite differences."""
from typing import Any, cast

import numpy as np

from .. import _checks
from .._typing import ArrayLike, Real
from ..nn import losses as _losses
from ..nn.init import SeedLike
from ..nn.module import Module
from . import _inputs


def gradcheck(model: Module, X: ArrayLike, y: ArrayLike,
              loss: str | _losses._Loss | type[_losses._Loss], *, eps: Real = 1e-5,
              floor: Real = 1e-7, max_checks_per_param: int | None = None,
              seed: SeedLike = 0) -> float:
    r"""Worst relative error between backprop gradients and central differences.

    For each checked parameter entry :math:`\theta_k`,

    .. math::
        g_k^{\text{fd}} = \frac{L(\theta + \epsilon e_k) - L(\theta - \epsilon e_k)}{2\epsilon},
        \qquad \text{error}_k = \frac{|g_k - g_k^{\text{fd}}|}{\max(|g_k| + |g_k^{\text{fd}}|,\ \text{floor})}

    where :math:`g = \partial L / \partial \theta` comes from ``model.backward``. This is the
    slow alternative to backpropagation: two forward passes per entry. Use float64 models.

    Parameters
    ----------
    model : fastgd.nn.Module
        A layer or model with at least one parameter. Its parameters are perturbed one
        entry at a time and restored exactly; its gradients are overwritten by one
        ``backward``.
    X, y : array_like
        The batch, as for ``fastgd.fit``: ``X`` of shape (n, in_features), ``y`` the
        targets the loss takes.
    loss : fastgd.nn loss or str
        ``"mse"``, ``"cross_entropy"``, ``"bce_with_logits"``, a loss object or its class.
    eps : float, default 1e-5
        The absolute step :math:`\epsilon`, in (0, 1).
    floor : float, default 1e-7
        Smallest denominator (> 0): entries whose gradients are both below it are compared
        in absolute terms (finite differences carry an absolute rounding error of about
        1e-10 in float64, which would dominate a relative error of near-zero entries).
    max_checks_per_param : int, optional
        Check this many (>= 1) random entries of each parameter instead of all of them.
    seed : None, int >= 0, numpy.random.Generator or numpy.random.SeedSequence, default 0
        Which entries are sampled.

    Returns
    -------
    float
        The largest relative error; about 1e-7 or less means the gradients are right.

    Raises
    ------
    TypeError, ValueError
        For any argument of the wrong type or out of range, naming it, before the model is
        touched.

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> model = fastgd.nn.MLP([3, 4, 2], activation="tanh", dtype=np.float64, seed=0)
    >>> X = np.random.default_rng(0).standard_normal((5, 3))
    >>> fastgd.gradcheck(model, X, np.array([0, 1, 1, 0, 1]), "cross_entropy") < 1e-6
    True
    """
    if not isinstance(model, Module):
        raise TypeError(f"model must be a fastgd.nn module, got {type(model).__name__}")
    if isinstance(loss, str):
        loss = _losses.by_name(loss)
    elif isinstance(loss, _losses._Loss):
        loss = type(loss)
    elif not (isinstance(loss, type) and issubclass(loss, _losses._Loss)):
        raise TypeError(f"loss must be a fastgd.nn loss or its name, got {type(loss).__name__}")
    eps = _checks.real(eps, "eps", low=0, high=1, low_open=True, high_open=True)
    floor = _checks.real(floor, "floor", low=0, low_open=True)
    if max_checks_per_param is not None:
        max_checks_per_param = _checks.integer(max_checks_per_param, "max_checks_per_param",
                                               low=1)
    seed = _checks.seed(seed)
    params, grads = model.parameters(), model.gradients()
    if not params:
        raise ValueError(f"model has no parameters to check ({type(model).__name__})")
    dtype = params[0].dtype
    # the widths of a Linear or a Sequential (Module itself declares none)
    X = _inputs.features(X, "X", dtype, cast(Any, model).in_features)
    y = _inputs.targets(y, "y", len(X), loss.kind, cast(Any, model).out_features, dtype)
    backend = model.backend

    def value() -> float:
        return loss(backend=backend).forward(model.predict(X), y)

    fn = loss(backend=backend)
    fn.forward(model.forward(X), y)
    model.backward(fn.backward())
    analytic = [g.copy() for g in grads]
    rng = np.random.default_rng(seed)
    worst = 0.0
    for p, g in zip(params, analytic):
        flat, gflat = p.reshape(-1), g.reshape(-1)
        idx = np.arange(flat.size)
        if max_checks_per_param is not None and flat.size > max_checks_per_param:
            idx = rng.choice(flat.size, max_checks_per_param, replace=False)
        for k in idx:
            old = flat[k]
            flat[k] = old + eps
            up = value()
            flat[k] = old - eps
            down = value()
            flat[k] = old
            fd = (up - down) / (2 * eps)
            err = abs(gflat[k] - fd) / max(abs(gflat[k]) + abs(fd), floor)
            worst = max(worst, float(err))
    return worst
