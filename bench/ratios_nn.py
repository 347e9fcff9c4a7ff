"""Measure fastgd's neural-network speed goals side by side in one process and print tables.

    python bench/ratios_nn.py                 # full run (about a minute on 2 idle cores)
    python bench/ratios_nn.py --quick         # a rough look (about 30 s)
    python bench/ratios_nn.py --no-profile    # skip the digits-step profile
    python bench/ratios_nn.py --only mlp,linear   # some parts only (digits, linear, mlp, profile)
    python bench/ratios_nn.py --wait-idle 60  # before each part, wait up to 60 s for an idle machine

Scenarios (fastgd and torch with 2 threads; BLAS at its default thread count):

1. digits, MLP 64-128-10 ReLU, Adam lr 1e-3, batch 32 (X = digits / 16 float32, 25 % held
   out with ``fastgd.datasets.train_test_split(X, y, 0.25, seed=0)``):
   (a) test accuracy after 30 epochs of ``fastgd.fit`` (goal >= 0.96);
   (b) time per training step through ``fastgd.fit`` (a whole fit of ``--epochs-per-fit``
       epochs, divided by its number of steps) versus plain numpy (goal: fastgd >= 5x
       faster), PyTorch eager (goal: >= 25x), JAX with the epoch as one ``jax.jit`` +
       ``lax.scan`` call (goal: >= 2.5x; and ``jax.jit`` per step, for information; both
       skipped with a message without jax), every contender timed as whole epochs over the
       same shuffled batches, and the step's own five products alone (one C loop through
       fastgd's BLAS layer, ``fastgd._nn_ops.products``): every contender's time is also
       given as a multiple of theirs (goal: fit's step at most 1.35x); plus the per-call
       cost of fit's pieces (``program.train_batch``, ``opt.backup().save``,
       ``opt.step(model.gradients())``).
   blas: the same five products through fastgd's BLAS layer and through every OpenBLAS in
       the process (scipy-openblas32's raw CBLAS, numpy's, scipy's), each in the same C
       loop, one thread (goal: fastgd within 5% of the fastest).
2. one Linear(784, 512) float32 forward + backward at batch 256: ``fastgd.nn.Linear``
   (native) versus numpy's three matmuls + bias add + bias-gradient sum (goal: fastgd
   throughput >= 1.0x numpy's); the compiled path (a one-layer Sequential) for reference.
3. one Adam training step of a 784-1024-1024-10 ReLU MLP at batch 256 float32 (random data,
   8 batches, seed 0): ``fastgd.fit`` versus PyTorch eager (goal: fastgd >= 1.25x), here in
   one process; ``bench/sharing.py`` runs each alone in its own process and right after
   numpy or torch work.

Then a profile of the digits step: each BLAS product of the step timed through scipy's
``scipy.linalg.blas.sgemm`` (Fortran-ordered inputs), numpy's matmul and fastgd's own
cython_blas path, with BLAS on its default and on 1 thread.

Contenders are interleaved: after a warm-up, each round runs every contender of a scenario
once (the order rotating from round to round), so all of them see the same disturbances.
Tables give medians (and 10th / 90th percentiles) and ratios = competitor median / fastgd
median (how many times faster fastgd is). The script reports; it asserts nothing and exits 0.
"""
import argparse
import gc
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import _common  # noqa: E402  (imports fastgd before torch: see README, "OpenMP runtime")
from _common import pct, table  # noqa: E402
import _nn_common as C  # noqa: E402
import fastgd  # noqa: E402


# ----------------------------------------------------------------------------- helpers

#: Seconds to sleep before each contender's turn (``--settle``). The contenders use three
#: thread pools (scipy's OpenBLAS for fastgd, numpy's OpenBLAS, torch's OpenMP). After a
#: multi-threaded call an OpenBLAS worker keeps spinning (sched_yield) for about 2**28 cycles
#: (~0.1 s) before it sleeps; on 2 cores the pools of the contender that just ran then slow
#: the next one down (measured: a Linear(784, 512) forward + backward 1.3x-7x slower right
#: after another library's). Sleeping lets the other pools go idle, so each contender runs
#: as it would alone.
SETTLE = 0.15

