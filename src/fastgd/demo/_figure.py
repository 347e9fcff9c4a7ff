"""The demo's figure registry, its drawing helpers and the writer of the PNG files.

Each figure is a function registered with `figure` that returns a matplotlib ``Figure`` (the
Agg canvas: no display, no global pyplot state); `FIGURES` holds them in order of their
numbers. matplotlib is the optional ``plot`` extra: ``pip install 'fastgd[plot]'``.
"""
from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Collection, TypeVar

import numpy as np

from .._atomic import atomic_write

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.contour import QuadContourSet
    from matplotlib.figure import Figure as MplFigure

    from ..descent.functions import Objective

    _Make = TypeVar("_Make", bound=Callable[[], MplFigure])

DPI = 100


@dataclass(frozen=True)
class Figure:
    number: int
    name: str       # the file is NAME.png
    title: str      # one line: what the figure shows
    make: Callable[[], MplFigure]


#: the registered figures, ordered by number
FIGURES: list[Figure] = []


def figure(number: int, name: str, title: str) -> Callable[[_Make], _Make]:
    """Register ``make() -> matplotlib.figure.Figure`` as figure ``number``, file ``name.png``."""
    def register(make: _Make) -> _Make:
        if any(f.name == name or f.number == number for f in FIGURES):
            raise ValueError(f"a demo figure numbered {number} or named {name!r} exists already")
        FIGURES.append(Figure(number, name, title, make))
        FIGURES.sort(key=lambda f: f.number)
        return make
    return register


# ---------------------------------------------------------------------------- drawing helpers
COLORS = {"small": "#4c72b0", "good": "#2ca02c", "large": "#d62728", "gd": "#4c72b0",
          "momentum": "#dd8452", "adam": "#2ca02c", "rmsprop": "#8172b3", "sgd": "#d62728",
          "minibatch": "#dd8452"}


def new_figure(width: float = 11.0, height: float = 4.6, ncols: int = 2
               ) -> tuple[MplFigure, Any]:
    """A constrained-layout matplotlib ``Figure`` of ``width`` x ``height`` inches with
    ``ncols`` axes side by side; returns ``(figure, axes)``."""
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, axes


def contours(ax: Axes, f: Objective, levels: Any = None, n: int = 240) -> QuadContourSet:
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


def trajectory(ax: Axes, path: Any, color: str, label: str,
               clip: tuple[tuple[float, float], tuple[float, float]] | None = None) -> None:
    p = np.asarray(path, dtype=np.float64)
    if clip is not None:  # a diverging path: draw it up to the first point far outside
        (x0, x1), (y0, y1) = clip
        far = (np.abs(p[:, 0]) > 3 * max(abs(x0), abs(x1))) | (np.abs(p[:, 1]) > 3 * max(abs(y0), abs(y1)))
        if far.any():
            p = p[:int(np.argmax(far)) + 1]
    ax.plot(p[:, 0], p[:, 1], "-o", color=color, ms=2.5, lw=1.3, label=label)
    ax.plot(p[0, 0], p[0, 1], "s", color="k", ms=5)


def mark_minima(ax: Axes, f: Objective, label: str = "minimum") -> None:
    ax.plot(f.minima[:, 0], f.minima[:, 1], "*", color="k", ms=11, label=label, zorder=5)




# ---------------------------------------------------------------------------- running
def write_figures(out: str | os.PathLike[str], names: Collection[str] | None = None,
                  dpi: float = DPI, log: Callable[[str], object] | None = print) -> list[str]:
    """Write the figures (all, or those in ``names``) as ``out/NAME.png``; returns the paths.

    Each file is written to a temporary name in ``out`` and renamed into place, so a
    reader never sees half a PNG.
    """
    _require_matplotlib()
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
    paths: list[str] = []
    for spec in chosen:
        t0 = time.perf_counter()
        fig = spec.make()
        path = os.path.join(out, spec.name + ".png")
        save_png(fig, path, dpi)
        paths.append(path)
        if log is not None:
            log(f"{path}  ({spec.number}. {spec.title}; {time.perf_counter() - t0:.1f} s)")
    return paths


def save_png(fig: MplFigure, path: str | os.PathLike[str], dpi: float) -> None:
    """Write ``fig`` as PNG to ``path`` with fastgd's one atomic writer (a complete file or
    the old one, never half of one; permissions from the umask)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    data = _png_bytes(fig, dpi)
    with atomic_write(path) as fh:
        fh.write(data)


def _png_bytes(fig: MplFigure, dpi: float) -> bytes:
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


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError("fastgd demo needs matplotlib: pip install 'fastgd[plot]'") from None

