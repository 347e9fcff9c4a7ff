"""``fastgd demo --out DIR``: the figures of gradient descent's phenomena, as PNG files.

Each figure is a function registered with `figure` that returns a matplotlib ``Figure``
(the Agg canvas: no display, no global pyplot state). `FIGURES` holds them in order. A
figure that needs more of fastgd can live in its own module, listed in `FIGURE_MODULES`: it
is imported before the figures run and registers its figures with
``@fastgd.demo.figure(number, name, title)``, drawing on `new_figure`. Figures 5 (vanishing
gradients) and 7 (optimizers on the digits data), which train networks with ``fastgd.nn``, live in
``fastgd._demo_nn``.

matplotlib is the optional ``plot`` extra: ``pip install 'fastgd[plot]'``.

`write_figures` raises ``ValueError`` for an unknown figure name or an output directory it
cannot use and ``ImportError`` without matplotlib; the ``fastgd demo`` command prints them
as one line (`USER_ERRORS`).
"""
import importlib
import io
import os
import time
from dataclasses import dataclass

import numpy as np

from . import functions
from ._atomic import atomic_write
from .linear_model import LinearRegression
from .minimize import minimize

__all__ = ["FIGURES", "FIGURE_MODULES", "figure", "new_figure", "write_figures",
           "add_arguments", "run", "USER_ERRORS"]

#: modules that register more figures when imported
FIGURE_MODULES = ["fastgd._demo_nn"]

#: the errors of ``run`` that are the user's to fix, printed by ``fastgd demo`` as one line
USER_ERRORS = (ValueError, TypeError, ImportError)

DPI = 100


@dataclass(frozen=True)
class Figure:
    number: int
    name: str       # the file is NAME.png
    title: str      # one line: what the figure shows
    make: object    # () -> matplotlib.figure.Figure


#: the registered figures, ordered by number
FIGURES: list = []


def figure(number, name, title):
    """Register ``make() -> matplotlib.figure.Figure`` as figure ``number``, file ``name.png``."""
    def register(make):
        if any(f.name == name or f.number == number for f in FIGURES):
            raise ValueError(f"a demo figure numbered {number} or named {name!r} exists already")
        FIGURES.append(Figure(number, name, title, make))
        FIGURES.sort(key=lambda f: f.number)
        return make
    return register


def _load_figure_modules():
    for mod in FIGURE_MODULES:
        importlib.import_module(mod)


# ---------------------------------------------------------------------------- helpers
COLORS = {"small": "#4c72b0", "good": "#2ca02c", "large": "#d62728", "gd": "#4c72b0",
          "momentum": "#dd8452", "adam": "#2ca02c", "rmsprop": "#8172b3", "sgd": "#d62728",
          "minibatch": "#dd8452"}


def new_figure(width=11.0, height=4.6, ncols=2):
    """A constrained-layout matplotlib ``Figure`` of ``width`` x ``height`` inches with
    ``ncols`` axes side by side; returns ``(figure, axes)``."""
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, axes


def _contours(ax, f, levels=None, n=240):
    (x0, x1), (y0, y1) = f.bounds
    gx, gy = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
    z = f(np.stack([gx, gy], axis=-1))
    cs = ax.contour(gx, gy, z, levels=levels if levels is not None else 18, colors="0.6",
                    linewidths=0.7, linestyles="solid")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    return cs


def _trajectory(ax, path, color, label, clip=None):
    p = np.asarray(path, dtype=np.float64)
    if clip is not None:  # a diverging path: draw it up to the first point far outside
        (x0, x1), (y0, y1) = clip
        far = (np.abs(p[:, 0]) > 3 * max(abs(x0), abs(x1))) | (np.abs(p[:, 1]) > 3 * max(abs(y0), abs(y1)))
        if far.any():
            p = p[:int(np.argmax(far)) + 1]
    ax.plot(p[:, 0], p[:, 1], "-o", color=color, ms=2.5, lw=1.3, label=label)
    ax.plot(p[0, 0], p[0, 1], "s", color="k", ms=5)


