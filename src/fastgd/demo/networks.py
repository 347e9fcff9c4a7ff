"""The ``fastgd demo`` figures that train networks with ``fastgd.nn``: 5 (vanishing gradients)
and 7 (optimizers on the digits data).

The figures register themselves with ``@figure`` and draw on `new_figure` (both from
`fastgd.demo`). The numbers behind them come from small helpers, `layer_gradient_norms`,
`train_deep` and `digits_optimizer_runs`, which the tests call directly.
"""
from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from .. import datasets, optim
from .._typing import Array, DTypeLike, FloatArray
from ..nn import MLP, CrossEntropyLoss
from ..nn.init import SeedLike
from ..train.fit import fit
from ._figure import figure, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure

    from ..nn import Sequential

__all__ = ["digits", "deep_mlp", "layer_gradient_norms", "train_deep", "DIGITS_OPTIMIZERS",
           "digits_optimizer_runs"]


@functools.lru_cache(maxsize=1)
def _digits_raw() -> tuple[FloatArray, Array]:
    X, y = datasets.load_digits()
    X.flags.writeable = False
    y.flags.writeable = False
    return X, y


def digits(dtype: DTypeLike) -> tuple[FloatArray, Array]:
    """The bundled digits scaled to [0, 1] (X / 16) in ``dtype``, and their labels."""
    X, y = _digits_raw()
    return (X / 16).astype(dtype), y.copy()


# ---------------------------------------------------------------------------- figure 5
DEPTH, WIDTH = 10, 32          # 10 Linear layers: 64 -> 32 (x 9) -> 10


def deep_mlp(activation: str, depth: int = DEPTH, width: int = WIDTH,
             seed: SeedLike = 0) -> Sequential:
    """A float64 MLP on the digits, ``depth`` Linear layers of ``width`` units with
    ``activation`` between them (Xavier initialisation for sigmoid, He for ReLU, as
    ``Sequential`` picks)."""
    return MLP([64] + [width] * (depth - 1) + [10], activation, dtype=np.float64, seed=seed)


def layer_gradient_norms(activation: str, depth: int = DEPTH, width: int = WIDTH,
                         seed: SeedLike = 0, batch: int = 256) -> FloatArray:
    """‖dW_k‖ (Frobenius norm) of each Linear layer k = 1..depth of `deep_mlp` at its
    initialisation: one forward and backward pass of the cross-entropy on ``batch`` digits
    (drawn with ``seed``). Returns an array of ``depth`` norms, first layer first."""
    X, y = digits(np.float64)
    rows = np.random.default_rng(seed).permutation(len(X))[:batch]
    model = deep_mlp(activation, depth, width, seed)
    loss = CrossEntropyLoss()
    loss.forward(model.forward(X[rows]), y[rows])
    model.backward(loss.backward())
    return np.array([np.linalg.norm(g) for g in model.gradients()[0::2]])


def train_deep(activation: str, depth: int = DEPTH, width: int = WIDTH, epochs: int = 20,
               lr: float = 0.05, seed: SeedLike = 0) -> FloatArray:
    """Mean training loss per epoch of `deep_mlp` trained by mini-batch SGD (batch 32) on
    all the digits."""
    X, y = digits(np.float64)
    model = deep_mlp(activation, depth, width, seed)
    h = fit(model, X, y, loss=CrossEntropyLoss(), optimizer=optim.SGD(model.parameters(), lr=lr),
            epochs=epochs, batch_size=32, seed=seed, progress=False)
    return np.array(h["loss"])


