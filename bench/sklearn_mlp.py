"""fastgd.sklearn's MLP estimators against scikit-learn's, side by side in one run.

Cases (the goals of issue 15): digits, hidden (128,), adam, batch 32, 30 iterations
(>= 10x); 20,000 x 40 synthetic classification, (256, 128), batch 64, 10 iterations (>= 3x);
solver='lbfgs' on digits, (128,), 100 iterations (>= 2x). Prints the median fit time of each
over ``--repeats`` runs (alternating), the ratio, and the held-out accuracy of each.

    python bench/sklearn_mlp.py [--repeats 5] [--threads N] [--dtype float32]

``--dtype float32`` gives both libraries float32 input (both then train in float32, but
scikit-learn's L-BFGS, whose weights become float64); by default the data is float64, as
``load_digits`` and ``make_classification`` return it.

``--threads N`` limits both libraries to N threads (threadpoolctl for numpy's and scipy's
BLAS, `fastgd.set_num_threads`); by default each uses its own default. On a machine whose
cores are shared with other work, ``--threads 1`` keeps BLAS workers from contending.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from typing import Any

import numpy as np
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkMLP

from fastgd.sklearn import MLPClassifier as FgMLP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import _cpu_model  # noqa: E402  (the benchmarks' shared helpers)


def _cases() -> list[tuple[str, Any, Any, dict[str, Any], float]]:
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    Xs, ys = make_classification(20_000, 40, n_informative=20, n_classes=4, random_state=0)
    return [
        ("digits (128,) adam bs32 30 it", X, y,
         dict(hidden_layer_sizes=(128,), solver="adam", batch_size=32, max_iter=30), 10.0),
        ("20000x40 (256,128) adam bs64 10 it", Xs, ys,
         dict(hidden_layer_sizes=(256, 128), solver="adam", batch_size=64, max_iter=10), 3.0),
        ("digits (128,) lbfgs 100 it", X, y,
         dict(hidden_layer_sizes=(128,), solver="lbfgs", max_iter=100), 2.0),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    args = ap.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    if args.threads is not None:
        import fastgd
        from threadpoolctl import threadpool_limits
        threadpool_limits(args.threads)
        fastgd.set_num_threads(args.threads)
    print(f"CPU: {_cpu_model()}; repeats: {args.repeats} (medians); threads: "
          f"{'default' if args.threads is None else args.threads}; input {args.dtype}")
    for name, X, y, params, goal in _cases():
        Xtr, Xte, ytr, yte = train_test_split(X.astype(args.dtype), y, test_size=0.25,
                                              random_state=0)
        times: dict[str, list[float]] = {"sklearn": [], "fastgd": []}
        scores: dict[str, list[float]] = {"sklearn": [], "fastgd": []}
        for r in range(args.repeats):
            for label, cls in (("sklearn", SkMLP), ("fastgd", FgMLP)):
                est = cls(random_state=r, **params)
                t = time.perf_counter()
                est.fit(Xtr, ytr)
                times[label].append(time.perf_counter() - t)
                scores[label].append(est.score(Xte, yte))
        ts, tf = statistics.median(times["sklearn"]), statistics.median(times["fastgd"])
        ratio = ts / tf
        print(f"{name:38s} sklearn {ts * 1e3:8.1f} ms  fastgd {tf * 1e3:8.1f} ms  "
              f"ratio {ratio:6.2f}x (goal >= {goal:g}x {'met' if ratio >= goal else 'MISSED'})"
              f"  accuracy sklearn {np.mean(scores['sklearn']):.4f} "
              f"fastgd {np.mean(scores['fastgd']):.4f}")


if __name__ == "__main__":
    main()
