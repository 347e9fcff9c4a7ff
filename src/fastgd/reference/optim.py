"""Optimizer update rules in numpy, one parameter array at a time.

Each function follows the algorithm box of the matching ``torch.optim`` class and the order
of operations of PyTorch's single-tensor implementation. Scalars are converted to the
array's dtype before use, so float32 stays float32 throughout (numpy's NEP 50 rules). All
arrays are updated in place; nothing is returned.
"""
from typing import Any

import numpy as np

from .._typing import FloatArray

#: a state array the hyper-parameters may not use (then None); typed Any because each twin
#: reads it only under the condition that makes it an array (momentum != 0, centered, amsgrad)
MaybeState = Any


def _lerp_(start: FloatArray, end: FloatArray, weight: Any) -> None:
    """``start += weight * (end - start)`` the way ``torch.lerp`` rounds it."""
    w = start.dtype.type(weight)
    if abs(w) < 0.5:
        start += w * (end - start)
    else:
        start[...] = end - (end - start) * (1 - w)


def _direction(param: FloatArray, grad: FloatArray, weight_decay: float,
               maximize: bool) -> FloatArray:
    """The gradient the update uses: negated to maximise, plus L2 weight decay."""
    d = -grad if maximize else grad.copy()
    if weight_decay != 0:
        d += param.dtype.type(weight_decay) * param
    return d


def _adam_moments_(param: FloatArray, grad: FloatArray, exp_avg: FloatArray,
                   exp_avg_sq: FloatArray, lr: float, beta1: float, beta2: float,
                   weight_decay: float, maximize: bool,
                   decoupled_weight_decay: bool) -> FloatArray:
    """Adam's first half, shared by Adam, RAdam and NAdam: the weight decay (L2 into the
    gradient, or decoupled: ``param *= 1 - lr * weight_decay``), then both moments; returns
    the gradient the moments took."""
    t = param.dtype.type
    if decoupled_weight_decay:
        if weight_decay != 0:
            param *= t(1 - lr * weight_decay)
        d = _direction(param, grad, 0, maximize)
    else:
        d = _direction(param, grad, weight_decay, maximize)
    _lerp_(exp_avg, d, 1 - beta1)
    exp_avg_sq *= t(beta2)
    exp_avg_sq += t(1 - beta2) * d * d
    return d


def sgd(param: FloatArray, grad: FloatArray, momentum_buffer: MaybeState, *, lr: float,
        momentum: float, dampening: float, weight_decay: float, nesterov: bool, maximize: bool,
        buffer_is_new: bool) -> None:
    r"""SGD with momentum and Nesterov.

    .. math::
        g_t = \pm\nabla f + \lambda\theta,\quad
        b_t = \mu b_{t-1} + (1-\tau) g_t \ (b_1 = g_1),\quad
        \theta_t = \theta_{t-1} - \gamma\,(g_t + \mu b_t \text{ if nesterov else } b_t)
    """
    t = param.dtype.type
    d = _direction(param, grad, weight_decay, maximize)
    if momentum != 0:
        if buffer_is_new:
            momentum_buffer[...] = d
        else:
            momentum_buffer *= t(momentum)
            momentum_buffer += t(1 - dampening) * d
        if nesterov:
            d = d + t(momentum) * momentum_buffer
        else:
            d = momentum_buffer
    param += t(-lr) * d


def adagrad(param: FloatArray, grad: FloatArray, state_sum: FloatArray, *, step: int, lr: float,
            lr_decay: float, weight_decay: float, eps: float, maximize: bool) -> None:
    r"""Adagrad.

    .. math::
        \tilde\gamma = \frac{\gamma}{1 + (t-1)\eta},\quad
        s_t = s_{t-1} + g_t^2,\quad
        \theta_t = \theta_{t-1} - \tilde\gamma\,\frac{g_t}{\sqrt{s_t} + \epsilon}
    """
    t = param.dtype.type
    d = _direction(param, grad, weight_decay, maximize)
    clr = lr / (1 + (step - 1) * lr_decay)
    state_sum += d * d
    std = np.sqrt(state_sum) + t(eps)
    param += t(-clr) * (d / std)


