"""In-place optimizer updates without an optimizer object, for embedding in other code.

Each function updates ``param`` and its state arrays in place from ``grad``. Every array
argument may be one ndarray or a list of ndarrays (one fused kernel call for the whole list).
Arrays are float32 or float64 and stay in their dtype; a parameter and its gradient and state
share dtype and shape. The caller keeps the state and counts the steps: ``step`` is the
number of this update, 1 for the first (an int for all tensors, or one per tensor).

``backend="reference"`` runs the plain-numpy twin from ``fastgd.reference.optim``.

There is one function per algorithm of `fastgd.optim.ALGORITHMS`, made from its spec:
``<name>_(param, grad, <its state arrays, in the kernel's order; a scalar state after the
required ones>, *,
[step,] <the kernel's hyper-parameters>, [init_<buffer>=False,] backend="native")``:
``sgd_``, ``adagrad_``, ``rmsprop_``, ``adam_``, ``adamw_``, ``adamax_``, ``lion_``,
``adadelta_``, ``radam_``, ``nadam_``. The hyper-parameters are those of the optimizer class
as its kernel takes them (``beta1, beta2`` for ``betas``; no ``initial_accumulator_value``:
the caller fills ``state_sum``). NAdam's scalar state ``mu_product`` is a float64 array with
one entry per parameter array (1.0 before the first step), updated in place.

>>> import numpy as np
>>> from fastgd.functional import adam_
>>> w, m, v = np.ones(3, np.float32), np.zeros(3, np.float32), np.zeros(3, np.float32)
>>> adam_(w, np.ones(3, np.float32), m, v, step=1, lr=0.1)
>>> w
array([0.9, 0.9, 0.9], dtype=float32)
"""
import textwrap

import numpy as np

from .. import _checks, _optim, optim
from ._spec import make_function


def _prepare(param, grad, states, step):
    """Validate and normalise to lists. ``states``: ordered {name: array, list or None}."""
    single = _checks.is_array(param)
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
        # other libraries' arrays (torch tensors, ...) as ndarrays over their own memory
        p = params[i] = _checks.array_view(p, "param" + sfx(i), writeable=True)
        _checks.parameter(p, "param" + sfx(i))
        g = grads[i]
        if not isinstance(g, np.ndarray):
            if not _checks.is_array(g):
                raise TypeError(f"grad{sfx(i)} must be a numpy.ndarray, got {type(g).__name__}")
            g = grads[i] = _checks.array_view(g, "grad" + sfx(i), writeable=False)
        _checks.like(g, p, "grad" + sfx(i), "param" + sfx(i))
        for k, lst in lists.items():
            if lst is not None:
                if not isinstance(lst[i], np.ndarray) and _checks.is_array(lst[i]):
                    lst[i] = _checks.array_view(lst[i], k + sfx(i), writeable=True)
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
        return _filled(n, _checks.integer(step, "step", low=1), np.int64)
    vals = list(step)
    if len(vals) != n:
        raise ValueError(f"step has {len(vals)} entries for {n} parameters")
    return np.array([_checks.integer(s, f"step[{i}]", low=1) for i, s in enumerate(vals)],
                    dtype=np.int64)


def _filled(n, value, dtype):
    """``np.full(n, value, dtype)``, in a third of its time (this runs on every call)."""
    out = np.empty(n, dtype)
    out.fill(value)
    return out


def _scalars(value, n, name):
    """A scalar-state argument: a writeable float64 array of ``n`` entries (shape (n,), or
    () for one parameter array), as the 1-d view the kernel updates in place."""
    if not isinstance(value, np.ndarray) and _checks.is_array(value):
        value = _checks.array_view(value, name, writeable=True)
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a float64 numpy.ndarray with one entry per parameter "
                        f"array, got {type(value).__name__}")
    if value.dtype != np.float64:
        raise TypeError(f"{name} must have dtype float64, got {value.dtype}")
    if value.size != n or value.ndim > 1 or (value.ndim == 0 and n != 1):
        raise ValueError(f"{name} must have shape ({n},) (one entry per parameter array), got "
                         f"shape {value.shape}")
    if not value.flags.writeable:
        raise ValueError(f"{name} is read-only")
    if not value.flags.c_contiguous or not value.flags.aligned:
        raise ValueError(f"{name} must be contiguous")
    return value.reshape(n)


def _native(kernel, params, grads, lists, steps, is_new, scalars=None, **hp):
    n = len(params)
    steps = _filled(n, 1, np.int64) if steps is None else steps
    flags = _filled(n, is_new, np.uint8)
    plan = _optim.TensorPlan(params, list(lists.values()), steps, flags, "param", tuple(lists),
                             scalars)
    mask = sum(1 << i for i, v in enumerate(lists.values()) if v is not None)
    plan.prepare(grads, 0, mask)
    kernel(plan, increment=False, **hp)


def _backend(backend):
    return _checks.backend(backend) == "native"