@figure(5, "vanishing_gradients", "Vanishing gradients: a deep sigmoid net vs ReLU")
def vanishing_gradients() -> MplFigure:
    seeds = range(5)
    runs = [("sigmoid", "#d62728", "sigmoid"), ("relu", "#4c72b0", "ReLU")]
    fig, (ax, ax2) = new_figure()
    layers = np.arange(1, DEPTH + 1)
    for act, color, label in runs:
        norms = np.array([layer_gradient_norms(act, seed=s) for s in seeds])
        mid = np.exp(np.log(norms).mean(axis=0))            # geometric mean over the seeds
        ax.fill_between(layers, norms.min(axis=0), norms.max(axis=0), color=color, alpha=0.15,
                        lw=0)
        ax.semilogy(layers, mid, "-o", color=color, ms=4, lw=1.8, label=label)
        if act == "sigmoid":
            shrink = mid[-1] / mid[0]
            per_layer = shrink ** (1 / (DEPTH - 1))
            ax.annotate(f"÷{per_layer:.1f} per layer going back:\n"
                        "σ′(z) ≤ 1/4 at every sigmoid", xy=(4, mid[3]),
                        xytext=(5.3, mid[3] / 30), fontsize=8, color=color,
                        arrowprops=dict(arrowstyle="->", color=color, lw=0.8))
            ax.text(1.15, mid[0], f"  {mid[0]:.0e}", fontsize=8, color=color, va="center")
    ax.set_xticks(layers)
    ax.set_xlabel(f"Linear layer k (1 = next to the input, {DEPTH} = output)")
    ax.set_ylabel("‖∂L/∂W_k‖ at initialisation")
    ax.set_title(f"Gradient norm per layer, {DEPTH} layers of width {WIDTH}\n"
                 "(geometric mean of 5 initialisations, band = min to max)", fontsize=10)
    ax.legend(loc="center left", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)

    epochs, lr = 20, 0.05
    for act, color, label in runs:
        curve = train_deep(act, epochs=epochs, lr=lr)
        ax2.plot(np.arange(1, epochs + 1), curve, "-o", color=color, ms=3, lw=1.8,
                 label=f"{label}, {DEPTH} layers")
    shallow = train_deep("sigmoid", depth=3, epochs=epochs, lr=lr)
    ax2.plot(np.arange(1, epochs + 1), shallow, "--", color="#d62728", lw=1.4, alpha=0.7,
             label="sigmoid, 3 layers")
    ax2.axhline(math.log(10), color="0.4", lw=1, ls=":")
    ax2.text(epochs, math.log(10) + 0.08, "ln 10 = 2.30: uniform guessing", ha="right",
             va="bottom", fontsize=8, color="0.3")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("training cross-entropy")
    ax2.set_ylim(0, 2.6)
    ax2.set_xticks(range(0, epochs + 1, 5))
    ax2.set_title(f"Training on the digits (SGD, lr = {lr}, batch 32): the deep sigmoid net\n"
                  "stays at chance, the deep ReLU net and a shallow sigmoid one learn",
                  fontsize=10)
    ax2.legend(loc="center right", fontsize=8)
    ax2.grid(True, alpha=0.3)
    fig.suptitle(f"Vanishing gradients: through {DEPTH - 1} sigmoids the gradient shrinks "
                 f"{_power_of_ten(shrink)}-fold on its way back to the first layer",
                 fontsize=12)
    return fig


def _power_of_ten(x: float) -> str:
    """``10⁵`` for x around 1e5."""
    sup = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
    return "10" + str(round(math.log10(x))).translate(sup)


# ---------------------------------------------------------------------------- figure 7
#: (label, optimizer class, keyword arguments, colour, line style) of figure 7. Every
#: optimizer runs at its own best stable learning rate: of the sweep 1e-3, 3e-3, 1e-2, ..., 1
#: (30 epochs of `digits_optimizer_runs`), the one with the lowest final training loss among
#: those whose epoch loss never rose above 1.3x its lowest before. (Momentum 0.9 at lr η
#: behaves like SGD at 10η, so the two land on the same step size; RMSprop at 3e-3 already
#: has loss spikes.)
#: (label, optimizer class, keyword arguments, colour, line style)
OptimizerRun = tuple[str, type[optim.Optimizer], dict[str, Any], str, str]