def _mark_minima(ax, f, label="minimum"):
    ax.plot(f.minima[:, 0], f.minima[:, 1], "*", color="k", ms=11, label=label, zorder=5)


# ---------------------------------------------------------------------------- figures
def _history_axis(ax):
    """The right-hand panel shared by the minimisation figures: f per iteration, log scale."""
    ax.set_title("f at each iterate (log scale)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("f(x)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)


@figure(1, "learning_rate", "Learning rate: too small, good, too large")
def learning_rate():
    f = functions.quadratic()
    x0 = np.array([1.0, 3.0])
    L = float(np.linalg.eigvalsh(f.hessian).max())
    runs = [("small", 0.02), ("good", 0.3), ("large", 0.72)]
    fig, (ax, ax2) = new_figure()
    _contours(ax, f, levels=np.linspace(0, 40, 21)[1:])
    for key, lr in runs:
        res = minimize(f, x0, grad=f.grad, lr=lr, max_iter=25, tol=0, tol_change=0)
        tag = {"small": "too small", "good": "good", "large": f"too large (> 2/L = {2 / L:.2f})"}[key]
        _trajectory(ax, res.path, COLORS[key], f"lr = {lr}: {tag}", clip=f.bounds)
        ax2.semilogy(res.history, "-o", ms=2.5, color=COLORS[key], label=f"lr = {lr}")
    _mark_minima(ax, f)
    ax.set_title(f"Trajectories on f = {f.formula} from (1, 3)")
    ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
    _history_axis(ax2)
    fig.suptitle("Gradient descent: the learning rate decides between crawling, converging "
                 "and diverging", fontsize=12)
    return fig


@figure(2, "ill_conditioning", "GD vs momentum vs Adam on an ill-conditioned bowl")
def ill_conditioning():
    kappa = 50.0
    f = functions.bowl(kappa, angle=15.0)
    x0 = np.array([-3.2, 0.3])
    runs = [("gd", dict(method="gd", lr=1.8 / kappa), "GD, lr = 1.8/L"),
            ("momentum", dict(method="momentum", lr=1.0 / kappa, momentum=0.7),
             "momentum 0.7, lr = 1/L"),
            ("adam", dict(method="adam", lr=0.3), "Adam, lr = 0.3")]
    fig, (ax, ax2) = new_figure()
    _contours(ax, f, levels=np.geomspace(0.01, 60, 14))
    for key, kw, label in runs:
        res = minimize(f, x0, grad=f.grad, max_iter=100, tol=0, tol_change=0, **kw)
        _trajectory(ax, res.path, COLORS[key], label)
        ax2.semilogy(res.history, "-", lw=1.6, color=COLORS[key], label=label)
    _mark_minima(ax, f)
    ax.set_ylim(-1.9, 1.2)
    ax.set_title(f"Condition number {kappa:g}: steep across, flat along the valley")
    ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
    _history_axis(ax2)
    fig.suptitle("Ill-conditioning: plain GD zig-zags and crawls; momentum and Adam go along "
                 "the valley", fontsize=12)
    return fig


