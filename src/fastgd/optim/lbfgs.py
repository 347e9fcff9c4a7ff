r"""L-BFGS: a quasi-Newton method over all parameters as one flat vector, with a closure.

The algorithm and its order of operations are those of ``torch.optim.LBFGS`` (after
minFunc), including the strong-Wolfe line search with cubic interpolation; the arithmetic
is numpy's on one contiguous vector in the parameters' dtype (dot products through BLAS).
Scalars keep torch's types: what torch holds as a 0-d tensor (the directional derivatives,
``ro``, ``H_diag``, a step found by interpolation) is a numpy scalar of that dtype here,
and what torch holds as a Python number (the losses, the learning rate) is a Python float,
so float32 parameters are optimised in float32 arithmetic as in torch.
"""
import numbers
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .. import _checks
from .._typing import FloatArray, Params, Real
from .optimizer import Optimizer, _as_groups, _as_list

__all__ = ["LBFGS"]

#: the keys of a parameter group besides the hyper-parameters: its arrays, and the learning
#: rate a schedule started from (fastgd.optim.lr_scheduler sets it)
_NOT_HYPER = frozenset({"params", "initial_lr"})
_HYPERS = ("lr", "max_iter", "max_eval", "tolerance_grad", "tolerance_change",
           "history_size", "line_search_fn")
_LINE_SEARCHES = (None, "strong_wolfe")
#: the state's scalars and arrays, torch's keys; "al" (torch's scratch list) may be loaded
_COUNTERS = ("func_evals", "n_iter")
_RUN = ("d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad", "prev_loss")

#: a number as the algorithm keeps it: a Python float/int or a numpy scalar of the dtype
Scalar = Any
Closure = Callable[[], Any]