def interleave(contenders, rounds, burst=1, per=1.0, on_round=None, settle=0.0, lead=0):
    """Run ``rounds`` rounds; in each, every callable of ``contenders`` (name -> callable)
    runs ``burst`` times in a row, each call timed on its own; the order rotates by round.
    ``on_round(r)`` (untimed) starts round ``r``. Before each contender's turn the process
    sleeps ``settle`` seconds and makes ``lead`` untimed calls (see `SETTLE`). Returns
    {name: [seconds / per, ...]} (``per``: units of work in one call). The garbage
    collector is off while timing."""
    names = list(contenders)
    times = {k: [] for k in names}
    clock = time.perf_counter
    gc.collect()
    gc.disable()
    try:
        for r in range(rounds):
            if on_round is not None:
                on_round(r)
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                f = contenders[name]
                if settle > 0:
                    time.sleep(settle)
                for _ in range(lead):
                    f()
                for _ in range(burst):
                    t0 = clock()
                    f()
                    t1 = clock()
                    times[name].append((t1 - t0) / per)
    finally:
        gc.enable()
    return times


def warm_cost(contenders, calls=2):
    """Seconds of one call of each contender, after one untimed call."""
    cost = {}
    for name, f in contenders.items():
        f()
        t0 = time.perf_counter()
        for _ in range(calls):
            f()
        cost[name] = (time.perf_counter() - t0) / calls
    return cost


def n_rounds(round_cost, budget, min_rounds, max_rounds=5000):
    return int(max(min_rounds, min(max_rounds, budget / max(round_cost, 1e-9))))


def fmt_t(s):
    if s is None:
        return "n/a"
    return f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s * 1e3:.3f} ms"


def verdict(value, goal):
    if value is None:
        return "n/a"
    return "yes" if value >= goal else "NO"


def busy_note(busy):
    if busy is None:
        return "-"
    return f"{busy['others']:.0%}"


class Report:
    """Collects the goal verdicts for the summary."""

    def __init__(self):
        self.goals = []  # (what, value text, goal text, met, others' CPU)

    def add(self, what, value, goal, met, busy):
        self.goals.append((what, value, goal, met, busy_note(busy)))


def time_rows(times, base, per_label, goals=None):
    """Rows: contender, median, p10, p90, n, ratio to ``base`` (competitor / base)."""
    goals = goals or {}
    med = {k: statistics.median(v) for k, v in times.items() if v}
    rows = []
    for k, v in times.items():
        if not v:
            continue
        ratio = None if base not in med or k == base else med[k] / med[base]
        goal = goals.get(k)
        rows.append([k, fmt_t(med[k]), fmt_t(pct(v, 0.1)), fmt_t(pct(v, 0.9)), len(v),
                     "-" if ratio is None else f"{ratio:.2f}x",
                     "-" if goal is None else f">= {goal:g}x",
                     "-" if goal is None else verdict(ratio, goal)])
    header = ["contender", f"median {per_label}", "p10", "p90", "n",
              f"{base} is ... faster", "goal", "met"]
    return med, rows, header


# ----------------------------------------------------------------------------- 1. digits

