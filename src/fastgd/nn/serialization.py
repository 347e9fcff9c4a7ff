"""Saving models (and optimizer state) to .npz, atomically, and loading them back.

A model file is an uncompressed .npz (a zip of .npy arrays): ``__fastgd__`` holds the
architecture and the optimizer's hyper-parameters as JSON, ``param_<i>`` the model's
parameters and ``opt_<i>_<name>`` the optimizer's state arrays. `load` treats every file
as untrusted: see its notes.
"""
from __future__ import annotations

import io
import json
import math
import os
import re
import struct
import tokenize
import zipfile
import zlib
from typing import IO, TYPE_CHECKING, Any, Literal, NoReturn, Union, overload

import numpy as np

from .. import nn, optim
from .._atomic import atomic_write, fspath
from . import _lbfgs_file
from . import init as _init

if TYPE_CHECKING:
    from ..optim.optimizer import Optimizer

#: what a ``path`` argument takes
PathArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
#: a parameter the layers need: (member key, shape, dtype, where, e.g. "layers[0].W")
_Param = tuple[str, tuple[int, ...], np.dtype[Any], str]

FORMAT = 1
#: the most the members together may hold, as a multiple of the file's size (the zip-bomb
#: ratio of Apache POI; fastgd writes uncompressed files, at a ratio just under 1)
MAX_EXPANSION = 100
#: the most one deflated member can expand (deflate's own limit): a member that claims
#: more is lying about its size
_DEFLATE_LIMIT = 1032
#: the longest .npy header read (numpy's own default); fastgd writes about 128 bytes
MAX_HEADER = 10000
#: the largest metadata entry read (bytes of the decoded __fastgd__ array); a deflated one
#: may also hold at most 4 times the file's size (1 MiB for small files): its JSON becomes
#: Python objects of several times its size
MAX_METADATA = 64 << 20

#: the layers a file may name, by class name (Linear and the activation registry)
_LAYERS = {cls.__name__: cls for cls in (nn.Linear, *nn.activations.ACTIVATIONS.values())}
#: the optimizers a file may name, by class name (the registry `fastgd.optim.ALGORITHMS`,
#: and LBFGS: see `fastgd.nn._lbfgs_file`)
_OPTIMIZERS = {cls.__name__: cls for cls in (*optim.ALGORITHMS.values(), optim.LBFGS)}
_BACKENDS = ("native", "reference")
_DTYPES = ("float32", "float64")
_META = "__fastgd__"
_PARAM = re.compile(r"param_(0|[1-9][0-9]*)")
_STATE = re.compile(r"opt_(0|[1-9][0-9]*)_([a-z_]+)")
_INDEX = re.compile(r"0|[1-9][0-9]*")
_STEP_MAX = 2 ** 63 - 1
_FLOAT_MAX = float(np.finfo(np.float64).max)
#: what the zip and .npy parsers of the standard library and numpy raise on damaged input
_PARSE_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error, EOFError,
                 OSError, ValueError, TypeError, KeyError, IndexError, OverflowError,
                 SyntaxError, tokenize.TokenError, RecursionError, NotImplementedError)


