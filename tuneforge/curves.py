"""A PNG of the training curves (training loss and validation NLL per epoch)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def plot_curves(history: Sequence[Any], path: Path) -> Path:
    """Draw training loss and validation NLL per epoch of ``history`` (EpochInfo) into ``path``.

    Uses matplotlib's Agg backend (no display needed); the best epoch is marked.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    epochs = [entry.epoch + 1 for entry in history]
    figure = Figure(figsize=(6.4, 4.0), dpi=100)
    axes = figure.add_subplot()
    axes.plot(epochs, [entry.train_loss for entry in history], marker=".", label="train loss")
    axes.plot(epochs, [entry.valid_nll for entry in history], marker=".", label="valid NLL")
    if history:
        best = min(history, key=lambda entry: entry.valid_nll)
        axes.axvline(
            best.epoch + 1, color="grey", linestyle=":", label=f"best (epoch {best.epoch + 1})"
        )
    axes.set_xlabel("epoch")
    axes.set_ylabel("nats per frame")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    # Written beside the target then moved, so a viewer never sees half a PNG.
    partial = path.with_name(path.name + ".partial")
    figure.savefig(partial, format="png")
    partial.replace(path)
    return path
