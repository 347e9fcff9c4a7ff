"""Neural-network benchmarks: fastgd (native, reference) against numpy and torch eager.

Run with ``pytest bench/test_bench_nn.py --benchmark-only`` (about a minute on 2 cores).
Three groups, the contenders of a group side by side (see bench/README_nn.md):

* ``nn digits 64-128-10 b32 adam: 1 epoch (43 steps)``: one epoch of training on the digits
  (X / 16, 25 % held out), MLP 64-128-10 ReLU, Adam lr 1e-3, batch 32: ``fastgd.fit`` with
  ``epochs=1`` (native and reference backends), the same step in plain numpy, torch eager;
* ``nn linear 784x512 b256: forward + backward``: ``fastgd.nn.Linear`` (native), the same
  layer compiled in a ``Sequential``, numpy's three matmuls + bias add + bias-gradient sum,
  ``torch.nn.Linear`` forward + ``backward(grad_output)``;
* ``nn mlp 784-1024-1024-10 b256 adam: 1 epoch (8 steps)``: one epoch over 8 random batches
  of 256 rows: ``fastgd.fit`` (native), torch eager, numpy.

Every round of a benchmark is exactly one call (one epoch, or one forward + backward).
fastgd and torch use 2 threads. Torch benchmarks are skipped when torch is not installed.
After pytest-benchmark's tables a summary gives each contender's median per call and per
training step, and its ratio to fastgd-native. Nothing here asserts on a timing.
"""
import gc
import time

import pytest

import _common
import _nn_common as C

#: group -> {contender: (median seconds per call, training steps per call)}
_MEDIANS = {}
#: group -> largest share of the cores other processes used while one of its tests ran
_OTHERS = {}

#: seconds of pause before each benchmark: an OpenBLAS worker spins ~0.1 s after a
#: multi-threaded call, and on 2 cores the previous library's spinning pool slows the next one
SETTLE = 0.15

G_DIGITS = "nn digits 64-128-10 b32 adam: 1 epoch (43 steps)"
G_LINEAR = "nn linear 784x512 b256: forward + backward"
G_MLP = "nn mlp 784-1024-1024-10 b256 adam: 1 epoch (8 steps)"
_GROUPS = (G_DIGITS, G_LINEAR, G_MLP)


