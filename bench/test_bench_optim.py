"""Optimizer step benchmarks: fastgd (native, reference) against torch.optim on the CPU.

Run with ``pytest bench/ --benchmark-only``. Each benchmark times single
``optimizer.step()`` calls of one contender; the contenders of a scenario share a
pytest-benchmark group, so the table puts them side by side. See bench/README.md.
"""
import gc

import pytest

import _common
from _common import M

# scenario id -> (optimizer, number of parameters, elements per parameter, dtype)
ADAM_SCENARIOS = {
    "20M-float32": ("adam", 1, 20 * M, "float32"),
    "1000x1000-float32": ("adam", 1000, 1000, "float32"),
    "1M-float32": ("adam", 1, M, "float32"),
    "1M-float64": ("adam", 1, M, "float64"),
}
OTHER_OPTIMIZERS = ("sgd-momentum", "rmsprop", "adagrad", "adamw")

# the reference backend (plain numpy) takes ~0.15 s per step at 20M elements
_SLOW = {("20M-float32", "fastgd-reference"): dict(budget=0.6, min_rounds=3, warmup=1)}


def _cases():
    for sid, (opt, n, numel, dtype) in ADAM_SCENARIOS.items():
        for kind in _common.KINDS:
            yield pytest.param(opt, n, numel, dtype, kind, f"{opt} {sid}", _SLOW.get((sid, kind), {}),
                               id=f"{opt}-{sid}-{kind}")
    for opt in OTHER_OPTIMIZERS:
        for kind in _common.KINDS:
            yield pytest.param(opt, 1, M, "float32", kind, f"{opt} 1M-float32", {},
                               id=f"{opt}-1M-float32-{kind}")


@pytest.mark.parametrize("opt, n_params, numel, dtype, kind, group, timing", list(_cases()))
def test_step(request, run_step, opt, n_params, numel, dtype, kind, group, timing):
    torch = request.getfixturevalue("torch_mod") if kind.startswith("torch") else None
    if kind == "torch-fused" and not _common.torch_has_fused(torch, opt):
        pytest.skip(f"torch.optim.{_common.OPTIMIZERS[opt][0]} has no fused=True implementation")
    gc.collect()
    contender = _common.build(kind, opt, n_params, numel, dtype, torch=torch)
    run_step(contender, group, extra=dict(optimizer=opt, n_params=n_params, numel=numel,
                                          dtype=dtype),
             **timing)
