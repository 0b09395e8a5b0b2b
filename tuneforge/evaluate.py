"""Per-frame negative log-likelihood and frame accuracy of a model on whole pieces.

Protocol (``docs/cells.md``, "The metric"): the model reads frames 1..T-1 of each piece and
predicts frames 2..T (the first frame is never scored); the NLL of a frame is -log p(frame |
the frames before) in nats, as the model's own likelihood gives it (the sum over the 88 pitches
of the binary cross-entropy for independent outputs, the sum of the chain-rule conditionals for
a note axis); the score is the sum over every predicted frame of every piece divided by their
count (frame-weighted). Only the play bits count; a model with articulation reports the NLL of
its re-struck bits apart. Frame accuracy (Bay et al. 2009) is TP / (TP + FP + FN) summed over
all predicted frames, for the model's most likely frame: each pitch above probability 1/2 for
independent outputs; for a note axis the greedy scan, each pitch on when likelier than not given
the predictions below it (for independent outputs the two coincide).

A second protocol, ``rru`` (the RRU benchmark's, seed 003, code LUMII-Syslab/RRU), is
:func:`score_windows`: each piece's silent frames are dropped, what is left is cut into windows
of 200 frames, each window is scored from a fresh state (its first frame is not predicted), and
the score is the mean over windows of each window's mean per-frame NLL (window-weighted).
``docs/protocols.md`` sets the two side by side."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from tuneforge.errors import ConfigError, DataError
from tuneforge.models.frames import FrameBatch

SCORED_FRAMES = "frames 2..T of each whole piece (frame 1 is never predicted)"
RRU_WINDOW_STEPS = 200  # the window of the RRU benchmark's music code
PROTOCOLS = {
    "tcn": "whole pieces, frames 2..T, frame-weighted (the TCN benchmark)",
    "rru": f"silent frames dropped, windows of {RRU_WINDOW_STEPS} from a fresh state, frames "
    "2..W of each, window-weighted (the RRU benchmark)",
}
DEFAULT_PROTOCOL = "tcn"


def check_protocol(protocol: str) -> str:
    """``protocol`` if it is one of :data:`PROTOCOLS`, else ConfigError naming them."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    return protocol


@dataclass
class FrameScores:
    """Sums over predicted frames; add two to merge shards."""

    nll_sum: float = 0.0  # nats of the play bits, summed over pitches and frames
    frames: int = 0  # predicted (scored) frames
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    articulation_nll_sum: float = 0.0  # nats of the re-struck bits (reported apart)

    @property
    def nll(self) -> float:
        """Frame-weighted mean NLL in nats per frame (nan when nothing was scored)."""
        return self.nll_sum / self.frames if self.frames else float("nan")

    @property
    def accuracy(self) -> float:
        """Frame accuracy TP / (TP + FP + FN) (1.0 when every frame is silent and predicted so)."""
        denominator = self.true_positives + self.false_positives + self.false_negatives
        return self.true_positives / denominator if denominator else 1.0

    @property
    def articulation_nll(self) -> float:
        """Frame-weighted mean NLL of the articulation bits (0 for models without them)."""
        return self.articulation_nll_sum / self.frames if self.frames else float("nan")

    def as_tensor(self) -> torch.Tensor:
        """The sums as one float64 tensor, for an all-reduce across processes."""
        return torch.tensor(
            [
                self.nll_sum,
                self.frames,
                self.true_positives,
                self.false_positives,
                self.false_negatives,
                self.articulation_nll_sum,
            ],
            dtype=torch.float64,
        )

    @classmethod
    def from_tensor(cls, sums: torch.Tensor) -> FrameScores:
        """Inverse of :meth:`as_tensor`."""
        nll_sum, frames, tp, fp, fn, articulation = sums.tolist()
        return cls(nll_sum, int(frames), int(tp), int(fp), int(fn), articulation)