def save(model: nn.Sequential, path: PathArg, optimizer: Optimizer | None = None) -> None:
    """Write a model, and optionally its optimizer, to an .npz file, atomically.

    Parameters
    ----------
    model : fastgd.nn.Sequential
        Its architecture and parameters are saved.
    path : str, bytes or os.PathLike
        The file to write (replaced if it exists); its folder must exist.
    optimizer : fastgd.optim optimizer, optional
        Built on ``model.parameters()``; its hyper-parameters and state are saved too.

    Raises
    ------
    TypeError
        When ``model``, ``path`` or ``optimizer`` has the wrong type.
    ValueError
        When ``optimizer`` is not built on ``model.parameters()``.
    OSError
        When the file cannot be written; the error names ``path``.

    Notes
    -----
    The file is written by `fastgd._atomic.atomic_write`: ``path`` is replaced only by a
    complete file, so an interrupted save (an exception, Ctrl-C, ``kill -9``) leaves the
    earlier file intact and no temporary file behind.

    Examples
    --------
    >>> import os, tempfile, numpy as np, fastgd
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> model = fastgd.nn.MLP([3, 4, 2], dtype=np.float64, seed=0)
    >>> model.save(path)
    >>> fastgd.load(path)[0]
    Linear(in_features=3, out_features=4, bias=True, dtype=float64)
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be a fastgd.nn.Sequential, got {type(model).__name__}")
    if optimizer is not None and type(optimizer).__name__ not in _OPTIMIZERS:
        raise TypeError(f"optimizer must be a fastgd.optim optimizer, got {type(optimizer).__name__}")
    path = fspath(path)
    arrays: dict[str, Any] = {f"param_{i}": p for i, p in enumerate(model.parameters())}
    meta: dict[str, Any] = {"format": FORMAT,
            "layers": [{"type": type(layer).__name__, "config": layer._config(),
                        "backend": layer.backend} for layer in model.layers],
            "optimizer": None}
    if optimizer is not None:
        held = [p for g in optimizer.param_groups for p in g["params"]]
        params = model.parameters()
        if len(held) != len(params) or any(a is not b for a, b in zip(held, params)):
            raise ValueError("optimizer must be built on model.parameters() to be saved with it")
    if isinstance(optimizer, optim.LBFGS):
        meta["optimizer"] = _lbfgs_file.entry(optimizer, arrays)
    elif optimizer is not None:
        sd = optimizer.state_dict()
        state_meta: dict[str, Any] = {}
        for i, entry in sd["state"].items():
            state_meta[str(i)] = {"step": entry["step"],
                                  "none": [k for k, v in entry.items() if v is None]}
            if optimizer.spec.scalar is not None:  # a float, exact in JSON (repr round-trips)
                name = optimizer.spec.scalar.name
                state_meta[str(i)][name] = entry[name]
            for k, v in entry.items():
                if isinstance(v, np.ndarray):
                    arrays[f"opt_{i}_{k}"] = v
        meta["optimizer"] = {"type": type(optimizer).__name__, "backend": optimizer.backend,
                             "param_groups": _jsonable(sd["param_groups"]), "state": state_meta}
    arrays[_META] = np.array(json.dumps(meta))
    with atomic_write(path) as fh:
        np.savez(fh, **arrays)


@overload
def load(path: PathArg, *, optimizer: Literal[False] = ...) -> nn.Sequential: ...


@overload
def load(path: PathArg, *,
         optimizer: Literal[True]) -> tuple[nn.Sequential, Optimizer | None]: ...


@overload
def load(path: PathArg, *, optimizer: bool | np.bool_
         ) -> nn.Sequential | tuple[nn.Sequential, Optimizer | None]: ...


def load(path: PathArg, *, optimizer: bool | np.bool_ = False
         ) -> nn.Sequential | tuple[nn.Sequential, Optimizer | None]:
    """Read a model saved by `fastgd.nn.Sequential.save`.

    Parameters
    ----------
    path : str, bytes or os.PathLike
        The .npz file.
    optimizer : bool, default False
        Also rebuild the saved optimizer over the model's parameters, with its saved
        hyper-parameters and state.

    Returns
    -------
    Sequential, or (Sequential, optimizer or None)
        The model; with ``optimizer=True`` the pair, the optimizer ``None`` when the file
        holds none.

    Raises
    ------
    TypeError
        When ``path`` or ``optimizer`` has the wrong type.
    OSError
        When the file cannot be opened (``FileNotFoundError`` when it does not exist).
    ValueError
        For any file that is not a complete, consistent fastgd model file; the message
        names the file and what is wrong with it.

    Notes
    -----
    Files are not trusted. Pickles are never loaded. The whole file is checked before
    anything is allocated for it: the zip directory (stored or deflated members only, no two
    members over the same bytes, together at most ``MAX_EXPANSION`` (100) times the file's
    size), the metadata (at most ``MAX_METADATA`` bytes, 64 MiB; every entry, type and
    value) and every array's .npy header, against the shape and dtype the architecture needs
    and against the member's size. So what is allocated is at most a few times what the
    members hold. With ``optimizer=False`` the optimizer's entry and array headers are
    checked as well, its hyper-parameters and state data only when asked for.

    Examples
    --------
    >>> import os, tempfile, numpy as np, fastgd
    >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.npz")
    >>> model = fastgd.nn.MLP([3, 4, 2], dtype=np.float64, seed=0)
    >>> opt = fastgd.optim.Adam(model.parameters(), lr=0.01)
    >>> model.save(path, optimizer=opt)
    >>> model2, opt2 = fastgd.load(path, optimizer=True)
    >>> opt2.param_groups[0]["lr"]
    0.01
    """
    if not isinstance(optimizer, (bool, np.bool_)):
        raise TypeError(f"optimizer must be a bool, got {type(optimizer).__name__}")
    name: str = fspath(path)
    with open(name, "rb") as fh:
        return _Reader(fh, name).load(bool(optimizer))


class _Reader:
    """One model file being checked and read."""

    def __init__(self, fh: IO[bytes], path: str) -> None:
        self.fh, self.path = fh, path
        self.size = os.fstat(fh.fileno()).st_size
        if fh.read(6) == b"\x93NUMPY":
            raise ValueError(f"{path} is not a fastgd model file (a single .npy array)")
        fh.seek(0)
        try:
            self.zf = zipfile.ZipFile(fh)
            infos = self.zf.infolist()
        except _PARSE_ERRORS as exc:
            raise ValueError(f"{path} is not a fastgd model file: {exc}") from None
        # by name without the .npy that np.savez adds; others as they are
        self.members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            name = info.filename
            key = name[:-4] if name.endswith(".npy") else name + " (not .npy)"
            if key in self.members:
                self.fail(f"holds the member {name!r} twice")
            self.members[key] = info
        if _META not in self.members:
            raise ValueError(f"{path} is not a fastgd model file (no {_META} entry)")
        self._check_layout(infos)

    def fail(self, what: str) -> NoReturn:
        raise ValueError(f"{self.path}: {what}")

    # ------------------------------------------------------------------ the zip
    def _check_layout(self, infos: list[zipfile.ZipInfo]) -> None:
        """Compression, sizes and positions of every member, before any is read."""
        end_of_data = min(getattr(self.zf, "start_dir", self.size), self.size)
        spans = []
        for info in infos:
            name = info.filename
            if info.flag_bits & 0x1:
                self.fail(f"member {name!r} is encrypted")
            if info.compress_type == zipfile.ZIP_STORED:
                if info.file_size != info.compress_size:
                    self.fail(f"member {name!r} is stored (not compressed) but declares "
                              f"{info.file_size} bytes in {info.compress_size}")
            elif info.compress_type == zipfile.ZIP_DEFLATED:
                if info.file_size > _DEFLATE_LIMIT * max(info.compress_size, 1):
                    self.fail(f"member {name!r} declares {info.file_size} bytes from "
                              f"{info.compress_size} compressed, more than deflate can expand")
            else:
                self.fail(f"member {name!r} uses compression method {info.compress_type}; "
                          "fastgd reads stored (0) and deflated (8) members only")
            start = info.header_offset
            local = b""
            if 0 <= start <= self.size - 30:
                self.fh.seek(start)
                local = self.fh.read(30)
            if len(local) != 30 or local[:4] != b"PK\x03\x04":
                self.fail(f"member {name!r} has no local header where the zip directory "
                          "says")
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            end = start + 30 + name_len + extra_len + info.compress_size
            if end > end_of_data:
                self.fail(f"member {name!r} runs past the end of the data ({end} > "
                          f"{end_of_data} bytes)")
            spans.append((start, end, name))
        spans.sort()
        for (_, end, a), (start, _, b) in zip(spans, spans[1:]):
            if start < end:
                self.fail(f"members {a!r} and {b!r} overlap")
        total = sum(info.file_size for info in infos)
        if total > MAX_EXPANSION * self.size:
            self.fail(f"its members expand to {total} bytes, more than {MAX_EXPANSION} times "
                      f"the file's {self.size} (a zip bomb?)")

    def header(self, key: str) -> tuple[tuple[int, ...], np.dtype[Any]]:
        """``(shape, dtype)`` of member ``key``'s .npy header, checked against its size."""
        info = self.members[key]
        name = info.filename
        try:
            with self.zf.open(info) as fp:
                head = io.BytesIO(fp.read(12 + MAX_HEADER))
            version = np.lib.format.read_magic(head)
            if version == (1, 0):
                (length,), reader = struct.unpack("<H", head.read(2)), \
                    np.lib.format.read_array_header_1_0
            elif version == (2, 0):
                (length,), reader = struct.unpack("<I", head.read(4)), \
                    np.lib.format.read_array_header_2_0
            else:
                raise ValueError(f"unsupported .npy format version {version}")
            if length > MAX_HEADER:
                raise ValueError(f"the header is {length} bytes long, more than {MAX_HEADER}")
            head.seek(8)
            shape, _, dtype = reader(head, max_header_size=MAX_HEADER)
            start = head.tell()
        except _PARSE_ERRORS as exc:
            self.fail(f"member {name!r} is not a valid .npy array: {exc}")
        if dtype.hasobject:
            self.fail(f"member {name!r} holds Python objects (a pickle), which are never "
                      "loaded")
        if any(n < 0 for n in shape):
            self.fail(f"member {name!r} has a negative dimension in its shape {shape}")
        nbytes = math.prod(shape) * dtype.itemsize
        if start + nbytes != info.file_size:
            self.fail(f"member {name!r} declares {shape} {dtype} ({nbytes} bytes of data) but "
                      f"holds {info.file_size - start}")
        return shape, dtype

    def array(self, key: str) -> np.ndarray[Any, Any]:
        """The array of member ``key`` (its header checked by `header` first)."""
        info = self.members[key]
        try:
            with self.zf.open(info) as fp:
                a = np.lib.format.read_array(fp, allow_pickle=False, max_header_size=MAX_HEADER)
                if fp.read(1):
                    raise ValueError("data after the array")
        except _PARSE_ERRORS as exc:
            self.fail(f"member {info.filename!r} cannot be read: {exc}")
        return a

    # ------------------------------------------------------------------ the metadata
    def metadata(self) -> dict[str, Any]:
        shape, dtype = self.header(_META)
        if shape != () or dtype.kind != "U":
            self.fail(f"the {_META} entry is not a string (shape {shape}, dtype {dtype})")
        limit = min(MAX_METADATA, max(1 << 20, 4 * self.size))
        if dtype.itemsize > limit:
            self.fail(f"the {_META} entry is {dtype.itemsize} bytes, more than the {limit} "
                      f"read from a file of {self.size}")
        raw = self.array(_META).tobytes()
        try:
            text = raw.decode("utf-32-be" if dtype.byteorder == ">" else "utf-32-le")
            meta = json.loads(text.rstrip("\0"))
        except (ValueError, RecursionError) as exc:
            self.fail(f"the {_META} entry is not valid JSON: {exc}")
        if not isinstance(meta, dict):
            self.fail(f"the {_META} entry is not a JSON object")
        if "format" not in meta:
            self.fail(f"the {_META} entry has no 'format'")
        if type(meta["format"]) is not int or meta["format"] != FORMAT:
            raise ValueError(f"{self.path} has format {_short(meta['format'])}, this fastgd "
                             f"reads {FORMAT}")
        _keys(self, meta, {"format", "layers", "optimizer"}, f"the {_META} entry")
        return meta

    # ------------------------------------------------------------------ reading
    def load(self, with_optimizer: bool
             ) -> nn.Sequential | tuple[nn.Sequential, Optimizer | None]:
        meta = self.metadata()
        layers, params = _check_layers(self, meta["layers"])
        opt = _check_optimizer(self, meta["optimizer"], params)
        expected = {_META} | {key for key, *_ in params}
        if opt is not None:
            expected |= set(opt["arrays"])
        for key, info in self.members.items():
            if key not in expected:
                if _PARAM.fullmatch(key):
                    self.fail(f"holds {info.filename!r}, more parameters than its layers have")
                if _STATE.fullmatch(key):
                    self.fail(f"holds {info.filename!r}, optimizer state its metadata does not "
                              "declare")
                self.fail(f"holds an unexpected member {info.filename!r}")
        for i, (key, shape, dtype, where) in enumerate(params):
            if key not in self.members:
                self.fail(f"parameter {i} is missing or has the wrong shape: {where} needs "
                          f"{shape} {dtype.name}, the file has no {key}")
            got_shape, got_dtype = self.header(key)
            if got_shape != shape or not _same_float(got_dtype, dtype):
                self.fail(f"parameter {i} is missing or has the wrong shape: {where} needs "
                          f"{shape} {dtype.name}, the file's {key} is {got_shape} {got_dtype}")
        if opt is not None:
            for key, (shape, dtype) in opt["arrays"].items():
                got_shape, got_dtype = self.header(key)
                if got_shape != shape or not _same_float(got_dtype, dtype):
                    self.fail(f"optimizer state {key} has {got_shape} {got_dtype}, its "
                              f"parameter is {shape} {dtype.name}")
        # everything declared fits what the file holds: read and build
        values = [self.array(key) for key, *_ in params]
        model = _build_model(self, layers)
        for p, v in zip(model.parameters(), values):
            p[...] = v
        if not with_optimizer:
            return model
        if opt is None:
            return model, None
        return model, _build_optimizer(self, opt, model.parameters())


