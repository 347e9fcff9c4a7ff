"""Shared set-up for the optimizer benchmarks (``conftest.py``, ``test_bench_optim.py``, ``ratios.py``).

Not a test module (the name does not match ``test_*.py``). It builds "contenders": one
optimizer over its own freshly generated parameters and fixed gradients, exposing ``step()``
(exactly one ``optimizer.step()``) and ``params()`` (numpy views of the parameters).

Every contender of a scenario starts from bit-identical data (same seed), so after the same
number of steps their parameters can be compared (``max_abs_diff``) to show that the timed
calls did the same work.
"""
import functools
import inspect
import os
import platform
import sys
import time

import numpy as np

import fastgd

#: threads for fastgd and torch (the issue's goals are stated for 2 threads on a 2-core box)
THREADS = 2
#: seed of the parameters and gradients
SEED = 20240601

M = 1_000_000

#: benchmarked optimizers: (fastgd.optim / torch.optim class name, keyword arguments).
#: The keyword arguments mean the same thing in both libraries.
OPTIMIZERS = {
    "adam": ("Adam", dict(lr=1e-3)),
    "adamw": ("AdamW", dict(lr=1e-3, weight_decay=1e-2)),
    "sgd-momentum": ("SGD", dict(lr=1e-3, momentum=0.9)),
    "rmsprop": ("RMSprop", dict(lr=1e-2, alpha=0.99)),
    "adagrad": ("Adagrad", dict(lr=1e-2)),
}

#: contender kinds: fastgd backends and torch implementations
FASTGD_KINDS = ("fastgd-native", "fastgd-reference")
TORCH_KINDS = ("torch-fused", "torch-foreach", "torch-single")
#: not an optimizer: the memory traffic of an Adam step alone (see `build`)
BOUND = "bandwidth-bound"
KINDS = FASTGD_KINDS + TORCH_KINDS + (BOUND,)
_TORCH_MODE = {"torch-fused": dict(fused=True), "torch-foreach": dict(foreach=True),
               "torch-single": dict(foreach=False)}

_DTYPES = {"float32": np.float32, "float64": np.float64}


def configure_fastgd_threads(n=THREADS):
    fastgd.set_num_threads(n)


def import_torch(n=THREADS):
    """torch with ``n`` intra-op threads, or None when torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(n)
    return torch


def make_problem(n_params, numel, dtype, seed=SEED):
    """``n_params`` parameters and gradients of ``numel`` elements, standard normal."""
    rng = np.random.default_rng(seed)
    dt = _DTYPES.get(dtype, dtype)
    params = [rng.standard_normal(numel, dtype=dt) for _ in range(n_params)]
    grads = [rng.standard_normal(numel, dtype=dt) for _ in range(n_params)]
    return params, grads


def torch_has_fused(torch, opt):
    """Whether ``torch.optim.<opt>`` takes ``fused=`` (RMSprop does not in torch 2.13)."""
    cls = getattr(torch.optim, OPTIMIZERS[opt][0])
    return "fused" in inspect.signature(cls.__init__).parameters


class Contender:
    """One optimizer over its own data; ``step()`` is one ``optimizer.step()``."""

    def __init__(self, kind, step, params, optimizer):
        self.kind = kind
        self.step = step
        self._params = params
        self.optimizer = optimizer

    def params(self):
        return self._params


def build(kind, opt, n_params, numel, dtype, torch=None, seed=SEED):
    """A `Contender` of ``kind`` (see `KINDS`) running optimizer ``opt`` (see `OPTIMIZERS`).

    torch kinds need the ``torch`` module; a torch kind that torch does not implement for
    this optimizer (``fused`` for RMSprop) raises ``NotImplementedError``.
    """
    cls_name, kwargs = OPTIMIZERS[opt]
    params, grads = make_problem(n_params, numel, dtype, seed)
    if kind == BOUND:
        # the memory traffic of an Adam step alone (fastgd._optim.stream_probe), over the
        # same threads: 4 arrays read, 3 written
        from fastgd import _optim
        if n_params != 1 or dtype != "float32":
            raise NotImplementedError("the bandwidth bound is for one float32 array")
        p, g = params[0], grads[0]
        m, v = np.zeros_like(p), np.zeros_like(p)
        return Contender(kind, functools.partial(_optim.stream_probe, p, g, m, v), params,
                         None)
    if kind in FASTGD_KINDS:
        backend = kind.split("-", 1)[1]
        o = getattr(fastgd.optim, cls_name)(params, backend=backend, **kwargs)
        return Contender(kind, functools.partial(o.step, grads), params, o)
    if kind not in _TORCH_MODE:
        raise ValueError(f"unknown contender kind {kind!r}; expected one of {KINDS}")
    if torch is None:
        raise RuntimeError("torch contenders need the torch module")
    if kind == "torch-fused" and not torch_has_fused(torch, opt):
        raise NotImplementedError(f"torch.optim.{cls_name} has no fused implementation")
    # the tensors share memory with `params`/`grads` (this contender's own copies)
    tparams = [torch.from_numpy(p).requires_grad_(True) for p in params]
    for tp, g in zip(tparams, grads):
        tp.grad = torch.from_numpy(g)
    o = getattr(torch.optim, cls_name)(tparams, **kwargs, **_TORCH_MODE[kind])
    return Contender(kind, o.step, params, o)


def max_abs_diff(a, b):
    """Largest |a - b| over two contenders' parameters (float64)."""
    return max(float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64))))
               for x, y in zip(a.params(), b.params()))


