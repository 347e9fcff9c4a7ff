r"""fastgd's fused optimizers as drop-ins for ``torch.optim`` on the CPU.

Each class is a `torch.optim.Optimizer` with the constructor of its ``torch.optim``
namesake (same arguments, defaults, group keys and state format), whose ``step()`` updates
every float32/float64 dense CPU parameter of a group in one call of fastgd's fused kernel,
reading the gradients from ``p.grad`` (parameters without one are skipped, as torch skips
them). Same numbers as ``torch.optim.<Name>(..., foreach=False)``; ``lr_scheduler`` drives
them; ``state_dict()`` loads into the torch class and the reverse.

``foreach`` and ``fused`` are accepted and kept in the groups (fastgd always runs its fused
kernel); ``capturable=True`` and ``differentiable=True`` are refused. `Lion`, which PyTorch
lacks, takes fastgd's arguments. L-BFGS has no drop-in here (``torch.optim.LBFGS`` steps a
closure over one flat vector, which fused multi-tensor kernels do not speed up).

Importing ``fastgd`` never imports torch; ``import fastgd.torch`` does
(``pip install 'fastgd[torch]'``).

>>> import torch, fastgd.torch
>>> model = torch.nn.Linear(3, 1)
>>> opt = fastgd.torch.Adam(model.parameters(), lr=0.1)
>>> model(torch.ones(2, 3)).sum().backward()
>>> opt.step()
>>> sorted(opt.state[model.weight])
['exp_avg', 'exp_avg_sq', 'step']
"""
import torch

from .. import optim as _fgd
from ._optimizer import Optimizer, _adam_class, drop_in

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Adadelta", "Adamax",
           "RAdam", "NAdam", "Lion"]


@drop_in(_fgd.SGD, torch.optim.SGD)
class SGD(Optimizer):
    r"""SGD with momentum, Nesterov momentum and weight decay: ``torch.optim.SGD`` stepped
    by fastgd's fused kernel (the rule of `fastgd.optim.SGD`).

    .. math::
        g_t = \nabla f(\theta_{t-1}) + \lambda\theta_{t-1},\quad
        b_t = \mu b_{t-1} + (1 - \tau) g_t,\quad
        \theta_t = \theta_{t-1} - \gamma\,(g_t + \mu b_t \text{ if nesterov else } b_t)

    Examples
    --------
    >>> import torch, fastgd.torch
    >>> w = torch.nn.Parameter(torch.ones(2))
    >>> opt = fastgd.torch.SGD([w], lr=0.5, momentum=0.9)
    >>> w.grad = torch.ones(2)
    >>> opt.step()
    >>> w.detach()
    tensor([0.5000, 0.5000])
    """
    _has_step = False


@drop_in(_fgd.Adam, torch.optim.Adam)
class Adam(Optimizer):
    r"""Adam (``decoupled_weight_decay=True``: AdamW), as ``torch.optim.Adam``, stepped by
    fastgd's fused kernel (the rule of `fastgd.optim.Adam`).

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t,\quad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2,\quad
        \theta_t = \theta_{t-1} - \frac{\gamma}{1 - \beta_1^t}
            \frac{m_t}{\sqrt{v_t}/\sqrt{1 - \beta_2^t} + \epsilon}

    Examples
    --------
    >>> import torch, fastgd.torch
    >>> w = torch.nn.Parameter(torch.ones(2))
    >>> opt = fastgd.torch.Adam([w], lr=0.1)
    >>> w.grad = torch.tensor([1.0, -1.0])
    >>> opt.step()
    >>> w.detach()
    tensor([0.9000, 1.1000])
    """
    _fastgd_class = _adam_class


@drop_in(_fgd.AdamW, torch.optim.AdamW, fixed={"decoupled_weight_decay": True})
class AdamW(Adam):
    r"""AdamW, as ``torch.optim.AdamW``: Adam whose weight decay shrinks the parameters,
    :math:`\theta \leftarrow \theta(1 - \gamma\lambda)`, instead of entering the gradient.

    Examples
    --------
    >>> import torch, fastgd.torch
    >>> w = torch.nn.Parameter(torch.ones(2))
    >>> opt = fastgd.torch.AdamW([w], lr=0.1, weight_decay=0.5)
    >>> w.grad = torch.zeros(2)
    >>> opt.step()
    >>> w.detach()
    tensor([0.9500, 0.9500])
    """


@drop_in(_fgd.Adagrad, torch.optim.Adagrad)
class Adagrad(Optimizer):
    r"""Adagrad, as ``torch.optim.Adagrad`` (its state exists from construction, as torch's),
    stepped by fastgd's fused kernel (the rule of `fastgd.optim.Adagrad`).

    .. math::
        s_t = s_{t-1} + g_t^2,\quad
        \theta_t = \theta_{t-1} - \frac{\gamma}{1 + (t - 1)\eta}\,\frac{g_t}{\sqrt{s_t} + \epsilon}

    Examples
    --------
    >>> import torch, fastgd.torch
    >>> w = torch.nn.Parameter(torch.ones(2))
    >>> opt = fastgd.torch.Adagrad([w], lr=0.5)
    >>> w.grad = torch.tensor([2.0, -2.0])
    >>> opt.step()
    >>> w.detach()
    tensor([0.5000, 1.5000])
    """
    _eager = True


