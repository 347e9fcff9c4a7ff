"""`torch.optim.Optimizer` subclasses that step with fastgd's fused kernels.

Each class pairs a torch optimizer's face (its constructor arguments, ``param_groups``,
``state``, ``state_dict``, hooks, closures, ``lr_scheduler``) with a fastgd optimizer
(`fastgd.optim`) per parameter group, whose arrays are numpy views of the tensors' own
memory. ``step()`` reads every ``p.grad`` in one pass of C (`TensorPlan.prepare_tensors`)
and updates all of a group's float32 and float64 tensors in one kernel call.

The state lives in fastgd's buffers; ``self.state[p]`` holds torch tensors over the same
memory, under torch's names, in torch's format (``step`` a 0-d float tensor, created when
a parameter is first stepped), so checkpoints move both ways between these classes and
``torch.optim``'s.
"""
import inspect
from typing import Any, Callable, Optional

import numpy as np
import torch

from .. import _checks, _optim
from .. import optim as _fgd
from ..optim._spec import make_function

#: group keys that choose how torch computes a step, not what it computes: kept in the
#: groups (and state dicts) as torch keeps them; fastgd always runs its fused kernel
_HOW = ("foreach", "fused", "capturable", "differentiable")

#: of those, the ones fastgd cannot honour when True
_REFUSED = ("capturable", "differentiable")

_SUPPORTED_DTYPES = (torch.float32, torch.float64)


def _scalar_dtype() -> torch.dtype:
    """The dtype torch gives ``state['step']`` (and NAdam's ``mu_product``)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _plain(v: Any) -> Any:
    """A hyper-parameter as fastgd checks it: tensors (``lr=torch.tensor(0.01)``) as numbers."""
    if isinstance(v, torch.Tensor):
        if v.numel() != 1:
            raise ValueError(f"a hyper-parameter tensor must hold one number, got shape "
                             f"{tuple(v.shape)}")
        return v.item()
    if type(v) is tuple or type(v) is list:
        return type(v)(_plain(x) for x in v)
    return v


def _increment_version(tensors: list[torch.Tensor]) -> None:
    """Bump the tensors' autograd version counters (one call for all where torch allows)."""
    try:
        torch.autograd.graph.increment_version(tensors)
    except TypeError:  # a torch whose increment_version takes one tensor
        for t in tensors:
            torch.autograd.graph.increment_version(t)


def _refuse_unsupported(group: dict[str, Any], gi: int) -> None:
    """A ValueError when the group asks for what fastgd's kernels cannot do (checked when
    the group is added and at every step, since a group may be edited in between)."""
    for k in _REFUSED:
        if group.get(k):
            raise ValueError(f"param_groups[{gi}]: {k}=True is not supported: fastgd's "
                             "kernels are neither capturable nor differentiable")


def _grad_view(g: Any, name: str) -> np.ndarray:
    return _checks.array_view(g, name, writeable=False)


