"""What a training run reports: progress records and the callbacks that receive them.

In these records ``epoch`` is an index counted from 0, as the training loop and the random
streams seeded by ``(seed, epoch)`` count; whatever a user reads numbers epochs from 1: the
screen, ``metrics.jsonl`` (:func:`epoch_to_metrics_line`, :func:`read_metrics`), the curves
and the messages.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

# metrics.jsonl lines carry this key since epochs are numbered from 1 there; a line without it
# was written by an earlier version, with `epoch` and `best_epoch` counted from 0.
EPOCHS_COUNTED_FROM_KEY = "epochs_counted_from"


@dataclass
class RunInfo:
    """What the dashboard shows before the first step."""

    run_dir: Path
    device: str
    parameters: int
    epochs: int
    start_epoch: int
    steps_per_epoch: int
    train_frames: int
    dataset: str
    config: Any  # the TrainConfig of the run
    world_size: int
    model: str = ""  # the model in words, e.g. "sequence lstm" or "biaxial lstm-v1"


@dataclass
class StepInfo:
    """One optimiser step."""

    epoch: int  # index, counted from 0
    step: int  # counted from 1 within the epoch
    steps: int  # steps in this epoch
    loss: float  # mean NLL per real frame in this batch (nats; play and articulation)
    grad_norm: float  # before clipping
    lr: float
    frames_per_s: float  # real frames per second this epoch so far
    epoch_loss: float  # mean NLL per real frame over this epoch's steps so far


@dataclass
class EpochInfo:
    """One finished epoch (a line of ``metrics.jsonl``, where epochs count from 1)."""

    epoch: int  # index, counted from 0
    train_loss: float  # nats per frame, averaged over the epoch's real frames
    valid_nll: float
    valid_accuracy: float
    best_valid_nll: float
    best_epoch: int  # index of the best epoch so far, counted from 0 (-1: none yet)
    lr: float
    grad_norm: float  # mean over the epoch's steps
    frames_per_s: float
    # The one measure of an epoch's duration, which every view shows: wall seconds from the
    # epoch's first step to the end of its validation (checkpoint writes come after it).
    epoch_s: float
    eta_s: float  # seconds if every remaining epoch runs (an upper bound)
    valid_articulation_nll: float = 0.0  # nats per frame of the re-struck bits (apart)


@dataclass
class TrainResult:
    """The outcome of :func:`train`."""

    run_dir: Path
    history: list[EpochInfo]
    best_epoch: int
    best_valid_nll: float
    test_nll: float | None  # of the best checkpoint, when the data has a test split
    test_accuracy: float | None
    test_frames: int
    parameters: int
    stopped: str  # "epochs", "early stopping" or "time budget"
    seconds_per_epoch: float


def mean_epoch_s(history: Sequence[EpochInfo]) -> float:
    """Mean :attr:`EpochInfo.epoch_s` of ``history`` (NaN when empty): the seconds per epoch
    that the dashboard, the log lines and the summary all show."""
    return sum(entry.epoch_s for entry in history) / len(history) if history else math.nan


def epoch_to_metrics_line(info: EpochInfo) -> str:
    """``info`` as one line of ``metrics.jsonl``: ``epoch`` and ``best_epoch`` counted from 1."""
    document = asdict(info)
    document["epoch"] = info.epoch + 1
    document["best_epoch"] = info.best_epoch + 1  # 0: no best yet
    document[EPOCHS_COUNTED_FROM_KEY] = 1
    return json.dumps(document) + "\n"


def metrics_line_to_epoch(line: str) -> EpochInfo:
    """One line of ``metrics.jsonl``, of this version or an earlier one, as an :class:`EpochInfo`.

    Lines without ``epochs_counted_from`` count epochs from 0; unknown keys are ignored.
    """
    document = json.loads(line)
    shift = int(document.pop(EPOCHS_COUNTED_FROM_KEY, 0))
    known = {field.name for field in fields(EpochInfo)}
    values = {key: value for key, value in document.items() if key in known}
    values["epoch"] = int(values["epoch"]) - shift
    values["best_epoch"] = int(values["best_epoch"]) - shift
    return EpochInfo(**values)


def read_metrics(path: Path | str) -> list[EpochInfo]:
    """The epochs of a run's ``metrics.jsonl`` (or of the run folder holding it), written by
    this version or an earlier one. Raises :class:`~tuneforge.errors.DataError` when there is
    no such file or a line is not an epoch's."""
    from tuneforge.errors import DataError

    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        raise DataError(f"{path} is missing; give a run folder of `tuneforge train`") from None
    history = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            history.append(metrics_line_to_epoch(line))
        except (ValueError, KeyError, TypeError):
            raise DataError(
                f"line {number} of {path} is not an epoch's metrics; "
                "the file may be cut short or edited"
            ) from None
    return history


class TrainCallbacks:
    """Receives training progress; subclass and override what you draw."""

    def on_start(self, info: RunInfo) -> None:
        """Called once, before the first epoch."""

    def on_step(self, info: StepInfo) -> None:
        """Called after each optimiser step."""

    def on_epoch(self, info: EpochInfo) -> None:
        """Called after each epoch's validation."""

    def on_end(self, result: TrainResult) -> None:
        """Called once, after the final test scoring."""


class TrainingInterrupted(Exception):
    """Ctrl-C stopped training; ``last`` resumes at ``epoch`` (an index from 0; None: nothing
    saved)."""

    def __init__(self, run_dir: Path, epoch: int | None) -> None:
        super().__init__("training interrupted")
        self.run_dir = run_dir
        self.epoch = epoch
