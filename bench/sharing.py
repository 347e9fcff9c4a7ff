"""fastgd's GEMM-bound training step alone in its process, and right after numpy or torch
work in the same process, against torch eager alone in its own process.

    python bench/sharing.py                # 4 rounds (about 2 minutes on 2 cores)
    python bench/sharing.py --rounds 2     # a rough look
    python bench/sharing.py --pool fastgd  # fastgd.set_blas_pool("fastgd") in every child

The step: one Adam step (lr 1e-3) of the 784-1024-1024-10 ReLU MLP of ratios_nn.py's
scenario 3, float32, batch 256, 2 threads for every library. Each contender runs in a
fresh process of its own (``--child MODE``), warms up, then times ``--steps`` steps and
prints the median; the parent runs every contender once per round, the order rotating,
and reports the median over rounds of those medians.

Contenders:

``fastgd call``       per-call API: ``program.train_batch`` + ``opt.step``
``fastgd fit``        ``fastgd.fit``, one epoch of 8 batches (2048 rows), time / 8
``torch``             torch eager: zero_grad, forward, CrossEntropyLoss, backward, Adam step,
                      ``loss.item()``
``... after numpy``   the same fastgd step, each one right after a numpy matmul
                      (float32 (512 x 512) @ (512 x 512), numpy's own OpenBLAS, 2 threads)
``... after torch``   the same fastgd step, each one right after a torch training step

Goals (issue 11): torch / fastgd alone >= 1.25; fastgd after numpy or torch within 1.15x
of fastgd alone. The script reports; it asserts nothing.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MODES = ["fastgd call", "fastgd fit", "torch", "fastgd call after numpy",
         "fastgd fit after numpy", "fastgd call after torch", "fastgd fit after torch"]
GOAL_TORCH, GOAL_SHARED = 1.25, 1.15


def child(mode, steps, threads, pool):
    sys.path.insert(0, HERE)
    import numpy as np
    import _common  # noqa: F401  (imports fastgd before torch)
    import _nn_common as C
    import fastgd
    fastgd.set_num_threads(threads)
    if pool:
        fastgd.set_blas_pool(pool)
    X, y = C.mlp_data()
    weights = C.initial_weights(C.MLP_SIZES)
    torch = None
    if "torch" in mode:
        import torch
        torch.set_num_threads(threads)
        tt = C.TorchMLP(X[:256], y[:256], 256, weights, torch)
    model = fastgd.nn.MLP(list(C.MLP_SIZES), seed=C.SEED)
    opt = fastgd.optim.Adam(model.parameters(), lr=C.LR)
    program, grads = model.program, model.gradients()
    order = np.arange(len(X), dtype=np.int64)
    A = np.random.default_rng(1).standard_normal((512, 512), dtype=np.float32)

    def call():
        program.train_batch(X, y, order, 0, 256, "cross_entropy")
        opt.step(grads)

    def fit():
        fastgd.fit(model, X, y, loss="cross_entropy", optimizer=opt, epochs=1,
                   batch_size=256, shuffle=False, progress=False)

    if mode == "torch":
        step, per = (lambda: tt.epoch(0, 1)), 1
    else:
        step, per = (fit, len(X) // 256) if "fit" in mode else (call, 1)
    before = None
    if mode.endswith("after numpy"):
        before = lambda: A @ A
    elif mode.endswith("after torch"):
        before = lambda: tt.epoch(0, 1)
    for _ in range(3):
        if before:
            before()
        step()
    times = []
    for _ in range(steps):
        if before:
            before()
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) / per)
    print(json.dumps({"mode": mode, "median": statistics.median(times),
                      "pool": fastgd.get_blas_pool()}))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=15, help="timed steps per child")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pool", choices=["numpy", "fastgd"], default=None,
                    help="fastgd.set_blas_pool in every child (default: fastgd's default)")
    ap.add_argument("--child", metavar="MODE", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.steps, args.threads, args.pool)
        return 0
    sys.path.insert(0, HERE)
    import _common
    import fastgd
    print("== machine")
    _common.print_facts(_common.machine_facts(None), quick=True)
    print(f"  fastgd pool of large products: {args.pool or fastgd.get_blas_pool()}")
    results = {m: [] for m in MODES}
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    monitor = _common.CpuMonitor().start()
    for r in range(args.rounds):
        order = MODES[r % len(MODES):] + MODES[:r % len(MODES)]
        for mode in order:
            cmd = [sys.executable, os.path.abspath(__file__), "--child", mode,
                   "--steps", str(args.steps), "--threads", str(args.threads)]
            if args.pool:
                cmd += ["--pool", args.pool]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if out.returncode != 0:
                print(f"  {mode}: failed\n{out.stderr[-2000:]}")
                continue
            results[mode].append(json.loads(out.stdout.strip().splitlines()[-1])["median"])
    busy = monitor.stop()
    med = {m: statistics.median(v) for m, v in results.items() if v}
    rows = []
    for m in MODES:
        if m not in med:
            continue
        base = "fastgd fit" if "fit" in m else "fastgd call"
        rel = "-" if m in ("fastgd call", "fastgd fit", "torch") else f"{med[m] / med[base]:.2f}x"
        rows.append([m, f"{med[m] * 1e3:.2f} ms",
                     " ".join(f"{v * 1e3:.1f}" for v in results[m]), rel])
    print(f"== 784-1024-1024-10 Adam step, batch 256, {args.threads} threads; each contender "
          f"in its own process, {args.rounds} rounds; others used {busy['others']:.0%} of "
          "the cores" if busy else "")
    print(_common.table(rows, ["contender", "median per step", "round medians (ms)",
                               "x fastgd alone"]))
    goals = []
    for base in ("fastgd call", "fastgd fit"):
        if base in med and "torch" in med:
            ratio = med["torch"] / med[base]
            goals.append([f"torch eager / {base} (alone)", f"{ratio:.2f}x",
                          f">= {GOAL_TORCH}x", "yes" if ratio >= GOAL_TORCH else "NO"])
        for other in ("numpy", "torch"):
            m = f"{base} after {other}"
            if m in med and base in med:
                ratio = med[m] / med[base]
                goals.append([f"{m} / {base} alone", f"{ratio:.2f}x", f"<= {GOAL_SHARED}x",
                              "yes" if ratio <= GOAL_SHARED else "NO"])
    print("== goals")
    print(_common.table(goals, ["goal", "measured", "target", "met"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