def scenario_digits(torch, args, report):
    print("== 1. digits MLP 64-128-10 ReLU, Adam lr 1e-3, batch 32", flush=True)
    Xtr, Xte, ytr, yte = C.digits_data()
    weights = C.initial_weights(C.DIGITS_SIZES)
    bs, sizes = C.DIGITS_BATCH, C.DIGITS_SIZES
    trainers = {
        "fastgd-native (fit)": C.FastgdFit(Xtr, ytr, bs, sizes, "native"),
        "fastgd-native per-step loop": C.FastgdManual(Xtr, ytr, bs, sizes),
        "fastgd-native (fit), flush_denormal": C.FastgdFitFlush(Xtr, ytr, bs, sizes),
        "fastgd-reference (fit)": C.FastgdFit(Xtr, ytr, bs, sizes, "reference"),
        "numpy": C.NumpyMLP(Xtr, ytr, bs, weights),
    }
    if torch is not None:
        trainers["torch eager"] = C.TorchMLP(Xtr, ytr, bs, weights, torch)
    import _jax_common as J
    have_jax, jax_note = J.available()
    if have_jax:
        trainers["jax lax.scan epoch"] = J.JaxScanEpoch(Xtr, ytr, bs, weights)
        trainers["jax jit step"] = J.JaxJitStep(Xtr, ytr, bs, weights)
        print(f"  jax {jax_note}: the epoch as one jax.jit + lax.scan call, and one jax.jit "
              "call per step")
    else:
        print(f"  JAX contenders skipped: {jax_note}")
    native = trainers["fastgd-native (fit)"]
    steps = native.steps_per_epoch
    print(f"  data: {len(Xtr)} training rows, {len(Xte)} test rows; {steps} steps per epoch "
          f"(last batch {len(Xtr) - (steps - 1) * bs} rows)")
    if torch is not None:
        print(f"  torch.optim.Adam implementation: "
              f"{C.torch_adam_impl(torch, trainers['torch eager'])}")

    # (a) accuracy after 30 epochs (same initial weights, same batches for every contender)
    rows = []
    for name, t in trainers.items():
        t0 = time.perf_counter()
        loss = t.epoch(seed=0, epochs=C.DIGITS_EPOCHS)
        el = time.perf_counter() - t0
        acc = t.accuracy(Xte, yte)
        diff = C.max_param_diff(native, t)
        rows.append([name, f"{acc:.4f}", f"{loss:.5f}", f"{el:.3f} s",
                     fmt_t(el / (C.DIGITS_EPOCHS * steps)),
                     "-" if t is native else f"{diff:.1e}"])
        if t is native:
            report.add("1a digits test accuracy after 30 epochs (fastgd.fit)", f"{acc:.4f}",
                       f">= {C.DIGITS_ACCURACY_GOAL}", verdict(acc, C.DIGITS_ACCURACY_GOAL), None)
    print(f"  (a) {C.DIGITS_EPOCHS} epochs from the same initial weights and batches "
          f"(fit(..., seed=0)); single run, also a warm-up:")
    print(table(rows, ["contender", "test accuracy", "final train loss", "time", "per step",
                       "max |param - fastgd-native|"]))

    # (b) time per step, interleaved epochs: in round r every contender trains E epochs on
    # the batch orders of seed 1001 + r (so all of them keep doing the same work)
    E = args.epochs_per_fit
    seed = [1000]
    calls = {name: (lambda t=t: t.epoch(seed[0], E)) for name, t in trainers.items()}
    # the step's own five products alone: the same number of steps' worth of them, in one C
    # loop through fastgd's BLAS layer (the calls the compiled program makes)
    from fastgd import _nn_ops
    specs = C.digits_products()
    PRODUCTS = "the 5 products alone (fastgd BLAS)"
    calls[PRODUCTS] = lambda: _nn_ops.products(specs, E * steps)
    cost = warm_cost(calls, calls=1)   # 2 fits of E epochs each, on seed 1000
    budget = 2.5 if args.quick else args.budget
    rounds = n_rounds(sum(cost.values()) + len(calls) * args.settle, budget,
                      3 if args.quick else 25)
    manual = trainers["fastgd-native per-step loop"]
    manual.record = True
    monitor = _common.CpuMonitor().start()
    # one untimed fit of the same epochs before each timed one: every contender is timed
    # warm (after the settle pause the first milliseconds run on cold caches, which would
    # weigh most on the fastest contender, whose timed call is the shortest)
    times = interleave(calls, rounds, per=E * steps,
                       on_round=lambda r: seed.__setitem__(0, 1001 + r), settle=args.settle,
                       lead=1)
    busy = monitor.stop()
    base = "fastgd-native (fit)"
    goals = {"numpy": C.GOALS["digits-numpy"], "torch eager": C.GOALS["digits-torch"],
             "jax lax.scan epoch": C.GOALS["digits-jax-scan"]}
    med, rows, header = time_rows(times, base, "per step", goals)
    header.append("x the 5 products")
    for row in rows:
        row.append(f"{med[row[0]] / med[PRODUCTS]:.2f}x")
    print(f"  (b) time per training step: {rounds} rounds, each contender trains {E} epochs "
          f"({E * steps} steps) per round, untimed, then again, timed whole and divided by "
          f"{E * steps}; "
          f"other processes used {busy_note(busy)} of the cores")
    print(table(rows, header))
    for k, goal in goals.items():
        ratio = med[k] / med[base] if k in med else None
        report.add(f"1b digits step: fastgd.fit vs {k}",
                   "n/a" if ratio is None else f"{ratio:.2f}x", f">= {goal:g}x",
                   verdict(ratio, goal), busy)
    own = med[base] / med[PRODUCTS]
    report.add("1c digits step: fastgd.fit / its 5 products alone", f"{own:.2f}x",
               f"<= {C.GOALS['digits-products']:g}x",
               "yes" if own <= C.GOALS["digits-products"] else "NO", busy)
    # the pieces of the per-step loop, per call (recorded inside its timed epochs)
    pieces = {k: statistics.median(v) for k, v in manual.pieces.items() if v}
    total = sum(pieces.values())
    prow = [[k, fmt_t(v), f"{v / med[base]:.0%}"] for k, v in pieces.items()]
    prow.append(["sum of the pieces", fmt_t(total), f"{total / med[base]:.0%}"])
    prow.append(["per-step loop, whole step (incl. its Python loop)",
                 fmt_t(med["fastgd-native per-step loop"]),
                 f"{med['fastgd-native per-step loop'] / med[base]:.0%}"])
    prow.append(["fastgd.fit (fused: one C call an epoch), whole step", fmt_t(med[base]),
                 "100%"])
    print("  the per-step loop (what fit runs with accept_if_improves or a reference "
          "optimizer), piece by piece (medians per call):")
    print(table(prow, ["piece", "median per call", "share of fit's step"]))
    C.print_param_checks(trainers, native,
                         f"after the same {C.DIGITS_EPOCHS + (2 + 2 * rounds) * E} epochs")
    return med