@pytest.fixture(scope="module")
def torch_nn():
    """torch with `_common.THREADS` intra-op threads, or a skip when it is not installed."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(_common.THREADS)
    return torch


@pytest.fixture(scope="module", autouse=True)
def _nn_summary(request):
    """Adds the per-step summary at the end of the run (a plugin registered on the fly)."""
    pm = request.config.pluginmanager
    if pm.get_plugin("fastgd_nn_summary") is None:
        pm.register(_Summary(), "fastgd_nn_summary")
    _common.configure_fastgd_threads()
    yield


@pytest.fixture
def run_calls(benchmark):
    """``run_calls(kind, fn, group, steps=1, budget=1.5, min_rounds=5, max_rounds=1000,
    warmup=2)``: a `SETTLE` pause, ``warmup`` untimed calls, then ``benchmark.pedantic`` over
    rounds of exactly one call each (plus one warm-up round), as many as fit in about
    ``budget`` seconds. ``steps``: training steps in one call (for the per-step summary)."""

    def run(kind, fn, group, *, steps=1, budget=1.5, min_rounds=5, max_rounds=1000, warmup=2,
            extra=None):
        benchmark.group = group
        # let the thread pools of the previous test's library go idle (ratios_nn.SETTLE)
        time.sleep(SETTLE)
        fn()
        t0 = time.perf_counter()
        for _ in range(max(warmup - 1, 0)):
            fn()
        per_call = (time.perf_counter() - t0) / max(warmup - 1, 1)
        rounds = int(max(min_rounds, min(max_rounds, budget / max(per_call, 1e-9))))
        benchmark.extra_info.update(extra or {})
        benchmark.extra_info.update(contender=kind, steps_per_call=steps)
        gc.collect()
        monitor = _common.CpuMonitor().start()
        benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)
        busy = monitor.stop()
        if busy is not None:
            benchmark.extra_info["others_cpu"] = round(busy["others"], 3)
            _OTHERS[group] = max(_OTHERS.get(group, 0.0), busy["others"])
        stats = getattr(benchmark, "stats", None)
        if stats is not None and getattr(stats, "stats", None) is not None:
            median = stats.stats.median
            benchmark.extra_info["median_per_step_s"] = median / steps
            _MEDIANS.setdefault(group, {})[kind] = (median, steps)

    return run


# ----------------------------------------------------------------------------- 1. digits

DIGITS_KINDS = ("fastgd-native", "fastgd-reference", "numpy", "torch")


@pytest.fixture(scope="module")
def digits():
    return C.digits_data()


@pytest.mark.parametrize("kind", DIGITS_KINDS)
def test_digits_epoch(request, run_calls, digits, kind):
    Xtr, _, ytr, _ = digits
    bs, sizes = C.DIGITS_BATCH, C.DIGITS_SIZES
    trainer = _trainer(request, kind, Xtr, ytr, bs, sizes)
    run_calls(kind, lambda: trainer.epoch(seed=0, epochs=1), G_DIGITS,
              steps=trainer.steps_per_epoch, budget=1.5,
              extra=dict(sizes=list(sizes), batch_size=bs, rows=len(Xtr)))


# ----------------------------------------------------------------------------- 2. Linear

LINEAR_KINDS = ("fastgd-native", "fastgd-compiled", "numpy", "torch")


@pytest.mark.parametrize("kind", LINEAR_KINDS)
def test_linear_forward_backward(request, run_calls, kind):
    torch = request.getfixturevalue("torch_nn") if kind == "torch" else None
    contender = C.LinearContender(kind, torch=torch)
    run_calls(kind, contender.step, G_LINEAR, budget=1.5, warmup=3,
              extra=dict(batch=C.LINEAR_BATCH, in_features=C.LINEAR_IN,
                         out_features=C.LINEAR_OUT))


# ----------------------------------------------------------------------------- 3. big MLP

MLP_KINDS = ("fastgd-native", "torch", "numpy")


@pytest.fixture(scope="module")
def mlp():
    return C.mlp_data()


@pytest.mark.parametrize("kind", MLP_KINDS)
def test_mlp_epoch(request, run_calls, mlp, kind):
    X, y = mlp
    bs, sizes = C.MLP_BATCH, C.MLP_SIZES
    gc.collect()
    trainer = _trainer(request, kind, X, y, bs, sizes)
    run_calls(kind, lambda: trainer.epoch(seed=0, epochs=1), G_MLP,
              steps=trainer.steps_per_epoch, budget=2.0, min_rounds=3, warmup=2,
              extra=dict(sizes=list(sizes), batch_size=bs, rows=len(X)))


# ----------------------------------------------------------------------------- summary

class _Summary:
    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter):
        if not _MEDIANS:
            return
        tr = terminalreporter
        tr.write_sep("-", "fastgd nn benchmarks: median per call and per step; (Nx) = "
                          "median of the contender / median of fastgd-native")
        for group in _GROUPS:
            med = _MEDIANS.get(group)
            if not med:
                continue
            base = med.get("fastgd-native")
            busy = f" (other processes used up to {_OTHERS[group]:.0%} of the cores)" \
                if group in _OTHERS else ""
            tr.write_line(f"{group}:{busy}")
            for kind, (m, steps) in med.items():
                per_step = f", {_fmt(m / steps)} per step" if steps > 1 else ""
                ratio = f" ({m / base[0]:.2f}x)" if base and kind != "fastgd-native" else ""
                tr.write_line(f"    {kind:<17} {_fmt(m)} per call{per_step}{ratio}")


def _trainer(request, kind, X, y, batch_size, sizes):
    """The MLP trainer of contender ``kind``: fastgd-<backend> (fit), numpy or torch."""
    if kind.startswith("fastgd"):
        return C.FastgdFit(X, y, batch_size, sizes, backend=kind.split("-", 1)[1])
    if kind == "numpy":
        return C.NumpyMLP(X, y, batch_size, C.initial_weights(sizes))
    torch = request.getfixturevalue("torch_nn")
    return C.TorchMLP(X, y, batch_size, C.initial_weights(sizes), torch)


def _fmt(s):
    return f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s * 1e3:.3f} ms"