def print_facts(facts, *, quick):
    """Print the (name, value) pairs of the machine, the load average and the mode."""
    if hasattr(os, "getloadavg"):
        facts = facts + [("load average at start (1/5/15 min)",
                          " ".join(f"{x:.2f}" for x in os.getloadavg()))]
    for k, v in facts:
        print(f"  {k}: {v}")
    print(f"  mode: {'quick' if quick else 'full'}")


def machine_facts(torch=None):
    """(name, value) pairs describing the machine and the thread settings."""
    facts = [("python", platform.python_version()),
             ("platform", platform.platform()),
             ("cpu", _cpu_model()),
             ("os.cpu_count()", os.cpu_count())]
    if hasattr(os, "sched_getaffinity"):
        facts.append(("usable cores (affinity)", len(os.sched_getaffinity(0))))
    facts += [("numpy", np.__version__),
              ("fastgd", f"{fastgd.__version__} ({os.path.dirname(fastgd.__file__)})"),
              ("fastgd native module", getattr(fastgd._optim, "__file__", "?")),
              ("fastgd.get_num_threads()", fastgd.get_num_threads())]
    have_omp = getattr(fastgd._optim, "have_openmp", None)
    if have_omp is not None:
        facts.append(("fastgd built with OpenMP", bool(have_omp())))
    if torch is None:
        facts.append(("torch", "not installed (torch rows are n/a)"))
    else:
        facts += [("torch", torch.__version__),
                  ("torch.get_num_threads()", torch.get_num_threads()),
                  ("torch.get_num_interop_threads()", torch.get_num_interop_threads())]
    env = {k: v for k, v in os.environ.items()
           if k.startswith(("OPENBLAS", "GOTO", "OMP_", "GOMP_", "KMP_", "MKL", "BLIS",
                            "NVPL", "VECLIB", "NUMEXPR"))}
    facts.append(("BLAS/OpenMP env vars",
                  ", ".join(f"{k}={v}" for k, v in sorted(env.items())) or "none set"))
    openblas = sorted(k for k in env if k.startswith(("OPENBLAS", "GOTO")))
    facts.append(("OpenBLAS env vars", ", ".join(f"{k}={env[k]}" for k in openblas)
                  or "none set"))
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            facts.append(("transparent huge pages", f.read().strip()))
    except OSError:
        pass
    libs = _loaded_runtime_libs()
    if libs:
        facts.append(("loaded OpenMP/BLAS libraries", "; ".join(libs)))
    try:
        from threadpoolctl import threadpool_info
        pools = [f"{p.get('internal_api')}={p.get('num_threads')}" for p in threadpool_info()]
        facts.append(("threadpoolctl", ", ".join(pools) or "no pools"))
    except ImportError:
        pass
    return facts


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _loaded_runtime_libs():
    """OpenMP/BLAS shared libraries mapped into this process (Linux only)."""
    if not sys.platform.startswith("linux"):
        return []
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "/" in line}
    except OSError:
        return []
    keys = ("omp", "blas", "mkl")
    return sorted(p for p in paths if os.path.basename(p).startswith("lib")
                  and any(k in os.path.basename(p).lower() for k in keys))


