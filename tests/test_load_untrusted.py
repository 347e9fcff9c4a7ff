"""fastgd.load on untrusted files: a damaged or crafted file (even a valid zip with valid
CRCs) gives a ValueError naming the file and what is wrong, never another exception, and
cannot make the loader allocate much more than the file holds.

Besides the cases below, a structured fuzzer builds valid files and mutates them (metadata
edits, .npy header damage, member surgery, truncations, byte flips with and without valid
CRCs, compression-method and size fields). The test suite runs a few hundred mutants; run
this file as a script for a bigger run with timings and memory peaks::

    python tests/test_load_untrusted.py 5000 --seed 1
"""
import copy
import io
import json
import os
import struct
import sys
import tempfile
import time
import tracemalloc
import warnings
import zipfile
from collections import Counter

import numpy as np
import pytest

import fastgd
from fastgd import nn, optim

# ----------------------------------------------------------------------------- file surgery


def members_of(data):
    """The members of a zip (bytes) as a list of ``[name, bytes]``."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [[info.filename, zf.read(info)] for info in zf.infolist()]


def zip_bytes(members, compression=zipfile.ZIP_STORED, deflate=()):
    """A valid zip (CRCs computed) of ``[name, bytes]`` members, duplicates allowed; the
    members named in ``deflate`` are deflated whatever ``compression`` is."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name"
        with zipfile.ZipFile(buf, "w", compression) as zf:
            for name, data in members:
                zf.writestr(name, data, zipfile.ZIP_DEFLATED if name in deflate else None)
    return buf.getvalue()


def npy(array, version=None, allow_pickle=False):
    buf = io.BytesIO()
    if version is None:
        np.save(buf, array, allow_pickle=allow_pickle)
    else:
        np.lib.format.write_array(buf, np.asarray(array), version=version,
                                  allow_pickle=allow_pickle)
    return buf.getvalue()


def get(members, name):
    return next(data for n, data in members if n == name)


def put(members, name, data):
    out = [[n, d] for n, d in members if n != name]
    return out + [[name, data]]


def meta_of(members):
    return json.loads(str(np.load(io.BytesIO(get(members, "__fastgd__.npy")))))


def with_meta(members, meta):
    text = meta if isinstance(meta, str) else json.dumps(meta)
    return put(members, "__fastgd__.npy", npy(np.array(text)))