def _update(spec, param, grad, states, step, values, init, backend, scalar=None):
    """One update of ``spec``'s algorithm: ``states`` by state name (kernel order),
    ``values`` the hyper-parameters by kernel argument name, ``init`` the "is new" flag of a
    state that starts as the first gradient, ``scalar`` the scalar state's array."""
    hp = spec.kernel_args_from_kernel_names(values)
    lazy = spec.lazy
    if lazy is not None:
        init = _checks.flag(init, f"init_{lazy.arg_name}")
    named = {}
    for s in spec.states:
        value = states[s.name]
        if s.when is None:
            if value is None:                # (the kernel would read through a NULL pointer)
                raise TypeError(f"{s.arg_name} must be a numpy.ndarray or a list of them, "
                                "got None")
        elif not s.when(hp):
            value = None                     # the update does not use it
        elif value is None:
            raise ValueError(f"{s.arg_name} is required when {s.when.text}")
        named[s.arg_name] = value
    params, grads, lists, steps = _prepare(param, grad, named,
                                           step if spec.counts_steps else _NO_STEP)
    scalars = None
    if spec.scalar is not None:
        scalars = _scalars(scalar, len(params), spec.scalar.name)
        if any(np.may_share_memory(scalars, a) for a in params + grads):
            raise ValueError(f"{spec.scalar.name} shares memory with a parameter or gradient")
    if _backend(backend):
        _native(getattr(_optim, spec.kernel), params, grads, lists, steps, init, scalars, **hp)
        return
    for i, (p, g) in enumerate(zip(params, grads)):
        spec.reference_step(p, g, [None if lst is None else lst[i] for lst in lists.values()],
                            hp, None if steps is None else int(steps[i]), init,
                            None if scalars is None else scalars[i:i + 1])


def functional_for(cls):
    """``<name>_``, the functional form of the optimizer class ``cls``, from its spec."""
    spec = cls.spec
    namespace = {"_update": _update, "_spec": spec, "_NO_STEP": _NO_STEP}
    required = [s for s in spec.states if s.when is None]
    optional = [s for s in spec.states if s.when is not None]
    scalar = [] if spec.scalar is None else [spec.scalar.name]
    params = ["param", "grad", *(s.arg_name for s in required), *scalar,
              *(f"{s.arg_name}=None" for s in optional), "*"]
    if spec.counts_steps:
        params.append("step")
    kernel = []
    for h in spec.hypers:
        names = h.kernel_names
        for n, default in zip(names, h.default if len(names) == 2 else (h.default,)):
            namespace[f"_d_{n}"] = default
            params.append(f"{n}=_d_{n}")
            kernel.append((n, default))
    lazy = spec.lazy
    init = "False" if lazy is None else f"init_{lazy.arg_name}"
    if lazy is not None:
        params.append(f"{init}=False")
    params.append("backend='native'")
    states = ", ".join(f"{s.name!r}: {s.arg_name}" for s in spec.states)
    values = ", ".join(f"{n!r}: {n}" for n, _ in kernel)
    body = (f"_update(_spec, param, grad, {{{states}}}, {'step' if spec.counts_steps else '_NO_STEP'}, "
            f"{{{values}}}, {init}, backend{''.join(', ' + n for n in scalar)})")
    name = f"{spec.name}_"
    return make_function(name, params, body, namespace, module=__name__,
                         doc=_doc(cls, required, optional, kernel, lazy))


def _doc(cls, required, optional, kernel, lazy):
    spec, title = cls.spec, cls.__name__
    lines = [f"One {title} step in place (see `fastgd.optim.{title}` for the rule).", "",
             "Parameters", "----------",
             "param, grad : ndarray or list of ndarray",
             "    The parameter (updated in place) and its gradient."]
    if required:
        lines += [f"{', '.join(s.arg_name for s in required)} : ndarray or list of ndarray",
                  "    State, updated in place: the parameter's dtype, shape and layout."]
    for s in optional:
        lines += [f"{s.arg_name} : ndarray or list of ndarray, optional",
                  f"    State, required when {s.when.text} (ignored otherwise)."]
    if spec.scalar is not None:
        lines += [f"{spec.scalar.name} : ndarray of float64",
                  "    The scalar state, one entry per parameter array (shape (n,), or () for",
                  f"    one array), {spec.scalar.initial!r} before the first step; updated in "
                  "place."]
    if spec.counts_steps:
        lines += ["step : int or sequence of int",
                  "    The number of this update (1 for the first), for all tensors or one",
                  "    per tensor."]
    lines += [f"{', '.join(n for n, _ in kernel)}"]
    lines += textwrap.wrap(f"The hyper-parameters of `fastgd.optim.{title}`, as its kernel takes "
                           "them; defaults " + ", ".join(f"{n}={d!r}" for n, d in kernel) + ".",
                           88, initial_indent="    ", subsequent_indent="    ")
    if lazy is not None:
        lines += [f"init_{lazy.arg_name} : bool, default False",
                  f"    True on the first step: {lazy.arg_name} is set to the gradient "
                  "(PyTorch's first step) instead of being decayed and accumulated."]
    lines += ['backend : {"native", "reference"}, default "native"', ""]
    if spec.example:
        lines += ["Examples", "--------"]
        lines += [line[4:] if line.startswith("    ") else line
                  for line in spec.example.strip("\n").splitlines()]
    return "\n".join(lines) + "\n"


__all__ = []
for _cls in optim.ALGORITHMS.values():
    _fn = functional_for(_cls)
    globals()[_fn.__name__] = _fn
    __all__.append(_fn.__name__)
del _cls, _fn
