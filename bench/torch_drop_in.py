"""fastgd.torch against torch.optim: ``optimizer.step()`` side by side in one process.

    python bench/torch_drop_in.py            # full run (a few minutes)
    python bench/torch_drop_in.py --quick    # a rough look (about a minute)

Scenarios (float32, 2 threads for fastgd and torch):

* (a) 1,000 parameters of 1,000 elements;
* (b) a real model: 48 blocks of ``Linear(256, 256)`` + ``LayerNorm(256)`` (192 tensors);
* (c) one parameter of 20M elements.

Contenders: ``fastgd.torch.<Name>`` and ``torch.optim.<Name>`` with ``foreach=False`` (the
for-loop), ``foreach=True`` and, where torch has it on the CPU (Adam, AdamW, SGD, Adagrad),
``fused=True``. Each contender owns a copy of the same parameters and reads the same fixed
``p.grad`` tensors (set once, so no allocation is timed); a step is the whole
``optimizer.step()``, hooks and all.

Goals: Adam (a) >= 5x torch fused, (b) >= 1.3x torch fused, (c) >= 1.0x torch fused;
RMSprop, NAdam, RAdam, Adamax and Adadelta (no fused CPU kernel in torch) >= 3x torch
foreach on (a) and (b).

Timing as in ``ratios.py``: after a warm-up, rounds run every contender in turn (rotating
order), each for a burst of steps timed one by one; the first step of a burst is the
"interleaved" regime (caches just used by another contender, as in training, where forward
and backward passes run between steps), the later ones "warm". Medians are reported, and
the ratio competitor median / fastgd median. The script only reports (exit code 0).
"""
import argparse
import gc
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402  (imports fastgd before torch: see README, "OpenMP runtime")
from _common import pct, table  # noqa: E402

REGIMES = ("interleaved", "warm")
M = 1_000_000
FASTGD, LOOP, FOREACH, FUSED = "fastgd.torch", "torch for-loop", "torch foreach", "torch fused"
KW = {"Adam": dict(lr=1e-3), "RMSprop": dict(lr=1e-2), "NAdam": dict(lr=2e-3),
      "RAdam": dict(lr=1e-3), "Adamax": dict(lr=2e-3), "Adadelta": dict(lr=1.0)}


def shapes_of(scenario, torch):
    """The parameter tensors' shapes of a scenario."""
    if scenario == "a":
        return [(1000,)] * 1000
    if scenario == "b":
        blocks = []
        for _ in range(48):
            blocks += [torch.nn.Linear(256, 256), torch.nn.LayerNorm(256)]
        return [tuple(p.shape) for p in torch.nn.Sequential(*blocks).parameters()]
    return [(20 * M,)]


TITLES = {"a": "(a) 1000 x 1000", "b": "(b) 48 x (Linear(256,256)+LayerNorm(256))",
          "c": "(c) one 20M tensor"}


class Contender:
    """One optimizer over its own copy of the parameters, with fixed gradients."""

    def __init__(self, kind, name, shapes, torch, ft):
        gen = torch.Generator().manual_seed(_common.SEED)
        self.params = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]
        for p in self.params:
            p.grad = torch.randn(p.shape, generator=gen)
        kw = dict(KW[name])
        if kind == FASTGD:
            self.opt = getattr(ft, name)(self.params, **kw)
        else:
            mode = {LOOP: dict(foreach=False), FOREACH: dict(foreach=True),
                    FUSED: dict(fused=True)}[kind]
            self.opt = getattr(torch.optim, name)(self.params, **kw, **mode)
        self.step = self.opt.step


