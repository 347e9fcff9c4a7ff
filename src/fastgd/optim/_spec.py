"""The declaration of an optimizer algorithm: one `Spec` per algorithm.

A spec says everything about an algorithm that is not its math:

* its hyper-parameters (`Hyper`): names, defaults and order as in ``torch.optim``, the check
  of each value, and the kernel arguments each becomes;
* its state arrays (`State`), in the order its C kernel takes them, when each exists (a
  function of the checked hyper-parameters) and what it starts as;
* its native kernel: the name ``fastgd._optim`` dispatches on (``fastgd._optim.<kernel>``);
* its reference twin: the numpy function of ``fastgd.reference.optim``.

Everything else reads it: the optimizer class (`fastgd.optim.Optimizer` builds the class's
constructor, checks the groups and allocates the state from it), the functional form
(`fastgd.functional` makes one in-place function per spec), the bound stepper of
`fastgd.minimize` (`fastgd._stepper`), the registry `fastgd.optim.ALGORITHMS` (the names
for saved models and the command line) and, through the state order, the Cython binding. Adding an optimizer is a spec and its class in ``optim/<name>.py``, a C kernel
(with its dispatch in ``csrc/_optim.pyx``), a numpy twin and tests.

Each algorithm's module is an example: ``optim/adagrad.py`` declares Adagrad's ``SPEC`` (five
hyper-parameters, one state array that starts at ``initial_accumulator_value``) and its
class ``Adagrad(Optimizer, spec=SPEC)``, which is its docstring and nothing else.
"""
import operator
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Callable, Mapping, NamedTuple, NoReturn, Optional, Union

from .. import _checks


# ----------------------------------------------------------------------------- value checks
# Each is called as ``check(value, label)`` (label: the name an error message gives the
# value) and returns the checked value.

def nonnegative(value: Any, label: str) -> float:
    """A finite real number >= 0, as a float."""
    return _checks.real(value, label, low=0)


def unit_interval(value: Any, label: str) -> float:
    """A real number in [0, 1), as a float."""
    return _checks.real(value, label, low=0, high=1, high_open=True)


def closed_unit_interval(value: Any, label: str) -> float:
    """A real number in [0, 1], as a float."""
    return _checks.real(value, label, low=0, high=1)


real = _checks.real  # a finite real number, as a float
flag = _checks.flag  # a bool (Python's or numpy's), as a bool


# ----------------------------------------------------------------------------- conditions

class When(NamedTuple):
    """A state array exists when ``op(hp[key], value)`` holds for the checked kernel
    arguments ``hp``; ``text`` says so in messages ("max_exp_avg_sq is required when
    amsgrad=True")."""
    key: str
    op: Callable
    value: object
    text: str

    def __call__(self, hp: Mapping[str, Any]) -> bool:
        return bool(self.op(hp[self.key], self.value))


def is_true(key: str) -> When:
    return When(key, operator.eq, True, f"{key}=True")       # a checked flag is a bool


def is_positive(key: str) -> When:
    return When(key, operator.gt, 0, f"{key} > 0")


def is_nonzero(key: str) -> When:
    return When(key, operator.ne, 0, f"{key} != 0")


# ----------------------------------------------------------------------------- the spec

class Hyper(NamedTuple):
    """A hyper-parameter: a key of the parameter groups and an argument of the class."""
    name: str
    default: object
    #: ``check(value, label)``: the checked value; a pair's check applies to each item
    check: Callable
    #: the kernel arguments it becomes: ``None`` is ``(name,)``; two names make it a pair
    #: (``betas`` -> ``beta1, beta2``); ``()`` for a value the kernel does not take
    kernel: Optional[tuple] = None
    #: after the ``*`` of the class's signature (``maximize``, as in torch.optim)
    keyword_only: bool = False

    @property
    def kernel_names(self) -> tuple:
        return (self.name,) if self.kernel is None else self.kernel


class State(NamedTuple):
    """A per-parameter state array (same dtype, shape and layout as its parameter)."""
    name: str
    #: when the array exists, given the checked kernel arguments; ``None``: always
    when: Optional[When] = None
    #: what it starts as: a number, or the name of the hyper-parameter whose value it is
    initial: Union[float, str] = 0.0
    #: it starts as a copy of the first gradient (SGD's momentum buffer): the kernel and the
    #: reference take a per-parameter "is new" flag, cleared once the array has been written
    first_grad: bool = False
    #: its name as an argument of the functional form; ``None``: ``name``
    arg: Optional[str] = None

    @property
    def arg_name(self) -> str:
        return self.name if self.arg is None else self.arg


class ScalarState(NamedTuple):
    """A per-parameter scalar the kernel carries from step to step (NAdam's ``mu_product``):
    one float64 per parameter, read and replaced by each kernel call, in the state dict as a
    float under ``name``."""
    name: str
    #: its value before the first step
    initial: float = 0.0


