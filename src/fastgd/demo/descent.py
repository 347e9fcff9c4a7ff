"""The demo figures of minimisation: 1 (learning rate), 2 (ill-conditioning), 3 (plateau),
4 (local minima) and 6 (batch sizes in linear regression)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..descent import functions
from ..descent.minimize import minimize
from ..linear_model import LinearRegression
from ._figure import COLORS, contours, mark_minima, trajectory, figure, new_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure as MplFigure


def _trajectories_and_values(fig: MplFigure, f: Any, ax: Axes, ax2: Axes, title: str,
                             suptitle: str) -> MplFigure:
    """The end shared by the minimisation figures: the minima and a legend on the trajectory
    panel ``ax``, f per iteration on a log scale in ``ax2``, the titles."""
    mark_minima(ax, f)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
    ax2.set_title("f at each iterate (log scale)")
    ax2.set_xlabel("iteration")
    ax2.set_ylabel("f(x)")
    ax2.legend(fontsize=8)
    ax2.grid(True, which="both", alpha=0.3)
    fig.suptitle(suptitle, fontsize=12)
    return fig


@figure(1, "learning_rate", "Learning rate: too small, good, too large")
def learning_rate() -> MplFigure:
    f = functions.quadratic()
    x0 = np.array([1.0, 3.0])
    assert f.hessian is not None  # the quadratic has a constant Hessian
    L = float(np.linalg.eigvalsh(f.hessian).max())
    runs = [("small", 0.02), ("good", 0.3), ("large", 0.72)]
    fig, (ax, ax2) = new_figure()
    contours(ax, f, levels=np.linspace(0, 40, 21)[1:])
    for key, lr in runs:
        res = minimize(f, x0, grad=f.grad, lr=lr, max_iter=25, tol=0, tol_change=0)
        tag = {"small": "too small", "good": "good", "large": f"too large (> 2/L = {2 / L:.2f})"}[key]
        trajectory(ax, res.path, COLORS[key], f"lr = {lr}: {tag}", clip=f.bounds)
        ax2.semilogy(res.history, "-o", ms=2.5, color=COLORS[key], label=f"lr = {lr}")
    return _trajectories_and_values(
        fig, f, ax, ax2, f"Trajectories on f = {f.formula} from (1, 3)",
        "Gradient descent: the learning rate decides between crawling, converging and diverging")


@figure(2, "ill_conditioning", "GD vs momentum vs Adam on an ill-conditioned bowl")
def ill_conditioning() -> MplFigure:
    kappa = 50.0
    f = functions.bowl(kappa, angle=15.0)
    x0 = np.array([-3.2, 0.3])
    runs: list[tuple[str, dict[str, Any], str]]
    runs = [("gd", dict(method="gd", lr=1.8 / kappa), "GD, lr = 1.8/L"),
            ("momentum", dict(method="momentum", lr=1.0 / kappa, momentum=0.7),
             "momentum 0.7, lr = 1/L"),
            ("adam", dict(method="adam", lr=0.3), "Adam, lr = 0.3")]
    fig, (ax, ax2) = new_figure()
    contours(ax, f, levels=np.geomspace(0.01, 60, 14))
    for key, kw, label in runs:
        res = minimize(f, x0, grad=f.grad, max_iter=100, tol=0, tol_change=0, **kw)
        trajectory(ax, res.path, COLORS[key], label)
        ax2.semilogy(res.history, "-", lw=1.6, color=COLORS[key], label=label)
    ax.set_ylim(-1.9, 1.2)
    return _trajectories_and_values(
        fig, f, ax, ax2, f"Condition number {kappa:g}: steep across, flat along the valley",
        "Ill-conditioning: plain GD zig-zags and crawls; momentum and Adam go along the valley")


@figure(3, "plateau", "A plateau slows plain GD; an adaptive method gets through")
def plateau() -> MplFigure:
    f = functions.plateau()
    x0 = np.array([2.6, 1.2])
    runs: list[tuple[str, dict[str, Any], str]]
    runs = [("gd", dict(method="gd", lr=0.5), "GD, lr = 0.5"),
            ("rmsprop", dict(method="rmsprop", lr=0.02), "RMSprop, lr = 0.02"),
            ("adam", dict(method="adam", lr=0.1), "Adam, lr = 0.1")]
    fig, (ax, ax2) = new_figure()
    contours(ax, f, levels=[0.05, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.99, 0.999, 0.9999])
    n = 400
    for key, kw, label in runs:
        res = minimize(f, x0, grad=f.grad, max_iter=n, tol=0, tol_change=0, **kw)
        trajectory(ax, res.path, COLORS[key], label)
        ax2.plot(res.history, "-", lw=1.8, color=COLORS[key], label=label)
    mark_minima(ax, f)
    ax.set_title(f"f = {f.formula}")
    ax.legend(loc="lower left", fontsize=8, framealpha=0.9)
    ax2.set_title(f"f at each iterate ({n} iterations)")
    ax2.set_xlabel("iteration")
    ax2.set_ylabel("f(x)")
    ax2.set_ylim(-0.03, 1.03)
    ax2.legend(fontsize=8)
    ax2.grid(True, alpha=0.3)
    fig.suptitle("Plateau: the gradient is tiny, so GD's steps are tiny for hundreds of "
                 "iterations; RMSprop and Adam rescale them", fontsize=12)
    return fig


@figure(4, "local_minima", "Several starts, several minima: the start decides")
def local_minima() -> MplFigure:
    from matplotlib.colors import ListedColormap

    fig, (ax, ax2) = new_figure(height=5.0)
    palette = ["#4c72b0", "#dd8452", "#55a868", "#c44e52"]
    # Himmelblau: a grid of starts minimised together (one kernel call per iteration) gives
    # the basins of attraction; a few starts show their paths.
    f = functions.himmelblau()
    (a0, a1), (b0, b1) = f.bounds
    n = 60
    gx, gy = np.meshgrid(np.linspace(a0, a1, n), np.linspace(b0, b1, n))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    res = minimize(f, grid, grad=f.grad, lr=0.005, max_iter=400, tol=1e-4, keep_path=False)
    basin = np.argmin(((res.x[:, None, :] - f.minima[None]) ** 2).sum(-1), axis=1)
    ax.imshow(basin.reshape(n, n), origin="lower", extent=(a0, a1, b0, b1), alpha=0.25,
              cmap=ListedColormap(palette), interpolation="nearest", aspect="equal")
    contours(ax, f, levels=np.geomspace(0.5, 800, 10))
    starts = np.array([[0.0, 0.0], [-0.5, -4.5], [4.5, 4.5], [-4.8, 0.5], [0.8, -4.0],
                       [-1.5, 4.8], [4.8, -4.8], [1.5, 1.0]])
    few = minimize(f, starts, grad=f.grad, lr=0.005, max_iter=400, tol=1e-4)
    for i in range(len(starts)):
        b = int(np.argmin(((few.x[i] - f.minima) ** 2).sum(-1)))
        ax.plot(few.path[i][:, 0], few.path[i][:, 1], "-", color=palette[b], lw=1.8)
        ax.plot(*starts[i], "s", color="k", ms=5)
    mark_minima(ax, f, "minima (f = 0)")
    ax.plot([], [], "s", color="k", ms=5, label="starts")
    ax.set_title("Himmelblau: shaded by the minimum each start reaches")
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    # the tilted double well: a local and a global minimum
    g = functions.double_well()
    contours(ax2, g, levels=[-0.25, -0.1, 0.1, 0.32, 0.6, 1.0, 1.5, 2.2, 3.0])
    starts2 = np.array([[-1.8, 1.2], [-0.6, -1.3], [-0.15, 1.4], [0.1, -1.4], [0.6, 1.3],
                        [1.8, -1.0], [1.6, 1.3], [-1.7, -0.9]])
    res2 = minimize(g, starts2, grad=g.grad, lr=0.02, max_iter=400, tol=1e-5)
    glob, loc = g.minima[0], g.minima[1]
    for i in range(len(starts2)):
        is_global = np.linalg.norm(res2.x[i] - glob) < np.linalg.norm(res2.x[i] - loc)
        ax2.plot(res2.path[i][:, 0], res2.path[i][:, 1], "-", lw=1.8,
                 color=palette[2] if is_global else palette[3])
        ax2.plot(*starts2[i], "s", color="k", ms=5)
    ax2.plot(*glob, "*", color=palette[2], ms=15, mec="k", label=f"global minimum, f = {g(glob):.2f}")
    ax2.plot(*loc, "*", color=palette[3], ms=15, mec="k", label=f"local minimum, f = {g(loc):.2f}")
    ax2.set_title(f"Double well {g.formula}")
    fig.legend(*ax2.get_legend_handles_labels(), loc="outside lower right", ncols=2, fontsize=8)
    fig.suptitle("Local minima: gradient descent goes downhill from where it starts, into "
                 "that start's basin", fontsize=12)
    return fig


@figure(6, "batch_sizes", "Batch vs mini-batch vs stochastic gradient descent")
def batch_sizes() -> MplFigure:
    rng = np.random.default_rng(0)
    n, p = 1000, 8
    X = rng.standard_normal((n, p))
    y = X @ rng.uniform(-2, 2, p) + 1.0 + 0.5 * rng.standard_normal(n)
    best = LinearRegression(solver="closed_form").fit(X, y)
    floor = float(np.mean((y - best.predict(X)) ** 2))
    epochs = 40
    runs: list[tuple[str, dict[str, Any], str]] = [
        ("gd", dict(solver="gd"), f"batch (all {n} samples)"),
        ("minibatch", dict(solver="minibatch", batch_size=32), "mini-batch (32)"),
        ("sgd", dict(solver="sgd"), "stochastic (1 sample)")]
    fig, (ax, ax2) = new_figure()
    for key, kw, label in runs:
        m = LinearRegression(lr=0.01, max_iter=epochs, tol=None, random_state=0, **kw).fit(X, y)
        curve = np.concatenate([[np.mean(y ** 2)], m.loss_curve_])   # from coefficients 0
        excess = curve - floor
        ax.semilogy(np.arange(len(curve)), excess, "-o", ms=2.5, color=COLORS[key], label=label)
        updates_per_epoch = {"gd": 1, "minibatch": -(-n // 32), "sgd": n}[key]
        ax2.loglog(np.arange(1, len(curve)) * updates_per_epoch, excess[1:], "-o", ms=2.5,
                   color=COLORS[key], label=label)
    ax.set_title("Excess training loss per epoch (pass over the data)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE - least-squares MSE")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax2.set_title("... per parameter update")
    ax2.set_xlabel("updates (kernel steps)")
    ax2.set_ylabel("MSE - least-squares MSE")
    ax2.legend(fontsize=8)
    ax2.grid(True, which="both", alpha=0.3)
    fig.suptitle("Linear regression, lr = 0.01: small batches make more progress per epoch "
                 "but stall at a noise floor", fontsize=12)
    return fig
