"""Which thread pool runs fastgd's large matrix products: numpy's, where that is safe.

fastgd links its own OpenBLAS (the ``scipy-openblas32`` wheel, >= 0.3.34: fast small-matrix
kernels on AVX2 and AVX-512) and always calls it single-threaded. A product of at least
``fastgd._optim.GEMM_SPLIT`` multiply-adds (m n k) is worth several threads, and runs in
one of two pools (`set_blas_pool`):

``"numpy"``
    The OpenBLAS numpy loaded (numpy's wheels carry ``scipy-openblas64`` in
    ``numpy.libs``), in numpy's own thread pool. After a multi-threaded call an OpenBLAS
    worker keeps spinning for about 2**28 cycles (~0.1 s) before it sleeps. Two pools in one
    process then fight over the cores: on 2 cores a fastgd training step right after a
    numpy matmul took twice its time while numpy's workers spun beside fastgd's. With one
    pool for both, a pool numpy has just used is awake for fastgd's products. The last bits
    of a large product may differ between thread counts (OpenBLAS's threading), never
    between runs with the same count.
``"fastgd"``
    Cut into pieces (whole rows or columns of the result, by shape only) that fastgd's own
    OpenMP threads share, each a single-threaded call to fastgd's copy: the same bits for
    any thread count, but slower for the ~0.1 s after numpy's pool has worked.

The default is ``"numpy"`` when every check below passes, else ``"fastgd"``; the
environment variable ``FASTGD_BLAS_POOL`` (``numpy`` or ``fastgd``) chooses at import.
Checks before numpy's copy is used: numpy's build says its BLAS is ``scipy-openblas``; the
library file is in ``numpy.libs`` and already loaded; it exports the 64-bit-integer CBLAS
``sgemm``/``dgemm`` and ``openblas_set_num_threads_local`` (fastgd's thread count is set for
each call on the calling thread only, then put back: numpy's own setting never changes);
its configuration says ``USE64BITINT``; and test products through it match fastgd's copy.
"""
from __future__ import annotations

import ctypes
import glob
import os
from typing import Any

import numpy as np

from . import _nn_ops, _optim

POOLS = ("numpy", "fastgd")

#: the pool of large products now, and why numpy's is (or is not) available; see `install`
STATUS: dict[str, Any] = {"pool": "fastgd", "numpy_available": False,
                          "reason": "not checked yet", "file": None, "config": None}
_LIB: ctypes.CDLL | None = None   # numpy's OpenBLAS, kept while its functions may be used
_ADDRS: tuple[int, int, int] = (0, 0, 0)

_SYMBOLS = ("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_", "openblas_set_num_threads_local",
            "scipy_openblas_get_config64_")


def _numpy_blas_name() -> str | None:
    try:
        info = np.show_config(mode="dicts")
    except TypeError:  # numpy < 1.26: no machine-readable build information
        return None
    blas = (info or {}).get("Build Dependencies", {}).get("blas", {})
    name = blas.get("name")
    return str(name) if name is not None else None


def _find() -> tuple[ctypes.CDLL | None, str, str | None]:
    """(library, reason, file): numpy's OpenBLAS when the checks pass, else None."""
    name = _numpy_blas_name()
    if name != "scipy-openblas":
        return None, f"numpy's BLAS is {name or 'unknown'}, not scipy-openblas", None
    libs = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(np.__file__))),
                        "numpy.libs")
    files = sorted(glob.glob(os.path.join(libs, "libscipy_openblas64_*.so*")))
    if len(files) != 1:
        return None, f"found {len(files)} scipy-openblas64 libraries in {libs}", None
    try:
        # RTLD_NOLOAD: only the library numpy has loaded already, never a second copy
        lib = ctypes.CDLL(files[0], mode=os.RTLD_NOLOAD | ctypes.RTLD_LOCAL)
    except OSError as exc:
        return None, f"numpy's OpenBLAS is not loaded ({exc})", files[0]
    missing = [s for s in _SYMBOLS if not hasattr(lib, s)]
    if missing:
        return None, f"numpy's OpenBLAS lacks {', '.join(missing)}", files[0]
    return lib, "ok", files[0]


def _config(lib: ctypes.CDLL) -> str:
    fn = lib.scipy_openblas_get_config64_
    fn.restype = ctypes.c_char_p
    fn.argtypes = []
    return (fn() or b"").decode(errors="replace").strip()


def _addr(lib: ctypes.CDLL, name: str) -> int:
    return int(ctypes.cast(getattr(lib, name), ctypes.c_void_p).value or 0)