class LBFGS(Optimizer):
    r"""L-BFGS, as ``torch.optim.LBFGS``: limited-memory BFGS with an optional strong-Wolfe
    line search, stepping with a closure that evaluates the loss and its gradients.

    All parameters form one flat vector :math:`x` (in their common dtype) and the closure's
    gradients one vector :math:`g`. Each of the ``max_iter`` iterations of a `step` keeps
    the last ``history_size`` pairs :math:`s_i = x_{i+1} - x_i`, :math:`y_i = g_{i+1} - g_i`
    with :math:`y_i^\top s_i > 10^{-10}`, :math:`\rho_i = 1 / y_i^\top s_i`, and finds the
    direction :math:`d = -H g` by the two-loop recursion

    .. math::
        q &\leftarrow -g\\
        \alpha_i &= \rho_i\, s_i^\top q,\quad q \leftarrow q - \alpha_i y_i
            \qquad (i = m-1, \dots, 0)\\
        r &\leftarrow \gamma\, q,\qquad \gamma = \frac{y_{m-1}^\top s_{m-1}}
            {y_{m-1}^\top y_{m-1}}\\
        \beta_i &= \rho_i\, y_i^\top r,\quad r \leftarrow r + (\alpha_i - \beta_i)\, s_i
            \qquad (i = 0, \dots, m-1)\\
        d &= r

    (:math:`d = -g` on the very first iteration). The step is :math:`x \leftarrow x + t d`
    with :math:`t = \mathrm{lr}` (:math:`t = \min(1, 1/\lVert g\rVert_1)\,\mathrm{lr}` on the
    first iteration), or the :math:`t` a strong-Wolfe line search finds from there
    (sufficient decrease :math:`c_1 = 10^{-4}`, curvature :math:`c_2 = 0.9`, cubic
    interpolation, at most ``max_eval`` evaluations in the step). A step stops early when
    :math:`\max_j |g_j| \le` ``tolerance_grad``, when :math:`g^\top d >` ``-tolerance_change``,
    when :math:`\max_j |t d_j|` or the change of the loss is at most ``tolerance_change``
    (torch's rules, in torch's order), or after ``max_eval`` evaluations.

    Parameters
    ----------
    params : list of ndarray, or a list of one dict
        The arrays to optimise (updated in place), all float32 or all float64; or one
        parameter group (a dict with a ``"params"`` list). Like torch, L-BFGS has one group.
    lr : float, default 1
        The step length :math:`t` (>= 0); the first trial step of the line search.
    max_iter : int, default 20
        Iterations per `step` (>= 1).
    max_eval : int, optional
        Closure evaluations per `step` (>= 1). Default ``max_iter * 5 // 4``, as torch.
    tolerance_grad : float, default 1e-7
        Stop when the largest gradient component is at most this (>= 0).
    tolerance_change : float, default 1e-9
        Stop when the directional derivative, the step or the change of the loss is at most
        this (>= 0).
    history_size : int, default 100
        The number of :math:`(s_i, y_i)` pairs kept (>= 1).
    line_search_fn : {None, "strong_wolfe"}, default None
        No line search (fixed steps of ``lr``), or the strong-Wolfe search.
    backend : {"native", "reference"}, default "native"
        Accepted for uniformity with the other optimizers: both are the same numpy code,
        whose vector operations (BLAS dot products, axpys) are where the time goes; there
        is no fused kernel, so `bind` and `backup` (what `fastgd.fit`'s other loops use)
        are refused; `fastgd.fit` trains with L-BFGS full batch, one `step` an epoch.

    Notes
    -----
    ``step(closure)`` calls ``closure()`` one or more times; it must return ``(loss,
    grads)``: the loss as a real number and one gradient per parameter (its dtype and
    shape; ``None`` counts as zeros, as a missing ``.grad`` in torch). Before the first
    evaluation of a step the closure sees the parameters as they are; during the line
    search it sees trial points. A non-finite loss is not an error (torch's arithmetic
    carries it on); if the closure raises, or returns something malformed, the parameters
    and the state are put back as they were before the step, and the error propagates.

    ``state_dict()`` holds torch's keys (``func_evals``, ``n_iter``, ``d``, ``t``,
    ``old_dirs``, ``old_stps``, ``ro``, ``H_diag``, ``prev_flat_grad``, ``prev_loss``) for
    parameter index 0, the arrays as copies; loading it resumes a run bit for bit.

    When ``history_size`` is lowered between steps the oldest pairs are dropped (torch fails
    with an IndexError there, or when it is raised).

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> x = np.array([-1.5, 2.0])
    >>> def closure():                      # Rosenbrock's function and its gradient
    ...     a, b = x
    ...     loss = (1 - a) ** 2 + 100 * (b - a * a) ** 2
    ...     grad = np.array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])
    ...     return loss, [grad]
    >>> opt = fastgd.optim.LBFGS([x], line_search_fn="strong_wolfe")
    >>> for _ in range(5):
    ...     first_loss = opt.step(closure)
    >>> np.round(x, 4)                      # the minimum, (1, 1)
    array([1., 1.])
    """

    def __init__(self, params: Params, lr: Real = 1, max_iter: int = 20,
                 max_eval: Optional[int] = None, tolerance_grad: Real = 1e-7,
                 tolerance_change: Real = 1e-9, history_size: int = 100,
                 line_search_fn: Optional[str] = None, *, backend: str = "native") -> None:
        self.backend = _checks.backend(backend)
        max_iter = _checks.integer(max_iter, "max_iter", low=1)
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults: dict[str, Any] = dict(
            lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
            tolerance_change=tolerance_change, history_size=history_size,
            line_search_fn=line_search_fn)
        defaults = dict(zip(_HYPERS, _hyper(defaults, "")))
        groups = _as_groups(params)
        if len(groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups): "
                             f"params has {len(groups)} groups, pass one")
        group = groups[0]
        where = "param_groups[0]"
        if not isinstance(group, dict):  # pragma: no cover - _as_groups gives dicts
            raise TypeError(f"{where} must be a dict")
        if "params" not in group:
            raise ValueError(f"{where} has no 'params' entry")
        unknown = sorted(set(group) - set(_HYPERS) - _NOT_HYPER)
        if unknown:
            raise ValueError(f"{where} has unknown hyper-parameter {unknown[0]!r}; expected "
                             f"some of {sorted(_HYPERS)}")
        arrays = group["params"]
        arrays = [arrays] if _checks.is_array(arrays) else _as_list(arrays, "params")
        if not arrays:
            raise ValueError("params is empty: the optimizer got no parameters")
        arrays = [_checks.array_view(p, f"params[{i}]", writeable=True)  # torch tensors, ...
                  for i, p in enumerate(arrays)]
        for i, p in enumerate(arrays):
            _checks.parameter(p, f"params[{i}]")
            if p.dtype != arrays[0].dtype:
                raise TypeError(f"params[{i}] has dtype {p.dtype} but params[0] has "
                                f"{arrays[0].dtype}: L-BFGS works on one flat vector of one "
                                "dtype")
        _checks.disjoint(arrays, [f"params[{i}]" for i in range(len(arrays))])
        if not any(p.size for p in arrays):
            raise ValueError("params hold no elements (every array is empty)")
        merged = {**defaults, **{k: v for k, v in group.items() if k != "params"}}
        hp = dict(zip(_HYPERS, _hyper(merged, where)))
        self.defaults = defaults
        self.param_groups = [{"params": arrays, **merged, **hp}]
        self._params: tuple[FloatArray, ...] = tuple(arrays)
        self._sizes = [p.size for p in arrays]
        self._numel = sum(self._sizes)
        self._dtype = arrays[0].dtype
        self._state: dict[str, Any] = {}
        #: (loss, flat gradient) at the parameters as the last step left them, when that
        #: step evaluated them there (for fastgd.minimize); None otherwise
        self._final: Optional[tuple[float, FloatArray]] = None
        #: numpy's error handling where step() was called, for the closure's own arithmetic
        self._user_err: dict[str, Any] = {}

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Refused: L-BFGS has one parameter group, as in torch."""
        raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")

    def _hyper_now(self) -> tuple[Any, ...]:
        """The group's hyper-parameters, checked (they may have been edited since)."""
        if len(self.param_groups) != 1:
            raise ValueError(f"LBFGS has one parameter group; param_groups has "
                             f"{len(self.param_groups)}")
        group = self.param_groups[0]
        where = "param_groups[0]"
        params = group.get("params")
        if type(params) is not list or len(params) != len(self._params) \
                or any(a is not b for a, b in zip(params, self._params)):
            raise ValueError(f"{where}['params'] was changed after the optimizer was built; "
                             "use a new optimizer")
        unknown = sorted(set(group) - set(_HYPERS) - _NOT_HYPER)
        if unknown:
            raise ValueError(f"{where} has unknown hyper-parameter {unknown[0]!r}")
        for k in _HYPERS:
            if k not in group:
                raise ValueError(f"{where} lacks the hyper-parameter {k!r}")
        return _hyper(group, where)

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, closure: Closure) -> tuple[float, FloatArray]:
        """``closure()`` checked: the loss as a Python float and the flat gradient."""
        with np.errstate(**self._user_err):   # the caller's, not the step's own
            out = closure()
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise TypeError("closure() must return (loss, grads): the loss and one gradient "
                            f"per parameter, got {_describe(out)}")
        loss = _loss(out[0])
        grads = out[1]
        n = len(self._params)
        if isinstance(grads, np.ndarray) or not isinstance(grads, (list, tuple)):
            raise TypeError(f"closure()[1] must be a list of {n} gradient arrays (one per "
                            f"parameter), got {type(grads).__name__}")
        if len(grads) != n:
            raise ValueError(f"closure()[1] has {len(grads)} arrays but the optimizer has "
                             f"{n} parameters")
        views = []
        for i, (g, p) in enumerate(zip(grads, self._params)):
            if g is None:
                views.append(np.zeros(p.size, p.dtype))
                continue
            if not isinstance(g, np.ndarray) and _checks.is_array(g):
                g = _checks.array_view(g, f"closure()[1][{i}]", writeable=False)
            _checks.like(g, p, f"closure()[1][{i}]", f"params[{i}]")
            views.append(g.reshape(-1))
        return loss, np.concatenate(views)  # always a new array, in the parameters' dtype

    def _add_grad(self, t: Scalar, d: FloatArray) -> None:
        """``x += t * d`` on the parameters (in place, their own dtype)."""
        offset = 0
        for p, n in zip(self._params, self._sizes):
            p += t * d[offset:offset + n].reshape(p.shape)
            offset += n

    def _set_params(self, values: Sequence[FloatArray]) -> None:
        for p, v in zip(self._params, values):
            np.copyto(p, v)

    def _directional_evaluate(self, closure: Closure, x: Sequence[FloatArray], t: Scalar,
                              d: FloatArray) -> tuple[float, FloatArray]:
        """The loss and gradient at ``x + t d``; the parameters are ``x`` again after."""
        self._add_grad(t, d)
        try:
            return self._evaluate(closure)
        finally:
            self._set_params(x)

    # ------------------------------------------------------------------ step
    def step(self, closure: Closure) -> float:  # type: ignore[override]
        """Take up to ``max_iter`` L-BFGS iterations; return the loss before the first.

        Parameters
        ----------
        closure : callable
            ``closure() -> (loss, grads)`` at the parameters as they are when it is called.

        Returns
        -------
        float
            The first loss the closure returned (torch's ``orig_loss``).
        """
        if isinstance(closure, (list, tuple)) or not callable(closure):
            raise TypeError("LBFGS.step takes a closure, closure() -> (loss, grads), got "
                            f"{type(closure).__name__}")
        hp = self._hyper_now()
        before = [p.copy() for p in self._params]
        self._final = None
        self._user_err = dict(np.geterr())
        try:
            with np.errstate(all="ignore"):   # nan and inf are carried on, as in torch
                return self._step(closure, *hp)
        except BaseException:
            self._set_params(before)
            raise

    def _step(self, closure: Closure, lr: float, max_iter: int, max_eval: int,
              tolerance_grad: float, tolerance_change: float, history_size: int,
              line_search_fn: Optional[str]) -> float:
        state = self._state
        func_evals = state.get("func_evals", 0)
        state_n_iter = state.get("n_iter", 0)
        dot = np.dot

        orig_loss, flat_grad = self._evaluate(closure)
        loss = orig_loss
        current_evals = 1
        func_evals += 1
        opt_cond = np.abs(flat_grad).max() <= tolerance_grad
        if opt_cond:
            state["func_evals"], state["n_iter"] = func_evals, state_n_iter
            self._final = (loss, flat_grad)
            return orig_loss

        d: Any = state.get("d")
        t: Scalar = state.get("t")
        old_dirs: list[FloatArray] = list(state.get("old_dirs", ()))
        old_stps: list[FloatArray] = list(state.get("old_stps", ()))
        ro: list[Scalar] = list(state.get("ro", ()))
        H_diag: Scalar = state.get("H_diag")
        prev_flat_grad: Any = state.get("prev_flat_grad")
        prev_loss: Any = state.get("prev_loss")
        at_params = True        # loss and flat_grad are those at the parameters now
        work = np.empty_like(flat_grad)

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state_n_iter += 1

            # the direction
            if state_n_iter == 1:
                d = -flat_grad
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = dot(y, s)
                if ys > 1e-10:
                    while len(old_dirs) >= history_size:   # the history is full: drop the oldest
                        del old_dirs[0], old_stps[0], ro[0]
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / dot(y, y)
                if len(old_dirs) > history_size:           # history_size lowered since
                    drop = len(old_dirs) - history_size
                    del old_dirs[:drop], old_stps[:drop], ro[:drop]
                num_old = len(old_dirs)
                al: list[Scalar] = [None] * num_old
                q = -flat_grad
                for i in range(num_old - 1, -1, -1):
                    al[i] = dot(old_stps[i], q) * ro[i]
                    np.multiply(old_dirs[i], -al[i], out=work)
                    q += work
                d = r = q * H_diag
                for i in range(num_old):
                    be_i = dot(old_dirs[i], r) * ro[i]
                    np.multiply(old_stps[i], al[i] - be_i, out=work)
                    r += work

            prev_flat_grad = flat_grad
            prev_loss = loss

            # the step length
            if state_n_iter == 1:
                t = min(1.0, 1.0 / np.abs(flat_grad).sum()) * lr
            else:
                t = lr
            gtd = dot(flat_grad, d)
            if gtd > -tolerance_change:
                break

            ls_func_evals = 0
            if line_search_fn is not None:
                x_init = [p.copy() for p in self._params]

                def obj_func(x: Sequence[FloatArray], t: Scalar,
                             d: FloatArray) -> tuple[float, FloatArray]:
                    return self._directional_evaluate(closure, x, t, d)

                loss, flat_grad, t, ls_func_evals = _strong_wolfe(
                    obj_func, x_init, t, d, loss, flat_grad, gtd,
                    tolerance_change=tolerance_change, max_ls=max_eval - current_evals)
                self._add_grad(t, d)
                opt_cond = np.abs(flat_grad).max() <= tolerance_grad
            else:
                self._add_grad(t, d)
                at_params = False
                if n_iter != max_iter:
                    # no re-evaluation after the last iteration (as torch: in a stochastic
                    # setting it would be of no use)
                    loss, flat_grad = self._evaluate(closure)
                    at_params = True
                    opt_cond = np.abs(flat_grad).max() <= tolerance_grad
                    ls_func_evals = 1

            current_evals += ls_func_evals
            func_evals += ls_func_evals

            # the stopping rules
            if n_iter == max_iter:
                break
            if current_evals >= max_eval:
                break
            if opt_cond:
                break
            if np.abs(d * t).max() <= tolerance_change:
                break
            if abs(loss - prev_loss) < tolerance_change:
                break

        state.update(func_evals=func_evals, n_iter=state_n_iter, d=d, t=t, old_dirs=old_dirs,
                     old_stps=old_stps, ro=ro, H_diag=H_diag, prev_flat_grad=prev_flat_grad,
                     prev_loss=prev_loss)
        state.pop("al", None)
        if at_params:
            self._final = (loss, flat_grad)
        return orig_loss

    # ------------------------------------------------------------------ what fit would use
    def bind(self, grads: Any) -> list:
        """Refused: L-BFGS steps with a closure, not with fixed gradient arrays."""
        raise TypeError("LBFGS steps with a closure (step(closure)); it has no native update "
                        "to bind")

    def backup(self, extra: Any = ()) -> Any:
        """Refused: L-BFGS has no native back-up (`fastgd.fit` keeps a copy of the
        parameters and of `state_dict` instead)."""
        raise TypeError("LBFGS has no native back-up; fastgd.fit keeps a copy of the "
                        "parameters and of state_dict() instead")

    @property
    def binds_exactly(self) -> bool:
        """False: L-BFGS has no native update."""
        return False

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> dict[int, dict[str, Any]]:
        """``{0: {...}}``: the algorithm's state (torch's keys), empty before the first step.

        The arrays are the optimizer's own; ``state_dict()`` copies them.
        """
        return {0: self._state} if self._state else {}

    def state_dict(self) -> dict[str, Any]:
        """``{"state": {0: {...}}, "param_groups": [{..., "params": [0, 1, ...]}]}``, with
        copies of the arrays; loading it into an L-BFGS optimizer over the same parameters
        resumes the run bit for bit."""
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        group["params"] = list(range(len(self._params)))
        state = {0: _copy_state(self._state)} if self._state else {}
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the hyper-parameters and the state saved by ``state_dict()``.

        Everything is checked first; on a mismatch a ``ValueError`` / ``TypeError`` names
        it and the optimizer is left unchanged.
        """
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError("state_dict must be a dict with exactly the keys 'state' and "
                             "'param_groups'")
        groups, saved = state_dict["param_groups"], state_dict["state"]
        if not isinstance(groups, (list, tuple)) or len(groups) != 1:
            raise ValueError(f"state_dict has "
                             f"{len(groups) if isinstance(groups, (list, tuple)) else '?'} "
                             "param groups, LBFGS has 1")
        where = "state_dict['param_groups'][0]"
        sg = groups[0]
        if not isinstance(sg, dict) or "params" not in sg:
            raise ValueError(f"{where} must be a dict with a 'params' list")
        n = len(self._params)
        if not isinstance(sg["params"], (list, tuple)) or list(sg["params"]) != list(range(n)):
            raise ValueError(f"{where}['params'] must be the indices 0..{n - 1} for this "
                             f"optimizer's {n} parameters")
        unknown = sorted(set(sg) - set(_HYPERS) - _NOT_HYPER)
        if unknown:
            raise ValueError(f"{where} has unknown hyper-parameter {unknown[0]!r}")
        if "initial_lr" in sg:
            _checks.real(sg["initial_lr"], f"{where}['initial_lr']", low=0)
        merged = {**self.param_groups[0], **{k: v for k, v in sg.items() if k != "params"}}
        merged["params"] = self.param_groups[0]["params"]
        hp = dict(zip(_HYPERS, _hyper(merged, where)))
        merged.update(hp)
        if not isinstance(saved, dict):
            raise TypeError("state_dict['state'] must be a dict")
        bad = [k for k in saved if isinstance(k, (bool, np.bool_)) or k != 0]
        if bad:
            raise ValueError(f"state_dict['state'] has key {bad[0]!r}; L-BFGS keeps its state "
                             "under parameter index 0")
        new_state = (self._check_state(saved[0], hp["history_size"], "state_dict['state'][0]")
                     if saved else {})
        # everything fits: apply
        group = self.param_groups[0]
        group.clear()
        group.update(merged)
        self._state = new_state
        self._final = None

    def _check_state(self, entry: Any, history_size: int, where: str) -> dict[str, Any]:
        """A checked copy of a saved state entry."""
        if not isinstance(entry, dict):
            raise TypeError(f"{where} must be a dict, got {type(entry).__name__}")
        allowed = (*_COUNTERS, *_RUN, "al")
        unknown = sorted(str(k) for k in set(entry) - set(allowed))
        if unknown:
            raise ValueError(f"{where} has unknown key {unknown[0]!r}; expected some of "
                             f"{list(_COUNTERS + _RUN)}")
        missing = [k for k in _COUNTERS if k not in entry]
        if missing:
            raise ValueError(f"{where} has no {missing[0]!r}")
        out: dict[str, Any] = {}
        for k in _COUNTERS:
            v = entry[k]
            if isinstance(v, np.ndarray) and v.ndim == 0:
                v = v.item()
            out[k] = _checks.integer(v, f"{where}[{k!r}]", low=0)
        present = [k for k in _RUN if k in entry]
        if out["n_iter"] == 0 and not present:
            return out
        if len(present) != len(_RUN):
            lacking = next(k for k in _RUN if k not in entry)
            raise ValueError(f"{where} has {present[0] if present else 'n_iter > 0'!r} but no "
                             f"{lacking!r}: a saved run has all of {list(_RUN)}")
        n, dt = self._numel, self._dtype
        for k in ("d", "prev_flat_grad"):
            out[k] = _flat(entry[k], n, dt, f"{where}[{k!r}]")
        lists = {}
        for k in ("old_dirs", "old_stps", "ro"):
            v = entry[k]
            if isinstance(v, (str, bytes, np.ndarray)) or not isinstance(v, (list, tuple)):
                raise TypeError(f"{where}[{k!r}] must be a list, got {type(v).__name__}")
            lists[k] = list(v)
        m = len(lists["old_dirs"])
        for k in ("old_stps", "ro"):
            if len(lists[k]) != m:
                raise ValueError(f"{where}[{k!r}] has {len(lists[k])} entries but "
                                 f"{where}['old_dirs'] has {m}")
        if m > history_size:
            raise ValueError(f"{where}['old_dirs'] has {m} entries, more than history_size="
                             f"{history_size}")
        for k in ("old_dirs", "old_stps"):
            out[k] = [_flat(a, n, dt, f"{where}[{k!r}][{i}]") for i, a in enumerate(lists[k])]
        out["ro"] = [_scalar(v, dt, f"{where}['ro'][{i}]") for i, v in enumerate(lists["ro"])]
        out["t"] = _scalar(entry["t"], dt, f"{where}['t']")
        out["H_diag"] = _scalar(entry["H_diag"], dt, f"{where}['H_diag']")
        prev_loss = entry["prev_loss"]
        if isinstance(prev_loss, np.ndarray) and prev_loss.ndim == 0:
            prev_loss = prev_loss.item()
        if isinstance(prev_loss, (bool, np.bool_)) or not isinstance(prev_loss, numbers.Real):
            raise TypeError(f"{where}['prev_loss'] must be a real number, got "
                            f"{type(prev_loss).__name__}")
        out["prev_loss"] = float(prev_loss)
        return out

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in self.param_groups[0].items() if k != "params")
        return (f"LBFGS (backend={self.backend!r})\n  group 0: {len(self._params)} arrays, "
                f"{hp}")


# ---------------------------------------------------------------------------- checks
def _hyper(group: dict[str, Any], where: str) -> tuple[Any, ...]:
    """The hyper-parameters of ``group`` checked, in the order of `_HYPERS`; an error names
    ``{where}['lr']`` (or plain ``lr`` when ``where`` is empty)."""
    def name(k: str) -> str:
        return f"{where}[{k!r}]" if where else k

    lr = _checks.real(group["lr"], name("lr"), low=0)
    max_iter = _checks.integer(group["max_iter"], name("max_iter"), low=1)
    max_eval = _checks.integer(group["max_eval"], name("max_eval"), low=1)
    tolerance_grad = _checks.real(group["tolerance_grad"], name("tolerance_grad"), low=0)
    tolerance_change = _checks.real(group["tolerance_change"], name("tolerance_change"), low=0)
    history_size = _checks.integer(group["history_size"], name("history_size"), low=1)
    ls = group["line_search_fn"]
    if ls is not None and not (isinstance(ls, str) and ls == "strong_wolfe"):
        raise ValueError(f"{name('line_search_fn')} must be None or 'strong_wolfe', got {ls!r}")
    return lr, max_iter, max_eval, tolerance_grad, tolerance_change, history_size, ls


def _describe(v: Any) -> str:
    if isinstance(v, (tuple, list)):
        return f"a {type(v).__name__} of {len(v)} items"
    return type(v).__name__


def _loss(v: Any) -> float:
    """closure()[0] as a Python float (non-finite values pass, as in torch)."""
    if isinstance(v, np.ndarray):
        if v.size != 1 or v.dtype.kind not in "fiu":
            raise TypeError(f"closure()[0] must be the loss, a real number, got an array of "
                            f"shape {v.shape} and dtype {v.dtype}")
        return float(v.reshape(()))
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"closure()[0] must be the loss, a real number, got "
                        f"{type(v).__name__}")
    return float(v)


def _flat(a: Any, n: int, dt: np.dtype[Any], name: str) -> FloatArray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.shape != (n,):
        raise ValueError(f"{name} has shape {a.shape}; the parameters' flat vector has shape "
                         f"({n},)")
    if a.dtype != dt:
        raise TypeError(f"{name} has dtype {a.dtype} but the parameters have {dt}")
    return a.copy()


def _scalar(v: Any, dt: np.dtype[Any], name: str) -> Scalar:
    """A saved scalar as the algorithm keeps it: a Python int/float stays one, a numpy
    scalar (or 0-d array) becomes a scalar of the parameters' dtype."""
    if isinstance(v, np.ndarray):
        if v.ndim != 0 or v.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be a real number, got an array of shape {v.shape}")
        return dt.type(v)
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
    if isinstance(v, np.generic):
        return dt.type(v)
    return v if type(v) is int else float(v)


