"""Measure fastgd's speed goals side by side in one process and print a table.

    python bench/ratios.py            # full run (about a minute)
    python bench/ratios.py --quick    # a rough look (about 15 s)

The goals (each a ratio from one run, 2 threads for fastgd and torch):

* Adam, one float32 parameter of 20M elements: fastgd no slower than torch fused, and at
  least 0.9x the bandwidth bound measured in the same run (``bandwidth-bound``: a plain C
  loop, ``fastgd._optim.stream_probe``, reading four and writing three arrays of that size
  over the same threads: ratio bound time / fastgd time >= 0.9);
* Adam, 1000 float32 parameters of 1000 elements: fastgd >= 10x faster than torch fused;
* Adam, 1M float32 elements: backend="native" >= 10x faster than backend="reference".

Every measurement is one ``optimizer.step()`` timed with ``time.perf_counter``. After a
warm-up, each round runs every contender of the scenario in turn (the order rotates from
round to round), each for a short burst of consecutive steps timed one by one:

* the first step of a burst runs right after *another* contender's steps: the
  "interleaved" regime, whose caches were just used by someone else (as in a training loop,
  where the forward and backward passes run between two optimizer steps);
* the later steps of a burst run right after the contender's own previous step: the
  "warm" regime (what a plain back-to-back benchmark loop such as pytest-benchmark's sees).

The table reports the median step time of each contender per regime and their ratio
(competitor median / fastgd median, i.e. how many times faster fastgd is). The script only
reports: its exit code is 0 whether or not the goals are met.
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
from _common import M  # noqa: E402

REGIMES = ("interleaved", "warm")


class Scenario:
    def __init__(self, title, opt, n_params, numel, dtype, kinds, comparisons, *, goal=False,
                 burst=3, budget=(10.0, 2.0)):
        self.title = title
        self.opt, self.n_params, self.numel, self.dtype = opt, n_params, numel, dtype
        self.kinds = kinds
        # (fastgd kind, competitor kind, goal ratio or None)
        self.comparisons = comparisons
        self.goal = goal
        self.burst = burst
        self.budget = budget  # seconds of timed rounds: (full, quick)


NATIVE, REF, FUSED, FOREACH = "fastgd-native", "fastgd-reference", "torch-fused", "torch-foreach"
BOUND = _common.BOUND

GOAL_SCENARIOS = [
    Scenario("Adam 20M float32 (1 param)", "adam", 1, 20 * M, "float32",
             [NATIVE, FUSED, BOUND], [(NATIVE, FUSED, 1.0), (NATIVE, BOUND, 0.9)], goal=True,
             burst=2),
    Scenario("Adam 1000x1000 float32", "adam", 1000, 1000, "float32", [NATIVE, FUSED],
             [(NATIVE, FUSED, 10.0)], goal=True),
    Scenario("Adam 1M float32", "adam", 1, M, "float32", [NATIVE, REF],
             [(NATIVE, REF, 10.0)], goal=True),
]
OTHER_SCENARIOS = [
    Scenario(f"{name} 1M float32", opt, 1, M, "float32", [NATIVE, REF, FUSED, FOREACH],
             [(NATIVE, FUSED, None), (NATIVE, FOREACH, None), (NATIVE, REF, None)],
             budget=(5.0, 1.0))
    for opt, name in [("sgd-momentum", "SGD-momentum"), ("rmsprop", "RMSprop"),
                      ("adagrad", "Adagrad"), ("adamw", "AdamW")]
]


def run_scenario(sc, torch, quick, wait_idle=0):
    """{kind: {regime: [seconds, ...]}} plus notes, for one scenario."""
    notes = []
    contenders = {}
    for kind in sc.kinds:
        if kind.startswith("torch") and torch is None:
            notes.append(f"{kind}: n/a (torch not installed)")
            continue
        try:
            contenders[kind] = _common.build(kind, sc.opt, sc.n_params, sc.numel, sc.dtype,
                                             torch=torch)
        except NotImplementedError as e:
            notes.append(f"{kind}: n/a ({e})")
    kinds = list(contenders)
    # warm-up: allocate state, fault pages in, estimate the cost of a round
    per_step = {}
    for kind in kinds:
        c = contenders[kind]
        c.step()
        t0 = time.perf_counter()
        for _ in range(2):
            c.step()
        per_step[kind] = (time.perf_counter() - t0) / 2
    round_cost = sc.burst * sum(per_step.values())
    budget = sc.budget[1] if quick else sc.budget[0]
    min_rounds = 5 if quick else 15
    rounds = int(max(min_rounds, min(2000, budget / max(round_cost, 1e-9))))
    times = {k: {r: [] for r in REGIMES} for k in kinds}
    faults = {k: {r: 0 for r in REGIMES} for k in kinds}
    clock, minflt = time.perf_counter, _common.minor_faults
    if wait_idle > 0:
        waited = _common.wait_until_idle(wait_idle)
        notes.append(f"machine not idle after waiting {wait_idle:g} s; measured anyway"
                     if waited is None else f"waited {waited:.0f} s for an idle machine")
    gc.collect()
    monitor = _common.CpuMonitor().start()
    gc.disable()
    try:
        for r in range(rounds):
            shift = r % len(kinds)
            for kind in kinds[shift:] + kinds[:shift]:
                step = contenders[kind].step
                for j in range(sc.burst):
                    f0 = minflt()
                    t0 = clock()
                    step()
                    t1 = clock()
                    f1 = minflt()
                    regime = REGIMES[0] if j == 0 else REGIMES[1]
                    times[kind][regime].append(t1 - t0)
                    faults[kind][regime] += f1 - f0
    finally:
        gc.enable()
    busy = monitor.stop()
    # every contender took 3 + rounds * burst steps from the same data: compare the results
    if NATIVE in contenders:
        for kind in kinds:
            if kind not in (NATIVE, BOUND):
                d = _common.max_abs_diff(contenders[NATIVE], contenders[kind])
                notes.append(f"check: max |param({kind}) - param({NATIVE})| = {d:.2e} "
                             f"after {3 + rounds * sc.burst} steps")
    notes.insert(0, f"{rounds} rounds x {sc.burst}-step bursts per contender "
                    f"(+3 warm-up steps)")
    if busy is not None:
        notes.insert(1, f"while timing, other processes used {busy['others']:.0%} of the "
                        f"{os.cpu_count()} cores (hypervisor steal {busy['steal']:.0%})")
    del contenders
    gc.collect()
    return times, faults, notes, busy


def fmt_ms(s):
    return "n/a" if s is None else f"{s * 1e3:.3f} ms"


def fmt_ratio(r):
    """3 decimals below 10x, so that a ratio next to its goal shows on which side it is."""
    return "n/a" if r is None else f"{r:.3f}x" if r < 10 else f"{r:.1f}x"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds (a rough look)")
    ap.add_argument("--threads", type=int, default=_common.THREADS,
                    help=f"threads for fastgd and torch (default {_common.THREADS})")
    ap.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                    help="before each scenario, wait up to SECONDS for a second in which other "
                         "processes use < 10%% of the cores (default 0: do not wait)")
    ap.add_argument("--malloc", choices=_common.MALLOC_MODES,
                    default=os.environ.get(_common.MALLOC_ENV, "steady"),
                    help="steady: glibc malloc keeps freed memory, so allocating contenders "
                         "(fastgd reference, torch foreach/single) do not fault pages in every "
                         "step; default: leave malloc alone (results then depend on the "
                         f"allocator's history). Default: ${_common.MALLOC_ENV} or steady")
    args = ap.parse_args(argv)

    malloc = _common.set_malloc_mode(args.malloc)
    _common.configure_fastgd_threads(args.threads)
    torch = _common.import_torch(args.threads)

    print("== machine")
    facts = _common.machine_facts(torch)
    _common.print_facts(facts + [("malloc", malloc)], quick=args.quick)

    goal_rows, other_rows, details, verdicts = [], [], [], []
    start = time.perf_counter()
    whole = _common.CpuMonitor().start()
    for sc in GOAL_SCENARIOS + OTHER_SCENARIOS:
        print(f"== measuring {sc.title} ...", flush=True)
        times, faults, notes, busy = run_scenario(sc, torch, args.quick, args.wait_idle)
        others = "?" if busy is None else f"{busy['others']:.0%}"
        med = {k: {r: statistics.median(v[r]) for r in REGIMES} for k, v in times.items()}
        for kind, by_regime in times.items():
            for regime in REGIMES:
                xs = by_regime[regime]
                details.append([sc.title, kind, regime, fmt_ms(med[kind][regime]),
                                fmt_ms(pct(xs, 0.1)), fmt_ms(pct(xs, 0.9)), len(xs),
                                f"{faults[kind][regime] / max(len(xs), 1):.0f}"])
        for fg, other, goal in sc.comparisons:
            for regime in REGIMES:
                a = med.get(fg, {}).get(regime)
                b = med.get(other, {}).get(regime)
                ratio = None if a is None or b is None else b / a
                if goal is None:
                    met = "-"
                elif ratio is None:
                    met = "n/a"
                else:
                    met = "yes" if ratio >= goal else "NO"
                row = [f"{sc.title}: {fg.split('-')[1]} vs {other}", regime, fmt_ms(a),
                       fmt_ms(b), fmt_ratio(ratio),
                       "-" if goal is None else f">= {goal:g}x", met, others]
                (goal_rows if sc.goal else other_rows).append(row)
                if goal is not None:
                    verdicts.append((sc.title, regime, ratio, goal, met, busy))
        for n in notes:
            print(f"  {n}")
    elapsed = time.perf_counter() - start

    header = ["scenario", "regime", "fastgd median", "competitor median", "ratio", "goal",
              "met", "others' CPU"]
    print()
    print("== goals (ratio = competitor median / fastgd median; higher is better for fastgd)")
    print(table(goal_rows, header))
    print()
    print("== other optimizers, 1M float32 elements (no goal; for reference)")
    print(table(other_rows, header))
    print()
    print("== per-contender step times (one optimizer.step() each)")
    print(table(details, ["scenario", "contender", "regime", "median", "p10", "p90", "n",
                          "page faults/step"]))
    print()
    print("== summary")
    for title, regime, ratio, goal, met, busy in verdicts:
        r = fmt_ratio(ratio)
        noisy = "" if busy is None or busy["others"] < 0.10 else \
            f"  [disturbed: other processes used {busy['others']:.0%} of the cores]"
        print(f"  {title} [{regime}]: {r} (goal >= {goal:g}x) -> "
              f"{'met' if met == 'yes' else 'NOT met' if met == 'NO' else 'n/a'}{noisy}")
    _common.print_run_footer(whole, elapsed)
    return 0


if __name__ == "__main__":
    main()
    sys.exit(0)