def run(scenario, name, kinds, torch, ft, quick):
    shapes = shapes_of(scenario, torch)
    cons = {k: Contender(k, name, shapes, torch, ft) for k in kinds}
    per = {}
    for k, c in cons.items():
        c.step()
        t0 = time.perf_counter()
        for _ in range(2):
            c.step()
        per[k] = (time.perf_counter() - t0) / 2
    burst = 2 if scenario == "c" else 3
    budget = (1.5 if quick else 6.0) * (1.5 if name == "Adam" else 1.0)
    rounds = int(max(5 if quick else 15, min(1000, budget / (burst * sum(per.values())))))
    times = {k: {r: [] for r in REGIMES} for k in cons}
    order = list(cons)
    gc.collect()
    monitor = _common.CpuMonitor().start()
    gc.disable()
    clock = time.perf_counter
    try:
        for r in range(rounds):
            shift = r % len(order)
            for k in order[shift:] + order[:shift]:
                step = cons[k].step
                for j in range(burst):
                    t0 = clock()
                    step()
                    times[k][REGIMES[0] if j == 0 else REGIMES[1]].append(clock() - t0)
    finally:
        gc.enable()
    busy = monitor.stop()
    # all contenders took the same steps from the same data: they should agree
    ref = cons[FASTGD].params
    worst = max(float((a.detach() - b.detach()).abs().max())
                for k in cons if k != FASTGD for a, b in zip(ref, cons[k].params))
    steps = 3 + rounds * burst
    del cons
    gc.collect()
    return times, busy, f"{rounds} rounds x {burst}; max |param - fastgd's| after {steps} steps: {worst:.1e}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds (a rough look)")
    ap.add_argument("--threads", type=int, default=_common.THREADS)
    ap.add_argument("--only", choices=["a", "b", "c"], action="append",
                    help="run only these scenarios (repeatable)")
    args = ap.parse_args(argv)
    _common.set_malloc_mode("steady")
    _common.configure_fastgd_threads(args.threads)
    torch = _common.import_torch(args.threads)
    if torch is None:
        print("torch is not installed: nothing to compare (pip install 'fastgd[torch]')")
        return 0
    import fastgd.torch as ft

    print("== machine")
    _common.print_facts(_common.machine_facts(torch), quick=args.quick)
    plan = []  # (scenario, optimizer, kinds, [(competitor, goal)])
    for sc, goal in (("a", 5.0), ("b", 1.3), ("c", 1.0)):
        plan.append((sc, "Adam", [FASTGD, LOOP, FOREACH, FUSED],
                     [(FUSED, goal), (FOREACH, None), (LOOP, None)]))
    for name in ("RMSprop", "NAdam", "RAdam", "Adamax", "Adadelta"):
        for sc in ("a", "b"):
            plan.append((sc, name, [FASTGD, LOOP, FOREACH], [(FOREACH, 3.0), (LOOP, None)]))
        plan.append(("c", name, [FASTGD, LOOP, FOREACH], [(FOREACH, None), (LOOP, None)]))
    if args.only:
        plan = [p for p in plan if p[0] in args.only]
    rows, verdicts = [], []
    whole, start = _common.CpuMonitor().start(), time.perf_counter()
    for sc, name, kinds, comparisons in plan:
        title = f"{name} {TITLES[sc]}"
        print(f"== measuring {title} ...", flush=True)
        times, busy, note = run(sc, name, kinds, torch, ft, args.quick)
        print(f"  {note}")
        others = "?" if busy is None else f"{busy['others']:.0%}"
        med = {k: {r: statistics.median(v[r]) for r in REGIMES} for k, v in times.items()}
        for regime in REGIMES:
            a = med[FASTGD][regime]
            for other, goal in comparisons:
                b = med[other][regime]
                ratio = b / a
                met = "-" if goal is None else ("yes" if ratio >= goal else "NO")
                rows.append([title, regime, f"{a * 1e3:.3f} ms",
                             f"{other}: {b * 1e3:.3f} ms (p10-p90 {pct(times[other][regime], .1) * 1e3:.2f}-"
                             f"{pct(times[other][regime], .9) * 1e3:.2f})",
                             f"{ratio:.2f}x", "-" if goal is None else f">= {goal:g}x", met, others])
                if goal is not None:
                    verdicts.append((title, regime, other, ratio, goal))
    print()
    print("== optimizer.step() medians (ratio = competitor / fastgd.torch; higher is better)")
    print(table(rows, ["scenario", "regime", "fastgd.torch", "competitor", "ratio", "goal",
                       "met", "others' CPU"]))
    print()
    print("== summary")
    for title, regime, other, ratio, goal in verdicts:
        print(f"  {title} [{regime}] vs {other}: {ratio:.2f}x (goal >= {goal:g}x) -> "
              f"{'met' if ratio >= goal else 'NOT met'}")
    _common.print_run_footer(whole, time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    main()
    sys.exit(0)