def _copy_state(state: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in state.items():
        if isinstance(v, np.ndarray):
            v = v.copy()
        elif isinstance(v, list):
            v = [a.copy() if isinstance(a, np.ndarray) else a for a in v]
        out[k] = v
    return out


# ---------------------------------------------------------------------------- line search
def _div(a: Scalar, b: Scalar) -> Scalar:
    """``a / b`` with IEEE semantics also for two Python numbers (inf or nan for b == 0,
    where Python would raise ZeroDivisionError)."""
    if isinstance(a, np.generic) or isinstance(b, np.generic) or b != 0:
        return a / b
    return float(np.divide(np.float64(a), np.float64(b)))


def _cubic_interpolate(x1: Scalar, f1: Scalar, g1: Scalar, x2: Scalar, f2: Scalar, g2: Scalar,
                       bounds: Optional[tuple[Scalar, Scalar]] = None) -> Scalar:
    """The minimiser of the cubic through ``(x1, f1, g1)`` and ``(x2, f2, g2)`` (values and
    slopes), clipped to ``bounds`` (default the interval between the points); the middle
    of the bounds when the cubic has no minimiser."""
    if bounds is not None:
        xmin_bound, xmax_bound = bounds
    else:
        xmin_bound, xmax_bound = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - _div(3 * (f1 - f2), x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if d2_square >= 0:
        d2 = np.sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def _strong_wolfe(obj_func: Callable[[Sequence[FloatArray], Scalar, FloatArray],
                                     tuple[float, FloatArray]],
                  x: Sequence[FloatArray], t: Scalar, d: FloatArray, f: float, g: FloatArray,
                  gtd: Scalar, c1: float = 1e-4, c2: float = 0.9,
                  tolerance_change: float = 1e-9, max_ls: int = 25
                  ) -> tuple[float, FloatArray, Scalar, int]:
    """A step length along ``d`` from ``x`` that satisfies the strong Wolfe conditions (or
    the best point found in ``max_ls`` evaluations): ``(f, g, t, evaluations)``.

    First a bracket is grown (extrapolating by cubic interpolation within
    ``[t + 0.01 (t - t_prev), 10 t]``), then zoomed into (cubic interpolation, kept at
    least a tenth of the bracket away from its ends after a step of little progress)."""
    d_norm = np.abs(d).max()
    f_new, g_new = obj_func(x, t, d)
    ls_func_evals = 1
    gtd_new = np.dot(g_new, d)

    # grow a bracket around a point that satisfies the conditions
    t_prev: Scalar = 0
    f_prev, g_prev, gtd_prev = f, g, gtd
    done = False
    ls_iter = 0
    bracket: list[Scalar] = []
    bracket_f: list[float] = []
    bracket_g: list[FloatArray] = []
    bracket_gtd: list[Scalar] = []
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        # extrapolate
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new,
                               bounds=(min_step, max_step))
        t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, g_new, gtd_new
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = np.dot(g_new, d)
        ls_iter += 1

    if ls_iter == max_ls:  # the evaluations ran out while growing
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]

    # zoom into the bracket
    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:  # the bracket is tiny
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0],
                               bracket[1], bracket_f[1], bracket_gtd[1])
        # close to an end after a step of little progress, or at an end: a tenth inside
        hi, lo = max(bracket), min(bracket)
        eps = 0.1 * (hi - lo)
        if min(hi - t, t - lo) < eps:
            if insuf_progress or t >= hi or t <= lo:
                t = hi - eps if abs(t - hi) < abs(t - lo) else lo + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False

        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = np.dot(g_new, d)
        ls_iter += 1

        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            # no sufficient decrease, or not below the low end: the new high end
            bracket[high_pos], bracket_f[high_pos] = t, f_new
            bracket_g[high_pos], bracket_gtd[high_pos] = g_new, gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True                      # the strong Wolfe conditions hold
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                # the old high end becomes the low end
                bracket[high_pos], bracket_f[high_pos] = bracket[low_pos], bracket_f[low_pos]
                bracket_g[high_pos] = bracket_g[low_pos]
                bracket_gtd[high_pos] = bracket_gtd[low_pos]
            # the new point is the new low end
            bracket[low_pos], bracket_f[low_pos] = t, f_new
            bracket_g[low_pos], bracket_gtd[low_pos] = g_new, gtd_new

    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals

