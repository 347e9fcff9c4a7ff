"""fastgd's exceptions."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .history import History


class DivergenceError(ArithmeticError):
    """Training produced a NaN or infinite loss (or parameters); the parameters and the
    optimizer state were restored to their last good values first. ``epoch`` and ``step``
    say where (0-based step within the epoch); ``history`` holds what was recorded until
    then."""

    def __init__(self, message: str, *, epoch: int, step: int,
                 history: History | None = None) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.step = step
        self.history = history
