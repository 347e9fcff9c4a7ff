"""The figures of gradient descent's phenomena, written as PNG files by `write_figures` (the
``fastgd demo --out DIR`` command).

Figures 1-4 and 6 (learning rate, ill-conditioning, plateau, local minima, batch sizes) are in
`fastgd.demo.descent`; 5 (vanishing gradients) and 7 (optimizers on the digits data), which train
networks with ``fastgd.nn``, in `fastgd.demo.networks`. A new figure is a function in either
(or in a new module imported here) decorated with ``@figure(number, name, title)`` that returns a
matplotlib ``Figure``, drawn on `new_figure`.

matplotlib is the optional ``plot`` extra: ``pip install 'fastgd[plot]'``. `write_figures`
raises ``ValueError`` for an unknown figure name or an output directory it cannot use and
``ImportError`` without matplotlib.
"""
from ._figure import DPI, FIGURES, Figure, figure, new_figure, save_png, write_figures
from . import descent, networks  # noqa: F401  (importing them registers their figures)

__all__ = ["DPI", "FIGURES", "Figure", "figure", "new_figure", "save_png",
           "write_figures"]
