"""A PNG of the training curves (training loss and validation NLL per epoch).

The choices (ticks, limits, title) are plain functions of the history so they can be checked
without reading pixels; :func:`curves_figure` only draws them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MAX_EPOCH_TICKS = 10
_NICE_STEPS = (1, 2, 5)
LIMIT_MARGIN = 0.08  # of the plotted span, above and below


def epoch_ticks(epochs: int, max_ticks: int = MAX_EPOCH_TICKS) -> list[int]:
    """Whole-epoch ticks (epochs counted from 1) for ``epochs`` epochs: every epoch when they
    fit, else the multiples of a step of 1, 2 or 5 times a power of ten (and epoch 1 when the
    step is 5 or more)."""
    if epochs < 1:
        return []
    step = next(
        size * 10**power
        for power in range(12)
        for size in _NICE_STEPS
        if math.ceil(epochs / (size * 10**power)) <= max_ticks
    )
    multiples = list(range(step, epochs + 1, step))
    return [1, *multiples] if step >= 5 else multiples


def loss_limits(train_loss: Sequence[float], valid_nll: Sequence[float]) -> tuple[float, float]:
    """The y range of the curves: the values of epochs 2..N, so that the first epoch (often far
    above the rest) does not squash them, and all epochs when there are fewer than three."""
    start = 1 if max(len(train_loss), len(valid_nll)) >= 3 else 0
    values = [v for v in (*train_loss[start:], *valid_nll[start:]) if math.isfinite(v)]
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    margin = (high - low) * LIMIT_MARGIN or abs(high) * 0.05 or 0.1
    return low - margin, high + margin


def off_chart_note(history: Sequence[Any], limits: tuple[float, float]) -> str | None:
    """Names the first epoch's values that lie above the chart, e.g. ``epoch 1 above: train loss
    9.84, valid NLL 9.64``; None when they fit."""
    if not history:
        return None
    first = history[0]
    above = [
        f"{name} {value:.3g}"
        for name, value in (("train loss", first.train_loss), ("valid NLL", first.valid_nll))
        if math.isfinite(value) and value > limits[1]
    ]
    return f"epoch 1 above: {', '.join(above)}" if above else None


def curves_title(run_name: str, history: Sequence[Any]) -> str:
    """``jsb-lstm: best valid NLL 9.644 at epoch 12 of 12`` (epochs counted from 1)."""
    finite = [entry for entry in history if math.isfinite(entry.valid_nll)]
    if not finite:
        return f"{run_name}: no epoch yet"
    best = min(finite, key=lambda entry: entry.valid_nll)
    return (
        f"{run_name}: best valid NLL {best.valid_nll:.3f} "
        f"at epoch {best.epoch + 1} of {len(history)}"
    )


def curves_figure(history: Sequence[Any], title: str):
    """A matplotlib Figure of training loss and validation NLL per epoch of ``history``
    (EpochInfo records), the best epoch marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = [entry.epoch + 1 for entry in history]
    train_loss = [entry.train_loss for entry in history]
    valid_nll = [entry.valid_nll for entry in history]
    figure = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot(epochs, train_loss, marker=".", label="train loss")
    axes.plot(epochs, valid_nll, marker=".", label="valid NLL")
    finite = [entry for entry in history if math.isfinite(entry.valid_nll)]
    if finite:
        best = min(finite, key=lambda entry: entry.valid_nll)
        axes.axvline(
            best.epoch + 1, color="grey", linestyle=":", label=f"best (epoch {best.epoch + 1})"
        )
    limits = loss_limits(train_loss, valid_nll)
    axes.set_ylim(*limits)
    note = off_chart_note(history, limits)
    if note:
        axes.annotate(note, xy=(0.01, 0.98), xycoords="axes fraction", va="top", fontsize=8)
    ticks = epoch_ticks(len(epochs) and max(epochs))
    axes.set_xticks(ticks)
    if ticks:
        axes.set_xlim(0.5, max(epochs) + 0.5)
    axes.set_xlabel("epoch")
    axes.set_ylabel("nats per frame")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper right")
    figure.tight_layout()
    return figure


def plot_curves(history: Sequence[Any], path: Path, title: str | None = None) -> Path:
    """Draw :func:`curves_figure` into the PNG ``path`` (titled after its folder, a run folder,
    unless ``title`` is given). Uses matplotlib's Agg backend: no display needed."""
    from tuneforge.files import replacing

    path = Path(path)
    figure = curves_figure(history, title or curves_title(path.resolve().parent.name, history))
    # Written beside the target then moved, so a viewer never sees half a PNG.
    with replacing(path) as partial:
        figure.savefig(partial, format="png")
    return path
