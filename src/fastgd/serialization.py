"""Saving models (and optimizer state) to .npz, atomically, and loading them back."""
import json
import os
import zipfile

import numpy as np

from . import nn, optim
from ._atomic import atomic_write, fspath

FORMAT = 1
_LAYERS = {cls.__name__: cls for cls in (nn.Linear, nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh,
                                         nn.Softmax, nn.Identity)}
_OPTIMIZERS = {cls.__name__: cls for cls in (optim.SGD, optim.Adagrad, optim.RMSprop,
                                             optim.Adam, optim.AdamW)}


def save(model, path, optimizer=None):
    """Write ``model`` (architecture and parameters) and optionally ``optimizer``'s
    hyper-parameters and state to ``path`` as .npz.

    The file is written by `fastgd._atomic.atomic_write`: ``path`` is replaced only by a
    complete file, so an interrupted save (an exception, Ctrl-C, ``kill -9``) leaves the
    earlier file intact and no temporary file behind; errors name ``path``.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be a fastgd.nn.Sequential, got {type(model).__name__}")
    if optimizer is not None and type(optimizer).__name__ not in _OPTIMIZERS:
        raise TypeError(f"optimizer must be a fastgd.optim optimizer, got {type(optimizer).__name__}")
    path = fspath(path)
    arrays = {f"param_{i}": p for i, p in enumerate(model.parameters())}
    meta = {"format": FORMAT,
            "layers": [{"type": type(layer).__name__, "config": layer._config(),
                        "backend": layer.backend} for layer in model.layers],
            "optimizer": None}
    if optimizer is not None:
        held = [p for g in optimizer.param_groups for p in g["params"]]
        params = model.parameters()
        if len(held) != len(params) or any(a is not b for a, b in zip(held, params)):
            raise ValueError("optimizer must be built on model.parameters() to be saved with it")
        sd = optimizer.state_dict()
        state_meta = {}
        for i, entry in sd["state"].items():
            state_meta[str(i)] = {"step": entry["step"],
                                  "none": [k for k, v in entry.items() if v is None]}
            for k, v in entry.items():
                if isinstance(v, np.ndarray):
                    arrays[f"opt_{i}_{k}"] = v
        meta["optimizer"] = {"type": type(optimizer).__name__, "backend": optimizer.backend,
                             "param_groups": _jsonable(sd["param_groups"]), "state": state_meta}
    arrays["__fastgd__"] = np.array(json.dumps(meta))
    with atomic_write(path) as fh:
        np.savez(fh, **arrays)


def load(path, *, optimizer=False):
    """Read a model saved by ``Sequential.save``.

    Returns the model, or ``(model, optimizer)`` when ``optimizer=True`` (the optimizer is
    rebuilt over the model's parameters with its saved hyper-parameters and state; ``None``
    if the file holds none).
    """
    path = os.fspath(path)
    try:
        f = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path} is not a fastgd model file: {exc}") from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is not a fastgd model file (a single .npy array)")
    try:
        with f:
            files = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path} is not a fastgd model file: {exc}") from None
    if "__fastgd__" not in files:
        raise ValueError(f"{path} is not a fastgd model file (no __fastgd__ entry)")
    meta = json.loads(str(files["__fastgd__"]))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} has format {meta.get('format')}, this fastgd reads {FORMAT}")
    layers = []
    for spec in meta["layers"]:
        cls = _LAYERS.get(spec["type"])
        if cls is None:
            raise ValueError(f"{path} holds an unknown layer type {spec['type']!r}")
        config = dict(spec["config"])
        if cls is nn.Linear and config.get("init") == "auto":
            config["init"] = "zeros"  # the saved weights replace the initial ones below
        layers.append(cls(**config, backend=spec["backend"]))
    model = nn.Sequential(*layers)
    for i, p in enumerate(model.parameters()):
        saved = files.get(f"param_{i}")
        if saved is None or saved.shape != p.shape:
            raise ValueError(f"{path}: parameter {i} is missing or has the wrong shape")
        p[...] = saved
    for layer, spec in zip(model.layers, meta["layers"]):
        if isinstance(layer, nn.Linear):
            layer.init = spec["config"].get("init", layer.init)
    if not optimizer:
        return model
    om = meta.get("optimizer")
    if om is None:
        return model, None
    groups = om["param_groups"]
    params = model.parameters()
    cls = _OPTIMIZERS[om["type"]]
    opt = cls([{**{k: v for k, v in g.items() if k != "params"},
                "params": [params[i] for i in g["params"]]} for g in groups],
              backend=om["backend"])
    state = {}
    for i, entry in om["state"].items():
        st = {"step": entry["step"]}
        for k in entry["none"]:
            st[k] = None
        for name in cls.state_names:
            key = f"opt_{i}_{name}"
            if key in files:
                st[name] = files[key]
        state[int(i)] = st
    opt.load_state_dict({"state": state, "param_groups": [
        {**{k: (tuple(v) if k == "betas" else v) for k, v in g.items()}} for g in groups]})
    return model, opt


def _jsonable(groups):
    def plain(v):
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        return v.item() if isinstance(v, np.generic) else v
    return [{k: plain(v) for k, v in g.items()} for g in groups]
