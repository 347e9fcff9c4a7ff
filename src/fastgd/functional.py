"""In-place optimizer updates without an optimizer object, for embedding in other code.

Each function updates ``param`` and its state arrays in place from ``grad``. Every array
argument may be one ndarray or a list of ndarrays (one fused kernel call for the whole list).
Arrays are float32 or float64 and stay in their dtype; a parameter and its gradient and state
share dtype and shape. The caller keeps the state and counts the steps: ``step`` is the
number of this update, 1 for the first (an int for all tensors, or one per tensor).

``backend="reference"`` runs the plain-numpy twin from ``fastgd.reference.optim``.

>>> import numpy as np
>>> from fastgd.functional import adam_
>>> w, m, v = np.ones(3, np.float32), np.zeros(3, np.float32), np.zeros(3, np.float32)
>>> adam_(w, np.ones(3, np.float32), m, v, step=1, lr=0.1)
>>> w
array([0.9, 0.9, 0.9], dtype=float32)
"""
import numpy as np

from . import _checks, _optim
from .optim import adagrad as _adagrad, adam as _adam, rmsprop as _rmsprop, sgd as _sgd
from .reference import optim as _ref

__all__ = ["sgd_", "adagrad_", "rmsprop_", "adam_", "adamw_"]


def _prepare(param, grad, states, step):
    """Validate and normalise to lists. ``states``: ordered {name: array, list or None}."""
    single = isinstance(param, np.ndarray)
    if single:
        params, grads = [param], [grad]
        lists = {k: None if v is None else [v] for k, v in states.items()}
    else:
        params = _as_list(param, "param")
        grads = _as_list(grad, "grad")
        if len(grads) != len(params):
            raise ValueError(f"grad has {len(grads)} arrays for {len(params)} parameters")
        lists = {}
        for k, v in states.items():
            lists[k] = None if v is None else _as_list(v, k)
            if lists[k] is not None and len(lists[k]) != len(params):
                raise ValueError(f"{k} has {len(lists[k])} arrays for {len(params)} parameters")
    sfx = (lambda i: "") if single else (lambda i: f"[{i}]")
    for i, p in enumerate(params):
        _checks.parameter(p, "param" + sfx(i))
        g = grads[i]
        if not isinstance(g, np.ndarray):
            raise TypeError(f"grad{sfx(i)} must be a numpy.ndarray, got {type(g).__name__}")
        _checks.like(g, p, "grad" + sfx(i), "param" + sfx(i))
        for k, lst in lists.items():
            if lst is not None:
                _checks.like(lst[i], p, k + sfx(i), "param" + sfx(i))
                if not lst[i].flags.writeable:
                    raise ValueError(f"{k}{sfx(i)} is read-only")
                if not (lst[i].flags.c_contiguous or lst[i].flags.f_contiguous):
                    raise ValueError(f"{k}{sfx(i)} is not contiguous")
                if p.size > 1 and lst[i].strides != p.strides:
                    raise ValueError(f"{k}{sfx(i)} has strides {lst[i].strides} but param{sfx(i)} "
                                     f"has {p.strides}: state must share its parameter's memory "
                                     "layout (np.zeros_like(param) does)")
    written = params + [a for lst in lists.values() if lst is not None for a in lst]
    names = ["param" + sfx(i) for i in range(len(params))] + [
        k + sfx(i) for k, lst in lists.items() if lst is not None for i in range(len(lst))]
    _checks.disjoint(written, names)
    for i, g in enumerate(grads):
        if any(np.may_share_memory(g, a) for a in written):
            raise ValueError(f"grad{sfx(i)} shares memory with an array the update writes")
    steps = None if step is _NO_STEP else _steps(step, len(params))
    return params, grads, lists, steps


_NO_STEP = object()  # for the updates that take no step number (SGD, RMSprop)


def _as_list(value, name):
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be a numpy.ndarray or a list of them, "
                        f"got {type(value).__name__}")
    return list(value)