# ----------------------------------------------------------------------------- BLAS

def scenario_blas(torch, args, report):
    """The digits step's five products through fastgd's BLAS layer and through every OpenBLAS
    installed (raw CBLAS calls in the same C loop), single-threaded, interleaved."""
    print("== the digits step's 5 products (batch 32), each BLAS in the same C loop", flush=True)
    from fastgd import _nn_ops
    specs = C.digits_products()
    reps = 200
    calls = {"fastgd (its BLAS layer)": lambda: _nn_ops.products(specs, reps)}
    for name, (addr, ilp64) in C.installed_sgemms().items():
        calls[name] = lambda a=addr, i=ilp64: _nn_ops.products(specs, reps, a, i)
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1, user_api="blas"):
        warm_cost(calls, calls=3)
        monitor = _common.CpuMonitor().start()
        times = interleave(calls, 10 if args.quick else 60, burst=3, per=reps)
        busy = monitor.stop()
    med, rows, header = time_rows(times, "fastgd (its BLAS layer)", "per step")
    print(f"  medians of {reps}-step loops, all BLAS on one thread; other processes used "
          f"{busy_note(busy)} of the cores")
    print(table(rows, header))
    fastest = min(v for k, v in med.items() if k != "fastgd (its BLAS layer)")
    ratio = med["fastgd (its BLAS layer)"] / fastest
    report.add("products: fastgd's 5 digits products / the fastest installed BLAS",
               f"{ratio:.3f}x", f"<= {C.GOALS['products-blas']:g}x",
               "yes" if ratio <= C.GOALS["products-blas"] else "NO", busy)
    return med


# ----------------------------------------------------------------------------- 2. Linear

