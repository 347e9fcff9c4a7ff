"""pytest-benchmark set-up for the optimizer benchmarks (``pytest bench/ --benchmark-only``).

* fastgd and torch each use `_common.THREADS` (2) threads;
* ``torch_mod``: torch, or a clean skip when it is not installed;
* ``run_step``: warms a contender up, then times single ``step()`` calls with
  ``benchmark.pedantic`` (one step per round, a round count sized to a time budget);
* a short "speed-up" summary per group after pytest-benchmark's own table;
* ``FASTGD_BENCH_MALLOC=steady`` in the environment makes glibc malloc keep freed memory
  for the whole session (see `_common.set_malloc_mode`); by default malloc is left alone.

Nothing here asserts on a timing.
"""
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

#: the allocator mode of this session (process-wide, so only on request: the other
#: benchmark modules of bench/ share the process)
MALLOC = _common.set_malloc_mode(os.environ.get(_common.MALLOC_ENV, "default"))

#: median seconds per step, by group and contender kind, filled by ``run_step``
_MEDIANS = {}
#: share of the cores other processes used while a group's benchmarks ran (max over tests)
_OTHERS = {}
#: minor page faults per timed step, by group and contender kind
_FAULTS = {}


@pytest.fixture(scope="session", autouse=True)
def _fastgd_threads():
    _common.configure_fastgd_threads()
    yield


@pytest.fixture(scope="session")
def torch_mod():
    """torch with `_common.THREADS` threads; skips the test when torch is missing."""
    # like pytest.importorskip("torch"), but also skips (instead of failing) when an
    # installed torch cannot be imported
    torch = _common.import_torch()
    if torch is None:
        pytest.skip("torch is not installed (or not importable): torch comparisons skipped")
    return torch


@pytest.fixture
def run_step(benchmark):
    """``run_step(contender, group, budget=1.0, min_rounds=5, max_rounds=1000, warmup=3)``.

    Runs ``warmup`` untimed steps (allocating the optimizer state, faulting pages in),
    estimates the cost of one step from them and benchmarks ``contender.step`` for about
    ``budget`` seconds: ``rounds`` rounds of exactly one step each.
    """

    def run(contender, group, *, budget=1.0, min_rounds=5, max_rounds=1000, warmup=3,
            extra=None):
        benchmark.group = group
        contender.step()  # the first step allocates the state: not representative
        t0 = time.perf_counter()
        for _ in range(max(warmup - 1, 1)):
            contender.step()
        per_step = (time.perf_counter() - t0) / max(warmup - 1, 1)
        rounds = int(max(min_rounds, min(max_rounds, budget / max(per_step, 1e-9))))
        benchmark.extra_info.update(extra or {})
        benchmark.extra_info["contender"] = contender.kind
        monitor = _common.CpuMonitor().start()
        f0 = _common.minor_faults()
        benchmark.pedantic(contender.step, rounds=rounds, iterations=1, warmup_rounds=1)
        faults = (_common.minor_faults() - f0) / (rounds + 1)
        busy = monitor.stop()
        benchmark.extra_info["page_faults_per_step"] = round(faults, 1)
        _FAULTS.setdefault(group, {})[contender.kind] = faults
        if busy is not None:
            benchmark.extra_info["others_cpu"] = round(busy["others"], 3)
            _OTHERS[group] = max(_OTHERS.get(group, 0.0), busy["others"])
        stats = getattr(benchmark, "stats", None)
        if stats is not None and getattr(stats, "stats", None) is not None:
            _MEDIANS.setdefault(group, {})[contender.kind] = stats.stats.median

    return run


def pytest_benchmark_update_machine_info(config, machine_info):
    torch = None
    try:
        import torch  # noqa: F811
    except ImportError:
        pass
    facts = _common.machine_facts(torch) + [("malloc", MALLOC)]
    machine_info["fastgd_bench"] = {str(k): str(v) for k, v in facts}


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter):
    if not _MEDIANS:
        return
    tr = terminalreporter
    tr.write_sep("-", "fastgd-native speed-up per group (median of other / median of native)")
    tr.write_line(f"malloc: {MALLOC}")
    for group in sorted(_MEDIANS):
        med = _MEDIANS[group]
        base = med.get("fastgd-native")
        parts = []
        for kind in _common.KINDS:
            if kind not in med:
                continue
            s = f"{kind} {med[kind] * 1e3:.3f} ms"
            if base and kind != "fastgd-native":
                s += f" ({med[kind] / base:.2f}x)"
            faults = _FAULTS.get(group, {}).get(kind, 0)
            if faults >= 1:
                s += f" [{faults:.0f} page faults/step]"
            parts.append(s)
        busy = f" (other processes used up to {_OTHERS[group]:.0%} of the cores)" \
            if group in _OTHERS else ""
        tr.write_line(f"{group}:{busy}")
        tr.write_line("    " + "; ".join(parts))
