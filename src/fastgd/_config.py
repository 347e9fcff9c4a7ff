"""What fastgd runs on this machine: `show_config` and `config`, for bug reports.

As ``numpy.show_config()`` and ``sklearn.show_versions()`` do, `show_config` prints the
versions that matter, the CPU, the clone of the native kernels the loader picked, the BLAS
library fastgd calls (its file, version and the kernel family it chose for this CPU), the
thread counts of fastgd's kernels and of its BLAS, every other thread pool loaded in the
process (from ``threadpoolctl``) and the environment variables that change any of it.
``fastgd check`` (`fastgd.selfcheck`) is its companion: it runs every kernel against its
numpy twin here.
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from typing import IO, Any

from . import _blas, _optim

#: environment variables read by fastgd's OpenMP runtime or its BLAS
ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
            "OMP_PROC_BIND", "OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_CORETYPE")
#: packages whose versions a report gives (installed or not; none is imported)
PACKAGES = ("numpy", "scipy-openblas32", "threadpoolctl", "tqdm", "matplotlib", "scipy",
            "torch", "jax", "jaxlib", "scikit-learn", "mpi4py")
#: the CPU features the native clones are chosen by
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu() -> dict[str, Any]:
    """Model name and the SIMD flags that matter, from /proc/cpuinfo (Linux) or platform."""
    model: str = platform.processor() or platform.machine()
    flags: set[str] = set()
    family = number = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", platform.machine(), "x86_64"):
                    model = value.strip()
                elif key == "cpu family" and family is None:
                    family = value.strip()
                elif key == "model" and number is None:
                    number = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
                if key == "processor" and value.strip() == "1":
                    break   # the first CPU's lines are enough
    except OSError:
        pass
    if family is not None and number is not None:
        model = f"{model} (family {family}, model {number})"
    return {"model": model, "cores": os.cpu_count(),
            "flags": [f for f in CPU_FLAGS if f in flags]}


def _pools() -> list[dict[str, Any]]:
    """Every BLAS and OpenMP runtime loaded in this process, as ``threadpoolctl`` sees them;
    fastgd's own BLAS is marked ``"fastgd": True``."""
    try:
        import threadpoolctl
    except ImportError:  # pragma: no cover - a dependency of fastgd
        return []
    ours = os.path.realpath(_blas_file() or "")
    pools = []
    for info in threadpoolctl.threadpool_info():
        entry = {k: info.get(k) for k in ("user_api", "internal_api", "version",
                                          "num_threads", "threading_layer", "architecture",
                                          "filepath")}
        entry["fastgd"] = os.path.realpath(info.get("filepath") or "") == ours
        pools.append(entry)
    return pools


def _blas_file() -> str | None:
    try:
        import scipy_openblas32
    except ImportError:  # pragma: no cover - a dependency of fastgd
        return None
    return os.path.join(scipy_openblas32.get_lib_dir(),
                        scipy_openblas32.get_library(fullname=True))


def config() -> dict[str, Any]:
    """The configuration `show_config` prints, as a dict of plain values.

    Returns
    -------
    dict
        ``"fastgd"`` (version), ``"python"``, ``"platform"``, ``"cpu"`` (model, cores,
        SIMD flags), ``"native"`` (``cpu_variant``: the clone the loader picked, one of
        ``"avx512f"``, ``"avx2"``, ``"default"`` or ``"none"`` for a build without clones;
        ``openmp``; ``num_threads`` of fastgd's loops and products; ``pins_workers``;
        ``blas_config``, ``blas_corename`` and ``blas_num_threads`` of its BLAS, which runs
        single-threaded), ``"blas_file"``,
        ``"products"`` (the pool of large products, `fastgd.set_blas_pool`; from how many
        multiply-adds m n k a product is large; whether numpy's pool is available, and if
        not why; the pieces' least width and most count in fastgd's pool),
        ``"thread_pools"`` (every
        pool in the process, from ``threadpoolctl``), ``"packages"`` (name -> version or
        None) and ``"environment"`` (the variables of `ENV_VARS` that are set).

    Examples
    --------
    >>> import fastgd
    >>> fastgd.config()["native"]["cpu_variant"] in ("avx512f", "avx2", "default", "none")
    True
    """
    from . import __version__
    return {
        "fastgd": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": _cpu(),
        "native": _optim.native_config(),
        "blas_file": _blas_file(),
        "products": {"pool": _blas.get_blas_pool(),
                     "large_at_multiply_adds": _optim.GEMM_SPLIT,
                     "numpy_pool_available": bool(_blas.STATUS["numpy_available"]),
                     "numpy_pool_reason": _blas.STATUS["reason"],
                     "numpy_blas_file": _blas.STATUS["file"],
                     "numpy_blas_config": _blas.STATUS["config"],
                     "min_piece": _optim.GEMM_MIN_PIECE, "max_pieces": _optim.GEMM_MAX_PIECES},
        "thread_pools": _pools(),
        "packages": {p: _version(p) for p in PACKAGES},
        "environment": {k: os.environ[k] for k in ENV_VARS if k in os.environ},
    }


