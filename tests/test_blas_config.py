"""fastgd's BLAS (scipy-openblas32, linked), large products on numpy's OpenBLAS, one thread
count for everything, and what `fastgd.show_config` / ``fastgd config`` report."""
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import threadpoolctl

import fastgd
from fastgd import _blas, _nn, _optim
from fastgd.cli import main

from nn_testutil import DTYPES

dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])


def _run(code, **env):
    full = dict(os.environ)
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True,
                          text=True, check=True).stdout.strip()


def _version(text):
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    assert m, text
    return tuple(int(g) for g in m.groups())


# ----------------------------------------------------------------------------- the library

def test_blas_is_the_linked_scipy_openblas32_at_least_0_3_34():
    import scipy_openblas32
    c = fastgd.config()
    assert _version(c["native"]["blas_config"]) >= (0, 3, 34)
    assert c["blas_file"].startswith(scipy_openblas32.get_lib_dir())
    assert os.path.isfile(c["blas_file"])
    ours = [p for p in c["thread_pools"] if p["fastgd"]]
    assert len(ours) == 1 and ours[0]["internal_api"] == "openblas"
    assert _version(ours[0]["version"]) >= (0, 3, 34)
    # threadpoolctl sees the same library fastgd reports
    files = {os.path.realpath(i["filepath"]) for i in threadpoolctl.threadpool_info()}
    assert os.path.realpath(c["blas_file"]) in files


def test_extension_modules_find_the_library_by_themselves():
    """The modules' RPATH finds libscipy_openblas.so with nothing imported first (no
    scipy_openblas32, no fastgd/__init__, no environment variable)."""
    path = _nn.__file__
    out = _run(f"import ctypes, sys; ctypes.CDLL({path!r}); "
               "print('scipy_openblas32' in sys.modules)",
               LD_LIBRARY_PATH="")
    assert out == "False"


def test_cpu_variant_is_the_one_the_cpu_supports():
    c = fastgd.config()
    variant, flags = c["native"]["cpu_variant"], c["cpu"]["flags"]
    if variant == "none":   # a build without clones (not x86-64 Linux)
        return
    expected = "avx512f" if "avx512f" in flags else "avx2" if "avx2" in flags else "default"
    assert variant == expected


# ----------------------------------------------------------------------------- large products

def _numpy_has_scipy_openblas():
    return _blas._numpy_blas_name() == "scipy-openblas"


@pytest.fixture
def pool():
    """``pool(name)`` chooses the pool of large products; the choice is put back after."""
    before = fastgd.get_blas_pool()
    yield fastgd.set_blas_pool
    fastgd.set_blas_pool(before)


def test_numpy_pool_is_the_default_where_numpy_ships_openblas():
    status = _blas.STATUS
    if not _numpy_has_scipy_openblas():   # a numpy built on another BLAS (conda's MKL, say)
        assert not status["numpy_available"] and "not scipy-openblas" in status["reason"]
        assert fastgd.get_blas_pool() == "fastgd"
        return
    assert status["numpy_available"], status["reason"]
    assert fastgd.get_blas_pool() == "numpy" and _optim.large_blas_delegated()
    assert "USE64BITINT" in status["config"]
    numpy_libs = [i for i in threadpoolctl.threadpool_info()
                  if os.path.realpath(i["filepath"]) == os.path.realpath(status["file"])]
    assert len(numpy_libs) == 1   # the copy numpy loaded, not a second one
    # fastgd's own copy runs single-threaded whatever the pool
    assert fastgd.config()["native"]["blas_num_threads"] == 1


@pytest.mark.parametrize("env, expected", [("fastgd", "fastgd"), ("numpy", None),
                                           ("nonsense", None)])
def test_pool_chosen_by_environment(env, expected):
    out = _run("import fastgd; print(fastgd.get_blas_pool())", FASTGD_BLAS_POOL=env)
    default = "numpy" if _blas.STATUS["numpy_available"] else "fastgd"
    assert out == (expected or default)


def test_set_blas_pool_checks_its_argument(pool):
    with pytest.raises(ValueError, match="pool must be"):
        pool("mkl")
    before = fastgd.get_blas_pool()
    assert pool("fastgd") == before and fastgd.get_blas_pool() == "fastgd"
    assert not _optim.large_blas_delegated()
    if _blas.STATUS["numpy_available"]:
        assert pool("numpy") == "fastgd" and _optim.large_blas_delegated()