def _steps(step, n):
    if np.ndim(step) == 0 and not isinstance(step, (list, tuple)):
        return np.full(n, _checks.integer(step, "step", low=1), dtype=np.int64)
    vals = list(step)
    if len(vals) != n:
        raise ValueError(f"step has {len(vals)} entries for {n} parameters")
    return np.array([_checks.integer(s, f"step[{i}]", low=1) for i, s in enumerate(vals)],
                    dtype=np.int64)


def _native(kernel, params, grads, lists, steps, is_new, **hp):
    n = len(params)
    steps = np.ones(n, np.int64) if steps is None else steps
    plan = _optim.TensorPlan(params, list(lists.values()), steps,
                             np.full(n, is_new, np.uint8), "param", tuple(lists))
    mask = sum(1 << i for i, v in enumerate(lists.values()) if v is not None)
    plan.prepare(grads, 0, mask)
    kernel(plan, increment=False, **hp)


def _backend(backend):
    return _checks.backend(backend) == "native"


def sgd_(param, grad, momentum_buffer=None, *, lr=1e-3, momentum=0.0, dampening=0.0,
         weight_decay=0.0, nesterov=False, maximize=False, init_momentum_buffer=False,
         backend="native"):
    r"""One SGD step in place (see `fastgd.optim.SGD` for the rule).

    Parameters
    ----------
    param, grad : ndarray or list of ndarray
    momentum_buffer : ndarray or list of ndarray, optional
        Required when ``momentum != 0``.
    init_momentum_buffer : bool, default False
        True on the first step: the buffer is set to the gradient (PyTorch's first step)
        instead of being decayed and accumulated.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([1.0, 3.0])
    >>> sgd_(x, 2 * x + 0.0, lr=0.25)
    >>> x
    array([0.5, 1.5])
    """
    hp = _sgd.hyper(dict(lr=lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))
    init = _checks.flag(init_momentum_buffer, "init_momentum_buffer")
    if hp["momentum"] != 0 and momentum_buffer is None:
        raise ValueError("momentum_buffer is required when momentum != 0")
    params, grads, lists, _ = _prepare(
        param, grad, {"momentum_buffer": momentum_buffer if hp["momentum"] != 0 else None},
        _NO_STEP)
    if _backend(backend):
        _native(_optim.sgd, params, grads, lists, None, init, **hp)
        return
    for i, (p, g) in enumerate(zip(params, grads)):
        buf = lists["momentum_buffer"]
        _ref.sgd(p, g, None if buf is None else buf[i], buffer_is_new=init, **hp)


def adagrad_(param, grad, state_sum, *, step, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
             eps=1e-10, maximize=False, backend="native"):
    r"""One Adagrad step in place (see `fastgd.optim.Adagrad`); ``state_sum`` accumulates g².

    Examples
    --------
    >>> import numpy as np
    >>> x, s = np.array([2.0]), np.zeros(1)
    >>> adagrad_(x, np.array([4.0]), s, step=1, lr=0.5)
    >>> x, s
    (array([1.5]), array([16.]))
    """
    hp = _adagrad.hyper(dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                             initial_accumulator_value=0, eps=eps, maximize=maximize))
    params, grads, lists, steps = _prepare(param, grad, {"state_sum": state_sum}, step)
    if _backend(backend):
        _native(_optim.adagrad, params, grads, lists, steps, False, **hp)
        return
    for i, (p, g) in enumerate(zip(params, grads)):
        _ref.adagrad(p, g, lists["state_sum"][i], step=int(steps[i]), **hp)