def scenario_linear(torch, args, report):
    print("== 2. Linear(784, 512) float32 forward + backward, batch 256", flush=True)
    kinds = (["fastgd-native", "fastgd-compiled", "numpy", "scipy-blas"]
             + (["torch"] if torch else []))
    cont = {k: C.LinearContender(k, torch=torch) for k in kinds}
    calls = {k: c.step for k, c in cont.items()}
    cost = warm_cost(calls, calls=3)
    burst = 5
    budget = 3.0 if args.quick else args.budget
    rounds = n_rounds((burst + 1) * sum(cost.values()) + len(calls) * args.settle, budget,
                      4 if args.quick else 30)
    monitor = _common.CpuMonitor().start()
    times = interleave(calls, rounds, burst, settle=args.settle, lead=1)
    busy = monitor.stop()
    flops = 3 * 2 * C.LINEAR_BATCH * C.LINEAR_IN * C.LINEAR_OUT
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = []
    for k in kinds:
        v = times[k]
        thr = med["numpy"] / med[k]  # throughput relative to numpy
        thr10 = pct(times["numpy"], 0.1) / pct(v, 0.1)
        goal = C.GOALS["linear-numpy"] if k == "fastgd-native" else None
        rows.append([k, fmt_t(med[k]), fmt_t(pct(v, 0.1)), fmt_t(pct(v, 0.9)), len(v),
                     f"{flops / med[k] / 1e9:.1f}", f"{thr:.3f}x", f"{thr10:.3f}x",
                     "-" if goal is None else f">= {goal:g}x",
                     "-" if goal is None else verdict(thr, goal)])
    print(f"  {rounds} rounds; per round each contender: {args.settle:g} s pause, 1 untimed "
          f"call, {burst} timed calls; other processes used "
          f"{busy_note(busy)} of the cores; {flops / 1e6:.0f} MFLOP per call")
    print(table(rows, ["contender", "median per fwd+bwd", "p10", "p90", "n", "GFLOP/s",
                       "throughput vs numpy", "same from p10s", "goal", "met"]))
    print("  ('same from p10s': numpy's 10th percentile / the contender's, the least disturbed "
          "calls; the goal is judged on medians)")
    print(f"  scipy-blas is numpy's step with its products through scipy.linalg.blas.sgemm, the "
          f"OpenBLAS that fastgd must call: fastgd's ceiling here is about "
          f"{med['numpy'] / med['scipy-blas']:.3f}x numpy; fastgd-native reaches "
          f"{med['scipy-blas'] / med['fastgd-native']:.3f}x of scipy-blas")
    ratio = med["numpy"] / med["fastgd-native"]
    report.add("2 Linear(784,512) b256 fwd+bwd: fastgd.nn.Linear throughput vs numpy",
               f"{ratio:.3f}x", f">= {C.GOALS['linear-numpy']:g}x",
               verdict(ratio, C.GOALS["linear-numpy"]), busy)
    for k in kinds:
        if k != "numpy":
            print(f"  check: max relative |(dW, db, dx)({k}) - numpy| = "
                  f"{C.linear_max_diff(cont[k], cont['numpy']):.1e}")
    return med


# ----------------------------------------------------------------------------- 3. big MLP

def scenario_mlp(torch, args, report):
    print("== 3. MLP 784-1024-1024-10 ReLU, Adam lr 1e-3, batch 256, random data", flush=True)
    X, y = C.mlp_data()
    weights = C.initial_weights(C.MLP_SIZES)
    bs, sizes = C.MLP_BATCH, C.MLP_SIZES
    trainers = {
        "fastgd-native (fit)": C.FastgdFit(X, y, bs, sizes, "native"),
        "fastgd-native train_batch+step": C.FastgdManual(X, y, bs, sizes, snapshot=False),
    }
    # information: fit on one thread (kernels and products)
    trainers["fastgd-native (fit), 1 thread"] = C.FastgdOptimizerThreads(
        X, y, bs, sizes, threads=1)
    if torch is not None:
        trainers["torch eager"] = C.TorchMLP(X, y, bs, weights, torch)
    if not args.no_numpy_mlp:
        trainers["numpy"] = C.NumpyMLP(X, y, bs, weights)
    steps = C.MLP_BATCHES
    n_par = sum(w.size + b.size for w, b in weights)
    flops = 3 * 2 * bs * sum(w.size for w, _ in weights)
    print(f"  {len(X)} rows = {steps} batches of {bs}; {n_par:,} parameters; "
          f"~{flops / 1e9:.2f} GFLOP of matrix products per step")
    seed = [0]
    calls = {k: (lambda t=t: t.epoch(seed[0], 1)) for k, t in trainers.items()}
    cost = warm_cost(calls, calls=1)   # 2 epochs each, on seed 0
    budget = 4.0 if args.quick else args.budget * 1.5
    rounds = n_rounds(sum(cost.values()) + len(calls) * args.settle, budget,
                      2 if args.quick else 6)
    manual = trainers["fastgd-native train_batch+step"]
    manual.record = True
    monitor = _common.CpuMonitor().start()
    times = interleave(calls, rounds, per=steps, on_round=lambda r: seed.__setitem__(0, 100 + r),
                       settle=args.settle)
    busy = monitor.stop()
    base = "fastgd-native (fit)"
    goals = {"torch eager": C.GOALS["mlp-torch"]}
    med, rows, header = time_rows(times, base, "per step", goals)
    print(f"  {rounds} rounds, each contender trains one epoch ({steps} steps) per round, "
          f"timed whole and divided by {steps}; other processes used {busy_note(busy)} of "
          f"the cores")
    print(table(rows, header))
    pieces = {k: statistics.median(v) for k, v in manual.pieces.items() if v and k != "snapshot"}
    prow = [[k, fmt_t(v), f"{flops / v / 1e9:.1f} GFLOP/s" if k == "train_batch" else "-"]
            for k, v in pieces.items()]
    print("  fastgd pieces (medians per call, from the train_batch+step loop):")
    print(table(prow, ["piece", "median per call", "matrix-product rate"]))
    if torch is not None:
        ratio = med["torch eager"] / med[base]
        report.add("3 MLP 784-1024-1024-10 b256 Adam step: fastgd.fit vs torch eager",
                   f"{ratio:.2f}x", f">= {goals['torch eager']:g}x",
                   verdict(ratio, goals["torch eager"]), busy)
    else:
        report.add("3 MLP 784-1024-1024-10 b256 Adam step: fastgd.fit vs torch eager", "n/a",
                   ">= 1x", "n/a", busy)
    native = trainers[base]
    C.print_param_checks(trainers, native, f"after the same {2 + rounds} epochs (float32 "
                         "rounding differences grow over the steps)")
    return med


# ----------------------------------------------------------------------------- profile

GEMMS = [  # (product (m x k)@(k x n), its role in the digits step)
    ("(32x64)@(64x128)", "forward layer 1: X W1"),
    ("(64x32)@(32x128)", "backward layer 1: dW1 = X^T dZ1"),
    ("(32x128)@(128x10)", "forward layer 2: A1 W2"),
    ("(128x32)@(32x10)", "backward layer 2: dW2 = A1^T dZ2"),
    ("(32x10)@(10x128)", "backward layer 2: dA1 = dZ2 W2^T"),
]


def _gemm_variants(label, rng):
    from scipy.linalg import blas
    from fastgd import _nn
    (m, k), (_, n) = [tuple(int(v) for v in s.strip("()").split("x"))
                      for s in label.split("@")]
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    af, bf = np.asfortranarray(a), np.asfortranarray(b)
    out = np.empty((m, n), np.float32)
    variants = {
        "scipy blas.sgemm (F-order)": lambda: blas.sgemm(1.0, af, bf),
        "numpy matmul": lambda: a @ b,
    }
    # fastgd's own call (cython_blas sgemm, row-major through swapped operands), as the
    # compiled program issues it; for the X^T dZ products through linear_backward
    if label in ("(64x32)@(32x128)", "(128x32)@(32x10)"):
        xs = np.ascontiguousarray(a.T)             # the stored (32, k) activation
        w_dummy = np.empty((m, n), np.float32)
        variants["fastgd cython_blas"] = lambda: _nn.linear_backward(xs, w_dummy, b, out,
                                                                      None, None)
    else:
        variants["fastgd cython_blas"] = lambda: _nn.linear_forward(a, b, None, out)
    return variants, 2 * m * k * n