def rmsprop(param: FloatArray, grad: FloatArray, square_avg: FloatArray, grad_avg: MaybeState,
            momentum_buffer: MaybeState, *, lr: float, alpha: float, eps: float,
            weight_decay: float, momentum: float, centered: bool, maximize: bool) -> None:
    r"""RMSprop, optionally centered and with momentum.

    .. math::
        v_t = \alpha v_{t-1} + (1-\alpha) g_t^2,\quad
        \tilde v_t = v_t - \bar g_t^2 \text{ if centered},\quad
        \theta_t = \theta_{t-1} - \gamma\,\frac{g_t}{\sqrt{\tilde v_t} + \epsilon}
        \ (\text{through } b_t = \mu b_{t-1} + \cdot \text{ with momentum})
    """
    t = param.dtype.type
    d = _direction(param, grad, weight_decay, maximize)
    square_avg *= t(alpha)
    square_avg += t(1 - alpha) * d * d
    if centered:
        _lerp_(grad_avg, d, 1 - alpha)
        avg = np.sqrt(square_avg + t(-1) * grad_avg * grad_avg)
    else:
        avg = np.sqrt(square_avg)
    avg += t(eps)
    if momentum > 0:
        momentum_buffer *= t(momentum)
        momentum_buffer += d / avg
        param += t(-lr) * momentum_buffer
    else:
        param += t(-lr) * (d / avg)


def adam(param: FloatArray, grad: FloatArray, exp_avg: FloatArray, exp_avg_sq: FloatArray,
         max_exp_avg_sq: MaybeState, *, step: int, lr: float, beta1: float, beta2: float,
         eps: float, weight_decay: float, amsgrad: bool, maximize: bool,
         decoupled_weight_decay: bool) -> None:
    r"""Adam, and AdamW when ``decoupled_weight_decay`` is true.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\quad
        \theta_t = \theta_{t-1} - \frac{\gamma}{1-\beta_1^t}\,
            \frac{m_t}{\sqrt{v_t}/\sqrt{1-\beta_2^t} + \epsilon}

    AdamW first shrinks :math:`\theta \leftarrow \theta(1 - \gamma\lambda)` instead of adding
    :math:`\lambda\theta` to the gradient; AMSGrad uses :math:`\max_{s\le t} v_s` for :math:`v_t`.
    """
    t = param.dtype.type
    _adam_moments_(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, weight_decay, maximize,
                   decoupled_weight_decay)
    step_size = lr / (1 - beta1**step)
    bias_correction2_sqrt = (1 - beta2**step) ** 0.5
    # multiplied by the reciprocal, as the kernel does (PyTorch divides: ~1 ulp apart)
    inv_bc2 = t(1 / bias_correction2_sqrt)
    if amsgrad:
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        denom = np.sqrt(max_exp_avg_sq) * inv_bc2 + t(eps)
    else:
        denom = np.sqrt(exp_avg_sq) * inv_bc2 + t(eps)
    param += t(-step_size) * (exp_avg / denom)


def adamax(param: FloatArray, grad: FloatArray, exp_avg: FloatArray, exp_inf: FloatArray, *,
           step: int, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
           maximize: bool) -> None:
    r"""Adamax, Adam with the infinity norm.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
        u_t = \max(\beta_2 u_{t-1},\ |g_t| + \epsilon),\quad
        \theta_t = \theta_{t-1} - \frac{\gamma}{1-\beta_1^t}\,\frac{m_t}{u_t}

    with :math:`g_t` negated to maximise and plus :math:`\lambda\theta_{t-1}` (L2 decay).
    """
    t = param.dtype.type
    d = _direction(param, grad, weight_decay, maximize)
    _lerp_(exp_avg, d, 1 - beta1)
    exp_inf *= t(beta2)
    np.maximum(exp_inf, np.abs(d) + t(eps), out=exp_inf)   # NaN in either propagates
    clr = lr / (1 - beta1**step)
    # addcdiv_(exp_avg, exp_inf, value=-clr) rounds (value * exp_avg) / exp_inf
    param += (t(-clr) * exp_avg) / exp_inf