class _Group:
    """fastgd's side of one torch parameter group: the numpy views of its tensors, the
    fastgd optimizer over them, and the torch tensors that show its step counters."""

    def __init__(self, owner: "Optimizer", group: dict[str, Any], gi: int) -> None:
        self.where = f"param_groups[{gi}]['params']"
        self.tensors: list[torch.Tensor] = group["params"]
        self.n = len(self.tensors)
        self.dtypes = tuple(p.dtype for p in self.tensors)
        self.arrays = [owner._view(p, f"{self.where}[{i}]") for i, p in enumerate(self.tensors)]
        self.class_for = owner._fastgd_class
        self.cls = self.class_for(group)
        self.keys = tuple(self.cls.spec.defaults)
        hypers = {k: _plain(group[k]) for k in self.keys}
        self.cls.spec.kernel_args(hypers, f"param_groups[{gi}]")  # named as torch names it
        self.inner: _fgd.Optimizer = self.cls(self.arrays, **hypers)
        self.slot = self.inner._slots[0]
        self.kernel = getattr(_optim, self.cls.spec.kernel)
        # the torch face of the step counters and of the scalar state (NAdam's mu_product)
        self.steps_t = torch.zeros(self.n, dtype=_scalar_dtype())
        self.steps_np = self.steps_t.numpy()
        scalar = self.cls.spec.scalar
        self.scalar_name = None if scalar is None else scalar.name
        self.scalar_t = None if scalar is None else torch.ones(self.n, dtype=_scalar_dtype())
        self.scalar_np = None if self.scalar_t is None else self.scalar_t.numpy()
        self.shown = np.zeros(self.n, dtype=bool)  # has its entry in owner.state
        self.shown_buffers: tuple = ()             # the buffers those entries view

    # ------------------------------------------------------------------ each step
    def sync(self, group: dict[str, Any], gi: int) -> tuple[dict[str, Any], int]:
        """Copy the torch group's hyper-parameters into the fastgd group (a schedule or the
        user may have changed them) and return the checked kernel arguments and state mask."""
        _refuse_unsupported(group, gi)
        inner_group = self.inner.param_groups[0]
        for k in self.keys:
            v = group[k]
            inner_group[k] = v if type(v) is float else _plain(v)
        return self.inner._checked(inner_group, self.slot, gi)

    def prepare(self, mask: int) -> list[torch.Tensor]:
        """Read and check the gradients; the tensors that have one."""
        try:
            return self.slot.plan.prepare_tensors(self.tensors, self.dtypes, self.where, mask,
                                                  _grad_view)
        except _optim.StaleParameter:
            self.reseat()
            return self.slot.plan.prepare_tensors(self.tensors, self.dtypes, self.where, mask,
                                                  _grad_view)

    def reseat(self) -> None:
        """View the tensors again after their memory moved (``p.data = ...``, ``module.to()``
        in place): same shapes and dtypes, the state stays."""
        owner_view = Optimizer._view
        arrays = [owner_view(p, f"{self.where}[{i}]") for i, p in enumerate(self.tensors)]
        for i, (a, old) in enumerate(zip(arrays, self.arrays)):
            if a.dtype != old.dtype or a.shape != old.shape or a.strides != old.strides:
                raise ValueError(f"{self.where}[{i}] changed from {old.dtype} {old.shape} to "
                                 f"{a.dtype} {a.shape} after the optimizer was built; build the "
                                 "optimizer after converting the model")
        _checks.disjoint(arrays, [f"{self.where}[{i}]" for i in range(self.n)])
        self.arrays = arrays
        self.slot.params = tuple(arrays)
        self.inner.param_groups[0]["params"] = arrays
        self.slot.build_plan(self.inner.state_names)

    def after_step(self, state: dict[torch.Tensor, Any], has_step: bool) -> None:
        """Show the new step counts (and scalar state) through the torch tensors, and give
        each newly stepped parameter its torch state entry."""
        slot = self.slot
        np.copyto(self.steps_np, slot.steps, casting="unsafe")
        if self.scalar_np is not None and slot.scalars is not None:
            np.copyto(self.scalar_np, slot.scalars, casting="unsafe")
        buffers = tuple(id(b) for b in slot.buffers.values())
        if buffers != self.shown_buffers:  # state arrays (re)allocated: every entry anew
            self.shown[:] = False
            self.shown_buffers = buffers
        if not self.shown.all():
            self.show(state, has_step, self.stepped() & ~self.shown)

    def stepped(self) -> np.ndarray:
        """Which parameters have state a torch optimizer would show."""
        slot = self.slot
        lazy = self.cls.spec.lazy_state
        if lazy is not None:  # SGD: only its momentum buffer, once it holds a gradient
            if slot.buffers[lazy] is None:
                return np.zeros(self.n, dtype=bool)
            return slot.is_new == 0
        return slot.steps > 0

    def show(self, state: dict[torch.Tensor, Any], has_step: bool, which: np.ndarray) -> None:
        """``state[p]``: torch tensors over fastgd's state of parameter ``p``, for ``which``."""
        slot = self.slot
        lazy = self.cls.spec.lazy_state
        for j in np.flatnonzero(which):
            entry: dict[str, Any] = {}
            if has_step:
                entry["step"] = self.steps_t[j]
            if self.scalar_t is not None and self.scalar_name is not None:
                entry[self.scalar_name] = self.scalar_t[j]
            for name, b in slot.buffers.items():
                if b is not None and not (name == lazy and slot.is_new[j]):
                    entry[name] = torch.from_numpy(b[j])
            state[self.tensors[j]] = entry
            self.shown[j] = True
        self.shown_buffers = tuple(id(b) for b in slot.buffers.values())

    # ------------------------------------------------------------------ state dicts
    def adopt(self, group: dict[str, Any], gi: int, state: Any, has_step: bool,
              eager: bool) -> Callable[[], None]:
        """Check the torch-format state of this group's parameters (``state[p]``, as torch's
        loader or an unpickled optimizer has it) against a new fastgd optimizer over the same
        arrays, fill that one, and return the function that installs it: nothing of this
        group changes before that call."""
        where = f"param_groups[{gi}]"
        cls = self.class_for(group)
        hypers = {k: _plain(group[k]) for k in cls.spec.defaults}
        cls.spec.kernel_args(hypers, where)
        inner = cls(self.arrays, **hypers)
        scalar = cls.spec.scalar
        known = set(cls.state_names) | {"step"} | ({scalar.name} if scalar else set())
        entries: dict[int, dict[str, Any]] = {}
        zero_step = []
        for j, p in enumerate(self.tensors):
            entry = state.get(p)
            if not entry:
                continue
            name = f"the state of {self.where}[{j}]"
            if not isinstance(entry, dict):
                raise TypeError(f"{name} must be a dict, got {type(entry).__name__}")
            unknown = sorted(set(entry) - known, key=str)
            if unknown:
                raise ValueError(f"{name} has unknown key {unknown[0]!r}; expected some of "
                                 f"{sorted(known)}")
            e = dict(entry)
            if not has_step:     # torch's SGD keeps no step, and fastgd's SGD reads none
                e["step"] = 1
            elif "step" not in e:
                raise ValueError(f"{name} has no 'step'")
            elif _plain(e["step"]) in (0, 0.0) and not isinstance(_plain(e["step"]), bool):
                zero_step.append(j)  # torch's Adagrad shows its state before the first step
                e["step"] = 1
            entries[j] = e
        saved = {"state": entries, "param_groups": [{**hypers, "params": list(range(self.n))}]}
        new_groups, checked = inner._check_state_dict(saved)  # raises before any change
        inner._apply_state_dict(new_groups, checked)
        slot = inner._slots[0]
        slot.steps[zero_step] = 0
        if eager:
            inner._checked(inner.param_groups[0], slot, gi)  # the state no entry carried

        def install() -> None:
            self.cls = cls
            self.keys = tuple(cls.spec.defaults)
            self.inner = inner
            self.slot = slot
            self.kernel = getattr(_optim, cls.spec.kernel)
            self.shown[:] = False
            np.copyto(self.steps_np, slot.steps, casting="unsafe")
            if self.scalar_np is not None and slot.scalars is not None:
                np.copyto(self.scalar_np, slot.scalars, casting="unsafe")
            show = np.ones(self.n, dtype=bool) if eager else np.zeros(self.n, dtype=bool)
            show[list(entries)] = True
            for j, p in enumerate(self.tensors):
                if not show[j] and p in state:
                    del state[p]     # an empty entry
            self.show(state, has_step, show)

        return install


class Optimizer(torch.optim.Optimizer):
    """Base class of fastgd's drop-ins for ``torch.optim``: a `torch.optim.Optimizer` whose
    ``step()`` runs a fastgd optimizer's fused kernel over each parameter group.

    Subclasses name the fastgd class (``fastgd_class``) and, when PyTorch has the algorithm,
    the torch class whose constructor they take (``torch_class``).

    Parameters
    ----------
    params : iterable of torch.Tensor, of (name, tensor) pairs, or of dicts
        Dense float32/float64 CPU tensors, contiguous; as ``torch.optim`` takes them.
    defaults : dict
        The hyper-parameters of groups that do not set them.
    """

    #: the fastgd optimizer that does the work (``fastgd.optim.Adam``, ...)
    fastgd_class: type[_fgd.Optimizer] = None  # type: ignore[assignment]
    #: the torch optimizer whose signature, group keys and state format this one takes
    torch_class: Optional[type[torch.optim.Optimizer]] = None
    #: torch keeps a ``step`` per parameter (all but SGD)
    _has_step = True
    #: torch creates the state at construction, before any step (Adagrad)
    _eager = False

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        if self.fastgd_class is None:
            raise TypeError(f"{type(self).__name__} names no fastgd_class")
        self._fgd: list[_Group] = []
        super().__init__(params, defaults)

    def _fastgd_class(self, group: dict[str, Any]) -> type[_fgd.Optimizer]:
        """The fastgd class for a group (Adam's ``decoupled_weight_decay`` picks AdamW)."""
        return self.fastgd_class

    @staticmethod
    def _view(p: torch.Tensor, name: str) -> np.ndarray:
        """A parameter as a writeable ndarray over its memory, or a clear error."""
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(p).__name__}")
        if p.dtype not in _SUPPORTED_DTYPES:
            raise TypeError(f"{name} has dtype {p.dtype}; fastgd's kernels update float32 and "
                            "float64 tensors (keep other tensors in a torch.optim optimizer)")
        if p.device.type != "cpu":
            raise TypeError(f"{name} is on {p.device}; fastgd's kernels update CPU tensors")
        if p.layout != torch.strided:
            raise TypeError(f"{name} has layout {p.layout}; fastgd's kernels update dense "
                            "tensors")
        view = _checks.array_view(p.detach(), name, writeable=True)
        if not (view.flags.c_contiguous or view.flags.f_contiguous):
            raise ValueError(f"{name} is not contiguous (strides {p.stride()}, as "
                             "channels_last makes them); fastgd's kernels update contiguous "
                             "memory: call module.to(memory_format=torch.contiguous_format) "
                             "before building the optimizer")
        return view

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyper-parameters, as torch does; its
        tensors are checked here (dtype, device, layout, no memory shared with another)."""
        super().add_param_group(param_group)
        gi = len(self.param_groups) - 1
        group = self.param_groups[gi]
        try:
            _refuse_unsupported(group, gi)
            fg = _Group(self, group, gi)
            existing = [a for other in self._fgd for a in other.arrays]
            names = [f"param_groups[{k}]['params'][{i}]" for k, other in enumerate(self._fgd)
                     for i in range(other.n)] + [f"{fg.where}[{i}]" for i in range(fg.n)]
            _checks.disjoint(existing + fg.arrays, names)
            if self._eager:
                fg.sync(group, gi)  # allocates the state
                fg.show(self.state, self._has_step, np.ones(fg.n, dtype=bool))
        except BaseException:
            self.param_groups.pop()
            raise
        self._fgd.append(fg)

    # ------------------------------------------------------------------ step
    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        """Update every parameter that has a gradient, one fused kernel call per group.

        Parameters
        ----------
        closure : callable, optional
            Re-evaluates the model and returns the loss (run with gradients enabled).

        Returns
        -------
        The closure's loss, or None.

        Notes
        -----
        Every group's hyper-parameters and gradients are checked before any tensor is
        written; a bad one raises and leaves all parameters and state as they were.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        groups, fgd = self.param_groups, self._fgd
        if len(groups) != len(fgd):
            raise ValueError(f"param_groups has {len(groups)} groups, the optimizer was built "
                             f"with {len(fgd)}: use add_param_group()")
        work, stepped = [], []
        for gi, group in enumerate(groups):
            fg = fgd[gi]
            if group["params"] is not fg.tensors or len(fg.tensors) != fg.n:
                raise ValueError(f"param_groups[{gi}]['params'] was changed after the optimizer "
                                 "was built; use add_param_group() or a new optimizer")
            if fg.cls is not self._fastgd_class(group):
                fg.adopt(group, gi, self.state, self._has_step, self._eager)()
            hp, mask = fg.sync(group, gi)
            stepped += fg.prepare(mask)
            work.append((fg, hp))
        for fg, hp in work:
            fg.kernel(fg.slot.plan, **hp)
            fg.after_step(self.state, self._has_step)
        if stepped:  # autograd sees the in-place update, as after torch's own step
            _increment_version(stepped)
        return loss

    # ------------------------------------------------------------------ state dicts
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict of this class or of its ``torch.optim`` counterpart.

        torch's loader maps the saved state onto the parameters; fastgd then checks all of
        it (keys, shapes, dtypes, steps) and copies it into its own buffers. On any error the
        optimizer is left exactly as it was.
        """
        super().load_state_dict(state_dict)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Install ``state`` (torch's ``load_state_dict`` ends here, and so does unpickling,
        as by ``copy.deepcopy``): the state is checked and copied into fastgd's buffers, all
        groups or none."""
        if "_fgd" not in self.__dict__:   # unpickling: fastgd's side over the new tensors
            super().__setstate__(state)
            self._fgd = []
            for gi, group in enumerate(self.param_groups):
                self._fgd.append(_Group(self, group, gi))
            self._adopt(self.state)
            return
        old_state, old_groups = self.state, self.param_groups
        super().__setstate__(state)
        try:
            for group in self.param_groups:
                for k, v in self.defaults.items():
                    group.setdefault(k, v)
            self._adopt(self.state)
        except BaseException:
            self.state, self.param_groups = old_state, old_groups
            raise

    def _adopt(self, state: Any) -> None:
        installs = [fg.adopt(group, gi, state, self._has_step, self._eager)
                    for gi, (fg, group) in enumerate(zip(self._fgd, self.param_groups))]
        for install in installs:
            install()


# ----------------------------------------------------------------------------- classes

def _signature(torch_class: Optional[type], fastgd_class: type[_fgd.Optimizer]) -> list:
    """``[(name, default, keyword_only)]`` of the constructor after ``params``: torch's own
    when PyTorch has the algorithm (checked against the fastgd spec), else the spec's."""
    spec = fastgd_class.spec
    if torch_class is None:
        return [(h.name, h.default, h.keyword_only) for h in spec.hypers]
    out = []
    init = torch_class.__dict__["__init__"]
    for p in list(inspect.signature(init).parameters.values())[2:]:
        if p.name not in spec.defaults and p.name not in _HOW \
                and p.name != "decoupled_weight_decay":
            raise ImportError(f"torch.optim.{torch_class.__name__} of torch {torch.__version__} "
                              f"takes {p.name!r}, which fastgd.torch does not know")
        out.append((p.name, p.default, p.kind is inspect.Parameter.KEYWORD_ONLY))
    missing = set(spec.defaults) - {name for name, _, _ in out}
    if missing:
        raise ImportError(f"torch.optim.{torch_class.__name__} of torch {torch.__version__} "
                          f"lacks {sorted(missing)}")
    return out


def drop_in(fastgd_class: type[_fgd.Optimizer], torch_class: Optional[type], *,
            fixed: Optional[dict[str, Any]] = None
            ) -> Callable[[type[Optimizer]], type[Optimizer]]:
    """Class decorator: give a `Optimizer` subclass its fastgd class, its torch class and
    the constructor ``__init__(self, params, <torch's arguments>)`` (``fixed``: group keys
    the constructor does not take, as AdamW's ``decoupled_weight_decay=True``)."""
    def decorate(cls: type[Optimizer]) -> type[Optimizer]:
        cls.fastgd_class = fastgd_class
        cls.torch_class = torch_class
        sig = _signature(torch_class, fastgd_class)
        namespace: dict[str, Any] = {"_base": Optimizer.__init__, "_fixed": dict(fixed or {})}
        positional, keyword = ["self", "params"], []  # type: list[str], list[str]
        for i, (name, default, kw) in enumerate(sig):
            namespace[f"_d{i}"] = default
            (keyword if kw else positional).append(f"{name}=_d{i}")
        names = ", ".join(f"{name!r}: {name}" for name, _, _ in sig)
        params = positional + (["*", *keyword] if keyword else [])
        cls.__init__ = make_function(  # type: ignore[method-assign]
            "__init__", params, f"_base(self, params, {{{names}, **_fixed}})", namespace,
            qualname=f"{cls.__qualname__}.__init__", module=cls.__module__)
        return cls
    return decorate


def _adam_class(self: Optimizer, group: dict[str, Any]) -> type[_fgd.Optimizer]:
    return _fgd.AdamW if group.get("decoupled_weight_decay") else _fgd.Adam