def profile_digits(args):
    print("== profile of the digits step (batch 32)", flush=True)
    from threadpoolctl import ThreadpoolController
    ctl = ThreadpoolController()
    rng = np.random.default_rng(0)
    reps = 60 if args.quick else 300
    Xtr, _, ytr, _ = C.digits_data()
    model = fastgd.nn.MLP(list(C.DIGITS_SIZES), seed=0)
    opt = fastgd.optim.Adam(model.parameters(), lr=C.LR)
    program, grads = model.program, model.gradients()
    order = np.random.default_rng(0).permutation(len(Xtr)).astype(np.int64)
    pos = [0]

    def train_batch():
        s = pos[0]
        program.train_batch(Xtr, ytr, order, s, s + 32, "cross_entropy")
        pos[0] = (s + 32) % (len(Xtr) - 32)
    step_parts = {"train_batch": train_batch,
                  "opt.step(model.gradients())": lambda: opt.step(model.gradients()),
                  "snapshot": opt.backup().save}   # parameters and Adam state
    # fit's fused step (private API; skipped if it moved): one step of Program.train_steps
    # with and without the bound Adam update, and the bound update alone
    try:
        bound = opt.bind(grads)
        hooks = [u.hook() for u in bound]
        save = opt.backup().hook()
        losses = np.empty(1)

        def fused(hk):
            def one():
                s = pos[0]
                program.train_steps(Xtr, ytr, order, s, s + 32, 32, "cross_entropy", save,
                                    hk, losses)
                pos[0] = (s + 32) % (len(Xtr) - 32)
            return one
        step_parts["fused step: train_steps, 1 step, with the Adam hook"] = fused(hooks)
        step_parts["  of which train_steps without the hook (incl. snapshot)"] = fused([])
        step_parts["  of which the bound Adam update (BoundUpdate.run)"] = bound[0].run
    except Exception as e:  # pragma: no cover
        print(f"  (fused step not timed: {e})")
    # what the standalone product timings include besides the product: the Python call,
    # the argument checks and BLAS's per-call overhead (a 1x1x1 product)
    from fastgd import _nn
    one = np.ones((1, 1), np.float32)
    one_out = np.empty((1, 1), np.float32)
    step_parts["_nn.linear_forward on 1x1 (call overhead)"] = \
        lambda: _nn.linear_forward(one, one, None, one_out)
    results = {}
    variants = {label: _gemm_variants(label, rng) for label, _ in GEMMS}
    # every call of the profile (products by 3 routes, step pieces) interleaved in one set
    # of rounds, so that all of them are compared over the same stretch of time
    everything = dict(step_parts)
    for label, (vs, _) in variants.items():
        everything.update({f"{label}|{impl}": f for impl, f in vs.items()})
    monitor = _common.CpuMonitor().start()
    for nt in (None, 1):
        tag = "default" if nt is None else str(nt)
        with ctl.limit(limits=nt, user_api="blas") if nt else _nullcontext():
            blas_threads = [p["num_threads"] for p in ctl.info() if p["user_api"] == "blas"]
            for f in everything.values():
                for _ in range(20):
                    f()
            t = interleave(everything, reps, burst=3)
            med = {k: statistics.median(v) for k, v in t.items()}
            for label, role in GEMMS:
                vs, fl = variants[label]
                # CPU time / wall time of fastgd's call in a loop: about 1 when BLAS runs it
                # on one thread, up to 2 when OpenBLAS splits it (its waiting workers spin)
                f = vs["fastgd cython_blas"]
                c0, w0 = time.process_time(), time.perf_counter()
                while time.perf_counter() - w0 < 0.05:
                    for _ in range(100):
                        f()
                cpu_wall = (time.process_time() - c0) / (time.perf_counter() - w0)
                results[(tag, label)] = ({impl: med[f"{label}|{impl}"] for impl in vs}, fl,
                                         role, cpu_wall)
            results[(tag, "step")] = {k: med[k] for k in step_parts}
            results[(tag, "threads")] = blas_threads
    busy = monitor.stop()
    print(f"  medians of single calls, {reps} rounds x 3 calls, all {len(everything)} calls "
          f"interleaved; other processes used {busy_note(busy)} of the cores")
    print("  'fastgd cython_blas': the sgemm call fastgd's compiled program makes (row-major, "
          "operands swapped), through _nn.linear_forward / _nn.linear_backward(dW only), "
          "including that Python call and its argument checks (about 1 us); "
          "'CPU/wall' about 1: one BLAS thread worked, about 2: two")
    for tag in ("default", "1"):
        print(f"  BLAS threads: {tag} (per BLAS library: {results[(tag, 'threads')]})")
        rows, fg_total = [], 0.0
        for label, role in GEMMS:
            med, fl, _, cpu_wall = results[(tag, label)]
            fg_total += med["fastgd cython_blas"]
            rows.append([label, role] + [fmt_t(med[k]) for k in med]
                        + [f"{fl / med['fastgd cython_blas'] / 1e9:.1f}", f"{cpu_wall:.2f}"])
        step = results[(tag, "step")]
        tb = step["train_batch"]
        rows.append(["sum", "the 5 products of one step", "", "", fmt_t(fg_total), "", ""])
        print(table(rows, ["product", "role", "scipy blas.sgemm (F-order)", "numpy matmul",
                           "fastgd cython_blas", "GFLOP/s (fastgd)", "CPU/wall (fastgd)"]))
        over = step.get("_nn.linear_forward on 1x1 (call overhead)", 0.0)
        prods = max(fg_total - 5 * over, 0.0)
        srows = [[k, fmt_t(v)] for k, v in step.items()]
        srows.append(["5 products minus 5 call overheads (BLAS time inside train_batch)",
                      fmt_t(prods)])
        srows.append(["train_batch minus that (gather, bias+ReLU, loss, ReLU', colsum, "
                      "its call)", fmt_t(max(tb - prods, 0.0))])
        print(table(srows, ["digits step piece", "median per call"]))
        whole = tb + step["opt.step(model.gradients())"] + step["snapshot"]
        print(f"  -> BLAS products ~{prods / tb:.0%} of train_batch, ~{prods / whole:.0%} of "
              f"train_batch + opt.step + snapshot ({fmt_t(whole)})")
        fused_step = step.get("fused step: train_steps, 1 step, with the Adam hook")
        if fused_step:
            print(f"  -> BLAS products ~{prods / fused_step:.0%} of the fused step "
                  f"({fmt_t(fused_step)})")
    return results


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ----------------------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds (a rough look)")
    ap.add_argument("--threads", type=int, default=_common.THREADS,
                    help=f"threads for fastgd and torch (default {_common.THREADS})")
    ap.add_argument("--budget", type=float, default=8.0,
                    help="seconds of rounds for scenarios 1 and 2 (3: x1.5); default 8")
    ap.add_argument("--epochs-per-fit", type=int, default=2,
                    help="epochs of one timed fit call in scenario 1 (default 2)")
    ap.add_argument("--no-profile", action="store_true", help="skip the digits-step profile")
    ap.add_argument("--only", metavar="PARTS",
                    help="comma-separated parts to run: digits, blas, linear, mlp, profile "
                         "(default: all)")
    ap.add_argument("--settle", type=float, default=SETTLE, metavar="SECONDS",
                    help=f"pause before each contender's turn (default {SETTLE:g}; see SETTLE)")
    ap.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                    help="before each scenario, wait up to SECONDS for a second in which other "
                         "processes use < 10%% of the cores (default 0: do not wait)")
    ap.add_argument("--no-numpy-mlp", action="store_true",
                    help="leave numpy out of scenario 3 (it is not a goal there)")
    args = ap.parse_args(argv)

    _common.configure_fastgd_threads(args.threads)
    torch = _common.import_torch(args.threads)

    print("== machine")
    facts = _common.machine_facts(torch)
    facts.insert(facts.index(next(f for f in facts if f[0] == "numpy")) + 1,
                 ("scipy", C.scipy_version()))
    facts += C.blas_facts()
    _common.print_facts(facts, quick=args.quick)

    report = Report()
    whole = _common.CpuMonitor().start()
    start = time.perf_counter()
    parts = {"digits": scenario_digits, "blas": scenario_blas, "linear": scenario_linear,
             "mlp": scenario_mlp,
             "profile": lambda torch, args, report: profile_digits(args)}
    chosen = [p.strip() for p in args.only.split(",")] if args.only else list(parts)
    unknown = [p for p in chosen if p not in parts]
    if unknown:
        ap.error(f"--only: unknown part(s) {unknown}; choose from {list(parts)}")
    if args.no_profile and "profile" in chosen:
        chosen.remove("profile")
    for run in [parts[p] for p in chosen]:
        if args.wait_idle > 0:
            waited = _common.wait_until_idle(args.wait_idle)
            print(f"  (machine not idle after waiting {args.wait_idle:g} s; measuring anyway)"
                  if waited is None else f"  (waited {waited:.0f} s for an idle machine)")
        run(torch, args, report)
    elapsed = time.perf_counter() - start

    print()
    print("== goals (ratios = competitor median / fastgd median: how many times faster fastgd is)")
    if report.goals:
        print(table([list(g) for g in report.goals],
                    ["goal", "measured", "target", "met", "others' CPU"]))
    else:
        print("  (no goal among the parts run)")
    _common.print_run_footer(whole, elapsed)
    return 0


if __name__ == "__main__":
    main()
    sys.exit(0)