def central_entries(data):
    """Offsets of the central-directory entries of a zip (bytes), in order."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        start = zf.start_dir
        count = len(zf.infolist())
    offsets, pos = [], start
    for _ in range(count):
        assert data[pos:pos + 4] == b"PK\x01\x02"
        n, e, c = struct.unpack("<HHH", data[pos + 28:pos + 34])
        offsets.append(pos)
        pos += 46 + n + e + c
    return offsets


def patch(data, offset, fmt, value):
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


# ----------------------------------------------------------------------------- valid files

def saved_bytes(model, opt=None):
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "m.npz")
    model.save(path, optimizer=opt)
    with open(path, "rb") as fh:
        data = fh.read()
    os.unlink(path)
    os.rmdir(folder)
    return data


def random_model(rng):
    dtype = [np.float32, np.float64][rng.integers(2)]
    backend = ["native", "reference"][rng.integers(2)]
    kind = rng.integers(6)
    if kind == 0:
        return nn.Sequential(nn.ReLU(backend=backend), nn.Tanh(backend=backend))
    if kind == 1:
        return nn.Sequential(
            nn.Linear(3, 4, bias=False, dtype=dtype, seed=1, backend=backend),
            nn.LeakyReLU(float(rng.uniform(-0.5, 0.5)), backend=backend),
            nn.Linear(4, 2, dtype=dtype, init="he_normal", seed=2, backend=backend),
            nn.Softmax(backend=backend))
    sizes = [int(rng.integers(1, 6)) for _ in range(int(rng.integers(2, 5)))]
    act = ["relu", "tanh", "sigmoid", "leaky_relu"][rng.integers(4)]
    return nn.MLP(sizes, act, dtype=dtype, seed=int(rng.integers(100)), backend=backend)


OPTIMIZERS = [("SGD", dict(lr=0.05)), ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
              ("Adam", dict(lr=0.01, amsgrad=True)), ("AdamW", dict(lr=0.01)),
              ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5)),
              ("Adagrad", dict(lr=0.05, lr_decay=0.01))]


def random_base(seed, lbfgs=False):
    """A valid model file (bytes), with or without an optimizer (and state); with
    ``lbfgs``, an LBFGS optimizer whenever the model has parameters."""
    rng = np.random.default_rng(seed)
    model = random_model(rng)
    params = model.parameters()
    if not params or (rng.random() < 0.3 and not lbfgs):
        return saved_bytes(model)
    if lbfgs:
        return saved_bytes(model, lbfgs_trained(model, rng))
    name, kw = OPTIMIZERS[rng.integers(len(OPTIMIZERS))]
    cls = getattr(optim, name)
    if len(params) > 1 and rng.random() < 0.4:
        opt = cls([{"params": params[:1]}, {"params": params[1:], "lr": 0.001}], **kw)
    else:
        opt = cls(params, **kw)
    for _ in range(int(rng.integers(3))):
        opt.step([rng.standard_normal(p.shape).astype(p.dtype) for p in params])
    return saved_bytes(model, opt)


def lbfgs_trained(model, rng, history_size=None, steps=None, **kw):
    """An LBFGS optimizer over ``model`` after a few steps on a random quadratic."""
    params = model.parameters()
    history_size = int(rng.integers(1, 4)) if history_size is None else history_size
    kw.setdefault("max_iter", int(rng.integers(1, 5)))
    kw.setdefault("line_search_fn", [None, "strong_wolfe"][rng.integers(2)])
    opt = optim.LBFGS(params, history_size=history_size, **kw)
    targets = [rng.standard_normal(p.shape).astype(p.dtype) for p in params]

    def closure():
        return (sum(float(((p - t) ** 2).sum()) for p, t in zip(params, targets)),
                [2 * (p - t) for p, t in zip(params, targets)])

    for _ in range(int(rng.integers(4)) if steps is None else steps):
        opt.step(closure)
    return opt


# ----------------------------------------------------------------------------- mutations

ODD_VALUES = [None, True, False, 0, -1, 1, 2, 3, 2 ** 31, 2 ** 63, 2 ** 64, 10 ** 30, 10 ** 400,
              -10 ** 400, 1.5,
              -0.0, float("nan"), float("inf"), "", "x", "float16", "float64", "auto", "zeros",
              "native", "reference", "Linear", "SGD", "momentum_buffer", [], [0], [1, 2],
              ["momentum_buffer"], {}, {"a": 1}, {"step": 1, "none": []}, [[[[]]]]]


def json_paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from json_paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from json_paths(v, path + (i,))


def at(node, path):
    for k in path:
        node = node[k]
    return node


def choose(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def mutate_json(rng, meta):
    """One structured edit of the metadata: ``(label, new meta)``."""
    meta = copy.deepcopy(meta)
    paths = list(json_paths(meta))[1:]
    op = int(rng.integers(10))
    if op == 0:
        path = choose(rng, paths)
        parent = at(meta, path[:-1])
        del parent[path[-1]]
        return f"delete {path}", meta
    if op in (1, 2):
        path = choose(rng, paths)
        value = choose(rng, ODD_VALUES)
        at(meta, path[:-1])[path[-1]] = copy.deepcopy(value)
        return f"set {path} = {value!r}", meta
    if op == 3:
        dicts = [p for p in [()] + paths if isinstance(at(meta, p), dict)]
        path = choose(rng, dicts)
        key = choose(rng, ["extra", "seed", "lr", "type", "momentum", "step", "none",
                           "negative_slope", "bias", "params", "0", "99"])
        at(meta, path)[key] = copy.deepcopy(choose(rng, ODD_VALUES))
        return f"add {key!r} to {path}", meta
    if op == 4:  # huge, self-consistent widths: must fail before anything is allocated
        width = int(10 ** rng.uniform(3, 13))
        for spec in meta["layers"]:
            if spec["type"] == "Linear":
                spec["config"]["in_features"] = spec["config"]["out_features"] = width
        return f"widths {width}", meta
    if op == 5:
        path = choose(rng, [("layers", j, "type") for j in range(len(meta["layers"]))])
        value = choose(rng, ["GELU", "", "Sequential", "Module", "__class__", "Linear", "ReLU",
                             "LeakyReLU", "Softmax", "linear"])
        at(meta, path[:-1])[path[-1]] = value
        return f"set {path} = {value!r}", meta
    if op == 6:
        if meta.get("optimizer") is None:
            meta["optimizer"] = {"type": "SGD", "backend": "native",
                                 "param_groups": [{"lr": 0.1, "params": [0]}], "state": {}}
            return "add an optimizer entry", meta
        value = choose(rng, ["Adam", "AdamW", "SGD", "RMSprop", "Adagrad", "LBFGS", "", "adam",
                             "Optimizer", None, 3])
        meta["optimizer"]["type"] = value
        return f"optimizer type {value!r}", meta
    if op == 7 and meta.get("optimizer"):
        state = meta["optimizer"]["state"]
        key = choose(rng, ["01", "-1", "99", "x", " 1", "0", "1", "1" * 30])
        state[key] = copy.deepcopy(choose(rng, [{"step": 1, "none": []},
                                                {"step": 2 ** 64, "none": []},
                                                {"step": 0, "none": []},
                                                {"step": 1, "none": ["exp_avg"]},
                                                {"step": 1, "none": ["momentum_buffer"] * 2},
                                                {"step": True, "none": []}, [], None]))
        return f"state[{key!r}] edited", meta
    if op == 8 and meta.get("optimizer"):
        groups = meta["optimizer"]["param_groups"]
        g = choose(rng, groups)
        edit = int(rng.integers(4))
        if edit == 0:
            g["params"] = g["params"][::-1] + [int(rng.integers(-2, 9))]
        elif edit == 1:
            g["params"] = []
        elif edit == 2:
            groups.append(copy.deepcopy(g))
        else:
            key = choose(rng, [k for k in g if k != "params"] or ["lr"])
            g[key] = copy.deepcopy(choose(rng, ODD_VALUES))
        return f"param_groups edit {edit}", meta
    meta["format"] = choose(rng, [0, 2, "1", 1.0, True, None])
    return f"format {meta['format']!r}", meta


def mutate_header(rng, data):
    """Damage one .npy member's header (bytes)."""
    op = int(rng.integers(9))
    hlen = struct.unpack("<H", data[8:10])[0] if data[6:8] == b"\x01\x00" else 0
    header = data[10:10 + hlen]
    if op == 0:
        i = int(rng.integers(8))
        out = bytearray(data)
        out[i] ^= int(rng.integers(1, 256))
        return f"magic byte {i}", bytes(out)
    if op == 1:
        version = choose(rng, [(0, 0), (1, 1), (3, 0), (2, 0), (255, 255)])
        return f"version {version}", data[:6] + bytes(version) + data[8:]
    if op == 2:
        n = choose(rng, [0, 1, hlen - 1, hlen + 1, 0xFFFF, 10001])
        return f"header length {n}", data[:8] + struct.pack("<H", n & 0xFFFF) + data[10:]
    if op == 3:  # unterminated: no closing brace, no newline
        bad = header.replace(b"}", b" ").replace(b"\n", b" ")
        return "unterminated header", data[:10] + bad + data[10 + hlen:]
    if op == 4:
        cut = int(rng.integers(1, max(hlen, 2)))
        return f"header cut at {cut}", data[:10 + cut]
    text = header.decode("latin1")
    if op == 5:
        shape = choose(rng, ["(10**12,)", "(-1,)", "()", "(0,)", "(2, 3, 4)", "(1e3,)",
                             "(4294967296, 4294967296)", "[3]", "None"])
        start, end = text.index("'shape': ") + 9, text.index(")", text.index("'shape': ")) + 1
        text = text[:start] + shape + text[end:]
    elif op == 6:
        descr = choose(rng, ["'|O'", "'<f2'", "'V8'", "'<U1'", "'>f8'", "'>f4'", "'<i8'",
                             "[('a', '<f8')]", "('<f8', (2,))", "'<c16'", "'xyz'"])
        start = text.index("'descr': ") + 9
        end = text.index(",", start)
        text = text[:start] + descr + text[end:]
    elif op == 7:
        text = text.replace("False", "True") if rng.random() < 0.5 else \
            text.replace("'fortran_order': False", "'fortran_order': 0")
    else:
        i = int(rng.integers(len(text)))
        text = text[:i] + choose(rng, ["(", ")", "'", "{", "\\", "\x00", "#", ",,"]) + text[i:]
    new = text.encode("latin1")
    return f"header text op {op}", data[:8] + struct.pack("<H", len(new)) + new + data[10 + hlen:]