def _check_layers(reader: _Reader, layers: Any
                  ) -> tuple[list[tuple[type[nn.Module], dict[str, Any], str]], list[_Param]]:
    """The layer specs, checked; and the parameters they need:
    ``[(member key, shape, dtype, "layers[j].W"), ...]``."""
    if not isinstance(layers, list) or not layers:
        reader.fail("'layers' must be a non-empty list")
    specs: list[tuple[type[nn.Module], dict[str, Any], str]] = []
    params: list[_Param] = []
    width, dtype = None, None
    for j, spec in enumerate(layers):
        where = f"layers[{j}]"
        if not isinstance(spec, dict):
            reader.fail(f"{where} must be a JSON object, got {_short(spec)}")
        _keys(reader, spec, {"type", "config", "backend"}, where)
        kind, config, backend = spec["type"], spec["config"], spec["backend"]
        if not isinstance(kind, str) or kind not in _LAYERS:
            raise ValueError(f"{reader.path} holds an unknown layer type {_short(kind)} in "
                             f"{where}")
        if backend not in _BACKENDS:
            reader.fail(f"{where} has backend {_short(backend)}, not one of {_BACKENDS}")
        if not isinstance(config, dict):
            reader.fail(f"{where} config must be a JSON object, got {_short(config)}")
        where = f"{where} ({kind})"
        if kind == "Linear":
            config = _linear_config(reader, config, where)
            if width is not None and config["in_features"] != width:
                reader.fail(f"{where} takes {config['in_features']} features but the layer "
                            f"before gives {width}")
            if dtype is not None and config["dtype"] != dtype:
                reader.fail(f"{where} has dtype {config['dtype']}, the layers before "
                            f"{dtype}")
            width, dtype = config["out_features"], config["dtype"]
            shapes: list[tuple[str, tuple[int, ...]]] = [
                ("W", (config["in_features"], config["out_features"]))]
            if config["bias"]:
                shapes.append(("b", (config["out_features"],)))
            for attr, shape in shapes:
                params.append((f"param_{len(params)}", shape, np.dtype(config["dtype"]),
                               f"layers[{j}].{attr}"))
        elif kind == "LeakyReLU":
            _keys(reader, config, set(), f"{where} config", optional={"negative_slope"})
            slope = config.get("negative_slope", 0.01)
            if type(slope) not in (int, float) or abs(slope) > _FLOAT_MAX \
                    or not math.isfinite(slope):
                reader.fail(f"{where} negative_slope must be a finite number, got "
                            f"{_short(slope)}")
        else:
            _keys(reader, config, set(), f"{where} config")
        specs.append((_LAYERS[kind], config, backend))
    return specs, params