DIGITS_OPTIMIZERS: list[OptimizerRun] = [
    ("SGD", optim.SGD, dict(lr=0.3), "#d62728", "-"),
    ("SGD + momentum 0.9", optim.SGD, dict(lr=0.03, momentum=0.9), "#dd8452", "--"),
    ("Adagrad", optim.Adagrad, dict(lr=0.1), "#8c564b", "-"),
    ("RMSprop", optim.RMSprop, dict(lr=0.001), "#8172b3", "-"),
    ("Adam", optim.Adam, dict(lr=0.01), "#2ca02c", "-"),
    ("AdamW (weight decay 0.01)", optim.AdamW, dict(lr=0.01), "#17becf", "--"),
]


def digits_optimizer_runs(epochs: int = 30, seed: SeedLike = 0,
                          optimizers: Iterable[OptimizerRun] = DIGITS_OPTIMIZERS
                          ) -> list[dict[str, Any]]:
    """Train the 64-128-10 ReLU MLP on the digits (X / 16, float32, a 25 % test split) with
    each optimizer: same initialisation and batch order (``seed``), batch 32. Returns one dict
    per optimizer: ``label``, ``lr``, ``loss`` (training loss per epoch), ``test_accuracy``
    (per epoch) and ``n_test`` (test rows)."""
    X, y = digits(np.float32)
    Xtr, Xte, ytr, yte = datasets.train_test_split(X, y, test_size=0.25, seed=seed)
    runs: list[dict[str, Any]] = []
    for label, cls, kw, *_ in optimizers:
        model = MLP([64, 128, 10], "relu", seed=seed)
        h = fit(model, Xtr, ytr, loss=CrossEntropyLoss(), optimizer=cls(model.parameters(), **kw),
                epochs=epochs, batch_size=32, seed=seed, validation_data=(Xte, yte),
                progress=False)
        runs.append(dict(label=label, lr=kw["lr"], loss=np.array(h["loss"]),
                         test_accuracy=np.array(h["val_accuracy"]), n_test=len(Xte)))
    return runs


@figure(7, "digits_optimizers", "Six optimizers training an MLP on the digits")
def digits_optimizers() -> MplFigure:
    epochs, last = 30, 5
    runs = digits_optimizer_runs(epochs)
    fig, (ax, ax2) = new_figure(height=4.8)
    x = np.arange(1, epochs + 1)
    n_test = runs[0]["n_test"]
    final = np.array([r["loss"][-1] for r in runs])
    accs = np.array([100 * r["test_accuracy"][-last:].mean() for r in runs])
    rows = np.arange(len(runs))[::-1]                           # the first optimizer on top
    for i, (run, (_, _, _, color, ls)) in enumerate(zip(runs, DIGITS_OPTIMIZERS)):
        ax.semilogy(x, run["loss"], ls, color=color, lw=1.8,
                    label=f"{run['label']}, lr = {run['lr']:g}")
        ax2.barh(rows[i], final[i], color=color, alpha=0.85 if ls == "-" else 0.45,
                 hatch=None if ls == "-" else "//", edgecolor=color)
        ax2.text(final[i] * 1.15, rows[i], f"test accuracy {accs[i]:.1f} %", va="center",
                 fontsize=8.5)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training cross-entropy (log scale)")
    ax.set_title("Training loss per epoch", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_ylim(top=5)                                          # room for the legend
    ax.legend(fontsize=8, loc="upper right")
    ax2.set_xscale("log")
    ax2.set_xlim(final.min() / 3, final.max() * 12)             # room for the text
    ax2.set_yticks(rows, [r["label"].replace(" (", "\n(") for r in runs], fontsize=8.5)
    ax2.set_xlabel(f"training loss after {epochs} epochs (log scale)")
    ax2.set_title(f"Training losses {final.max() / final.min():.0f}-fold apart, test accuracies "
                  f"within {accs.max() - accs.min():.1f} %\n(mean of the last {last} epochs; "
                  f"{n_test} test digits: one digit = {100 / n_test:.2f} %)", fontsize=10)
    ax2.grid(True, axis="x", which="both", alpha=0.3)
    fig.suptitle("Digits, MLP 64-128-10 (ReLU), batch 32, one start for all; each optimizer at "
                 "its best stable learning rate", fontsize=12)
    return fig