@dataclass(frozen=True)
class Spec:
    """One optimizer algorithm: see the module's docstring."""
    #: the registry's name (``fastgd.optim.by_name``), the functional form's (``adam_``)
    #: and `fastgd.minimize`'s method
    name: str
    #: in the order of the class's signature
    hypers: tuple
    #: in the order the kernel (and the reference twin) takes them
    states: tuple
    #: ``fastgd._optim.<kernel>``, the kernel the binding dispatches on
    kernel: str
    #: ``reference(param, grad, *states, **kernel_arguments)``, plus ``step=`` when
    #: ``counts_steps`` and ``buffer_is_new=`` for a ``first_grad`` state
    reference: Callable
    #: the kernel takes the step number (bias corrections, learning-rate decay)
    counts_steps: bool = False
    #: a per-parameter scalar state (`ScalarState`) the kernel reads and replaces, or None;
    #: the reference twin takes it as a one-element float64 array, by its name
    scalar: Optional[ScalarState] = None
    #: kernel arguments that no group sets (AdamW: ``decoupled_weight_decay=True``)
    fixed: Mapping = field(default_factory=dict)
    #: ``validate(hp, where)`` refuses a combination of checked values (SGD's nesterov)
    validate: Optional[Callable] = None
    #: the example of the functional form's docstring
    example: str = ""

    # derived from the fields above (by __post_init__), for the checks on every call
    #: the states' names, in the kernel's order
    state_names: tuple = field(init=False, repr=False, compare=False)
    #: ``{hyper-parameter: default}``, in the signature's order
    defaults: dict = field(init=False, repr=False, compare=False)
    #: the `State` that starts as the first gradient, or None
    lazy: Optional[State] = field(init=False, repr=False, compare=False)
    #: its name, or None
    lazy_state: Optional[str] = field(init=False, repr=False, compare=False)
    _group_checks: tuple = field(init=False, repr=False, compare=False)
    _kernel_checks: tuple = field(init=False, repr=False, compare=False)
    _conditions: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._check_declaration()
        derived: dict[str, Any] = dict(
            fixed=MappingProxyType(dict(self.fixed)),
            state_names=tuple(s.name for s in self.states),
            defaults=MappingProxyType({h.name: h.default for h in self.hypers}),
            lazy=next((s for s in self.states if s.first_grad), None),
            _group_checks=tuple((h.name, h.check, h.kernel_names) for h in self.hypers),
            _kernel_checks=tuple((n, h.check) for h in self.hypers for n in h.kernel_names),
            _conditions=tuple(s.when for s in self.states))
        derived["lazy_state"] = None if derived["lazy"] is None else derived["lazy"].name
        for k, v in derived.items():
            object.__setattr__(self, k, v)

    def _check_declaration(self) -> None:
        """Refuse a spec the layers that read it could not follow, naming the mistake."""
        def bad(what: str) -> NoReturn:
            raise ValueError(f"spec {self.name!r}: {what}")
        names = [h.name for h in self.hypers]
        kernel_args = [n for h in self.hypers for n in h.kernel_names] + list(self.fixed)
        if len(set(names)) != len(names) or len(set(kernel_args)) != len(kernel_args):
            bad("a hyper-parameter or kernel argument is declared twice")
        for h in self.hypers:
            if len(h.kernel_names) > 2:
                bad(f"{h.name} becomes {len(h.kernel_names)} kernel arguments; at most two "
                    "(a pair)")
        states = [s.name for s in self.states]
        if len(set(states)) != len(states) or len(states) > 4:
            bad("at most four state arrays (the kernels' limit), each named once")
        if sum(s.first_grad for s in self.states) > 1:
            bad("at most one state starts as the first gradient")
        if self.scalar is not None and self.scalar.name in set(states) | {"step"} | set(names):
            bad(f"the scalar state {self.scalar.name!r} shares its name with another entry")
        for st in self.states:
            if isinstance(st.initial, str) and st.initial not in names:
                bad(f"{st.name} starts as {st.initial!r}, which is not a hyper-parameter")
            if st.when is not None and st.when.key not in kernel_args:
                bad(f"{st.name} exists when {st.when.text}, but {st.when.key!r} is not a "
                    "kernel argument")

    def variant(self, name: str, *, defaults: Optional[Mapping[str, Any]] = None,
                fixed: Optional[Mapping[str, Any]] = None,
                example: Optional[str] = None) -> "Spec":
        """This spec under another name, with other defaults or fixed kernel arguments
        (AdamW is Adam with ``decoupled_weight_decay=True`` and ``weight_decay=1e-2``)."""
        defaults = dict(defaults or {})
        unknown = set(defaults) - set(self.defaults)
        if unknown:
            raise ValueError(f"{sorted(unknown)} are not hyper-parameters of {self.name}")
        hypers = tuple(h._replace(default=defaults[h.name]) if h.name in defaults else h
                       for h in self.hypers)
        return replace(self, name=name, hypers=hypers, fixed={**self.fixed, **(fixed or {})},
                       example=self.example if example is None else example)

    # ---------------------------------------------------------------- checks
    def kernel_args(self, group: Mapping[str, Any], where: str = "") -> dict[str, Any]:
        """The kernel's keyword arguments from a parameter group's hyper-parameters, each
        checked (``where`` names the group in messages: ``param_groups[1]['lr']``)."""
        hp = {}
        for key, check, names in self._group_checks:
            what = f"{where}[{key!r}]" if where else key
            if len(names) == 2:
                items = _checks.pair(group[key], what)
                hp[names[0]] = check(items[0], f"{what}[0]")
                hp[names[1]] = check(items[1], f"{what}[1]")
            else:
                value = check(group[key], what)
                if names:
                    hp[names[0]] = value
        return self._finish(hp, where)

    def kernel_args_from_kernel_names(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The same from values named as the kernel's arguments (``beta1``, not ``betas``),
        as the functional form takes them, each checked under its own name."""
        return self._finish({n: check(values[n], n) for n, check in self._kernel_checks}, "")

    def _finish(self, hp: dict[str, Any], where: str) -> dict[str, Any]:
        if self.validate is not None:
            self.validate(hp, where)
        if self.fixed:
            hp.update(self.fixed)
        return hp

    def needs(self, hp: Mapping[str, Any]) -> tuple[bool, ...]:
        """Which state arrays the kernel arguments ``hp`` use, in the kernel's order."""
        return tuple([w is None or w.op(hp[w.key], w.value) for w in self._conditions])

    def initial_value(self, state: State, group: Mapping[str, Any]) -> float:
        """The fill value of ``state`` (a `State`) for a parameter group."""
        if isinstance(state.initial, str):
            return float(group[state.initial])
        return float(state.initial)

    # ---------------------------------------------------------------- reference
    def reference_step(self, param: Any, grad: Any, states: list, hp: Mapping[str, Any],
                       step: Optional[int], is_new: Any, scalar: Any = None) -> None:
        """One step of the numpy twin on one array; ``states`` in the kernel's order;
        ``scalar`` the one-element float64 array of the scalar state, if the spec has one."""
        extra = {}
        if self.counts_steps:
            extra["step"] = step
        if self.lazy is not None:
            extra["buffer_is_new"] = is_new
        if self.scalar is not None:
            extra[self.scalar.name] = scalar
        self.reference(param, grad, *states, **hp, **extra)


def label(where: str, key: str) -> str:
    """How an error names a hyper-parameter: ``lr`` or ``param_groups[1]['lr']``."""
    return f"{where}[{key!r}]" if where else key


# ----------------------------------------------------------------------------- functions

def make_function(name: str, params: list[str], body: str, namespace: Mapping[str, Any], *,
                  qualname: Optional[str] = None, module: Optional[str] = None,
                  doc: Optional[str] = None) -> Callable[..., Any]:
    """A function ``def name(*params): return body`` with a real signature, compiled from
    source as `dataclasses` builds ``__init__``: Python itself binds the arguments (its own
    error messages, no cost per call). ``params`` are source strings (``"lr=_lr"``, ``"*"``);
    defaults and everything ``body`` calls are looked up in ``namespace``."""
    source = f"def {name}({', '.join(params)}):\n    return {body}\n"
    local: dict[str, Any] = {}
    exec(compile(source, f"<fastgd spec: {qualname or name}>", "exec"), dict(namespace), local)
    fn = local[name]
    fn.__qualname__ = qualname or name
    if module is not None:
        fn.__module__ = module
    fn.__doc__ = doc
    return fn


def init_for(spec: Spec, cls: type, base_init: Callable[..., None]) -> Callable[..., None]:
    """The ``__init__`` of an optimizer class: ``(self, params, <hyper-parameters with
    their defaults>, *, <keyword-only ones>, backend="native")``, calling
    ``base_init(self, params, defaults_dict, backend=backend)``."""
    namespace = {"_base_init": base_init}
    params: list[str] = ["self", "params"]
    keyword: list[str] = []
    for i, h in enumerate(spec.hypers):
        namespace[f"_d{i}"] = h.default
        (keyword if h.keyword_only else params).append(f"{h.name}=_d{i}")
    params += ["*", *keyword, "backend='native'"]
    group = ", ".join(f"{h.name!r}: {h.name}" for h in spec.hypers)
    return make_function("__init__", params, f"_base_init(self, params, {{{group}}}, "
                         "backend=backend)", namespace, qualname=f"{cls.__qualname__}.__init__",
                         module=cls.__module__)