def lion(param: FloatArray, grad: FloatArray, exp_avg: FloatArray, *, lr: float, beta1: float,
         beta2: float, weight_decay: float, maximize: bool) -> None:
    r"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"), as
    ``optax.lion``.

    .. math::
        u_t = \operatorname{sign}(\beta_1 m_{t-1} + (1-\beta_1) g_t),\quad
        \theta_t = \theta_{t-1} - \gamma\,(u_t + \lambda\theta_{t-1}),\quad
        m_t = \beta_2 m_{t-1} + (1-\beta_2) g_t

    with :math:`g_t` negated to maximise; the weight decay is decoupled.
    """
    t = param.dtype.type
    d = -grad if maximize else grad
    u = np.sign(t(beta1) * exp_avg + t(1 - beta1) * d)
    exp_avg[...] = t(beta2) * exp_avg + t(1 - beta2) * d
    param[...] = param - t(lr) * (u + t(weight_decay) * param)


def adadelta(param: FloatArray, grad: FloatArray, square_avg: FloatArray, acc_delta: FloatArray,
             *, lr: float, rho: float, eps: float, weight_decay: float, maximize: bool) -> None:
    r"""Adadelta (Zeiler 2012).

    .. math::
        v_t = \rho v_{t-1} + (1-\rho) g_t^2,\quad
        \Delta_t = \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}}\, g_t,\quad
        u_t = \rho u_{t-1} + (1-\rho) \Delta_t^2,\quad
        \theta_t = \theta_{t-1} - \gamma \Delta_t

    with :math:`g_t` negated to maximise and plus :math:`\lambda\theta_{t-1}` (L2 decay).
    """
    t = param.dtype.type
    d = _direction(param, grad, weight_decay, maximize)
    square_avg *= t(rho)
    square_avg += t(1 - rho) * d * d
    std = np.sqrt(square_avg + t(eps))
    delta = np.sqrt(acc_delta + t(eps)) / std * d
    acc_delta *= t(rho)
    acc_delta += t(1 - rho) * delta * delta
    param += t(-lr) * delta


def radam(param: FloatArray, grad: FloatArray, exp_avg: FloatArray, exp_avg_sq: FloatArray, *,
          step: int, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
          maximize: bool, decoupled_weight_decay: bool) -> None:
    r"""RAdam (Liu et al. 2020), Adam with the variance of its adaptive step rectified.

    .. math::
        \rho_\infty = \frac{2}{1-\beta_2} - 1,\quad
        \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1-\beta_2^t},\quad
        \theta_t = \theta_{t-1} - \gamma\,\frac{m_t}{1-\beta_1^t}\,
            \begin{cases} r_t\,\frac{\sqrt{1-\beta_2^t}}{\sqrt{v_t}+\epsilon} & \rho_t > 5\\
            1 & \text{otherwise}\end{cases},\quad
        r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}}

    with :math:`m_t, v_t` Adam's moments; decoupled decay shrinks :math:`\theta` first.
    """
    t = param.dtype.type
    _adam_moments_(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, weight_decay, maximize,
                   decoupled_weight_decay)
    bc1 = 1 - beta1**step
    bc2 = 1 - beta2**step
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * step * beta2**step / bc2
    update = (exp_avg / t(bc1)) * t(lr)
    if rho_t > 5.0:
        rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
        update = (update * (t(bc2**0.5) / (np.sqrt(exp_avg_sq) + t(eps)))) * t(rect)
    param -= update


def nadam(param: FloatArray, grad: FloatArray, exp_avg: FloatArray, exp_avg_sq: FloatArray, *,
          step: int, mu_product: FloatArray, lr: float, beta1: float, beta2: float, eps: float,
          weight_decay: float, momentum_decay: float, maximize: bool,
          decoupled_weight_decay: bool) -> None:
    r"""NAdam (Dozat 2016), Adam with Nesterov momentum and a momentum schedule.

    .. math::
        \mu_t = \beta_1\,(1 - \tfrac12\,0.96^{t\psi}),\quad
        \theta_t = \theta_{t-1} - \gamma\,\Big(
            \frac{(1-\mu_t)\,g_t}{1-\prod_{i\le t}\mu_i}
            + \frac{\mu_{t+1}\,m_t}{1-\prod_{i\le t+1}\mu_i}\Big)
            \Big/ \Big(\sqrt{v_t / (1-\beta_2^t)} + \epsilon\Big)

    with :math:`m_t, v_t` Adam's moments and :math:`\psi` the momentum decay.
    ``mu_product`` (a one-element float64 array) holds :math:`\prod_{i<t}\mu_i` and is
    replaced by :math:`\prod_{i\le t}\mu_i`, rounded to float32 as PyTorch keeps it.
    """
    t = param.dtype.type
    d = _adam_moments_(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, weight_decay,
                       maximize, decoupled_weight_decay)
    mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
    prod = float(np.float32(mu_product[0]) * np.float32(mu))
    mu_product[0] = prod
    denom = np.sqrt(exp_avg_sq / t(1 - beta2**step)) + t(eps)
    param += (t(-lr * (1.0 - mu) / (1.0 - prod)) * d) / denom
    param += (t((-lr * mu_next) / (1.0 - prod * mu_next)) * exp_avg) / denom
