"""Embedding the kernels in other extensions (docs/embedding.rst): the headers of
fastgd.get_include(), fastgd/kernels.pxd and the capsules of fastgd.kernels.

The example project examples/embed (one Cython and one C extension) is built against the
installed fastgd, offline and without build isolation, and its Adam updates must equal
fastgd.functional's bit for bit. The C header's ABI check is exercised by modules compiled
to claim other versions. The test of the wheel (FASTGD_TEST_WHEEL=1, set by .ci/run) builds
the sdist and the wheel, installs the wheel into a fresh virtual environment and builds and
runs the example there."""
import fcntl
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import threading
import zipfile

import numpy as np
import pytest

import fastgd
import fastgd.kernels
from fastgd.functional import adam_, adamw_

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "embed"
DTYPES = [np.float32, np.float64]


def _copy_example(dest):
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "cytrain.c", "*.so", "__pycache__"))


@pytest.fixture(scope="session")
def example(tmp_path_factory):
    """The example's two modules, built once per test session (shared by xdist workers)."""
    if not EXAMPLE.is_dir():
        pytest.skip("examples/embed is not next to the tests")
    pytest.importorskip("Cython")
    pytest.importorskip("setuptools")
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent          # the session's folder, common to its workers
    shared = base / "fastgd-embed-example"
    shared.mkdir(exist_ok=True)
    site = shared / "site"
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "done").exists():
            _copy_example(shared / "src")
            done = subprocess.run(
                [sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps",
                 "--no-index", "--target", str(site), str(shared / "src")],
                capture_output=True, text=True)
            assert done.returncode == 0, done.stdout + done.stderr
            (shared / "done").write_text(done.stdout)
    sys.path.insert(0, str(site))
    try:
        from fastgd_embed_example import ctrain, cytrain
    finally:
        sys.path.remove(str(site))
    return {"c": ctrain, "cython": cytrain}


@pytest.fixture(params=["c", "cython"])
def module(request, example):
    return example[request.param]


def _tensors(rng, dtype, sizes):
    return [rng.standard_normal(n).astype(dtype) for n in sizes]


def _reference_fit(params, targets, steps, **hp):
    """The example's training loop in Python over fastgd.functional.adam_."""
    exp_avg = [np.zeros_like(p) for p in params]
    exp_avg_sq = [np.zeros_like(p) for p in params]
    for k in range(1, steps + 1):
        adam_(params, [p - t for p, t in zip(params, targets)], exp_avg, exp_avg_sq, step=k,
              **hp)


def _same_bits(a, b):
    return all(x.dtype == y.dtype and x.tobytes() == y.tobytes() for x, y in zip(a, b))


# ------------------------------------------------------------------------- the installation

def test_get_include_holds_the_headers_and_the_pxd_is_installed():
    include = pathlib.Path(fastgd.get_include())
    assert include.is_absolute()
    for name in ("optim.h", "fastgd.h"):
        assert (include / "fastgd" / name).is_file()
    text = (include / "fastgd" / "optim.h").read_text()
    for name in ("sgd", "adagrad", "rmsprop", "adam", "adamax", "lion", "adadelta", "radam",
                 "nadam"):
        assert f"fgd_{name}_hparams;" in text
    # the .pxd sits next to the compiled module, where `cimport fastgd.kernels` finds it
    pxd = pathlib.Path(fastgd.kernels.__file__).parent / "kernels.pxd"
    assert "cdef void adam_f32(" in pxd.read_text()


def test_the_module_exports_every_kernel_and_the_table():
    names = {f"{name}_{sfx}" for name in ("sgd", "adagrad", "rmsprop", "adam", "adamax", "lion",
                                          "adadelta", "radam", "nadam")
             for sfx in ("f32", "f64")}
    names |= {"norm_blocks", "norm_f32", "norm_f64", "scale_f32", "scale_f64", "average_f32",
              "average_f64"}
    assert set(fastgd.kernels.__pyx_capi__) == names
    assert fastgd.kernels.ABI_VERSION == (1, 0)
    assert "fastgd.kernels._C_API" in repr(fastgd.kernels._C_API)


def test_the_flush_to_zero_switch_reaches_the_embedded_kernels():
    before = fastgd.get_flush_denormal()
    try:
        for mode in (True, False):
            supported = fastgd.set_flush_denormal(mode)
            assert fastgd.kernels._get_flush_denormal() == (mode and supported)
            assert fastgd.get_flush_denormal() == (mode and supported)
    finally:
        fastgd.set_flush_denormal(before)


# ------------------------------------------------------------------ the example's updates