def _linear_config(reader: _Reader, config: dict[str, Any], where: str) -> dict[str, Any]:
    _keys(reader, config, {"in_features", "out_features"}, f"{where} config",
          optional={"bias", "dtype", "init"})
    out = {"bias": True, "dtype": "float32", "init": "auto", **config}
    for k in ("in_features", "out_features"):
        if type(out[k]) is not int or out[k] < 1:
            reader.fail(f"{where} {k} must be an int >= 1, got {_short(out[k])}")
    if type(out["bias"]) is not bool:
        reader.fail(f"{where} bias must be true or false, got {_short(out['bias'])}")
    if out["dtype"] not in _DTYPES:
        reader.fail(f"{where} dtype must be one of {_DTYPES}, got {_short(out['dtype'])}")
    inits = ("auto",) + tuple(_init.SCHEMES)
    if out["init"] not in inits:
        reader.fail(f"{where} init must be one of {inits}, got {_short(out['init'])}")
    return out


def _check_optimizer(reader: _Reader, om: Any, params: list[_Param]) -> dict[str, Any] | None:
    """The optimizer entry, checked (hyper-parameter values are checked by the optimizer
    when it is built); ``arrays`` maps each state member to the (shape, dtype) it needs."""
    if om is None:
        return None
    if not isinstance(om, dict):
        reader.fail(f"the optimizer entry must be a JSON object or null, got {_short(om)}")
    _keys(reader, om, {"type", "backend", "param_groups", "state"}, "the optimizer entry")
    kind = om["type"]
    if not isinstance(kind, str) or kind not in _OPTIMIZERS:
        reader.fail(f"holds an unknown optimizer type {_short(kind)}")
    cls = _OPTIMIZERS[kind]
    if om["backend"] not in _BACKENDS:
        reader.fail(f"the optimizer has backend {_short(om['backend'])}, not one of "
                    f"{_BACKENDS}")
    groups = _check_optimizer_groups(reader, om["param_groups"], params)
    if cls is optim.LBFGS:
        lbfgs, arrays = _lbfgs_file.check(reader, om["state"], params)
        return {"cls": cls, "backend": om["backend"], "groups": groups, "entries": lbfgs,
                "arrays": arrays}
    entries, arrays = _check_optimizer_state(reader, om["state"], cls, params)
    _check_state_per_group(reader, groups, entries, cls)
    return {"cls": cls, "backend": om["backend"], "groups": groups, "entries": entries,
            "arrays": arrays}