def pieces_to_batch(
    rolls: Sequence[np.ndarray],
    *,
    onsets: Sequence[np.ndarray | None] | None = None,
    bar_positions: Sequence[np.ndarray | None] | None = None,
    onsets_known: Sequence[bool] | None = None,
    steps_per_beat: int = 4,
) -> tuple[FrameBatch, torch.Tensor]:
    """Whole pieces as one padded next-frame batch and its mask (B, T-1) of real steps.

    Missing onsets are the ones the roll implies (first frames of sounding runs, not "known");
    missing bar positions are 4/4 from the piece's first step.
    """
    from tuneforge.music.meter import step_in_bar
    from tuneforge.music.pianoroll import canonical_onsets

    count = len(rolls)
    length = max(len(roll) for roll in rolls) - 1
    width = rolls[0].shape[1]
    frames = np.zeros((count, length + 1, width), dtype=np.float32)
    strikes = np.zeros_like(frames)
    positions = np.zeros((count, length), dtype=np.int64)
    mask = np.zeros((count, length), dtype=bool)
    known = np.zeros(count, dtype=bool)
    for row, roll in enumerate(rolls):
        steps = len(roll)
        frames[row, :steps] = roll
        given = None if onsets is None else onsets[row]
        strikes[row, :steps] = canonical_onsets(roll, given)
        known[row] = given is not None and (onsets_known is None or bool(onsets_known[row]))
        bars = None if bar_positions is None else bar_positions[row]
        if bars is None:
            bars = step_in_bar(steps, steps_per_beat)
        positions[row, : steps - 1] = bars[1:steps]
        mask[row, : steps - 1] = True
    frames_t, strikes_t = torch.from_numpy(frames), torch.from_numpy(strikes)
    batch = FrameBatch(
        inputs=frames_t[:, :-1],
        targets=frames_t[:, 1:],
        input_onsets=strikes_t[:, :-1],
        target_onsets=strikes_t[:, 1:],
        bar_positions=torch.from_numpy(positions),
        onsets_known=torch.from_numpy(known),
    )
    return batch, torch.from_numpy(mask)


def add_scores(scores: FrameScores, model, batch: FrameBatch, mask: torch.Tensor) -> None:
    """Score one batch with ``model`` (in its current mode) and add the sums to ``scores``."""
    log_lik, _ = model(batch)
    scores.nll_sum -= float(log_lik.play[mask].sum(dtype=torch.float64))
    scores.articulation_nll_sum -= float(log_lik.articulation[mask].sum(dtype=torch.float64))
    scores.frames += int(mask.sum())
    predicted = model.predict(batch) & mask[..., None]
    actual = (batch.targets > 0.5) & mask[..., None]
    scores.true_positives += int((predicted & actual).sum())
    scores.false_positives += int((predicted & ~actual).sum())
    scores.false_negatives += int((~predicted & actual).sum())


@torch.no_grad()
def score_rolls(
    model: torch.nn.Module,
    rolls: Sequence[np.ndarray],
    *,
    onsets: Sequence[np.ndarray | None] | None = None,
    bar_positions: Sequence[np.ndarray | None] | None = None,
    onsets_known: Sequence[bool] | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 32,
) -> FrameScores:
    """Score whole pieces (each a (T, 88) 0/1 array) with next-frame prediction.

    Pieces are sorted by length and run in padded batches of ``batch_size``; padding is masked
    out of every sum. ``onsets`` and ``bar_positions`` (per piece, or None) feed models that
    read them. The model runs in eval mode (no dropout) and is left as it was found.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    scores = FrameScores()
    steps_per_beat = int(getattr(model.config, "steps_per_beat", 4))
    order = sorted(
        (i for i, roll in enumerate(rolls) if len(roll) >= 2), key=lambda i: len(rolls[i])
    )
    try:
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            batch, mask = pieces_to_batch(
                [rolls[i] for i in chosen],
                onsets=None if onsets is None else [onsets[i] for i in chosen],
                bar_positions=None if bar_positions is None else [bar_positions[i] for i in chosen],
                onsets_known=None if onsets_known is None else [onsets_known[i] for i in chosen],
                steps_per_beat=steps_per_beat,
            )
            add_scores(scores, model, batch.to(device), mask.to(device))
    finally:
        model.train(was_training)
    return scores


@dataclass
class WindowScores:
    """Scores of the ``rru`` protocol: frame sums as :class:`FrameScores` (accuracy, frames)
    plus the sum over windows of each window's mean per-frame NLL."""

    frame_scores: FrameScores
    window_nll_sum: float = 0.0  # sum over windows of (window's NLL sum / its predicted frames)
    windows: int = 0  # windows with at least one predicted frame

    @property
    def nll(self) -> float:
        """Window-weighted NLL: the mean over windows of each window's per-frame NLL."""
        return self.window_nll_sum / self.windows if self.windows else float("nan")

    @property
    def accuracy(self) -> float:
        """Frame accuracy over every predicted frame of every window."""
        return self.frame_scores.accuracy

    @property
    def frames(self) -> int:
        """Predicted frames over all windows."""
        return self.frame_scores.frames


def rru_windows(
    rolls: Sequence[np.ndarray], window_steps: int = RRU_WINDOW_STEPS
) -> list[np.ndarray]:
    """Each piece without its silent frames, cut into consecutive windows of ``window_steps``
    (the last one of a piece shorter); windows of fewer than two frames predict nothing and
    are left out."""
    windows = []
    for roll in rolls:
        sounding = np.asarray(roll)[np.asarray(roll).any(axis=1)]
        for start in range(0, len(sounding), window_steps):
            window = sounding[start : start + window_steps]
            if len(window) >= 2:
                windows.append(window)
    return windows


@torch.no_grad()
def score_windows(
    model: torch.nn.Module,
    rolls: Sequence[np.ndarray],
    *,
    window_steps: int = RRU_WINDOW_STEPS,
    device: torch.device | str = "cpu",
    batch_size: int = 32,
) -> WindowScores:
    """Score ``rolls`` by the ``rru`` protocol (see :data:`PROTOCOLS`): silent frames dropped,
    windows of ``window_steps`` each from a fresh state, window-weighted mean NLL.

    Dropping frames breaks the meter and the onsets of the file, so windows are read as rolls
    alone (onsets implied by the roll, 4/4 from each window's first frame). The model runs in
    eval mode and is left as it was found.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    windows = rru_windows(rolls, window_steps)
    scores = WindowScores(FrameScores())
    steps_per_beat = int(getattr(model.config, "steps_per_beat", 4))
    try:
        for start in range(0, len(windows), batch_size):
            batch, mask = pieces_to_batch(
                windows[start : start + batch_size], steps_per_beat=steps_per_beat
            )
            batch, mask = batch.to(device), mask.to(device)
            log_lik, _ = model(batch)
            per_window = -(log_lik.play.double() * mask).sum(dim=1)  # (B,)
            scores.window_nll_sum += float((per_window / mask.sum(dim=1)).sum())
            scores.windows += int(mask.shape[0])
            add_scores(scores.frame_scores, model, batch, mask)
    finally:
        model.train(was_training)
    return scores


def score_frames(
    model: torch.nn.Module,
    roll: np.ndarray,
    *,
    onsets: np.ndarray | None = None,
    bar_positions: np.ndarray | None = None,
) -> np.ndarray:
    """Log-likelihood (nats) of each frame of ``roll`` ``(T, P)`` under the model.

    The same protocol as :func:`score_rolls`: frame ``t`` is predicted from frames ``< t`` and
    the first frame is never scored, so entry 0 is NaN and ``-nanmean(result)`` is the per-frame
    NLL that training reports for this piece.
    """
    roll = np.asarray(roll)
    if roll.ndim != 2 or len(roll) < 2:
        raise ConfigError("a piece needs at least two steps to be scored; give a longer file")
    param = next(model.parameters())
    batch, _ = pieces_to_batch(
        [roll],
        onsets=[onsets],
        bar_positions=[bar_positions],
        steps_per_beat=int(getattr(model.config, "steps_per_beat", 4)),
    )
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            log_lik, _ = model(batch.to(param.device))
            per_frame = log_lik.play.squeeze(0).double().cpu().numpy()  # (T-1,)
    finally:
        model.train(was_training)
    return np.concatenate([[np.nan], per_frame])


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
    protocol: str = DEFAULT_PROTOCOL  # a key of PROTOCOLS
    windows: int | None = None  # windows scored (rru protocol only)
    articulation_nll: float = 0.0  # nats per frame of the re-struck bits, apart from ``nll``

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


SPLITS = ("train", "valid", "test")


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | None = None,
    *,
    split: str = "test",
    data_dir: Path | None = None,
    device: str = "auto",
    batch_size: int = 32,
    protocol: str = DEFAULT_PROTOCOL,
) -> EvaluationReport:
    """Load ``checkpoint`` and score it on ``split`` of ``data`` (folder, file or benchmark name;
    None: the data the checkpoint records it was trained on) by ``protocol`` (``tcn``:
    :func:`score_rolls`, ``rru``: :func:`score_windows`).

    The data are read with the checkpoint's settings (steps per beat, split seed, percussion and
    octave folding), so a checkpoint is scored on the pieces it was validated against.
    """
    from tuneforge.checkpoint import load_checkpoint
    from tuneforge.data.comparison import training_data_of
    from tuneforge.device import choose_device

    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    check_protocol(protocol)
    torch_device = choose_device(device)
    loaded = load_checkpoint(checkpoint, device=torch_device)
    meta = loaded.meta if data is None else {**loaded.meta, "data_spec": data}
    try:
        dataset = training_data_of(meta, data_dir=data_dir)
    except DataError as error:
        if data is not None:
            raise
        raise DataError(
            f"{error} (the data {loaded.path.name} records it was trained on); give DATA"
        ) from error
    if dataset is None:
        raise ConfigError(f"{loaded.path} records no training data; give the DATA to score it on")
    rolls = getattr(dataset, split)
    if not rolls:
        raise DataError(f"{dataset.name} has no pieces in its {split} split; pick another --split")
    scores, windows = score_split(
        loaded.model, dataset, split, protocol=protocol, device=torch_device, batch_size=batch_size
    )
    recorded = loaded.meta.get("data_fingerprint")
    return EvaluationReport(
        checkpoint=str(loaded.path),
        dataset=dataset.name,
        split=split,
        nll=scores.nll,
        frame_accuracy=scores.accuracy,
        frames=scores.frames,
        pieces=sum(1 for roll in rolls if len(roll) >= 2),
        scored_frames=SCORED_FRAMES if protocol == "tcn" else PROTOCOLS[protocol],
        fingerprint_matches=None if recorded is None else recorded == dataset.fingerprint,
        protocol=protocol,
        windows=windows,
        articulation_nll=float(getattr(scores, "articulation_nll", 0.0)),
    )


def score_split(
    model: torch.nn.Module,
    dataset,
    split: str,
    *,
    protocol: str = DEFAULT_PROTOCOL,
    device: torch.device | str = "cpu",
    batch_size: int = 32,
) -> tuple[FrameScores | WindowScores, int | None]:
    """Score one split of ``dataset`` by ``protocol``; also the windows scored (None for
    ``tcn``). The ``tcn`` protocol gives the model the pieces' onsets and meters."""
    from tuneforge.data.dataset import split_pieces

    check_protocol(protocol)
    pieces = split_pieces(dataset, split)
    if protocol == "rru":
        scores = score_windows(model, pieces.rolls, device=device, batch_size=batch_size)
        return scores, scores.windows
    scored = score_rolls(
        model,
        pieces.rolls,
        onsets=pieces.onsets,
        bar_positions=pieces.bar_positions,
        onsets_known=pieces.onsets_known,
        device=device,
        batch_size=batch_size,
    )
    return scored, None
