"""What `fastgd.minimize` adds over a bare Python gradient-descent loop.

The work: the example function f(x, y) = x^2 + y^2 + xy with its cheap Python gradient,
1000 iterations of plain gradient descent from (1, 3) (``tol=0, tol_change=0``, so every
contender runs all 1000). Contenders:

* ``bare``: ``x -= lr * grad(x)``, nothing else;
* ``bare+f``: the same plus ``history.append(f(x))`` (minimize records f at every iterate);
* ``minimize``: ``fastgd.minimize(f, x0, grad=grad, lr=lr, max_iter=1000, tol=0,
  tol_change=0)`` (native kernel step, gradient norm, path, history, divergence checks).

Run ``pytest bench/test_bench_minimize.py --benchmark-only`` (the ratios are printed after
pytest-benchmark's table) or ``python bench/test_bench_minimize.py`` (interleaved rounds,
a quick ratio table without pytest).
"""
import time

import numpy as np
import pytest

from fastgd.descent.minimize import minimize

N = 1000
LR = 1e-3
X0 = np.array([1.0, 3.0])
GROUP = f"minimize overhead: x^2 + y^2 + xy, {N} GD iterations"


def fun(p):
    return p[0] ** 2 + p[1] ** 2 + p[0] * p[1]


def grad(p):
    return np.array([2 * p[0] + p[1], 2 * p[1] + p[0]])


def bare():
    x = X0.copy()
    for _ in range(N):
        x -= LR * grad(x)
    return x


def bare_f():
    x = X0.copy()
    history = [fun(x)]
    for _ in range(N):
        x -= LR * grad(x)
        history.append(fun(x))
    return x


def run_minimize():
    res = minimize(fun, X0, grad=grad, lr=LR, max_iter=N, tol=0, tol_change=0)
    return res.x


CONTENDERS = {"bare": bare, "bare+f": bare_f, "minimize": run_minimize}

#: seconds per call by contender, best and median of the rounds (filled by the benchmarks)
_BEST, _MEDIANS = {}, {}


class _Report:
    """Prints the ratios after pytest-benchmark's table."""

    def pytest_terminal_summary(self, terminalreporter):
        if "minimize" not in _BEST:
            return
        tr = terminalreporter
        # the best round is the cost without interference from other processes; medians
        # move with the machine's load (they are in pytest-benchmark's table too)
        tr.write_sep("-", f"fastgd.minimize overhead (best round of {N} iterations)")
        for line in ratio_lines(_BEST):
            tr.write_line(line)
        tr.write_line("medians: " + ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in _MEDIANS.items()))


def ratio_lines(times):
    m = times["minimize"]
    lines = [f"{k:>8}: {v * 1e3:8.3f} ms  ({v / N * 1e6:5.2f} us/iteration)"
             for k, v in times.items()]
    for base in ("bare", "bare+f"):
        if base in times:
            lines.append(f"minimize / {base}: {m / times[base]:.2f}x "
                         f"(+{(m - times[base]) / N * 1e6:.2f} us/iteration)")
    return lines


@pytest.fixture(scope="module", autouse=True)
def _report(request):
    plugin = _Report()
    request.config.pluginmanager.register(plugin, "fastgd-minimize-overhead")
    yield


def test_contenders_do_the_same_work():
    xs = {k: fn() for k, fn in CONTENDERS.items()}
    for k, x in xs.items():
        np.testing.assert_allclose(x, xs["bare"], rtol=1e-12, err_msg=k)
    assert minimize(fun, X0, grad=grad, lr=LR, max_iter=N, tol=0, tol_change=0).nit == N


@pytest.mark.parametrize("name", list(CONTENDERS))
def test_overhead(benchmark, name):
    benchmark.group = GROUP
    fn = CONTENDERS[name]
    fn()  # warm up
    benchmark.pedantic(fn, rounds=40, iterations=1, warmup_rounds=2)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None:
        _BEST[name] = stats.stats.min
        _MEDIANS[name] = stats.stats.median
        benchmark.extra_info["us_per_iteration_best"] = stats.stats.min / N * 1e6


def interleaved(rounds=30):
    """Best-of-``rounds`` seconds per call of each contender, the rounds interleaved so that
    a change in machine load hits every contender alike."""
    best = {k: float("inf") for k in CONTENDERS}
    for _ in range(rounds):
        for k, fn in CONTENDERS.items():
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


if __name__ == "__main__":
    for line in ratio_lines(interleaved()):
        print(line)