def _check_optimizer_groups(reader: _Reader, groups: Any,
                            params: list[_Param]) -> list[dict[str, Any]]:
    """The optimizer's param_groups: JSON objects whose 'params' list the model's
    parameters in order."""
    if not isinstance(groups, list) or not groups:
        reader.fail("the optimizer's param_groups must be a non-empty list")
    indices: list[int] = []
    for g, group in enumerate(groups):
        where = f"the optimizer's param_groups[{g}]"
        if not isinstance(group, dict) or "params" not in group:
            reader.fail(f"{where} must be a JSON object with a 'params' list")
        ids = group["params"]
        if not isinstance(ids, list) or not ids or any(type(i) is not int for i in ids):
            reader.fail(f"{where} 'params' must be a non-empty list of parameter indices")
        indices.extend(ids)
    if indices != list(range(len(params))):
        reader.fail(f"the optimizer's param_groups hold the parameters {_short(indices)}, "
                    f"the model has {len(params)} (in order)")
    return groups


#: a checked optimizer state entry: step, the states saved as None, the (state, member)
#: pairs of its arrays, its scalar state
_Entry = tuple[int, list[str], list[tuple[str, str]], dict[str, float]]


def _check_optimizer_state(reader: _Reader, state: Any, cls: type[Optimizer], params: list[_Param]
                           ) -> tuple[dict[int, _Entry],
                                      dict[str, tuple[tuple[int, ...], np.dtype[Any]]]]:
    """The optimizer's state entries by parameter index, ``(step, none, [(name, member)],
    {scalar state: value})``,
    and the (shape, dtype) each state member must have."""
    if not isinstance(state, dict):
        reader.fail("the optimizer's state must be a JSON object")
    arrays: dict[str, tuple[tuple[int, ...], np.dtype[Any]]] = {}
    entries: dict[int, _Entry] = {}
    for key, entry in state.items():
        where = f"the optimizer's state[{key!r}]"
        if not _INDEX.fullmatch(key) or len(key) > 18 or int(key) >= len(params):
            reader.fail(f"{where}: not a parameter index in 0..{len(params) - 1}")
        if not isinstance(entry, dict):
            reader.fail(f"{where} must be a JSON object")
        scalar = cls.spec.scalar
        _keys(reader, entry, {"step", "none"} | ({scalar.name} if scalar else set()), where)
        step, none = entry["step"], entry["none"]
        scalars: dict[str, float] = {}
        if scalar is not None:
            value = entry[scalar.name]
            if type(value) not in (int, float) or not math.isfinite(value):
                reader.fail(f"{where} {scalar.name} must be a finite number, got {_short(value)}")
            scalars[scalar.name] = float(value)
        if type(step) is not int or not 1 <= step <= _STEP_MAX:
            reader.fail(f"{where} step must be an int in 1..{_STEP_MAX}, got {_short(step)}")
        lazy = cls.spec.lazy_state
        if not isinstance(none, list) or any(n != lazy for n in none) or len(none) > 1:
            reader.fail(f"{where} none must list at most {lazy!r}, got {_short(none)}"
                        if lazy else f"{where} none must be empty, got {_short(none)}")
        i = int(key)
        _, shape, dtype, _ = params[i]
        names: list[tuple[str, str]] = []
        name: str
        for name in cls.state_names:
            member = f"opt_{i}_{name}"
            if member in reader.members and name not in none:
                arrays[member] = (shape, dtype)
                names.append((name, member))
        entries[i] = (step, list(none), names, scalars)
    return entries, arrays


def _check_state_per_group(reader: _Reader, groups: list[dict[str, Any]],
                           entries: dict[int, _Entry],
                           cls: type[Optimizer]) -> None:
    """An optimizer allocates each state array for all parameters of a group at once: a
    group whose stepped parameters have it only in part lost some of it."""
    first = 0
    for g, group in enumerate(groups):
        stepped = [i for i in range(first, first + len(group["params"])) if i in entries]
        first += len(group["params"])
        name: str
        for name in cls.state_names:
            has = [i for i in stepped
                   if name in entries[i][1] or any(n == name for n, _ in entries[i][2])]
            if has and len(has) != len(stepped):
                lacking = sorted(set(stepped) - set(has))
                reader.fail(f"the optimizer's state has {name!r} for parameters {has} of "
                            f"param_groups[{g}] but not for {lacking}")


def _build_model(reader: _Reader, layers: list[tuple[type[nn.Module], dict[str, Any], str]]
                 ) -> nn.Sequential:
    try:
        built: list[nn.Module] = []
        layer: nn.Module
        for cls, config, backend in layers:
            if cls is nn.Linear:
                # zeros: the saved weights replace them (no random draw, no He/Xavier switch)
                layer = cls(**{**config, "init": "zeros"}, backend=backend)
                layer.init = config["init"]
            else:
                layer = cls(**config, backend=backend)
            built.append(layer)
        return nn.Sequential(*built)
    except (TypeError, ValueError, OverflowError) as exc:
        reader.fail(f"the layers do not make a model: {exc}")


def _build_optimizer(reader: _Reader, opt: dict[str, Any], params: list[np.ndarray[Any, Any]]
                     ) -> Optimizer:
    cls = opt["cls"]
    if cls is optim.LBFGS:
        return _lbfgs_file.build(reader, opt, params)
    groups: list[dict[str, Any]] = []
    for g in opt["groups"]:
        hyper = {k: (tuple(v) if k == "betas" and isinstance(v, list) else v)
                 for k, v in g.items() if k != "params"}
        groups.append({**hyper, "params": [params[i] for i in g["params"]]})
    try:
        built = cls(groups, backend=opt["backend"])
    except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: a huge JSON int
        reader.fail(f"the optimizer cannot be rebuilt: {exc}")
    state: dict[int, dict[str, Any]] = {}
    for i, (step, none, names, scalars) in opt["entries"].items():
        entry = {"step": step, **dict.fromkeys(none), **scalars}
        for name, member in names:
            entry[name] = reader.array(member).astype(params[i].dtype, copy=False)
        state[i] = entry
    saved_groups = [{k: (tuple(v) if k == "betas" and isinstance(v, list) else v)
                     for k, v in g.items()} for g in opt["groups"]]
    try:
        built.load_state_dict({"state": state, "param_groups": saved_groups})
    except (TypeError, ValueError, OverflowError) as exc:
        reader.fail(f"the optimizer's state cannot be restored: {exc}")
    return built


def _keys(reader: _Reader, d: dict[str, Any], required: set[str], where: str,
          optional: set[str] | frozenset[str] = frozenset()) -> None:
    """Fail unless ``d`` (a dict with str keys) has the ``required`` keys and at most the
    ``optional`` ones besides."""
    for k in sorted(required):
        if k not in d:
            reader.fail(f"{where} has no {k!r}")
    extra = sorted(set(d) - set(required) - set(optional))
    if extra:
        reader.fail(f"{where} has an unexpected key {_short(extra[0])}")


def _same_float(got: np.dtype[Any], want: np.dtype[Any]) -> bool:
    """A plain float dtype of ``want``'s size (either byte order)."""
    return got.kind == "f" and got.names is None and got.subdtype is None \
        and got.itemsize == want.itemsize


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _jsonable(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def plain(v: Any) -> Any:
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        return v.item() if isinstance(v, np.generic) else v
    return [{k: plain(v) for k, v in g.items()} for g in groups]
