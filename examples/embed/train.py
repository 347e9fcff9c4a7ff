"""Train with fastgd's Adam from the two extensions and check them against fastgd.functional.

    python examples/embed/train.py      (after pip install --no-build-isolation ./examples/embed)
"""
import threading

import numpy as np

from fastgd.functional import adam_
from fastgd_embed_example import ctrain, cytrain

rng = np.random.default_rng(0)
for dtype in (np.float32, np.float64):
    targets = [rng.standard_normal(n).astype(dtype) for n in (1000, 10)]
    start = [np.zeros_like(t) for t in targets]
    # the same loop in Python: Adam from zero moments on the gradient param - target
    ref = [p.copy() for p in start]
    m, v = [np.zeros_like(p) for p in ref], [np.zeros_like(p) for p in ref]
    for k in range(1, 501):
        adam_(ref, [p - t for p, t in zip(ref, targets)], m, v, step=k, lr=0.01)
    for mod in (cytrain, ctrain):
        # two threads at once, each in the module's nogil loop over its own arrays
        runs = [[p.copy() for p in start] for _ in range(2)]
        losses = [0.0, 0.0]

        def fit(i, mod=mod, runs=runs, losses=losses, targets=targets):
            losses[i] = mod.fit(runs[i], targets, 500, lr=0.01)

        threads = [threading.Thread(target=fit, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        same = all(a.tobytes() == b.tobytes() for run in runs for a, b in zip(run, ref))
        initial = 0.5 * sum(float(np.sum(t * t)) for t in targets)
        print(f"{mod.__name__.split('.')[-1]:8s} {np.dtype(dtype).name}: loss {initial:.2f} -> "
              f"{losses[0]:.3g} after 500 steps; equal to fastgd.functional.adam_ bit for "
              f"bit: {same}")