def _products_line(products: dict[str, Any], native: dict[str, Any]) -> str:
    head = (f"large products (m*n*k >= {products['large_at_multiply_adds']:,}), "
            f"{native['num_threads']} threads: ")
    if products["pool"] == "numpy":
        return head + f"numpy's pool ({products['numpy_blas_config']}), shared with numpy"
    why = ("" if products["numpy_pool_available"]
           else f"; numpy's pool is not available: {products['numpy_pool_reason']}")
    pinned = "bound to one CPU each" if native["pins_workers"] else "unbound"
    return (head + f"fastgd's pool, up to {products['max_pieces']} pieces at least "
            f"{products['min_piece']} wide over its OpenMP threads ({pinned}), the same bits "
            f"for any thread count{why}")


def show_config(file: IO[str] | None = None) -> None:
    """Print what fastgd runs on here: versions, CPU, kernel clone, BLAS and threads.

    Attach its output (and ``fastgd check``'s) to a bug report. The same values, as a dict,
    come from `config`.

    Parameters
    ----------
    file : file-like, optional
        Where to write (default: ``sys.stdout``).

    Examples
    --------
    >>> import io, fastgd
    >>> out = io.StringIO()
    >>> fastgd.show_config(out)
    >>> "BLAS" in out.getvalue()
    True
    """
    c = config()
    out = sys.stdout if file is None else file
    n = c["native"]
    lines = [
        f"fastgd {c['fastgd']} on Python {c['python']}, {c['platform']}",
        f"CPU: {c['cpu']['model']}, {c['cpu']['cores']} logical cores, "
        f"flags: {' '.join(c['cpu']['flags']) or '(none of ' + ', '.join(CPU_FLAGS) + ')'}",
        f"native kernels: the {n['cpu_variant']} clone; OpenMP "
        f"{'on' if n['openmp'] else 'off (one thread)'}, {n['num_threads']} threads; "
        f"subnormals {'flushed to zero' if n['flush_denormal'] else 'kept (IEEE)'} in the updates",
        f"BLAS: {n['blas_config']}",
        f"  kernel family {n['blas_corename']}, {n['blas_num_threads']} threads, "
        f"file {c['blas_file']}",
        _products_line(c["products"], n),
        "thread pools in this process (threadpoolctl):",
    ]
    for p in c["thread_pools"]:
        mark = "  <- fastgd's BLAS" if p["fastgd"] else ""
        arch = f" {p['architecture']}" if p.get("architecture") else ""
        what = " ".join(str(x) for x in (p["internal_api"], p["version"]) if x)
        lines.append(f"  {what}{arch}, {p['num_threads']} threads: {p['filepath']}{mark}")
    lines.append("packages: " + ", ".join(f"{k} {v}" for k, v in c["packages"].items()
                                           if v is not None))
    missing = [k for k, v in c["packages"].items() if v is None]
    if missing:
        lines.append("not installed: " + ", ".join(missing))
    env = c["environment"]
    lines.append("environment: " + (", ".join(f"{k}={v}" for k, v in env.items())
                                    if env else "(none of " + ", ".join(ENV_VARS) + " set)"))
    print("\n".join(lines), file=out)
