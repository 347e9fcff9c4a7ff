"""What ``fit`` records, epoch by epoch."""
from typing import Any


class History:
    """Per-epoch metrics of a ``fit`` call.

    ``history`` maps a metric name to one value per epoch: ``"loss"`` (mean training batch
    loss), ``"lr"`` (first group's learning rate at the epoch's end), ``"time"`` (wall
    seconds), and with validation data ``"val_loss"`` and, for classification,
    ``"val_accuracy"``. ``best_epoch`` is the epoch whose parameters the model ends with
    under early stopping; ``stopped_epoch`` the last epoch run.

    Examples
    --------
    >>> h = History()
    >>> h.record(loss=1.0, lr=0.1, time=0.01)
    >>> h["loss"], h.epochs
    ([1.0], 1)
    """

    def __init__(self) -> None:
        # one value per epoch (None for an epoch that did not record the metric)
        self.history: dict[str, list[Any]] = {}
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self.stop_reason: str = "completed"

    def record(self, **metrics: float) -> None:
        n = self.epochs
        for k, v in metrics.items():
            self.history.setdefault(k, [None] * n).append(v)
        for vals in self.history.values():
            if len(vals) < n + 1:
                vals.append(None)

    @property
    def epochs(self) -> int:
        return len(self.history.get("loss", []))

    def __getitem__(self, key: str) -> list[Any]:
        return self.history[key]

    def __contains__(self, key: object) -> bool:
        return key in self.history

    def __repr__(self) -> str:
        last = {k: v[-1] for k, v in self.history.items()} if self.epochs else {}
        return f"History(epochs={self.epochs}, last={last})"