@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("sizes", [[37], [5, 1000, 0, 3]], ids=["one", "several"])
def test_fit_equals_functional_adam_bit_for_bit(module, dtype, sizes):
    rng = np.random.default_rng(len(sizes) * 10 + (dtype == np.float64))
    params, targets = _tensors(rng, dtype, sizes), _tensors(rng, dtype, sizes)
    ours = [p.copy() for p in params]
    loss = module.fit(ours, targets, 30, lr=0.05, weight_decay=0.01)
    _reference_fit(params, targets, 30, lr=0.05, weight_decay=0.01)
    assert _same_bits(ours, params)
    assert np.isfinite(loss) and loss > 0


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("options", [
    {},
    {"amsgrad": True, "weight_decay": 0.1},
    {"maximize": True, "eps": 1e-3},
    {"decoupled_weight_decay": True, "weight_decay": 0.1, "amsgrad": True},
], ids=["default", "amsgrad", "maximize", "adamw"])
def test_adam_step_equals_functional_bit_for_bit(module, dtype, options):
    rng = np.random.default_rng(7)
    sizes = [64, 1, 300]
    params = _tensors(rng, dtype, sizes)
    ref = [p.copy() for p in params]
    state = [[np.zeros_like(p) for p in params] for _ in range(3)]
    ref_state = [[np.zeros_like(p) for p in params] for _ in range(3)]
    hp = dict(lr=0.01, beta1=0.8, beta2=0.99, **options)
    decoupled = hp.pop("decoupled_weight_decay", False)
    for step in range(1, 6):
        grads = _tensors(rng, dtype, sizes)
        module.adam_step(params, grads, state[0], state[1], step, max_exp_avg_sqs=state[2],
                         decoupled_weight_decay=decoupled, **hp)
        (adamw_ if decoupled else adam_)(ref, grads, ref_state[0], ref_state[1],
                                         ref_state[2], step=step, **hp)
        assert _same_bits(params, ref)
        for ours, theirs in zip(state, ref_state):
            if ours is state[2] and not hp.get("amsgrad"):
                continue
            assert _same_bits(ours, theirs)


def test_flushed_subnormals_match_too(module):
    before = fastgd.get_flush_denormal()
    if not fastgd.set_flush_denormal(True):
        fastgd.set_flush_denormal(before)
        pytest.skip("no flush-to-zero on this machine")
    try:
        # moments of tiny gradients fall into float32's subnormal range
        params = [np.ones(256, np.float32)]
        targets = [np.float32(1) - np.full(256, 3e-38, np.float32)]
        ours = [p.copy() for p in params]
        module.fit(ours, targets, 20, lr=1e-3)
        _reference_fit(params, targets, 20, lr=1e-3)
        assert _same_bits(ours, params)
    finally:
        fastgd.set_flush_denormal(before)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_threads_without_the_gil_train_their_own_buffers(example, dtype):
    """Four Python threads at once, each in a nogil call of one of the two modules over its
    own arrays (one of them large enough for the kernels' own OpenMP threads)."""
    rng = np.random.default_rng(3)
    sizes = [[2000, 17], [40000], [70000, 5], [300]]
    jobs = [(example["c" if i % 2 else "cython"], _tensors(rng, dtype, s),
             _tensors(rng, dtype, s)) for i, s in enumerate(sizes)]
    results = [[p.copy() for p in params] for _, params, _ in jobs]
    errors = []
    barrier = threading.Barrier(len(jobs))

    def run(i):
        try:
            mod, _, targets = jobs[i]
            barrier.wait()
            mod.fit(results[i], targets, 40, lr=0.02, nthreads=2 if i == 2 else 1)
        except BaseException as exc:      # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for (_, params, targets), ours in zip(jobs, results):
        _reference_fit(params, targets, 40, lr=0.02)
        assert _same_bits(ours, params)


def test_bad_arrays_raise(module):
    w = np.zeros(3, np.float32)
    with pytest.raises((TypeError, ValueError)):
        module.adam_step([w], [np.zeros(3, np.int32)], [w.copy()], [w.copy()], 1)
    with pytest.raises(ValueError):
        module.adam_step([w], [np.zeros(4, np.float32)], [w.copy()], [w.copy()], 1)
    with pytest.raises(ValueError):
        module.adam_step([w], [w.copy()], [w.copy()], [w.copy()], 0)


# ----------------------------------------------------------------------- the C header's ABI

PROBE = textwrap.dedent("""
    #include <fastgd/fastgd.h>

    static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "NAME", NULL, -1, NULL,
                                     NULL, NULL, NULL, NULL};

    PyMODINIT_FUNC PyInit_NAME(void)
    {
        if (import_fastgd() < 0)
            return NULL;
        /* one call through the table: 2 * 2 elements scaled by 0.5 */
        double a[2] = {2.0, 4.0}, b[2] = {6.0, 8.0};
        double *x[2] = {a, b};
        size_t numel[2] = {2, 2};
        fgd_scale_f64(2, x, numel, 0.5, 1);
        PyObject *m = PyModule_Create(&def);
        if (m != NULL && PyModule_AddObject(m, "scaled", Py_BuildValue(
                "dddd", a[0], a[1], b[0], b[1])) < 0) {
            Py_DECREF(m);
            return NULL;
        }
        return m;
    }
""")