def test_set_large_blas_wants_all_three_addresses_or_none():
    with pytest.raises(ValueError, match="all three"):
        _optim.set_large_blas(1, 0, 0)


def _linear(dtype, m, k, n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, k)).astype(dtype)
    W = rng.standard_normal((k, n)).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    G = rng.standard_normal((m, n)).astype(dtype)
    Z = np.empty((m, n), dtype)
    dW, db, dX = np.empty_like(W), np.empty_like(b), np.empty_like(X)
    _nn.linear_forward(X, W, b, Z)
    _nn.linear_backward(X, W, G, dW, db, dX)
    return (X, W, b, G), (Z, dW, db, dX)


SHAPES = [(256, 784, 512), (32, 64, 128), (300, 129, 70), (1000, 3, 2000), (5, 3000, 7),
          (129, 257, 130)]


@dtypes
@pytest.mark.parametrize("which", ["numpy", "fastgd"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_products_in_both_pools_against_float64(pool, threads, dtype, which, shape):
    if which == "numpy" and not _blas.STATUS["numpy_available"]:
        pytest.skip("numpy's pool is not available here")
    pool(which)
    threads(2)
    (X, W, b, G), (Z, dW, db, dX) = _linear(dtype, *shape)
    f = np.float64
    for got, want, depth in ((Z, X.astype(f) @ W + b, shape[1]),
                             (dW, X.T.astype(f) @ G, shape[0]),
                             (dX, G.astype(f) @ W.T, shape[2])):
        # a sum of `depth` products rounds within about depth * eps of its largest value
        bound = 4 * depth * np.finfo(dtype).eps * np.abs(want).max()
        assert np.abs(got - want).max() <= bound


@dtypes
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_fastgd_pool_is_bit_identical_for_any_thread_count(pool, threads, dtype, shape):
    pool("fastgd")
    outs = []
    for n in (1, 2, 3, 5):
        threads(n)
        outs.append(_linear(dtype, *shape)[1])
    for other in outs[1:]:
        for a, c in zip(outs[0], other):
            np.testing.assert_array_equal(a, c)


def test_fastgd_pool_pieces_depend_on_the_shape_only():
    assert _optim.gemm_pieces(32, 128, 64) == (1, "columns", 128)          # small: one call
    count, along, width = _optim.gemm_pieces(256, 1024, 1024)
    assert (count, along) == (8, "columns") and width % 16 == 0 and count * width >= 1024
    count, along, width = _optim.gemm_pieces(1024, 10, 256)
    assert along == "rows" and count * width >= 1024
    assert _optim.gemm_pieces(100000, 100000, 1000)[0] == _optim.GEMM_MAX_PIECES


@dtypes
def test_training_in_the_fastgd_pool_is_bit_identical_for_any_thread_count(pool, threads,
                                                                          dtype):
    """A whole fit of a model whose products are large: every parameter the same bits."""
    pool("fastgd")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((512, 200)).astype(dtype)
    y = rng.integers(0, 10, 512)
    results = []
    for n in (1, 2):
        threads(n)
        model = fastgd.nn.MLP([200, 256, 10], dtype=dtype, seed=0)
        opt = fastgd.optim.Adam(model.parameters(), lr=1e-3)
        fastgd.fit(model, X, y, loss="cross_entropy", optimizer=opt, epochs=2,
                   batch_size=128, seed=0, progress=False)
        results.append([p.copy() for p in model.parameters()])
    for a, c in zip(*results):
        np.testing.assert_array_equal(a, c)


def test_fastgd_threads_do_not_change_numpy_setting(threads):
    def numpy_blas():
        return [(i["filepath"], i["num_threads"]) for i in threadpoolctl.threadpool_info()
                if i["user_api"] == "blas" and "numpy" in i["filepath"]]
    before = numpy_blas()
    threads(1)
    _linear(np.float32, 256, 784, 512)
    assert numpy_blas() == before


def test_fastgd_copy_is_put_back_to_one_thread():
    """fastgd's own copy stays single-threaded, even after something else (threadpoolctl)
    changed it."""
    import scipy_openblas32
    ours = os.path.realpath(os.path.join(scipy_openblas32.get_lib_dir(),
                                         scipy_openblas32.get_library(fullname=True)))
    ctl = threadpoolctl.ThreadpoolController()
    lib = [c for c in ctl.lib_controllers if os.path.realpath(c.filepath) == ours]
    assert len(lib) == 1
    lib[0].set_num_threads(2)
    _linear(np.float32, 32, 64, 128)   # a small product, on fastgd's copy
    assert fastgd.config()["native"]["blas_num_threads"] == 1


# ----------------------------------------------------------------------------- the report

def test_config_has_what_a_bug_report_needs():
    c = fastgd.config()
    assert c["fastgd"] == fastgd.__version__
    assert set(c) >= {"python", "platform", "cpu", "native", "blas_file", "products",
                      "thread_pools", "packages", "environment"}
    assert c["native"]["num_threads"] == fastgd.get_num_threads()
    assert c["packages"]["numpy"] == np.__version__
    assert c["products"]["large_at_multiply_adds"] == _optim.GEMM_SPLIT
    assert c["products"]["pool"] == fastgd.get_blas_pool()
    json.dumps(c)   # plain values only


def test_show_config_prints_clone_blas_threads_and_pools():
    out = io.StringIO()
    fastgd.show_config(out)
    text = out.getvalue()
    c = fastgd.config()
    assert f"the {c['native']['cpu_variant']} clone" in text
    assert "BLAS: OpenBLAS 0.3." in text and c["native"]["blas_corename"] in text
    assert "large products" in text and f"{c['products']['pool']}'s pool" in text
    assert "<- fastgd's BLAS" in text
    assert f"{fastgd.get_num_threads()} threads" in text


def test_environment_variables_are_reported():
    out = _run("import fastgd; fastgd.show_config()", OMP_NUM_THREADS="1")
    assert "OMP_NUM_THREADS=1" in out
    assert "OpenMP on, 1 threads" in out or "OpenMP off" in out


def test_cli_config_text_and_json(capsys):
    assert main(["config"]) == 0
    assert "BLAS: OpenBLAS" in capsys.readouterr().out
    assert main(["config", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fastgd"] == fastgd.__version__


# ----------------------------------------------------------------------------- products()

def _specs(rng):
    f = np.float32
    A, B = rng.standard_normal((7, 5)).astype(f), rng.standard_normal((5, 3)).astype(f)
    At, Bt = np.ascontiguousarray(A.T), np.ascontiguousarray(B.T)
    outs = [np.full((7, 3), np.nan, f) for _ in range(4)]
    return [(False, False, A, B, outs[0]), (True, False, At, B, outs[1]),
            (False, True, A, Bt, outs[2]), (True, True, At, Bt, outs[3])], A @ B


def test_products_computes_every_transposition():
    from fastgd import _nn_ops
    specs, want = _specs(np.random.default_rng(0))
    _nn_ops.products(specs, 3)
    for *_, out in specs:
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_products_through_another_openblas_by_address():
    from fastgd import _nn_ops
    if not _blas.STATUS["numpy_available"]:
        pytest.skip("numpy's OpenBLAS is not usable here")
    specs, want = _specs(np.random.default_rng(1))
    _nn_ops.products(specs, 1, _blas._ADDRS[0], True)
    for *_, out in specs:
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("change, error, match", [
    (lambda s: [(False, False, s[0][2], s[0][2], s[0][4])], ValueError, "do not make a product"),
    (lambda s: [(False, False, s[0][2].astype(np.float64), s[0][3], s[0][4])], TypeError,
     "dtype"),
    (lambda s: [(False, False, s[0][2], s[0][3], np.zeros((7, 3), np.float32)[:, ::-1])],
     ValueError, "C-contiguous"),
    (lambda s: [(False, False, s[0][2], s[0][3])], ValueError, "unpack"),
])
def test_products_checks_everything_before_the_first_product(change, error, match):
    from fastgd import _nn_ops
    specs, _ = _specs(np.random.default_rng(2))
    first = specs[0][4]
    bad = [specs[0]] + change(specs)
    with pytest.raises(error, match=match):
        _nn_ops.products(bad, 1)
    assert np.isnan(first).all()      # nothing was computed
    with pytest.raises(ValueError, match="repeats"):
        _nn_ops.products(specs, -1)