def mutant(rng, base):
    """One mutation of the valid file ``base`` (bytes): ``(label, bytes)``."""
    members = members_of(base)
    meta = meta_of(members)
    op = int(rng.integers(16))
    if op <= 3:
        label, new = mutate_json(rng, meta)
        return "json: " + label, zip_bytes(with_meta(members, new))
    if op == 4:
        text = json.dumps(meta)
        edit = int(rng.integers(6))
        text = [text[:int(rng.integers(len(text)))], text.replace('"', "'", 1), "", "null",
                "[" * 100000 + "]" * 100000, "{\"format\": 1}"][edit]
        return f"metadata text {edit}", zip_bytes(with_meta(members, text))
    if op == 5:
        value = choose(rng, [np.array(b"{}"), np.array(1), np.array([json.dumps(meta)]),
                             np.array(json.dumps(meta).encode()), np.zeros((2, 2)),
                             np.array(3.5)])
        return f"metadata array {value.dtype}", zip_bytes(
            put(members, "__fastgd__.npy", npy(value)))
    names = [n for n, _ in members]
    name = choose(rng, names)
    if op == 6:
        return f"drop {name}", zip_bytes([m for m in members if m[0] != name])
    if op == 7:
        new = choose(rng, ["param_99.npy", "foo.npy", "foo.txt", "../x.npy", "param_01.npy",
                           "opt_0_bogus.npy", "opt_9_exp_avg.npy", "__fastgd__", name.upper()])
        return f"rename {name} -> {new}", zip_bytes(
            [[new if n == name else n, d] for n, d in members])
    if op == 8:
        return f"duplicate {name}", zip_bytes(members + [[name, get(members, name)]])
    if op == 9:
        value = choose(rng, [np.zeros(3), np.zeros((3, 4), np.float16), np.zeros((2,), ">f8"),
                             np.asfortranarray(np.ones((3, 4))), np.array(1.0),
                             np.zeros((4, 3), np.int64), np.zeros(2, complex)])
        target = choose(rng, [n for n in names if n != "__fastgd__.npy"] or names)
        return f"replace {target} by {value.dtype}{value.shape}", zip_bytes(
            put(members, target, npy(value)))
    if op == 10:
        label, data = mutate_header(rng, get(members, name))
        return f"{name}: {label}", zip_bytes(put(members, name, data))
    if op == 11:
        data = get(members, name)
        if rng.random() < 0.5:
            data = data[:int(rng.integers(len(data)))]
        else:
            data = data + bytes(int(rng.integers(1, 16)))
        return f"resize {name}", zip_bytes(put(members, name, data))
    if op == 12:  # byte flips, CRC recomputed: the zip stays valid
        data = bytearray(get(members, name))
        for _ in range(int(rng.integers(1, 4))):
            data[int(rng.integers(len(data)))] ^= int(rng.integers(1, 256))
        return f"flip bytes of {name} (valid CRC)", zip_bytes(put(members, name, bytes(data)))
    compressed = rng.random() < 0.3
    raw = zip_bytes(members, zipfile.ZIP_DEFLATED) if compressed else base
    entries = central_entries(raw)
    if op == 13:
        which = int(rng.integers(len(entries)))
        method = choose(rng, [0, 1, 6, 8, 9, 12, 14, 93, 98, 99, 255])
        out = patch(raw, entries[which] + 10, "<H", method)
        if rng.random() < 0.5:
            local = struct.unpack("<I", out[entries[which] + 42:entries[which] + 46])[0]
            out = patch(out, local + 8, "<H", method)
        return f"compression method {method} (deflated={compressed})", out
    if op == 14:
        which = int(rng.integers(len(entries)))
        field, fmt, value = choose(rng, [
            ("uncompressed size", "<I", 0xFFFFFFF0), ("uncompressed size", "<I", 10 ** 8),
            ("compressed size", "<I", 10 ** 8), ("compressed size", "<I", 1),
            ("header offset", "<I", 0), ("header offset", "<I", 10 ** 7)])
        offset = {"compressed size": 20, "uncompressed size": 24, "header offset": 42}[field]
        return f"{field} = {value} (deflated={compressed})", patch(
            raw, entries[which] + offset, fmt, value)
    if rng.random() < 0.5:
        return f"truncate (deflated={compressed})", raw[:int(rng.integers(len(raw)))]
    out = bytearray(raw)
    for _ in range(int(rng.integers(1, 6))):
        out[int(rng.integers(len(out)))] ^= int(rng.integers(1, 256))
    return f"flip raw bytes (deflated={compressed})", bytes(out)


# ----------------------------------------------------------------------------- checking loads

def check_loaded(path, model, opt):
    """What a successful load returns agrees with the file and works."""
    assert isinstance(model, nn.Sequential)
    with np.load(path, allow_pickle=False) as f:
        for i, p in enumerate(model.parameters()):
            np.testing.assert_array_equal(p, f[f"param_{i}"])
    x = np.ones((2, model.in_features or 3), model.dtype or np.float64)
    out = model.predict(x)
    assert out.shape == (2, model.out_features or x.shape[1])
    if opt is not None:
        params = model.parameters()
        held = [p for g in opt.param_groups for p in g["params"]]
        assert len(held) == len(params) and all(a is b for a, b in zip(held, params))
        if isinstance(opt, optim.LBFGS):
            opt.step(lambda: (1.0, [np.zeros_like(p) for p in params]))
        else:
            opt.step([np.zeros_like(p) for p in params])


def outcome(path, stats=None):
    """Load ``path`` both ways: "ok", "ValueError" (naming the file) or "other: ...".
    With ``stats`` (a list), append each load's (seconds, peak bytes allocated during it,
    0 unless tracemalloc is running)."""
    results = []
    tracing = tracemalloc.is_tracing()
    for with_optimizer in (False, True):
        if stats is not None:
            if tracing:
                tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            t0 = time.perf_counter()
        try:
            try:
                got = fastgd.load(path, optimizer=with_optimizer)
            finally:
                if stats is not None:
                    stats.append((time.perf_counter() - t0,
                                  tracemalloc.get_traced_memory()[1] - before))
        except ValueError as exc:
            if path not in str(exc):
                return f"other: ValueError without the file name: {exc}"
            results.append("ValueError")
            continue
        except Exception as exc:  # noqa: BLE001 - the point is to see anything else
            return f"other: {type(exc).__name__}: {exc}"
        try:
            check_loaded(path, *(got if with_optimizer else (got, None)))
        except Exception as exc:  # noqa: BLE001
            return f"other: inconsistent load: {type(exc).__name__}: {exc}"
        results.append("ok")
    return results[0] if results[1] == results[0] else f"{results[0]}/{results[1]}"


def fuzz(n, seed, folder, measure=False, bases=12, trace=True, lbfgs=False):
    """Run ``n`` mutants of ``bases`` valid files. Returns the Counter of outcomes, the
    failures ``[(k, label, outcome)]`` and, with ``measure``, the slowest load and (with
    ``trace``, under tracemalloc) the largest allocation peak of one load, as
    ``(value, label, file size)``."""
    rng = np.random.default_rng(seed)
    valid = [random_base(seed * 1000 + b, lbfgs) for b in range(bases)]
    counts, failures = Counter(), []
    slowest, largest = (0.0, "", 0), (0, "", 0)
    path = os.path.join(folder, "mutant.npz")
    if measure and trace:
        tracemalloc.start()
    for k in range(n):
        label, data = mutant(rng, valid[k % len(valid)])
        if os.path.exists(path):
            os.unlink(path)  # rewriting in place makes ext4 flush it to disk each time
        with open(path, "wb") as fh:
            fh.write(data)
        stats = [] if measure else None
        result = outcome(path, stats)
        for seconds, peak in stats or ():
            slowest = max(slowest, (seconds, label, len(data)))
            largest = max(largest, (peak, label, len(data)))
        counts[result.split(":")[0]] += 1
        if result.startswith("other"):
            failures.append((k, label, result))
    if measure and trace:
        tracemalloc.stop()
    return counts, failures, slowest, largest


def test_fuzz_every_mutant_loads_or_names_the_file(tmp_path):
    counts, failures, _, _ = fuzz(800, seed=2024, folder=str(tmp_path))
    assert failures == [], failures[:10]
    assert counts["ok"] > 20 and counts["ValueError"] > 400, counts


def test_fuzz_lbfgs_files(tmp_path):
    counts, failures, _, _ = fuzz(300, seed=12, folder=str(tmp_path), lbfgs=True)
    assert failures == [], failures[:10]
    assert counts["ok"] > 5 and counts["ValueError"] > 150, counts


# ----------------------------------------------------------------------------- cases

@pytest.fixture(scope="module")
def base():
    """A valid file with an SGD optimizer and state, as members."""
    model = nn.MLP([3, 4, 2], dtype=np.float64, seed=0)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt.step([np.ones_like(p) for p in model.parameters()])
    return members_of(saved_bytes(model, opt))


def write(tmp_path, data):
    path = tmp_path / "crafted.npz"
    path.write_bytes(data)
    return str(path)


def edit_meta(members, fn):
    meta = meta_of(members)
    fn(meta)
    return zip_bytes(with_meta(members, meta))


def assert_refused(path, fragment, optimizer=(False, True)):
    for with_optimizer in optimizer:
        with pytest.raises(ValueError) as info:
            fastgd.load(path, optimizer=with_optimizer)
        assert path in str(info.value), info.value
        assert fragment in str(info.value), info.value


def header_replace(data, old, new):
    """A version 1.0 .npy member with ``old`` replaced by ``new`` in its header text."""
    hlen = struct.unpack("<H", data[8:10])[0]
    header = data[10:10 + hlen].decode("latin1")
    assert old in header
    header = header.replace(old, new).encode("latin1")
    return data[:8] + struct.pack("<H", len(header)) + header + data[10 + hlen:]


def unterminated(data):
    hlen = struct.unpack("<H", data[8:10])[0]
    return data[:10] + data[10:10 + hlen].replace(b"}", b" ").replace(b"\n", b" ") \
        + data[10 + hlen:]


