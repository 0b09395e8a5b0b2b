"""What a training run reports: progress records and the callbacks that receive them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


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

    epoch: int  # 0-based
    step: int  # 1-based within the epoch
    steps: int  # steps in this epoch
    loss: float  # mean NLL per real frame in this batch (nats; play and articulation)
    grad_norm: float  # before clipping
    lr: float
    frames_per_s: float  # real frames per second this epoch so far
    epoch_loss: float  # mean NLL per real frame over this epoch's steps so far


@dataclass
class EpochInfo:
    """One finished epoch (a line of ``metrics.jsonl``)."""

    epoch: int  # 0-based
    train_loss: float  # nats per frame, averaged over the epoch's real frames
    valid_nll: float
    valid_accuracy: float
    best_valid_nll: float
    best_epoch: int
    lr: float
    grad_norm: float  # mean over the epoch's steps
    frames_per_s: float
    epoch_s: float
    eta_s: float  # if every remaining epoch runs
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
    """Ctrl-C stopped training; ``last`` resumes at ``epoch`` (0-based; None: nothing saved)."""

    def __init__(self, run_dir: Path, epoch: int | None) -> None:
        super().__init__("training interrupted")
        self.run_dir = run_dir
        self.epoch = epoch