def _products_agree() -> bool:
    """Large products (both dtypes, the three transpositions of a layer) in both pools are
    within a few ulps of their dtype of a float64 product, and of each other."""
    rng = np.random.default_rng(0)
    m, k, n = 256, 144, 128      # m n k = 4,718,592 >= GEMM_SPLIT
    for dtype in (np.float32, np.float64):
        X = rng.standard_normal((m, k)).astype(dtype)
        W = rng.standard_normal((k, n)).astype(dtype)
        b = np.zeros(n, dtype)
        G = rng.standard_normal((m, n)).astype(dtype)
        out = {}
        for pool in POOLS:
            _select(pool)
            Z = np.empty((m, n), dtype)
            dW, db, dX = np.empty_like(W), np.empty_like(b), np.empty_like(X)
            _nn_ops.linear_forward(X, W, b, Z)
            _nn_ops.linear_backward(X, W, G, dW, db, dX)
            out[pool] = (Z, dW, dX)
        f = np.float64
        exact = (X.astype(f) @ W, X.T.astype(f) @ G, G.astype(f) @ W.T)
        eps = float(np.finfo(dtype).eps)
        for a, c, ref, depth in zip(out["numpy"], out["fastgd"], exact, (k, m, n)):
            bound = 4 * depth * eps * float(np.abs(ref).max())
            if not (np.abs(a - ref).max() <= bound and np.abs(a - c).max() <= 2 * bound):
                return False
    return True


def _select(pool: str) -> None:
    _optim.set_large_blas(*(_ADDRS if pool == "numpy" else (0, 0, 0)))


def install() -> dict[str, Any]:
    """Find and check numpy's OpenBLAS, then choose the pool (``FASTGD_BLAS_POOL``, else
    ``"numpy"`` if available). Returns `STATUS`."""
    global _LIB, _ADDRS
    _optim.set_large_blas(0, 0, 0)
    lib, reason, path = _find()
    STATUS.update(pool="fastgd", numpy_available=False, reason=reason, file=path, config=None)
    if lib is not None:
        config = _config(lib)
        STATUS["config"] = config
        if "USE64BITINT" not in config.split():
            STATUS["reason"] = f"numpy's OpenBLAS does not use 64-bit integers ({config})"
        else:
            _LIB = lib
            _ADDRS = (_addr(lib, "scipy_cblas_sgemm64_"), _addr(lib, "scipy_cblas_dgemm64_"),
                      _addr(lib, "openblas_set_num_threads_local"))
            if _products_agree():
                STATUS.update(numpy_available=True, reason="ok")
            else:
                STATUS["reason"] = "test products through numpy's OpenBLAS disagreed"
    want = os.environ.get("FASTGD_BLAS_POOL", "").strip().lower() or "numpy"
    if want not in POOLS:
        want = "numpy"
    set_blas_pool(want if STATUS["numpy_available"] else "fastgd")
    return STATUS


def set_blas_pool(pool: str) -> str:
    """Choose the thread pool of large matrix products; returns the one used before.

    Parameters
    ----------
    pool : {"numpy", "fastgd"}
        ``"numpy"``: numpy's OpenBLAS and its thread pool (the default where numpy's
        wheels ship OpenBLAS): fast right after numpy's own BLAS work, with last bits that
        may differ between thread counts. ``"fastgd"``: fastgd's OpenMP threads over fixed
        pieces of each product: the same bits for any thread count. Small products always
        run on fastgd's own OpenBLAS, single-threaded.

    Raises
    ------
    ValueError
        ``pool`` is not one of them, or ``"numpy"`` when numpy's OpenBLAS is not usable
        here (`fastgd.show_config` says why).

    Examples
    --------
    >>> import fastgd
    >>> before = fastgd.set_blas_pool("fastgd")   # bit-identical for any thread count
    >>> fastgd.get_blas_pool()
    'fastgd'
    >>> _ = fastgd.set_blas_pool(before)
    """
    if pool not in POOLS:
        raise ValueError(f"pool must be 'numpy' or 'fastgd', got {pool!r}")
    if pool == "numpy" and not STATUS["numpy_available"]:
        raise ValueError(f"pool 'numpy' is not available here: {STATUS['reason']}")
    before = str(STATUS["pool"])
    _select(pool)
    STATUS["pool"] = pool
    return before


def get_blas_pool() -> str:
    """The thread pool of large matrix products now: ``"numpy"`` or ``"fastgd"``."""
    return str(STATUS["pool"])