CASES = {
    # the examples of the issue
    "metadata not JSON": (lambda m: zip_bytes(with_meta(m, "{'format': 1")), "not valid JSON"),
    "format only": (lambda m: zip_bytes(with_meta(m, {"format": 1})), "has no 'layers'"),
    "unknown optimizer": (lambda m: edit_meta(m, lambda d: d["optimizer"].update(type="Newton")),
                          "unknown optimizer type 'Newton'"),
    "extra layer config key": (lambda m: edit_meta(
        m, lambda d: d["layers"][0]["config"].update(seed=3)), "unexpected key 'seed'"),
    "npy magic damaged": (lambda m: zip_bytes(put(m, "param_0.npy",
                                                  b"\x93NUMPX" + get(m, "param_0.npy")[6:])),
                          "param_0.npy' is not a valid .npy array"),
    "npy header unterminated": (lambda m: zip_bytes(
        put(m, "param_1.npy", unterminated(get(m, "param_1.npy")))), "param_1.npy"),
    "metadata header unterminated": (lambda m: zip_bytes(
        put(m, "__fastgd__.npy", unterminated(get(m, "__fastgd__.npy")))), "__fastgd__.npy"),
    # more of the same kind
    "layer type not a string": (lambda m: edit_meta(m, lambda d: d["layers"][1].update(type=[])),
                                "unknown layer type []"),
    "layers not a list": (lambda m: edit_meta(m, lambda d: d.update(layers={"a": 1})),
                          "'layers' must be a non-empty list"),
    "width a float": (lambda m: edit_meta(
        m, lambda d: d["layers"][0]["config"].update(in_features=3.0)), "in_features must be"),
    "width a bool": (lambda m: edit_meta(
        m, lambda d: d["layers"][0]["config"].update(in_features=True)), "in_features must be"),
    "layer widths disagree": (lambda m: edit_meta(
        m, lambda d: d["layers"][2]["config"].update(in_features=5)),
        "takes 5 features but the layer before gives 4"),
    "slope not finite": (lambda m: edit_meta(m, lambda d: d["layers"].__setitem__(
        1, {"type": "LeakyReLU", "config": {"negative_slope": float("nan")},
            "backend": "native"})), "negative_slope must be a finite number"),
    "slope of 400 digits": (lambda m: edit_meta(m, lambda d: d["layers"].__setitem__(
        1, {"type": "LeakyReLU", "config": {"negative_slope": 10 ** 400},
            "backend": "native"})), "negative_slope must be a finite number"),
    "dtype float16": (lambda m: edit_meta(
        m, lambda d: d["layers"][0]["config"].update(dtype="float16")), "dtype must be one of"),
    "parameter of another dtype": (lambda m: zip_bytes(
        put(m, "param_0.npy", npy(np.zeros((3, 4), np.float32)))),
        "the file's param_0 is (3, 4) float32"),
    "one parameter too many": (lambda m: zip_bytes(put(m, "param_4.npy", npy(np.zeros(2)))),
                               "more parameters than its layers have"),
    "unexpected member": (lambda m: zip_bytes(m + [["notes.txt", b"hi"]]),
                          "unexpected member 'notes.txt'"),
    "member twice": (lambda m: zip_bytes(m + [["param_0.npy", get(m, "param_0.npy")]]),
                     "holds the member 'param_0.npy' twice"),
    "header shape of 10**12": (lambda m: zip_bytes(put(m, "param_1.npy", header_replace(
        get(m, "param_1.npy"), "(4,)", "(1000000000000,)"))),
        "param_1.npy' declares (1000000000000,) float64 (8000000000000 bytes of data)"),
    "header shape negative": (lambda m: zip_bytes(put(m, "param_1.npy", header_replace(
        get(m, "param_1.npy"), "(4,)", "(-4,)"))), "negative dimension"),
    "metadata not an object": (lambda m: zip_bytes(with_meta(m, "[1, 2]")),
                               "not a JSON object"),
    "metadata an int array": (lambda m: zip_bytes(put(m, "__fastgd__.npy", npy(np.arange(3)))),
                              "entry is not a string"),
    "metadata nested too deep": (lambda m: zip_bytes(with_meta(m, "[" * 100000 + "]" * 100000)),
                                 "not valid JSON"),
    "format true": (lambda m: edit_meta(m, lambda d: d.update(format=True)),
                    "has format True, this fastgd reads 1"),
    "extra top-level key": (lambda m: edit_meta(m, lambda d: d.update(comment="hi")),
                            "unexpected key 'comment'"),
    # the optimizer entry
    "optimizer entry missing": (lambda m: edit_meta(m, lambda d: d.pop("optimizer")),
                                "has no 'optimizer'"),
    "optimizer entry a string": (lambda m: edit_meta(m, lambda d: d.update(optimizer="SGD")),
                                 "optimizer entry must be a JSON object or null"),
    "optimizer without param_groups": (lambda m: edit_meta(
        m, lambda d: d["optimizer"].pop("param_groups")), "has no 'param_groups'"),
    "optimizer over other parameters": (lambda m: edit_meta(
        m, lambda d: d["optimizer"]["param_groups"][0].update(params=[0, 1, 2])),
        "hold the parameters [0, 1, 2], the model has 4"),
    "state step overflows int64": (lambda m: edit_meta(
        m, lambda d: d["optimizer"]["state"]["0"].update(step=2 ** 64)), "step must be an int"),
    "state key not canonical": (lambda m: edit_meta(
        m, lambda d: d["optimizer"]["state"].update({"01": {"step": 1, "none": []}})),
        "not a parameter index"),
    "state key with 5000 digits": (lambda m: edit_meta(
        m, lambda d: d["optimizer"]["state"].update({"1" * 5000: {"step": 1, "none": []}})),
        "not a parameter index"),
    "state none of a non-lazy buffer": (lambda m: edit_meta(
        m, lambda d: d["optimizer"]["state"]["0"].update(none=["exp_avg"])),
        "none must list at most 'momentum_buffer'"),
    "state array undeclared": (lambda m: zip_bytes(put(m, "opt_0_square_avg.npy",
                                                       npy(np.zeros((3, 4))))),
                               "optimizer state its metadata does not declare"),
    "state array lost for one parameter": (lambda m: zip_bytes(
        [x for x in m if x[0] != "opt_2_momentum_buffer.npy"]),
        "has 'momentum_buffer' for parameters [0, 1, 3] of param_groups[0] but not for [2]"),
    "state array misshapen": (lambda m: zip_bytes(put(m, "opt_1_momentum_buffer.npy",
                                                      npy(np.zeros(3)))),
                              "optimizer state opt_1_momentum_buffer has (3,) float64"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_crafted_file_is_refused_naming_the_file(case, base, tmp_path):
    make, fragment = CASES[case]
    assert_refused(write(tmp_path, make(base)), fragment)


@pytest.mark.parametrize("lr", ["0.1", None, float("nan"), [0.1], 10 ** 400],
                         ids=["str", "None", "nan", "list", "10**400"])
def test_bad_hyper_parameters_fail_when_the_optimizer_is_asked_for(lr, base, tmp_path):
    path = write(tmp_path, edit_meta(base, lambda d: d["optimizer"]["param_groups"][0]
                                     .update(lr=lr)))
    assert isinstance(fastgd.load(path), nn.Sequential)   # the model alone is fine
    assert_refused(path, "the optimizer cannot be rebuilt", optimizer=[True])


def test_metadata_with_an_invalid_code_point(base, tmp_path):
    """numpy raises SystemError turning such an array into a str."""
    data = bytearray(get(base, "__fastgd__.npy"))
    data[-4:] = (0x110000).to_bytes(4, "little")
    assert_refused(write(tmp_path, zip_bytes(put(base, "__fastgd__.npy", bytes(data)))),
                   "not valid JSON")


@pytest.mark.parametrize("method", [1, 12, 14, 99])
def test_compression_methods_other_than_stored_and_deflated(method, base, tmp_path):
    data = zip_bytes(base)
    entry = central_entries(data)[0]
    data = patch(data, entry + 10, "<H", method)
    assert_refused(write(tmp_path, data), f"uses compression method {method}")


def test_a_stored_member_claiming_another_size(base, tmp_path):
    data = zip_bytes(base)
    entry = central_entries(data)[1]
    assert_refused(write(tmp_path, patch(data, entry + 24, "<I", 10 ** 9)),
                   "is stored (not compressed) but declares 1000000000 bytes")


def test_a_zip_bomb_claim_is_refused_before_decompressing(base, tmp_path):
    data = zip_bytes(base, zipfile.ZIP_DEFLATED)
    entry = central_entries(data)[0]
    path = write(tmp_path, patch(data, entry + 24, "<I", 0xFFFFFFF0))
    tracemalloc.start()
    assert_refused(path, "more than deflate can expand")
    assert tracemalloc.get_traced_memory()[1] < 2 << 20
    tracemalloc.stop()


def _repetitive_metadata(members):
    layer = {"type": "ReLU", "config": {}, "backend": "native"}
    return with_meta(members, {"format": 1, "layers": [layer] * 200000, "optimizer": None})


@pytest.mark.parametrize("bomb", ["zero weights", "repetitive metadata"])
def test_real_zip_bombs_are_refused_before_decompressing(bomb, tmp_path):
    """Valid deflate streams that expand a thousandfold: 32 MB of zero weights, or 200,000
    layers of metadata, in files of a few dozen kilobytes."""
    if bomb == "zero weights":
        big = nn.Sequential(nn.Linear(2000, 2000, dtype=np.float64, init="zeros"))
        data = zip_bytes(members_of(saved_bytes(big)), zipfile.ZIP_DEFLATED)
    else:
        data = zip_bytes(_repetitive_metadata(members_of(saved_bytes(nn.Sequential(nn.ReLU())))),
                         zipfile.ZIP_DEFLATED)
    path = write(tmp_path, data)
    assert os.path.getsize(path) < 200_000
    tracemalloc.start()
    assert_refused(path, f"more than {fastgd.nn.serialization.MAX_EXPANSION} times the file's")
    assert tracemalloc.get_traced_memory()[1] < 2 << 20
    tracemalloc.stop()


def test_deflated_metadata_is_bounded_by_the_file_size(tmp_path):
    """Within the overall ratio (the parameters are incompressible), the metadata may still
    not hold more than 4 times the file: its JSON would become far more in objects."""
    model = nn.Sequential(nn.Linear(500, 500, dtype=np.float64, seed=0))
    members = members_of(saved_bytes(model))
    meta = meta_of(members)
    meta["layers"] += [{"type": "ReLU", "config": {}, "backend": "native"}] * 60000
    data = zip_bytes(with_meta(members, meta), deflate={"__fastgd__.npy"})
    path = write(tmp_path, data)
    size = os.path.getsize(path)
    metadata_bytes = 4 * len(json.dumps(meta))
    assert metadata_bytes > 4 * size and metadata_bytes + size < 100 * size
    assert_refused(path, f"more than the {4 * size} read from a file of {size}")


def test_overlapping_members_are_refused(base, tmp_path):
    """Many directory entries over the same bytes (the overlapping zip bomb)."""
    data = zip_bytes(base)
    entries = central_entries(data)
    first = struct.unpack("<I", data[entries[0] + 42:entries[0] + 46])[0]
    path = write(tmp_path, patch(data, entries[1] + 42, "<I", first))
    assert_refused(path, "'param_1.npy' and 'param_0.npy' overlap")


@pytest.mark.parametrize("width", [6000, 10 ** 6])
def test_huge_declared_widths_fail_before_allocating(width, tmp_path):
    """A 4 KB file declaring 6000-wide layers used to build and initialise them (seconds,
    gigabytes; a MemoryError for a million) before comparing shapes."""
    small = members_of(saved_bytes(nn.MLP([3, 4, 4, 2], dtype=np.float64, seed=0)))

    def widen(meta):
        for spec in meta["layers"]:
            if spec["type"] == "Linear":
                c = spec["config"]
                c["in_features"] = width if c["in_features"] == 4 else c["in_features"]
                c["out_features"] = width if c["out_features"] == 4 else c["out_features"]

    path = write(tmp_path, edit_meta(small, widen))
    assert os.path.getsize(path) < 5000
    tracemalloc.start()
    t0 = time.perf_counter()
    assert_refused(path, f"layers[0].W needs (3, {width}) float64, the file's param_0 is (3, 4)")
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert seconds < 0.5 and peak < 2 << 20, (seconds, peak)


class _Marker:
    """Unpickling this creates a file: proof that a pickle ran."""

    path = None

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("member", ["param_0.npy", "__fastgd__.npy", "opt_0_momentum_buffer.npy"])
def test_pickles_are_never_executed(member, base, tmp_path):
    marker = tmp_path / "pickle-ran"
    _Marker.path = str(marker)
    evil = np.empty((), dtype=object)
    evil[()] = _Marker()
    data = zip_bytes(put(base, member, npy(evil, allow_pickle=True)))
    assert b"pickle-ran" in data
    assert_refused(write(tmp_path, data), "holds Python objects (a pickle)")
    assert not marker.exists()


# ----------------------------------------------------------------------------- valid variants

def test_compressed_and_version_2_files_load(base, tmp_path):
    """Valid files fastgd does not write itself (np.savez_compressed, .npy version 2.0,
    big-endian and Fortran-ordered arrays) load with the same values."""
    path = write(tmp_path, zip_bytes(base))
    model, opt = fastgd.load(path, optimizer=True)
    want = [p.copy() for p in model.parameters()]
    variants = {
        "deflated": zip_bytes(base, zipfile.ZIP_DEFLATED),
        "version 2.0": zip_bytes([[n, npy(np.load(io.BytesIO(d)), version=(2, 0))]
                                  for n, d in base]),
        "big-endian, Fortran order": zip_bytes(
            put(put(base, "param_0.npy", npy(np.asfortranarray(want[0]).astype(">f8"))),
                "param_1.npy", npy(want[1].astype(">f8")))),
    }
    for name, data in variants.items():
        path = write(tmp_path, data)
        got, gopt = fastgd.load(path, optimizer=True)
        for a, b in zip(got.parameters(), want):
            assert a.dtype == b.dtype and a.flags.c_contiguous, name
            np.testing.assert_array_equal(a, b, err_msg=name)
        np.testing.assert_array_equal(gopt.state[0]["momentum_buffer"],
                                      opt.state[0]["momentum_buffer"], err_msg=name)


def test_open_errors_stay_os_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        fastgd.load(tmp_path / "nope.npz")
    with pytest.raises(IsADirectoryError):
        fastgd.load(tmp_path)
    with pytest.raises(TypeError, match="path must be a str or os.PathLike, got int"):
        fastgd.load(3)
    with pytest.raises(TypeError, match="optimizer must be a bool, got str"):
        fastgd.load(tmp_path / "nope.npz", optimizer="yes")


# ----------------------------------------------------------------------------- the big run

def _main(argv):
    import argparse
    import resource

    parser = argparse.ArgumentParser(description="fuzz fastgd.load")
    parser.add_argument("mutants", type=int, nargs="?", default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-trace", action="store_true",
                        help="time the loads without tracemalloc (no memory peaks)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        counts, failures, slowest, largest = fuzz(args.mutants, args.seed, folder, measure=True,
                                                  trace=not args.no_trace)
        total = time.perf_counter() - t0
    print(f"{args.mutants} mutants (seed {args.seed}), each loaded with optimizer=False and "
          f"True, in {total:.1f} s (tracemalloc {'off' if args.no_trace else 'on'})")
    for k, v in sorted(counts.items()):
        print(f"  {k:>14}: {v}")
    print(f"  other (must be 0): {len(failures)}")
    for k, label, result in failures[:20]:
        print(f"    #{k} {label}: {result}")
    print(f"slowest load: {slowest[0] * 1000:.1f} ms ({slowest[1]}; {slowest[2]} bytes)")
    if not args.no_trace:
        print(f"largest allocation peak of a load: {largest[0] / 1024:.0f} KiB ({largest[1]}; "
              f"{largest[2]} bytes)")
    print(f"process max RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))


# ----------------------------------------------------------------------------- LBFGS

@pytest.fixture(scope="module")
def lbfgs_base():
    """A valid file with an LBFGS optimizer whose history (3 pairs of the model's 26
    parameter elements) is full, as members."""
    model = nn.MLP([3, 4, 2], dtype=np.float64, seed=0)
    opt = lbfgs_trained(model, np.random.default_rng(5), history_size=3, steps=6, max_iter=1,
                        lr=0.1, line_search_fn=None)
    assert len(opt.state[0]["old_dirs"]) == 3
    return members_of(saved_bytes(model, opt))


def lbfgs_state(fn):
    return lambda m: edit_meta(m, lambda d: fn(d["optimizer"]["state"]["0"]))


def lbfgs_member(name, array):
    return lambda m: zip_bytes(put(m, f"opt_0_{name}.npy", npy(array)))


def longer_history(m):
    meta = meta_of(m)
    meta["optimizer"]["state"]["0"]["history"] = 4
    out = with_meta(m, meta)
    for name in ("old_dirs", "old_stps"):
        rows = np.load(io.BytesIO(get(m, f"opt_0_{name}.npy")))
        out = put(out, f"opt_0_{name}.npy", npy(np.vstack([rows, rows[:1]])))
    rows = np.load(io.BytesIO(get(m, "opt_0_ro.npy")))
    return zip_bytes(put(out, "opt_0_ro.npy", npy(np.append(rows, 1.0))))


BOTH, ASKED = (False, True), (True,)
LBFGS_CASES = {
    "history longer than history_size": (longer_history, "more than history_size=3", ASKED),
    "history disagrees with old_dirs": (
        lbfgs_state(lambda e: e.update(history=2)),
        "opt_0_old_dirs (LBFGS's 'old_dirs') has (3, 26) float64, it "
        "needs (2, 26) float64", BOTH),
    "d of another length": (lbfgs_member("d", np.zeros(25)),
                            "opt_0_d (LBFGS's 'd') has (25,) float64, it needs (26,)", BOTH),
    "ro of float32": (lbfgs_member("ro", np.ones(3, np.float32)),
                      "opt_0_ro (LBFGS's 'ro') has (3,) float32", BOTH),
    "old_stps 3-D": (lbfgs_member("old_stps", np.zeros((3, 26, 1))),
                     "opt_0_old_stps (LBFGS's 'old_stps') has (3, 26, 1)", BOTH),
    "member missing": (lambda m: zip_bytes([x for x in m if x[0] != "opt_0_ro.npy"]),
                       "has a run but the file has no opt_0_ro", BOTH),
    "member undeclared": (lambda m: zip_bytes(put(m, "opt_0_al.npy", npy(np.zeros(3)))),
                          "optimizer state its metadata does not declare", BOTH),
    "n_iter without a run": (lbfgs_state(lambda e: [e.pop(k) for k in
                                                    ("history", "t", "H_diag", "prev_loss")]),
                             "has n_iter", BOTH),
    "part of a run": (lbfgs_state(lambda e: e.pop("t")), "has 'history' but no 't'", BOTH),
    "t of another type": (lbfgs_state(lambda e: e.update(t={"type": "complex", "value": 1.0})),
                          "t type must be 'int', 'float' or 'numpy'", BOTH),
    "t a bare number": (lbfgs_state(lambda e: e.update(t=0.5)), "t must be a JSON object",
                        BOTH),
    "t not finite": (lbfgs_state(lambda e: e.update(t={"type": "numpy", "value": float("nan")})),
                     "t value must be a finite float", BOTH),
    "t with an extra key": (lbfgs_state(lambda e: e["t"].update(dtype="float16")),
                            "unexpected key 'dtype'", BOTH),
    "H_diag a huge int": (lbfgs_state(lambda e: e.update(H_diag={"type": "int",
                                                                 "value": 2 ** 60})),
                          "H_diag value must be an int of at most 2**53", BOTH),
    "prev_loss a string": (lbfgs_state(lambda e: e.update(prev_loss="0.1")),
                           "prev_loss must be a finite number", BOTH),
    "func_evals negative": (lbfgs_state(lambda e: e.update(func_evals=-1)),
                            "func_evals must be an int", BOTH),
    "n_iter a bool": (lbfgs_state(lambda e: e.update(n_iter=True)), "n_iter must be an int",
                      BOTH),
    "history a float": (lbfgs_state(lambda e: e.update(history=3.0)),
                        "history must be an int", BOTH),
    "unknown state key": (lbfgs_state(lambda e: e.update(al=[])), "unexpected key 'al'", BOTH),
    "state of parameter 1": (lambda m: edit_meta(m, lambda d: d["optimizer"]["state"].update(
        {"1": {"func_evals": 1, "n_iter": 0}})), "unexpected key '1'", BOTH),
    "state a list": (lambda m: edit_meta(m, lambda d: d["optimizer"].update(state=[])),
                     "state must be a JSON object", BOTH),
    "two param groups": (lambda m: edit_meta(m, lambda d: d["optimizer"].update(param_groups=[
        {**d["optimizer"]["param_groups"][0], "params": [0, 1]},
        {**d["optimizer"]["param_groups"][0], "params": [2, 3]}])),
        "cannot be rebuilt: LBFGS doesn't support per-parameter options", ASKED),
    "unknown hyper-parameter": (lambda m: edit_meta(
        m, lambda d: d["optimizer"]["param_groups"][0].update(momentum=0.9)),
        "cannot be rebuilt", ASKED),
    "line search unknown": (lambda m: edit_meta(
        m, lambda d: d["optimizer"]["param_groups"][0].update(line_search_fn="armijo")),
        "line_search_fn", ASKED),
    "ro not finite": (lbfgs_member("ro", np.array([1.0, np.nan, 2.0])),
                      "opt_0_ro (LBFGS's 'ro') holds non-finite values", ASKED),
    "old_dirs pickled": (lambda m: zip_bytes(put(m, "opt_0_old_dirs.npy", npy(
        np.array([None] * 3, dtype=object), allow_pickle=True))), "holds Python objects", BOTH),
    "history of 10**12 pairs": (lambda m: zip_bytes(put(with_meta(m, {
        **meta_of(m), "optimizer": {**meta_of(m)["optimizer"], "state": {"0": {
            **meta_of(m)["optimizer"]["state"]["0"], "history": 10 ** 12}}}}),
        "opt_0_old_dirs.npy", header_replace(get(m, "opt_0_old_dirs.npy"), "(3, 26)",
                                             "(1000000000000, 26)"))),
        "opt_0_old_dirs.npy' declares (1000000000000, 26) float64", BOTH),
}


def test_lbfgs_base_loads(lbfgs_base, tmp_path):
    path = write(tmp_path, zip_bytes(lbfgs_base))
    model, opt = fastgd.load(path, optimizer=True)
    assert isinstance(opt, optim.LBFGS) and len(opt.state[0]["old_dirs"]) == 3
    check_loaded(path, model, opt)


@pytest.mark.parametrize("case", sorted(LBFGS_CASES))
def test_a_crafted_lbfgs_entry_is_refused_naming_the_file(case, lbfgs_base, tmp_path):
    make, fragment, modes = LBFGS_CASES[case]
    path = write(tmp_path, make(lbfgs_base))
    assert_refused(path, fragment, optimizer=modes)
    if modes == ASKED:      # the model alone is fine
        assert isinstance(fastgd.load(path), nn.Sequential)