@figure(3, "plateau", "A plateau slows plain GD; an adaptive method gets through")
def plateau():
    f = functions.plateau()
    x0 = np.array([2.6, 1.2])
    runs = [("gd", dict(method="gd", lr=0.5), "GD, lr = 0.5"),
            ("rmsprop", dict(method="rmsprop", lr=0.02), "RMSprop, lr = 0.02"),
            ("adam", dict(method="adam", lr=0.1), "Adam, lr = 0.1")]
    fig, (ax, ax2) = new_figure()
    _contours(ax, f, levels=[0.05, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.99, 0.999, 0.9999])
    n = 400
    for key, kw, label in runs:
        res = minimize(f, x0, grad=f.grad, max_iter=n, tol=0, tol_change=0, **kw)
        _trajectory(ax, res.path, COLORS[key], label)
        ax2.plot(res.history, "-", lw=1.8, color=COLORS[key], label=label)
    _mark_minima(ax, f)
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
def local_minima():
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
    _contours(ax, f, levels=np.geomspace(0.5, 800, 10))
    starts = np.array([[0.0, 0.0], [-0.5, -4.5], [4.5, 4.5], [-4.8, 0.5], [0.8, -4.0],
                       [-1.5, 4.8], [4.8, -4.8], [1.5, 1.0]])
    few = minimize(f, starts, grad=f.grad, lr=0.005, max_iter=400, tol=1e-4)
    for i in range(len(starts)):
        b = int(np.argmin(((few.x[i] - f.minima) ** 2).sum(-1)))
        ax.plot(few.path[i][:, 0], few.path[i][:, 1], "-", color=palette[b], lw=1.8)
        ax.plot(*starts[i], "s", color="k", ms=5)
    _mark_minima(ax, f, "minima (f = 0)")
    ax.plot([], [], "s", color="k", ms=5, label="starts")
    ax.set_title("Himmelblau: shaded by the minimum each start reaches")
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    # the tilted double well: a local and a global minimum
    g = functions.double_well()
    _contours(ax2, g, levels=[-0.25, -0.1, 0.1, 0.32, 0.6, 1.0, 1.5, 2.2, 3.0])
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
def batch_sizes():
    rng = np.random.default_rng(0)
    n, p = 1000, 8
    X = rng.standard_normal((n, p))
    y = X @ rng.uniform(-2, 2, p) + 1.0 + 0.5 * rng.standard_normal(n)
    best = LinearRegression(solver="closed_form").fit(X, y)
    floor = float(np.mean((y - best.predict(X)) ** 2))
    epochs = 40
    runs = [("gd", dict(solver="gd"), f"batch (all {n} samples)"),
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


# ---------------------------------------------------------------------------- running
def write_figures(out, names=None, dpi=DPI, log=print):
    """Write the figures (all, or those in ``names``) as ``out/NAME.png``; returns the paths.

    Each file is written to a temporary name in ``out`` and renamed into place, so a
    reader never sees half a PNG.
    """
    _require_matplotlib()
    _load_figure_modules()
    known = {f.name: f for f in FIGURES}
    if names:
        unknown = [nm for nm in names if nm not in known]
        if unknown:
            raise ValueError(f"unknown figure {unknown[0]!r}; choose from {', '.join(known)}")
    chosen = [f for f in FIGURES if not names or f.name in names]
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create the output directory {out!r}: "
                         f"{exc.strerror or exc}") from exc
    if not os.path.isdir(out):
        raise ValueError(f"{out!r} is not a directory")
    paths = []
    for spec in chosen:
        t0 = time.perf_counter()
        fig = spec.make()
        path = os.path.join(out, spec.name + ".png")
        _save_atomic(fig, path, dpi)
        paths.append(path)
        if log is not None:
            log(f"{path}  ({spec.number}. {spec.title}; {time.perf_counter() - t0:.1f} s)")
    return paths


def _save_atomic(fig, path, dpi):
    """Write ``fig`` as PNG to ``path`` with fastgd's one atomic writer (a complete file or
    the old one, never half of one; permissions from the umask)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    data = _png_bytes(fig, dpi)
    with atomic_write(path) as fh:
        fh.write(data)


def _png_bytes(fig, dpi):
    """The figure as PNG bytes: a 256-colour palette image when Pillow is there (a third
    of the size, no visible difference for line plots), else matplotlib's RGBA PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency of matplotlib
        return buf.getvalue()
    buf.seek(0)
    with Image.open(buf) as im:
        small = im.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE)
    out = io.BytesIO()
    small.save(out, format="png", optimize=True)
    return out.getvalue()


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError("fastgd demo needs matplotlib: pip install 'fastgd[plot]'") from None


# ---------------------------------------------------------------------------- command line
def add_arguments(parser):
    parser.add_argument("--out", default="figures", metavar="DIR",
                        help="directory for the PNG files (created if missing; default: figures)")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="write only these figures (by file name without .png)")
    parser.add_argument("--dpi", type=int, default=DPI, help=f"resolution (default {DPI})")


def run(args):
    if args.dpi < 20 or args.dpi > 600:
        raise ValueError(f"--dpi must be between 20 and 600, got {args.dpi}")
    write_figures(args.out, args.only, args.dpi)
    return 0