class CpuMonitor:
    """How busy the machine was between ``start()`` and ``stop()``, besides this process.

    Linux only (``/proc/stat``); elsewhere ``stop()`` returns None. Returns a dict with
    ``others``: the share of all cores used by other processes (0..1), ``steal``: the share
    taken by the hypervisor, over the interval.
    """

    def __init__(self):
        self._t0 = None

    @staticmethod
    def _read():
        try:
            with open("/proc/stat") as f:
                fields = f.readline().split()
        except OSError:
            return None
        if not fields or fields[0] != "cpu":
            return None
        v = [int(x) for x in fields[1:9]] + [0] * max(0, 8 - len(fields[1:9]))
        user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
        hz = os.sysconf("SC_CLK_TCK")
        t = os.times()
        return dict(busy=(user + nice + system + irq + softirq) / hz, steal=steal / hz,
                    own=t.user + t.system, wall=time.perf_counter())

    def start(self):
        self._t0 = self._read()
        return self

    def stop(self):
        t1 = self._read()
        if self._t0 is None or t1 is None:
            return None
        t0 = self._t0
        cores = os.cpu_count() or 1
        span = max((t1["wall"] - t0["wall"]) * cores, 1e-9)
        others = (t1["busy"] - t0["busy"]) - (t1["own"] - t0["own"])
        return dict(others=max(0.0, others / span), steal=(t1["steal"] - t0["steal"]) / span)


def wait_until_idle(max_wait, threshold=0.10, window=1.0):
    """Wait (up to ``max_wait`` s) for a ``window`` in which other processes use less than
    ``threshold`` of the cores. Returns the seconds waited, or None if it never got idle."""
    t0 = time.perf_counter()
    while True:
        m = CpuMonitor().start()
        time.sleep(window)
        busy = m.stop()
        waited = time.perf_counter() - t0
        if busy is None or busy["others"] < threshold:
            return waited
        if waited >= max_wait:
            return None


#: environment variable choosing the allocator mode (see `set_malloc_mode`)
MALLOC_ENV = "FASTGD_BENCH_MALLOC"
MALLOC_MODES = ("steady", "default")


def set_malloc_mode(mode):
    """Make glibc's malloc keep freed memory (``"steady"``), or leave it alone (``"default"``).

    numpy temporaries (the reference backend, 4 MB each at 1M float32 elements) and torch's
    foreach / single-tensor temporaries are large allocations. By default glibc serves them
    with fresh ``mmap`` pages, or returns freed heap memory to the OS, depending on its
    history; each step then faults thousands of pages in (about 5,800 a step for Adam's
    reference at 1M float32, a 5x slow-down on this VM). ``"steady"`` turns ``mmap`` off for
    allocations and never trims the heap, so steps after the warm-up fault nothing in:
    the best case for allocating contenders, and repeatable. fastgd-native and torch fused
    allocate (almost) nothing per step and are unaffected.

    Process-wide and irreversible. Returns a description for the machine facts.
    """
    if mode not in MALLOC_MODES:
        raise ValueError(f"malloc mode must be one of {MALLOC_MODES}, got {mode!r}")
    if mode == "default":
        return "default (glibc untouched: large temporaries may fault pages in every step)"
    try:
        import ctypes
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "default (steady requested, but no glibc mallopt here)"
    m_trim_threshold, m_mmap_max = -1, -4
    ok = mallopt(m_mmap_max, 0) and mallopt(m_trim_threshold, 1 << 30)
    return ("steady (mallopt: M_MMAP_MAX=0, M_TRIM_THRESHOLD=1 GiB: freed memory is reused, "
            "no page faults per step)" if ok else "default (mallopt refused the settings)")


def minor_faults():
    """Minor page faults of this process so far (0 where unknown)."""
    try:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    except (ImportError, OSError):
        return 0


def print_run_footer(monitor, elapsed):
    """The closing lines of a ratio script: load average, other processes' CPU, duration."""
    if hasattr(os, "getloadavg"):
        print("  load average at end (1/5/15 min): "
              + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    busy = monitor.stop()
    if busy is not None:
        print(f"  other processes used {busy['others']:.0%} of the CPUs during the run "
              f"(hypervisor steal {busy['steal']:.0%}); much above a few % means noisy numbers")
    print(f"  measured in {elapsed:.1f} s")


def pct(xs, q):
    """The q-quantile of xs (nearest rank)."""
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def table(rows, header):
    """Rows as a fixed-width text table with rules above and below the header."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    out = [line, "  ".join(str(h).ljust(w) for h, w in zip(header, widths)), line]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    out.append(line)
    return "\n".join(out)