def _compile_probe(tmp_path, name, defines=()):
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    src = tmp_path / f"{name}.c"
    src.write_text(PROBE.replace("NAME", name))
    out = tmp_path / f"{name}{sysconfig.get_config_var('EXT_SUFFIX')}"
    cmd = [cc, "-shared", "-fPIC", "-std=c11", "-O1", "-Wall", "-Wextra", "-Werror",
           f"-I{sysconfig.get_paths()['include']}", f"-I{fastgd.get_include()}",
           *(f"-D{d}" for d in defines), str(src), "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, " ".join(cmd) + "\n" + done.stderr


def _import_in_subprocess(tmp_path, name):
    code = f"import {name}; print({name}.scaled)"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path)


def test_a_c_module_built_against_the_header_imports_and_calls_a_kernel(tmp_path):
    _compile_probe(tmp_path, "fgd_probe_ok")
    done = _import_in_subprocess(tmp_path, "fgd_probe_ok")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1.0, 2.0, 3.0, 4.0)"


@pytest.mark.parametrize("defines, claimed", [
    (["FASTGD_ABI_VERSION_MAJOR=2"], "2.0"),
    (["FASTGD_ABI_VERSION_MAJOR=0"], "0.0"),
    (["FASTGD_ABI_VERSION_MINOR=7"], "1.7"),
], ids=["newer-major", "older-major", "newer-minor"])
def test_a_module_built_for_another_abi_gets_an_import_error(tmp_path, defines, claimed):
    name = "fgd_probe_" + defines[0].split("_")[-1].lower().replace("=", "")
    _compile_probe(tmp_path, name, defines)
    done = _import_in_subprocess(tmp_path, name)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: module compiled against fastgd C API (ABI) "
                           f"version {claimed}, but the installed fastgd {fastgd.__version__} "
                           "provides ABI version 1.0"), done.stderr
    assert "rebuild the module against the installed fastgd" in last


# ------------------------------------------------------------------ the wheel, from scratch

@pytest.mark.skipif(os.environ.get("FASTGD_TEST_WHEEL") != "1",
                    reason="builds the sdist and the wheel (minutes): FASTGD_TEST_WHEEL=1, "
                           "as .ci/run sets it")
def test_the_wheel_carries_the_api_and_the_example_builds_against_it(tmp_path):
    pytest.importorskip("build")
    dist = tmp_path / "dist"
    done = subprocess.run([sys.executable, "-m", "build", "-o", str(dist), str(ROOT)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    (sdist,) = dist.glob("fastgd-*.tar.gz")
    (wheel,) = dist.glob("fastgd-*.whl")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for path in ("csrc/kernels/fastgd_optim.h", "csrc/capi/fastgd.h", "csrc/capi/capi.c",
                 "csrc/capi/capi.h", "csrc/kernels.pyx", "csrc/kernels.pxd",
                 "examples/embed/pyproject.toml"):
        assert path in names, path
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
    for path in ("fastgd/include/fastgd/optim.h", "fastgd/include/fastgd/fastgd.h",
                 "fastgd/kernels.pxd", "fastgd/kernels.pyi"):
        assert path in names, path
    assert any(n.startswith("fastgd/kernels.") and n.endswith(".so") for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")

    def pip(*args):
        done = subprocess.run([py, "-m", "pip", "install", "-q", *args], capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    pip(str(wheel), "setuptools>=70.1", "cython>=3.0")
    _copy_example(tmp_path / "example")
    # the README's command, against the fastgd just installed from the wheel
    pip("--no-build-isolation", "--no-deps", str(tmp_path / "example"))
    check = textwrap.dedent("""
        import numpy as np
        import fastgd
        from fastgd.functional import adam_
        from fastgd_embed_example import ctrain, cytrain

        assert "site-packages" in fastgd.__file__, fastgd.__file__
        for mod in (ctrain, cytrain):
            for dtype in (np.float32, np.float64):
                rng = np.random.default_rng(0)
                w = [rng.standard_normal(n).astype(dtype) for n in (10, 3)]
                t = [rng.standard_normal(n).astype(dtype) for n in (10, 3)]
                ours = [x.copy() for x in w]
                mod.fit(ours, t, 25, lr=0.1)
                m, v = [np.zeros_like(x) for x in w], [np.zeros_like(x) for x in w]
                for k in range(1, 26):
                    adam_(w, [x - y for x, y in zip(w, t)], m, v, step=k, lr=0.1)
                assert all(a.tobytes() == b.tobytes() for a, b in zip(ours, w)), mod
        print("ok")
    """)
    done = subprocess.run([py, "-c", check], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr
