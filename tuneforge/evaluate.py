"""Per-frame negative log-likelihood and frame accuracy of a model on whole pieces.

Protocol (``docs/cells.md``, "The metric"): the model reads frames 1..T-1 of each piece and
predicts frames 2..T (the first frame is never scored); the NLL of a frame is the sum over the
88 pitches of the binary cross-entropy in nats; the score is the sum over every predicted frame
of every piece divided by their count (frame-weighted). Frame accuracy (Bay et al. 2009) is
TP / (TP + FP + FN) summed over all predicted frames, with predictions thresholded at 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tuneforge.errors import ConfigError, DataError

SCORED_FRAMES = "frames 2..T of each whole piece (frame 1 is never predicted)"


@dataclass
class FrameScores:
    """Sums over predicted frames; add two to merge shards."""

    nll_sum: float = 0.0  # nats, summed over pitches and frames
    frames: int = 0  # predicted (scored) frames
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0

    @property
    def nll(self) -> float:
        """Frame-weighted mean NLL in nats per frame (nan when nothing was scored)."""
        return self.nll_sum / self.frames if self.frames else float("nan")

    @property
    def accuracy(self) -> float:
        """Frame accuracy TP / (TP + FP + FN) (1.0 when every frame is silent and predicted so)."""
        denominator = self.true_positives + self.false_positives + self.false_negatives
        return self.true_positives / denominator if denominator else 1.0

    def as_tensor(self) -> torch.Tensor:
        """The sums as one float64 tensor, for an all-reduce across processes."""
        return torch.tensor(
            [
                self.nll_sum,
                self.frames,
                self.true_positives,
                self.false_positives,
                self.false_negatives,
            ],
            dtype=torch.float64,
        )

    @classmethod
    def from_tensor(cls, sums: torch.Tensor) -> FrameScores:
        """Inverse of :meth:`as_tensor`."""
        nll_sum, frames, tp, fp, fn = sums.tolist()
        return cls(nll_sum, int(frames), int(tp), int(fp), int(fn))


@torch.no_grad()
def score_rolls(
    model: torch.nn.Module,
    rolls: Sequence[np.ndarray],
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 32,
) -> FrameScores:
    """Score whole pieces (each a (T, 88) 0/1 array) with next-frame prediction.

    Pieces are sorted by length and run in padded batches of ``batch_size``; padding is masked
    out of every sum. The model runs in eval mode (no dropout) and is left as it was found.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    scores = FrameScores()
    pieces = sorted((roll for roll in rolls if len(roll) >= 2), key=len)
    try:
        for start in range(0, len(pieces), batch_size):
            batch = pieces[start : start + batch_size]
            length = max(len(roll) for roll in batch) - 1
            frames = np.zeros((len(batch), length + 1, batch[0].shape[1]), dtype=np.float32)
            mask = np.zeros((len(batch), length), dtype=bool)
            for row, roll in enumerate(batch):
                frames[row, : len(roll)] = roll
                mask[row, : len(roll) - 1] = True
            frames_t = torch.from_numpy(frames).to(device)
            inputs, targets = frames_t[:, :-1], frames_t[:, 1:]  # (B, T-1, P) each
            mask_t = torch.from_numpy(mask).to(device)  # (B, T-1)
            logits, _ = model(inputs)
            logits = logits.float()
            bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
            scores.nll_sum += float(bce.sum(-1)[mask_t].sum(dtype=torch.float64))
            scores.frames += int(mask_t.sum())
            predicted = (logits > 0) & mask_t[..., None]
            actual = (targets > 0.5) & mask_t[..., None]
            scores.true_positives += int((predicted & actual).sum())
            scores.false_positives += int((predicted & ~actual).sum())
            scores.false_negatives += int((~predicted & actual).sum())
    finally:
        model.train(was_training)
    return scores


@dataclass
class EvaluationReport:
    """The scores of one checkpoint on one split of a data set."""

    checkpoint: str
    dataset: str
    split: str
    nll: float  # nats per predicted frame
    frame_accuracy: float
    frames: int  # predicted frames scored
    pieces: int
    scored_frames: str  # which frames are scored, in words
    fingerprint_matches: bool | None  # None when the checkpoint recorded no fingerprint

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


SPLITS = ("train", "valid", "test")


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str,
    *,
    split: str = "test",
    data_dir: Path | None = None,
    device: str = "auto",
    batch_size: int = 32,
) -> EvaluationReport:
    """Load ``checkpoint`` and score it on ``split`` of ``data`` (folder, file or benchmark name).

    The data are read with the checkpoint's settings (steps per beat, split seed, percussion and
    octave folding), so a checkpoint is scored on the pieces it was validated against.
    """
    from tuneforge.checkpoint import load_checkpoint
    from tuneforge.data.dataset import load_dataset
    from tuneforge.device import choose_device

    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    torch_device = choose_device(device)
    loaded = load_checkpoint(checkpoint, device=torch_device)
    steps_per_beat = int(loaded.meta.get("steps_per_beat", 4))
    dataset = load_dataset(
        data,
        data_dir=data_dir,
        steps_per_beat=steps_per_beat,
        split_seed=int(loaded.meta.get("split_seed", 0)),
        keep_percussion=bool(loaded.meta.get("keep_percussion", False)),
        fold_octaves=bool(loaded.meta.get("fold_octaves", False)),
    )
    rolls = getattr(dataset, split)
    if not rolls:
        raise DataError(f"{dataset.name} has no pieces in its {split} split; pick another --split")
    scores = score_rolls(loaded.model, rolls, device=torch_device, batch_size=batch_size)
    recorded = loaded.meta.get("data_fingerprint")
    return EvaluationReport(
        checkpoint=str(loaded.path),
        dataset=dataset.name,
        split=split,
        nll=scores.nll,
        frame_accuracy=scores.accuracy,
        frames=scores.frames,
        pieces=sum(1 for roll in rolls if len(roll) >= 2),
        scored_frames=SCORED_FRAMES,
        fingerprint_matches=None if recorded is None else recorded == dataset.fingerprint,
    )
