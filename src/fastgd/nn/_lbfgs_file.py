"""An `fastgd.optim.LBFGS` optimizer in a model file (see `fastgd.nn.serialization`).

Its entry in the metadata::

    {"type": "LBFGS", "backend": ..., "param_groups": [{"lr": ..., ..., "params": [0, ...]}],
     "state": {} or {"0": {"func_evals": int, "n_iter": int,
                           # after a first iteration (a run):
                           "history": m, "t": S, "H_diag": S, "prev_loss": float}}}

where a scalar ``S`` is ``{"type": "int" | "float" | "numpy", "value": number}`` (a Python
int, a Python float or a numpy scalar of the parameters' dtype, as the algorithm keeps it:
they round differently in float32). A run's arrays are the members ``opt_0_d`` and
``opt_0_prev_flat_grad`` (shape ``(n,)``, n the model's number of parameter elements),
``opt_0_old_dirs`` and ``opt_0_old_stps`` (``(m, n)``: the history, one row a pair) and
``opt_0_ro`` (``(m,)``), all in the parameters' dtype. Everything is checked, before any is
read: the JSON types and ranges, and every member's header against ``(m, n)``.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import optim

if TYPE_CHECKING:
    from .serialization import _Param, _Reader

#: a run's arrays: member suffix -> rows ("m": the history's length, None: one vector)
_RUN_ARRAYS = {"d": None, "prev_flat_grad": None, "old_dirs": "m", "old_stps": "m", "ro": "ro"}
_RUN_SCALARS = ("t", "H_diag")
_COUNTER_MAX = 2 ** 63 - 1
_INT_MAX = 2 ** 53


def entry(optimizer: optim.LBFGS, arrays: dict[str, Any]) -> dict[str, Any]:
    """The metadata entry of ``optimizer``; its state arrays are added to ``arrays``."""
    from .serialization import _jsonable
    sd = optimizer.state_dict()
    state: dict[str, Any] = {}
    if sd["state"]:
        e = sd["state"][0]
        out: dict[str, Any] = {"func_evals": e["func_evals"], "n_iter": e["n_iter"]}
        if "d" in e:
            d = e["d"]
            m = len(e["old_dirs"])
            out.update(history=m, t=_scalar_json(e["t"]), H_diag=_scalar_json(e["H_diag"]),
                       prev_loss=float(e["prev_loss"]))
            arrays["opt_0_d"] = d
            arrays["opt_0_prev_flat_grad"] = e["prev_flat_grad"]
            for k in ("old_dirs", "old_stps"):
                arrays[f"opt_0_{k}"] = (np.stack(e[k]) if m else
                                        np.empty((0, d.size), d.dtype))
            arrays["opt_0_ro"] = np.array([float(v) for v in e["ro"]], dtype=d.dtype)
        state["0"] = out
    return {"type": "LBFGS", "backend": optimizer.backend,
            "param_groups": _jsonable(sd["param_groups"]), "state": state}


def _scalar_json(v: Any) -> dict[str, Any]:
    if isinstance(v, np.generic):
        return {"type": "numpy", "value": float(v)}
    if type(v) is int:
        return {"type": "int", "value": v}
    return {"type": "float", "value": float(v)}


def check(reader: _Reader, state: Any, params: list[_Param]) -> tuple[dict[str, Any], dict]:
    """The state of an LBFGS entry checked: ``(entry, arrays)``, the entry's JSON values as
    the optimizer takes them (arrays still to read) and the (shape, dtype) each member
    needs."""
    from .serialization import _keys, _same_float, _short
    where = "the optimizer's state"
    if not isinstance(state, dict):
        reader.fail(f"{where} must be a JSON object")
    if not params:
        reader.fail("the optimizer is LBFGS but the model has no parameters")
    n = sum(math.prod(shape) for _, shape, _, _ in params)
    dtype = params[0][2]
    if not state:
        return {}, {}
    _keys(reader, state, {"0"}, where)
    e = state["0"]
    where = "the optimizer's state['0']"
    if not isinstance(e, dict):
        reader.fail(f"{where} must be a JSON object")
    run = ("history", "t", "H_diag", "prev_loss")
    _keys(reader, e, {"func_evals", "n_iter"}, where, optional=set(run))
    out: dict[str, Any] = {}
    for k in ("func_evals", "n_iter"):
        v = e[k]
        if type(v) is not int or not 0 <= v <= _COUNTER_MAX:
            reader.fail(f"{where} {k} must be an int in 0..{_COUNTER_MAX}, got {_short(v)}")
        out[k] = v
    present = [k for k in run if k in e]
    if not present:
        if out["n_iter"] != 0:
            reader.fail(f"{where} has n_iter {out['n_iter']} but no run (history, t, H_diag, "
                        "prev_loss)")
        return out, {}
    if len(present) != len(run):
        lacking = next(k for k in run if k not in e)
        reader.fail(f"{where} has {present[0]!r} but no {lacking!r}")
    m = e["history"]
    if type(m) is not int or not 0 <= m <= _COUNTER_MAX:
        reader.fail(f"{where} history must be an int >= 0 (the number of pairs kept), got "
                    f"{_short(m)}")
    for k in _RUN_SCALARS:
        out[k] = _scalar(reader, e[k], dtype, f"{where} {k}")
    loss = e["prev_loss"]
    if type(loss) not in (int, float) or not math.isfinite(loss):
        reader.fail(f"{where} prev_loss must be a finite number, got {_short(loss)}")
    out["prev_loss"] = float(loss)
    out["history"] = m
    arrays: dict[str, tuple[tuple[int, ...], np.dtype[Any]]] = {}
    for k, rows in _RUN_ARRAYS.items():
        member = f"opt_0_{k}"
        shape = (n,) if rows is None else (m, n) if rows == "m" else (m,)
        if member not in reader.members:
            reader.fail(f"{where} has a run but the file has no {member} (LBFGS's {k!r})")
        got_shape, got_dtype = reader.header(member)
        if got_shape != shape or not _same_float(got_dtype, dtype):
            reader.fail(f"optimizer state {member} (LBFGS's {k!r}) has {got_shape} "
                        f"{got_dtype}, it needs {shape} {dtype.name} ({m} pairs of the "
                        f"model's {n} parameter elements)")
        arrays[member] = (shape, dtype)
    return out, arrays


def _scalar(reader: _Reader, v: Any, dtype: np.dtype[Any], where: str) -> Any:
    from .serialization import _keys, _short
    if not isinstance(v, dict):
        reader.fail(f"{where} must be a JSON object {{'type', 'value'}}, got {_short(v)}")
    _keys(reader, v, {"type", "value"}, where)
    kind, value = v["type"], v["value"]
    if kind == "int":
        if type(value) is not int or abs(value) > _INT_MAX:
            reader.fail(f"{where} value must be an int of at most 2**53 in magnitude, got "
                        f"{_short(value)}")
        return value
    if kind not in ("float", "numpy"):
        reader.fail(f"{where} type must be 'int', 'float' or 'numpy', got {_short(kind)}")
    if type(value) is not float or not math.isfinite(value):
        reader.fail(f"{where} value must be a finite float, got {_short(value)}")
    if kind == "float":
        return value
    with np.errstate(over="ignore"):
        scalar = dtype.type(value)
    if not np.isfinite(scalar):
        reader.fail(f"{where} value {value!r} overflows {dtype.name}")
    return scalar


def build(reader: _Reader, opt: dict[str, Any], params: list[np.ndarray[Any, Any]]
          ) -> optim.LBFGS:
    """The LBFGS optimizer over ``params`` with the checked entry's hyper-parameters and
    state (its arrays read now)."""
    groups = [{**{k: v for k, v in g.items() if k != "params"},
               "params": [params[i] for i in g["params"]]} for g in opt["groups"]]
    try:
        built = optim.LBFGS(groups, backend=opt["backend"])
    except (TypeError, ValueError, OverflowError) as exc:
        reader.fail(f"the optimizer cannot be rebuilt: {exc}")
    e = opt["entries"]
    state: dict[int, dict[str, Any]] = {}
    if e:
        entry = {k: e[k] for k in ("func_evals", "n_iter")}
        if "history" in e:
            dt = params[0].dtype
            read = {k: reader.array(f"opt_0_{k}").astype(dt, copy=False) for k in _RUN_ARRAYS}
            ro = read["ro"]
            if not np.isfinite(ro).all():
                reader.fail("optimizer state opt_0_ro (LBFGS's 'ro') holds non-finite values")
            entry.update(t=e["t"], H_diag=e["H_diag"], prev_loss=e["prev_loss"],
                         d=read["d"], prev_flat_grad=read["prev_flat_grad"],
                         old_dirs=list(read["old_dirs"]), old_stps=list(read["old_stps"]),
                         ro=[v for v in ro])
        state[0] = entry
    try:
        built.load_state_dict({"state": state, "param_groups": opt["groups"]})
    except (TypeError, ValueError, OverflowError) as exc:
        reader.fail(f"the optimizer's state cannot be restored: {exc}")
    return built
