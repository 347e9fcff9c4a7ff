"""The optimizer base class: parameter groups, per-parameter state, ``step`` and state dicts.

An algorithm's class is declared with its spec (`fastgd.optim._spec.Spec`)::

    class Adam(Optimizer, spec=SPEC):
        ...  # only the docstring: the update rule, the parameters, an example

and everything algorithm-specific comes from the spec: the constructor's signature and
defaults, the checks of each group's hyper-parameters, which state arrays exist and what
they start as, the native kernel (one fused call for the whole group) and its numpy twin.
"""
from typing import Any, Optional, Sequence

import numpy as np

from .. import _checks
from .. import _optim
from .._optim import TensorPlan
from .._typing import FloatArray, Params
from ._spec import ScalarState, Spec, init_for

_STEP = "step"


class _Slot:
    """What a parameter group owns besides its dict: step counters, state and the plan."""

    def __init__(self, params: Sequence[FloatArray], state_names: Sequence[str],
                 scalar: Optional[ScalarState] = None) -> None:
        self.params = params
        self.steps = np.zeros(len(params), dtype=np.int64)
        # 1 until the lazily initialised buffer (SGD's momentum) has taken its first gradient
        self.is_new = np.ones(len(params), dtype=np.uint8)
        # the spec's per-parameter scalar state (NAdam's mu_product), or None
        self.scalars = None if scalar is None else np.full(len(params), scalar.initial)
        self.buffers: dict[str, Any] = dict.fromkeys(state_names)
        self.plan: TensorPlan = None  # type: ignore[assignment]  # build_plan, before any use
        self.checked: Any = None  # (hyper-parameter values, kernel arguments, state mask)

    def build_plan(self, state_names: Sequence[str]) -> None:
        self.plan = TensorPlan(list(self.params), [self.buffers[k] for k in state_names],
                               self.steps, self.is_new, "params", tuple(state_names),
                               self.scalars)


class Optimizer:
    """Base class of fastgd's optimizers (PyTorch's ``torch.optim.Optimizer`` for numpy).

    Parameters
    ----------
    params : list of ndarray, or list of dict
        The arrays to optimise (updated in place), or parameter groups: dicts with a
        ``"params"`` list and hyper-parameters that override ``defaults``.
    defaults : dict
        Hyper-parameters of groups that do not set them.
    backend : {"native", "reference"}
        The fused C kernels, or their plain-numpy twins.
    """

    #: the algorithm's declaration (`fastgd.optim._spec.Spec`), given as ``spec=`` in the
    #: class statement; a subclass without one inherits its parent's
    #:
    #: :meta hide-value:
    spec: Spec = None  # type: ignore[assignment]  # every concrete class sets it
    #: names of the per-parameter state arrays, in the order the kernel takes them (the spec's)
    state_names: tuple[str, ...] = ()
    #: the state that starts as a copy of the first gradient (the spec's ``lazy_state``)
    _lazy_buffer = None

    def __init_subclass__(cls, spec: Optional[Spec] = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if spec is None:
            return
        cls.spec = spec
        cls.state_names = spec.state_names
        cls._lazy_buffer = spec.lazy_state
        if "__init__" not in cls.__dict__:
            cls.__init__ = init_for(spec, cls, Optimizer.__init__)  # type: ignore[method-assign]

    def __init__(self, params: Params, defaults: dict[str, Any], *,
                 backend: str = "native") -> None:
        if self.spec is None:
            raise TypeError(f"{type(self).__name__} has no spec: declare it as "
                            "class Name(Optimizer, spec=...)")
        self.backend = _checks.backend(backend)
        self.spec.kernel_args(defaults, "")
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self._slots: list[_Slot] = []
        self._nparams = 0
        self._backup: Optional[_optim.Backup] = None
        for group in _as_groups(params):
            self.add_param_group(group)

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyper-parameters (see ``params``)."""
        where = f"param_groups[{len(self.param_groups)}]"
        if not isinstance(param_group, dict):
            raise TypeError(f"{where} must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{where} has no 'params' entry")
        unknown = sorted(set(param_group) - set(self.defaults) - _NOT_HYPER)
        if unknown:
            raise ValueError(f"{where} has unknown hyper-parameter {unknown[0]!r}; expected "
                             f"some of {sorted(self.defaults)}")
        params = param_group["params"]
        params = [params] if _checks.is_array(params) else _as_list(params, f"{where}['params']")
        if not params:
            raise ValueError(f"{where} has an empty 'params' list")
        first = sum(len(s.params) for s in self._slots)
        # other libraries' arrays (a torch tensor's .detach()) as ndarrays over their memory
        params = [_checks.parameter(_checks.array_view(p, f"params[{first + i}]", writeable=True),
                                    f"params[{first + i}]") for i, p in enumerate(params)]
        group = {**self.defaults, **param_group, "params": params}
        self.spec.kernel_args(group, where)
        existing = [p for s in self._slots for p in s.params]
        _checks.disjoint(existing + params, [f"params[{i}]" for i in range(first + len(params))])
        slot = _Slot(tuple(params), self.state_names, self.spec.scalar)
        slot.build_plan(self.state_names)
        self.param_groups.append(group)
        self._slots.append(slot)
        self._nparams += len(params)

    # ------------------------------------------------------------------ step
    def step(self, grads: Sequence[Optional[FloatArray]]) -> None:
        """Update every parameter in place from its gradient.

        Parameters
        ----------
        grads : sequence of ndarray or None
            One gradient per parameter, in the order of the groups and their ``params``;
            same dtype and shape as its parameter. ``None`` skips that parameter.

        Notes
        -----
        All gradients and hyper-parameters are checked before any array is written.
        """
        grads = _checks.grads_sequence(grads, self._nparams)
        native = self.backend == "native"
        todo = []
        for slot, hp, mask, offset in self._groups():
            if native:
                slot.plan.prepare(grads, offset, mask)
            else:
                self._check_grads(slot, grads, offset)
            todo.append((slot, hp, offset))
        for slot, hp, offset in todo:
            if native:
                self._native(slot.plan, hp)
            else:
                self._reference_group(slot, grads, offset, hp)

    def bind(self, grads: Sequence[Optional[FloatArray]]) -> list[_optim.BoundUpdate]:
        """The native update of every group bound to ``grads``, fixed gradient arrays (one
        per parameter, checked here as by `step`): a list of ``_optim.BoundUpdate``, each
        taking one step of its group per ``run()`` or per call of its C ``hook()``, for
        loops in C (`fastgd.fit`). The binding holds the hyper-parameters of now: bind
        again after changing ``param_groups``."""
        if self.backend != "native":
            raise ValueError("only the native backend can bind its updates")
        grads = list(_checks.grads_sequence(grads, self._nparams))
        return [_optim.BoundUpdate(slot.plan, grads, offset, mask, self.spec.kernel, hp)
                for slot, hp, mask, offset in self._groups()]

    def _groups(self) -> list[tuple[Any, ...]]:
        """``(slot, checked hyper-parameters, state mask, index of its first parameter)`` of
        each group, after checking that its ``params`` list is the one it was built with."""
        out, offset = [], 0
        for gi, slot in enumerate(self._slots):
            group = self.param_groups[gi]
            params = group["params"]
            if type(params) is not list or not slot.plan.same_params(params):
                raise ValueError(f"param_groups[{gi}]['params'] was changed after the optimizer "
                                 "was built; use add_param_group() or a new optimizer")
            hp, mask = self._checked(group, slot, gi)
            out.append((slot, hp, mask, offset))
            offset += len(slot.params)
        return out

    def _checked(self, group: dict[str, Any], slot: _Slot,
                 gi: int) -> tuple[dict[str, Any], Any]:
        """The group's checked kernel arguments and state mask, re-checked only on change."""
        key = _frozen(group)
        if slot.checked is not None and slot.checked[0] == key:
            return slot.checked[1], slot.checked[2]
        where = f"param_groups[{gi}]"
        unknown = sorted(set(group) - set(self.defaults) - _NOT_HYPER)
        if unknown:
            raise ValueError(f"{where} has unknown hyper-parameter {unknown[0]!r}")
        for k in self.defaults:
            if k not in group:
                raise ValueError(f"{where} lacks the hyper-parameter {k!r}")
        hp = self.spec.kernel_args(group, where)
        needs: dict[str, bool] = dict(zip(self.state_names, self.spec.needs(hp)))
        if any(needs[k] and slot.buffers[k] is None for k in self.state_names):
            self._allocate(slot, group, needs)
        mask = sum(1 << i for i, k in enumerate(self.state_names) if needs[k])
        slot.checked = (key, hp, mask)
        return hp, mask

    def _reference_group(self, slot: _Slot, grads: Sequence[Optional[FloatArray]], offset: int,
                         hp: dict[str, Any]) -> None:
        spec = self.spec
        lazy = spec.lazy_state
        clear_new = lazy is not None and dict(zip(self.state_names, spec.needs(hp)))[lazy]
        buffers = [slot.buffers[k] for k in self.state_names]
        for j, p in enumerate(slot.params):
            g = grads[offset + j]
            if g is None:
                continue
            slot.steps[j] += 1
            states = [None if b is None else b[j] for b in buffers]
            scalar = None if slot.scalars is None else slot.scalars[j:j + 1]
            spec.reference_step(p, g, states, hp, int(slot.steps[j]), bool(slot.is_new[j]),
                                scalar)
            if clear_new and lazy is not None and slot.buffers[lazy] is not None:
                slot.is_new[j] = 0

    def _check_grads(self, slot: _Slot, grads: Sequence[Optional[FloatArray]],
                     offset: int) -> None:
        for j, p in enumerate(slot.params):
            g = grads[offset + j]
            if g is None:
                continue
            name = f"grads[{offset + j}]"
            if not isinstance(g, np.ndarray):
                raise TypeError(f"{name} must be a numpy.ndarray or None, got {type(g).__name__}")
            _checks.like(g, p, name, f"params[{offset + j}]")
            if not p.flags.writeable:
                raise ValueError(f"params[{offset + j}] is read-only; parameters are updated in place")
            shared = slot.plan.written_memory_shared_by(g, offset)
            if shared is not None:  # any parameter or state of the group, as natively
                raise ValueError(f"{name} shares memory with {shared}")

    def _allocate(self, slot: _Slot, group: dict[str, Any], needs: Any) -> None:
        for s in self.spec.states:
            if needs[s.name] and slot.buffers[s.name] is None:
                fill = self.spec.initial_value(s, group)
                slot.buffers[s.name] = [np.full_like(p, fill) for p in slot.params]
                if s.first_grad:
                    slot.is_new[:] = 1
        slot.build_plan(self.state_names)

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> dict[int, dict[str, Any]]:
        """Per-parameter state by global index: ``{i: {"step": int, name: ndarray, ...}}``.

        The arrays are the optimizer's own (live) buffers; ``state_dict()`` copies them.
        """
        return self._collect(copy=False)

    def _collect(self, copy: bool) -> dict[int, dict[str, Any]]:
        out, i = {}, 0
        lazy = self.spec.lazy_state
        for slot in self._slots:
            for j in range(len(slot.params)):
                if slot.steps[j] > 0:
                    entry: dict[str, Any] = {_STEP: int(slot.steps[j])}
                    if slot.scalars is not None:
                        entry[self.spec.scalar.name] = float(slot.scalars[j])  # type: ignore[union-attr]
                    for k, b in slot.buffers.items():
                        if b is None:
                            continue
                        if k == lazy and slot.is_new[j]:
                            entry[k] = None
                        else:
                            entry[k] = b[j].copy() if copy else b[j]
                    out[i] = entry
                i += 1
        return out

    def state_dict(self) -> dict[str, Any]:
        """A snapshot ``{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}``.

        Arrays are copies, so later steps do not change a saved snapshot; loading it into an
        optimizer over the same parameters resumes the run bit for bit.
        """
        groups, i = [], 0
        for group in self.param_groups:
            g = {k: v for k, v in group.items() if k != "params"}
            g["params"] = list(range(i, i + len(group["params"])))
            i += len(group["params"])
            groups.append(g)
        return {"state": self._collect(copy=True), "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyper-parameters and state saved by ``state_dict()``.

        The whole dict is checked against the parameters first; on any mismatch a
        ``ValueError``/``TypeError`` is raised and the optimizer is left unchanged.
        """
        new_groups, entries = self._check_state_dict(state_dict)
        # everything fits: apply
        self._apply_state_dict(new_groups, entries)

    def _check_state_dict(self, state_dict: Any) -> tuple[Any, Any]:
        """Check all of ``state_dict`` without changing anything; return the merged param groups
        and the checked state entries by parameter index, for ``_apply_state_dict``."""
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError("state_dict must be a dict with exactly the keys 'state' and "
                             "'param_groups'")
        saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        if not isinstance(saved_groups, (list, tuple)) or len(saved_groups) != len(self.param_groups):
            raise ValueError(f"state_dict has {len(saved_groups) if isinstance(saved_groups, (list, tuple)) else '?'} "
                             f"param groups, the optimizer has {len(self.param_groups)}")
        if not isinstance(saved_state, dict):
            raise TypeError("state_dict['state'] must be a dict")
        new_groups, params_by_index = self._check_saved_groups(saved_groups)
        entries = self._check_saved_state(saved_state, params_by_index)
        return new_groups, entries

    def _check_saved_groups(self, saved_groups: Any) -> tuple[Any, Any]:
        """Each saved group merged over the current one (checked); and the parameters by index."""
        new_groups, params_by_index, start = [], [], 0
        for gi, (sg, group) in enumerate(zip(saved_groups, self.param_groups)):
            where = f"state_dict['param_groups'][{gi}]"
            if not isinstance(sg, dict) or "params" not in sg:
                raise ValueError(f"{where} must be a dict with a 'params' list")
            n = len(group["params"])
            if list(sg["params"]) != list(range(start, start + n)):
                raise ValueError(f"{where}['params'] must be the indices {start}..{start + n - 1} "
                                 f"for this optimizer's {n} parameters")
            unknown = sorted(set(sg) - set(self.defaults) - _NOT_HYPER)
            if unknown:
                raise ValueError(f"{where} has unknown hyper-parameter {unknown[0]!r}")
            if "initial_lr" in sg:
                _checks.real(sg["initial_lr"], f"{where}['initial_lr']", low=0)
            merged = {**group, **{k: v for k, v in sg.items() if k != "params"}}
            merged["params"] = group["params"]
            self.spec.kernel_args(merged, where)
            new_groups.append(merged)
            params_by_index.extend(group["params"])
            start += n
        return new_groups, params_by_index

    def _check_saved_state(self, saved_state: Any, params_by_index: dict[int, Any]) -> Any:
        """The checked entries of ``state_dict['state']`` by parameter index."""
        entries = {}
        for key, entry in saved_state.items():
            if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer)) \
                    or not 0 <= key < len(params_by_index):
                raise ValueError(f"state_dict['state'] has key {key!r}, not a parameter index "
                                 f"in 0..{len(params_by_index) - 1}")
            entries[int(key)] = self._check_entry(entry, params_by_index[int(key)],
                                                  f"state_dict['state'][{key}]")
        return entries

    def _apply_state_dict(self, new_groups: Any, entries: Any) -> None:
        """Install the groups and state entries that ``_check_state_dict`` accepted."""
        for group, merged, slot in zip(self.param_groups, new_groups, self._slots):
            group.clear()
            group.update(merged)
            slot.checked = None
        i = 0
        for group, slot in zip(self.param_groups, self._slots):
            for s in self.spec.states:
                if slot.buffers[s.name] is not None:
                    fill = self.spec.initial_value(s, group)
                    for b in slot.buffers[s.name]:
                        b[...] = fill
            slot.steps[:] = 0
            slot.is_new[:] = 1
            if slot.scalars is not None:
                slot.scalars[:] = self.spec.scalar.initial  # type: ignore[union-attr]
            needs = {k: False for k in self.state_names}
            for j in range(len(slot.params)):
                for k in entries.get(i + j, {}):
                    if k in self.state_names and entries[i + j][k] is not None:
                        needs[k] = True
            if any(needs[k] and slot.buffers[k] is None for k in self.state_names):
                self._allocate(slot, group, needs)
            for j in range(len(slot.params)):
                entry = entries.get(i + j)
                if entry is None:
                    continue
                slot.steps[j] = entry[_STEP]
                for k, v in entry.items():
                    if k == _STEP:
                        continue
                    if slot.scalars is not None and k == self.spec.scalar.name:  # type: ignore[union-attr]
                        slot.scalars[j] = v
                        continue
                    if v is None:
                        continue
                    slot.buffers[k][j][...] = v
                    if k == self.spec.lazy_state:
                        slot.is_new[j] = 0
            i += len(slot.params)

    def _check_entry(self, entry: Any, param: FloatArray, where: str) -> Any:
        if not isinstance(entry, dict):
            raise TypeError(f"{where} must be a dict, got {type(entry).__name__}")
        scalar = self.spec.scalar
        known = set(self.state_names) | {_STEP} | ({scalar.name} if scalar else set())
        unknown = sorted(set(entry) - known)
        if unknown:
            raise ValueError(f"{where} has unknown key {unknown[0]!r}; expected 'step' and some "
                             f"of {list(self.state_names)}"
                             + (f" and {scalar.name!r}" if scalar else ""))
        if _STEP not in entry:
            raise ValueError(f"{where} has no 'step'")
        step = entry[_STEP]
        if not isinstance(step, (int, float, np.ndarray)) and _checks.is_array(step):
            step = _checks.array_view(step, f"{where}['step']", writeable=False)  # a 0-d tensor
        step = step.item() if isinstance(step, np.ndarray) and step.ndim == 0 else step
        if isinstance(step, (float, np.floating)) and float(step).is_integer():
            step = int(step)
        if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)) \
                or not 1 <= step < 2**63:
            raise ValueError(f"{where}['step'] must be an integer in 1..2**63-1, got "
                             f"{entry[_STEP]!r}")
        out: dict[str, Any] = {_STEP: int(step)}
        if scalar is not None:
            if scalar.name not in entry:
                raise ValueError(f"{where} has no {scalar.name!r}")
            value = entry[scalar.name]
            if not isinstance(value, (int, float, np.ndarray)) and _checks.is_array(value):
                value = _checks.array_view(value, f"{where}[{scalar.name!r}]", writeable=False)
            value = value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value
            out[scalar.name] = _checks.real(value, f"{where}[{scalar.name!r}]")
        for k in self.state_names:
            if k not in entry:
                continue
            v = entry[k]
            if v is None:
                if k != self.spec.lazy_state:
                    raise ValueError(f"{where}[{k!r}] is None")
                out[k] = None
                continue
            if not isinstance(v, np.ndarray):
                if not _checks.is_array(v):
                    raise TypeError(f"{where}[{k!r}] must be a numpy.ndarray, got "
                                    f"{type(v).__name__}")
                v = _checks.array_view(v, f"{where}[{k!r}]", writeable=False)
            if v.shape != param.shape:
                raise ValueError(f"{where}[{k!r}] has shape {v.shape} but its parameter has "
                                 f"shape {param.shape}")
            if v.dtype != param.dtype:
                raise TypeError(f"{where}[{k!r}] has dtype {v.dtype} but its parameter has "
                                f"{param.dtype}")
            out[k] = v
        return out

    def backup(self, extra: Sequence[np.ndarray] = ()) -> _optim.Backup:
        """The optimizer's back-up of everything a step changes, as a ``fastgd._optim.Backup``.

        ``extra`` arrays are covered too (`fastgd.fit` adds a weight average's arrays, which
        each step also changes).

        It covers the parameters, every state array the next step uses (allocated here if
        needed), the step counters and the "momentum buffer is new" flags: ``save()`` before
        a step and ``restore()`` after it undo that step completely, on either backend (this
        is how `fastgd.fit` takes back a step that diverged or, with ``accept_if_improves``,
        did not improve). The same object is returned while the set of arrays stays the
        same, so saving costs one copy and no allocation.
        """
        for gi, (group, slot) in enumerate(zip(self.param_groups, self._slots)):
            self._checked(group, slot, gi)  # allocate what the next step will use
        arrays: list[np.ndarray] = [p for s in self._slots for p in s.params]
        arrays += [a for s in self._slots for b in s.buffers.values() if b is not None for a in b]
        arrays += [s.steps for s in self._slots] + [s.is_new for s in self._slots]
        arrays += [s.scalars for s in self._slots if s.scalars is not None]
        arrays += list(extra)
        backup = self._backup
        if backup is None or not backup.covers(arrays):
            backup = self._backup = _optim.Backup(arrays)
        return backup

    @property
    def binds_exactly(self) -> bool:
        """True when the updates of `bind` compute exactly what `step` does: the native
        backend, and a class that changes neither ``step`` nor ``_native`` (a subclass that
        overrides them must be stepped from Python, never bypassed by a C loop)."""
        cls = type(self)
        return (self.backend == "native" and cls.step is Optimizer.step
                and cls._native is Optimizer._native and cls.bind is Optimizer.bind)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} (backend={self.backend!r})"]
        for i, g in enumerate(self.param_groups):
            hp = ", ".join(f"{k}={v!r}" for k, v in g.items() if k != "params")
            lines.append(f"  group {i}: {len(g['params'])} arrays, {hp}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ the native step
    def _native(self, plan: TensorPlan, hp: dict[str, Any]) -> None:
        getattr(_optim, self.spec.kernel)(plan, **hp)


#: the keys of a parameter group that are not hyper-parameters: its arrays, and what the
#: schedules of fastgd.optim.lr_scheduler and swa_utils keep in a group (as torch's do): the
#: learning rate a schedule started from, OneCycleLR's peak and final rates, the momentum
#: bounds of CyclicLR and OneCycleLR, and the rate SWALR anneals to
_NOT_HYPER = frozenset({"params", "initial_lr", "max_lr", "min_lr", "base_momentum",
                        "max_momentum", "swa_lr"})


def _frozen(group: dict[str, Any]) -> tuple:
    """The group's hyper-parameters as a comparable snapshot that any edit changes: types
    are part of it (lr=True after lr=1 is a change) and sequences are copied by value (an
    in-place edit of betas is a change)."""
    out: list[tuple] = []
    for k, v in group.items():
        if k == "params":
            continue
        t = type(v)
        if t is float or t is int or t is bool:
            out.append((k, t, v))
        elif t is tuple or t is list:
            out.append((k, t, tuple([(type(x), x) for x in v])))
        elif t is np.ndarray:
            out.append((k, t, v.dtype.str, v.shape, v.tobytes()))
        else:
            out.append((k, t, repr(v)))
    return tuple(out)


def _as_list(value: Any, name: str) -> list:
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be a list of numpy arrays, got {type(value).__name__}")
    return list(value)


def _as_groups(params: Any) -> list:
    if _checks.is_array(params):
        raise TypeError("params must be a list of arrays (or of parameter-group dicts), not a "
                        "single array: pass [x]")
    params = _as_list(params, "params")
    if not params:
        raise ValueError("params is empty: the optimizer got no parameters")
    dicts = [isinstance(p, dict) for p in params]
    if all(dicts):
        return params
    if any(dicts):
        raise TypeError("params must be all arrays or all parameter-group dicts, not a mix")
    return [{"params": params}]