def rmsprop_(param, grad, square_avg, *, grad_avg=None, momentum_buffer=None, lr=1e-2,
             alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
             maximize=False, backend="native"):
    r"""One RMSprop step in place (see `fastgd.optim.RMSprop`).

    ``grad_avg`` is required when ``centered``, ``momentum_buffer`` when ``momentum > 0``.

    Examples
    --------
    >>> import numpy as np
    >>> x, v = np.array([1.0]), np.zeros(1)
    >>> rmsprop_(x, np.array([1.0]), v, lr=0.01, alpha=0.75)
    >>> np.round(x, 6), v
    (array([0.98]), array([0.25]))
    """
    hp = _rmsprop.hyper(dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                             momentum=momentum, centered=centered, maximize=maximize))
    if hp["centered"] and grad_avg is None:
        raise ValueError("grad_avg is required when centered=True")
    if hp["momentum"] > 0 and momentum_buffer is None:
        raise ValueError("momentum_buffer is required when momentum > 0")
    states = {"square_avg": square_avg,
              "momentum_buffer": momentum_buffer if hp["momentum"] > 0 else None,
              "grad_avg": grad_avg if hp["centered"] else None}
    params, grads, lists, _ = _prepare(param, grad, states, _NO_STEP)
    if _backend(backend):
        _native(_optim.rmsprop, params, grads, lists, None, False, **hp)
        return
    pick = lambda k, i: None if lists[k] is None else lists[k][i]  # noqa: E731
    for i, (p, g) in enumerate(zip(params, grads)):
        _ref.rmsprop(p, g, lists["square_avg"][i], pick("grad_avg", i),
                     pick("momentum_buffer", i), **hp)


def adam_(param, grad, exp_avg, exp_avg_sq, *, step, lr=1e-3, beta1=0.9, beta2=0.999,
          eps=1e-8, weight_decay=0.0, amsgrad=False, max_exp_avg_sq=None, maximize=False,
          backend="native"):
    r"""One Adam step in place (see `fastgd.optim.Adam` for the rule).

    Parameters
    ----------
    param, grad, exp_avg, exp_avg_sq : ndarray or list of ndarray
        The parameter, its gradient and the first and second moment estimates.
    step : int or sequence of int
        The number of this update (1 for the first), for the bias corrections.
    max_exp_avg_sq : ndarray or list of ndarray, optional
        Required when ``amsgrad``.

    Examples
    --------
    >>> import numpy as np
    >>> w, m, v = np.ones(2), np.zeros(2), np.zeros(2)
    >>> adam_(w, np.array([0.5, -2.0]), m, v, step=1, lr=0.1)
    >>> np.round(w, 6)      # the first Adam step moves each coordinate by lr
    array([0.9, 1.1])
    """
    _adam_impl(param, grad, exp_avg, exp_avg_sq, step, max_exp_avg_sq, backend,
               dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay,
                    amsgrad=amsgrad, maximize=maximize), False)


def adamw_(param, grad, exp_avg, exp_avg_sq, *, step, lr=1e-3, beta1=0.9, beta2=0.999,
           eps=1e-8, weight_decay=1e-2, amsgrad=False, max_exp_avg_sq=None, maximize=False,
           backend="native"):
    r"""One AdamW step in place: :math:`\theta \leftarrow \theta(1 - \gamma\lambda)`, then Adam.

    Arguments as in `adam_`; see `fastgd.optim.AdamW`.

    Examples
    --------
    >>> import numpy as np
    >>> w, m, v = np.ones(1), np.zeros(1), np.zeros(1)
    >>> adamw_(w, np.zeros(1), m, v, step=1, lr=0.1, weight_decay=0.5)
    >>> w
    array([0.95])
    """
    _adam_impl(param, grad, exp_avg, exp_avg_sq, step, max_exp_avg_sq, backend,
               dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay,
                    amsgrad=amsgrad, maximize=maximize), True)


def _adam_impl(param, grad, exp_avg, exp_avg_sq, step, max_exp_avg_sq, backend, group,
               decoupled):
    for i, b in enumerate(group["betas"]):
        _checks.real(b, f"beta{i + 1}", low=0, high=1, high_open=True)
    hp = _adam.hyper(group, "", decoupled)
    if hp["amsgrad"] and max_exp_avg_sq is None:
        raise ValueError("max_exp_avg_sq is required when amsgrad=True")
    states = {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq,
              "max_exp_avg_sq": max_exp_avg_sq if hp["amsgrad"] else None}
    params, grads, lists, steps = _prepare(param, grad, states, step)
    if _backend(backend):
        _native(_optim.adam, params, grads, lists, steps, False, **hp)
        return
    for i, (p, g) in enumerate(zip(params, grads)):
        vmax = None if lists["max_exp_avg_sq"] is None else lists["max_exp_avg_sq"][i]
        _ref.adam(p, g, lists["exp_avg"][i], lists["exp_avg_sq"][i], vmax, step=int(steps[i]),
                  **hp)
