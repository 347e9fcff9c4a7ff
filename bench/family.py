"""The optimizer family and fit's options, side by side in one process (issue 12's goals).

    python bench/family.py            # both parts (about two minutes)
    python bench/family.py --quick    # a rough look
    python bench/family.py --only fit # one part: "kernels" or "fit"

* kernels: one ``step()`` of every fastgd optimizer on one float32 tensor of 20M elements,
  as a multiple of Adam's (goal: within 15%: they are memory-bound), and on 1,000 float32
  tensors of 1,000 elements against torch's fastest implementation of the same optimizer
  (``foreach=True``; goal: >= 5x);
* fit: the fused digits epoch loop (MLP 64-128-10, Adam, batch 32) with a per-step schedule
  (goal: at most 5% over a constant lr), with ``clip_grad_norm`` (goal: at most 10%), with
  a weight average and with gradient accumulation (reported).

Rounds interleave the contenders (the order rotates); the table gives medians and ratios.
The script only reports: its exit code is 0 whether or not the goals are met.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402  (imports fastgd before torch)
import numpy as np  # noqa: E402

import fastgd  # noqa: E402

#: fastgd class -> torch.optim class of the same name (None: torch has none)
FAMILY = ["Adam", "AdamW", "NAdam", "RAdam", "Adamax", "Adadelta", "RMSprop", "Adagrad", "SGD",
          "Lion"]
KW = {"SGD": dict(lr=1e-3, momentum=0.9), "Lion": dict(lr=1e-4)}


def interleave(calls, rounds, per=1):
    """{name: [seconds per unit, ...]}: every round calls each once, in a rotating order."""
    names = list(calls)
    times = {k: [] for k in names}
    for r in range(rounds):
        shift = r % len(names)
        for k in names[shift:] + names[:shift]:
            t0 = time.perf_counter()
            calls[k]()
            times[k].append((time.perf_counter() - t0) / per)
    return times


def row(name, med, base, goal, better):
    ratio = med[name] / med[base]
    met = "-" if goal is None else ("yes" if (ratio <= goal if better == "le" else
                                              ratio >= goal) else "NO")
    return ratio, met


def part_kernels(torch, quick):
    print("== kernels: one step, float32")
    rng = np.random.default_rng(0)
    rows = []
    # (a) one 20M tensor
    calls = {}
    for name in FAMILY:
        p = [rng.standard_normal(20 * _common.M, dtype=np.float32)]
        g = [rng.standard_normal(20 * _common.M, dtype=np.float32)]
        opt = getattr(fastgd.optim, name)(p, **KW.get(name, {}))
        opt.step(g)
        calls[name] = (lambda o=opt, g=g: o.step(g))
    times = interleave(calls, 4 if quick else 12)
    med = {k: statistics.median(v) for k, v in times.items()}
    for name in FAMILY:
        ratio = med[name] / med["Adam"]
        rows.append([f"{name} 20M", f"{med[name] * 1e3:.2f} ms", f"{ratio:.3f}x Adam",
                     "<= 1.15x", "yes" if ratio <= 1.15 else "NO"])
    # (b) 1000 tensors of 1000 elements, against torch foreach
    for name in FAMILY:
        tcls = getattr(torch.optim, name, None) if torch is not None else None
        ps = [rng.standard_normal(1000, dtype=np.float32) for _ in range(1000)]
        gs = [rng.standard_normal(1000, dtype=np.float32) for _ in range(1000)]
        opt = getattr(fastgd.optim, name)(ps, **KW.get(name, {}))
        opt.step(gs)
        c = {"fastgd": lambda o=opt, g=gs: o.step(g)}
        if tcls is not None:
            tp = [torch.from_numpy(p.copy()) for p in ps]
            for t, g in zip(tp, gs):
                t.grad = torch.from_numpy(g.copy())
            topt = tcls(tp, foreach=True, **KW.get(name, {}))
            topt.step()
            c["torch-foreach"] = topt.step
        times = interleave(c, 20 if quick else 100)
        m = {k: statistics.median(v) for k, v in times.items()}
        if "torch-foreach" in m:
            ratio = m["torch-foreach"] / m["fastgd"]
            rows.append([f"{name} 1000x1000", f"{m['fastgd'] * 1e3:.3f} ms",
                         f"{ratio:.1f}x faster than torch foreach "
                         f"({m['torch-foreach'] * 1e3:.2f} ms)", ">= 5x",
                         "yes" if ratio >= 5 else "NO"])
        else:
            rows.append([f"{name} 1000x1000", f"{m['fastgd'] * 1e3:.3f} ms",
                         "torch has none", "-", "-"])
    print(_common.table(rows, ["contender", "median", "ratio", "goal", "met"]))


def part_fit(torch, quick):
    import _nn_common as C
    from fastgd.optim import lr_scheduler as L
    from fastgd.optim import swa_utils as S
    print("== fit options: the fused digits epoch loop (MLP 64-128-10, Adam lr 1e-3, "
          "batch 32), 2 epochs a call")
    Xtr, Xte, ytr, yte = C.digits_data()
    bs, sizes = C.DIGITS_BATCH, C.DIGITS_SIZES
    big = 10 ** 9

    def make(option):
        model = fastgd.nn.MLP(list(sizes), seed=0)
        opt = fastgd.optim.Adam(model.parameters(), lr=1e-3)
        kw = {}
        if option == "per-step CosineAnnealingLR":
            kw = dict(scheduler=L.CosineAnnealingLR(opt, big), scheduler_interval="step")
        elif option == "per-step OneCycleLR (beta1 cycled)":
            kw = dict(scheduler=L.OneCycleLR(opt, max_lr=1e-3, total_steps=big),
                      scheduler_interval="step")
        elif option == "per-step LinearLR":
            kw = dict(scheduler=L.LinearLR(opt, 0.5, total_iters=big),
                      scheduler_interval="step")
        elif option == "clip_grad_norm=1":
            kw = dict(clip_grad_norm=1.0)
        elif option == "average (EMA 0.999)":
            kw = dict(average=S.AveragedModel(model,
                                              multi_avg_fn=S.get_ema_multi_avg_fn(0.999)))
        elif option == "accumulate_steps=2":
            kw = dict(accumulate_steps=2)
        seed = [0]

        def call():
            seed[0] += 1
            fastgd.fit(model, Xtr, ytr, loss="cross_entropy", optimizer=opt, epochs=2,
                       batch_size=bs, seed=seed[0], progress=False, **kw)
        call()
        return call

    options = ["constant lr", "per-step CosineAnnealingLR", "per-step OneCycleLR (beta1 cycled)",
               "per-step LinearLR", "clip_grad_norm=1", "average (EMA 0.999)",
               "accumulate_steps=2"]
    goals = {"per-step CosineAnnealingLR": 1.05, "per-step OneCycleLR (beta1 cycled)": 1.05,
             "per-step LinearLR": 1.05, "clip_grad_norm=1": 1.10}
    calls = {o: make(o) for o in options}
    steps = 2 * (-(-len(Xtr) // bs))
    times = interleave(calls, 15 if quick else 60, per=steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = []
    for o in options:
        ratio = med[o] / med["constant lr"]
        goal = goals.get(o)
        rows.append([o, f"{med[o] * 1e6:.2f} us", f"{ratio:.3f}x",
                     "-" if goal is None else f"<= {goal:g}x",
                     "-" if goal is None else ("yes" if ratio <= goal else "NO")])
    print(_common.table(rows, ["fit option", "median per step", "x constant lr", "goal",
                               "met"]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds (a rough look)")
    ap.add_argument("--only", choices=["kernels", "fit"], help="one part only")
    ap.add_argument("--threads", type=int, default=_common.THREADS)
    args = ap.parse_args(argv)
    fastgd.set_num_threads(args.threads)
    torch = _common.import_torch(args.threads)
    if args.only in (None, "kernels"):
        part_kernels(torch, args.quick)
    if args.only in (None, "fit"):
        part_fit(torch, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
