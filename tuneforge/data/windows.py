"""Windows for truncated backpropagation through time, and transposition augmentation.

A piece of ``T`` frames gives ``T - 1`` (input, target) pairs: the model reads frames
``0..T-2`` and predicts frames ``1..T-1``. They are cut into windows of ``window_steps``; the
last window of a piece is padded with zeros and its ``mask`` is False there. Windows of one piece
follow each other in order, so training can carry the recurrent state from one to the next.
Beside the frames, windows carry the onsets of inputs and targets (where notes are struck) and
the position in its bar of every target step, for models that read them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tuneforge.errors import ConfigError
from tuneforge.music.pianoroll import NUM_PITCHES


@dataclass(frozen=True)
class Windows:
    """Fixed-length training windows cut from a list of pieces.

    Shape:
        inputs, targets: (N, W, 88) float32; onsets: (N, W + 1, 88) uint8 (of the input frames
        and, shifted by one, of the targets); bar_positions: (N, W) int64 (of the targets);
        mask: (N, W) bool; piece, start_step: (N,) int64; onsets_known: (N,) bool.
    """

    inputs: np.ndarray  # frames t of a piece
    targets: np.ndarray  # frames t + 1 of the same piece
    mask: np.ndarray  # False on padding after the end of a piece
    piece: np.ndarray  # index into the list of rolls given to make_windows
    start_step: np.ndarray  # input step of column 0 within its piece
    onsets: np.ndarray | None = None  # frames t .. t + W of the piece's onsets
    bar_positions: np.ndarray | None = None  # step in bar of each target frame
    onsets_known: np.ndarray | None = None  # whether the onsets come from the file

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def window_steps(self) -> int:
        """Length W of every window."""
        return int(self.inputs.shape[1])

    @property
    def num_frames(self) -> int:
        """Number of scored (unpadded) target frames."""
        return int(self.mask.sum())


def make_windows(
    rolls: list[np.ndarray],
    window_steps: int = 200,
    *,
    onsets: list[np.ndarray | None] | None = None,
    bar_positions: list[np.ndarray] | None = None,
) -> Windows:
    """Cut pieces into windows of ``window_steps`` (input, target) pairs with padding masks.

    Pieces shorter than 2 frames have no pair and are dropped (their index never appears in
    ``piece``). A window starts at input step ``0, W, 2W, ...`` of its piece. ``onsets`` (per
    piece, None where unknown: the roll's own onsets stand in) and ``bar_positions`` (per piece,
    default 4/4 counted in steps of a 16-step bar) ride along.
    """
    from tuneforge.music.pianoroll import canonical_onsets

    if window_steps < 1:
        raise ConfigError(f"window_steps must be >= 1, got {window_steps}")
    starts: list[tuple[int, int, int]] = []  # (piece index, start step, pairs in window)
    for index, roll in enumerate(rolls):
        if roll.ndim != 2 or roll.shape[1] != NUM_PITCHES:
            raise ConfigError(f"piece {index} has shape {roll.shape}; expected (T, {NUM_PITCHES})")
        num_pairs = roll.shape[0] - 1
        for start in range(0, max(num_pairs, 0), window_steps):
            starts.append((index, start, min(window_steps, num_pairs - start)))
    count = len(starts)
    inputs = np.zeros((count, window_steps, NUM_PITCHES), dtype=np.float32)
    targets = np.zeros((count, window_steps, NUM_PITCHES), dtype=np.float32)
    mask = np.zeros((count, window_steps), dtype=bool)
    strikes = np.zeros((count, window_steps + 1, NUM_PITCHES), dtype=np.uint8)
    positions = np.zeros((count, window_steps), dtype=np.int64)
    known = np.zeros(count, dtype=bool)
    piece_onsets: dict[int, np.ndarray] = {}
    for row, (index, start, length) in enumerate(starts):
        roll = rolls[index]
        given = None if onsets is None else onsets[index]
        if index not in piece_onsets:
            piece_onsets = {index: canonical_onsets(roll, given)}  # pieces come in order
        inputs[row, :length] = roll[start : start + length]
        targets[row, :length] = roll[start + 1 : start + 1 + length]
        strikes[row, : length + 1] = piece_onsets[index][start : start + length + 1]
        if bar_positions is None:
            positions[row, :length] = np.arange(start + 1, start + 1 + length) % 16
        else:
            positions[row, :length] = bar_positions[index][start + 1 : start + 1 + length]
        known[row] = given is not None
        mask[row, :length] = True
    return Windows(
        inputs=inputs,
        targets=targets,
        mask=mask,
        piece=np.array([s[0] for s in starts], dtype=np.int64),
        start_step=np.array([s[1] for s in starts], dtype=np.int64),
        onsets=strikes,
        bar_positions=positions,
        onsets_known=known,
    )


def transpose(frames: np.ndarray, semitones: int) -> np.ndarray:
    """Shift ``frames`` by ``semitones`` along the last (pitch) axis with zero fill.

    Positive values shift up. Notes pushed past either end of the range vanish. Works on any
    array whose last axis is the pitch axis, e.g. (T, 88) or (N, W, 88); returns a new array.
    """
    semitones = int(semitones)
    shifted = np.zeros_like(frames)
    width = frames.shape[-1]
    if semitones >= width or semitones <= -width:
        return shifted
    if semitones > 0:
        shifted[..., semitones:] = frames[..., : width - semitones]
    elif semitones < 0:
        shifted[..., : width + semitones] = frames[..., -semitones:]
    else:
        shifted[...] = frames
    return shifted


def random_transpositions(num: int, max_semitones: int, rng: np.random.Generator) -> np.ndarray:
    """``num`` shifts drawn uniformly from ``-max_semitones..max_semitones`` (int64).

    For augmentation of training batches only; valid and test data are never transposed.
    """
    if max_semitones < 0:
        raise ConfigError(f"max_semitones must be >= 0, got {max_semitones}")
    return rng.integers(-max_semitones, max_semitones + 1, size=num, dtype=np.int64)