@drop_in(_fgd.RMSprop, torch.optim.RMSprop)
class RMSprop(Optimizer):
    r"""RMSprop (centered, with momentum), as ``torch.optim.RMSprop``, stepped by fastgd's
    fused kernel (the rule of `fastgd.optim.RMSprop`).

    .. math::
        v_t = \alpha v_{t-1} + (1 - \alpha) g_t^2,\quad
        \theta_t = \theta_{t-1} - \gamma\, g_t / (\sqrt{v_t} + \epsilon)

    Examples
    --------
    >>> import torch, fastgd.torch
    >>> w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    >>> opt = fastgd.torch.RMSprop([w], lr=0.01)
    >>> w.grad = torch.ones(1, dtype=torch.float64)
    >>> opt.step()
    >>> round(w.item(), 4)
    -0.1
    """


@drop_in(_fgd.Adadelta, torch.optim.Adadelta)
class Adadelta(Optimizer):
    r"""Adadelta, as ``torch.optim.Adadelta``, stepped by fastgd's fused kernel (the rule of
    `fastgd.optim.Adadelta`).

    .. math::
        v_t = \rho v_{t-1} + (1 - \rho) g_t^2,\quad
        \Delta_t = \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}}\, g_t,\quad
        u_t = \rho u_{t-1} + (1 - \rho)\Delta_t^2,\quad
        \theta_t = \theta_{t-1} - \gamma\Delta_t

    Examples
    --------
    >>> import torch, fastgd.torch
    >>> w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    >>> opt = fastgd.torch.Adadelta([w])
    >>> w.grad = torch.ones(1, dtype=torch.float64)
    >>> opt.step()
    >>> round(w.item(), 5)
    -0.00316
    """


@drop_in(_fgd.Adamax, torch.optim.Adamax)
class Adamax(Optimizer):
    r"""Adamax, as ``torch.optim.Adamax``, stepped by fastgd's fused kernel (the rule of
    `fastgd.optim.Adamax`).

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t,\quad
        u_t = \max(\beta_2 u_{t-1}, |g_t| + \epsilon),\quad
        \theta_t = \theta_{t-1} - \frac{\gamma}{1 - \beta_1^t}\frac{m_t}{u_t}

    Examples
    --------
    >>> import torch, fastgd.torch
    >>> w = torch.nn.Parameter(torch.ones(2))
    >>> opt = fastgd.torch.Adamax([w], lr=0.1)
    >>> w.grad = torch.tensor([1.0, -1.0])
    >>> opt.step()
    >>> w.detach()
    tensor([0.9000, 1.1000])
    """


@drop_in(_fgd.RAdam, torch.optim.RAdam)
class RAdam(Optimizer):
    r"""RAdam, as ``torch.optim.RAdam``, stepped by fastgd's fused kernel (the rule of
    `fastgd.optim.RAdam`: Adam whose adaptive step is rectified, a plain momentum step
    while the variance estimate is unreliable, :math:`\rho_t \le 5`).

    Examples
    --------
    >>> import torch, fastgd.torch
    >>> w = torch.nn.Parameter(torch.ones(2))
    >>> opt = fastgd.torch.RAdam([w], lr=0.1)
    >>> w.grad = torch.tensor([1.0, -1.0])
    >>> opt.step()
    >>> w.detach()
    tensor([0.9000, 1.1000])
    """


@drop_in(_fgd.NAdam, torch.optim.NAdam)
class NAdam(Optimizer):
    r"""NAdam, as ``torch.optim.NAdam`` (``mu_product`` a float scalar tensor in the state,
    as torch keeps it), stepped by fastgd's fused kernel (the rule of `fastgd.optim.NAdam`).

    .. math::
        \theta_t = \theta_{t-1} - \gamma\left(
            \frac{(1 - \mu_t)\, g_t}{1 - \prod_{i\le t}\mu_i}
            + \frac{\mu_{t+1}\, m_t}{1 - \prod_{i\le t+1}\mu_i}\right)
            \Big/ \left(\sqrt{v_t / (1 - \beta_2^t)} + \epsilon\right)

    Examples
    --------
    >>> import torch, fastgd.torch
    >>> w = torch.nn.Parameter(torch.ones(1, dtype=torch.float64))
    >>> opt = fastgd.torch.NAdam([w], lr=0.1)
    >>> w.grad = torch.ones(1, dtype=torch.float64)
    >>> opt.step()
    >>> round(w.item(), 4)
    0.8944
    """


@drop_in(_fgd.Lion, None)
class Lion(Optimizer):
    r"""Lion, with the arguments of `fastgd.optim.Lion` (PyTorch has no Lion), as a
    `torch.optim.Optimizer` stepped by fastgd's fused kernel.

    .. math::
        \theta_t = \theta_{t-1} - \gamma\,(\operatorname{sign}(\beta_1 m_{t-1}
            + (1 - \beta_1) g_t) + \lambda\theta_{t-1}),\quad
        m_t = \beta_2 m_{t-1} + (1 - \beta_2) g_t

    Examples
    --------
    >>> import torch, fastgd.torch
    >>> w = torch.nn.Parameter(torch.ones(2))
    >>> opt = fastgd.torch.Lion([w], lr=0.1)
    >>> w.grad = torch.tensor([1.0, -1.0])
    >>> opt.step()
    >>> w.detach()
    tensor([0.9000, 1.1000])
    """
