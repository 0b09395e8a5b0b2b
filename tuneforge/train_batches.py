"""The batches of one training epoch: shuffled windows, or consecutive windows of pieces.

Everything random in an epoch (transpositions, order) is drawn from the generator the loop
passes in, which is seeded by ``(seed, epoch)``: the same epoch always gets the same batches.
Under DDP every process plans the same global batches and keeps its rows ``rank::world_size``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tuneforge.data.dataset import SplitPieces
from tuneforge.data.windows import Windows, make_windows, random_transpositions, transpose
from tuneforge.distributed import DistContext
from tuneforge.models.frames import FrameBatch


@dataclass(frozen=True)
class Batch:
    """Rows of the epoch's windows; -1 marks a padding row (a piece that has ended)."""

    rows: np.ndarray  # (B,) int64
    fresh_state: bool  # True: start this batch from the initial state


@dataclass
class EpochPlan:
    """The windows of an epoch and the batches to run, in order."""

    windows: Windows
    batches: list[Batch]
    real_frames: int  # target frames of the whole epoch (all processes)

    def frames(self, batch: Batch) -> tuple[FrameBatch, torch.Tensor]:
        """The model's view of ``batch`` (CPU tensors) and its mask (B, W) of real steps."""
        real = batch.rows >= 0
        rows = np.where(real, batch.rows, 0)
        windows = self.windows
        mask = windows.mask[rows] & real[:, None]
        # Trailing steps that are padding in every row cost time and change nothing: cut them.
        used = np.flatnonzero(mask.any(axis=0))
        length = int(used[-1]) + 1 if used.size else 1
        mask = mask[:, :length]
        inputs = windows.inputs[rows, :length]
        targets = windows.targets[rows, :length]
        onsets = windows.onsets[rows, : length + 1].astype(np.float32)
        if not real.all():
            inputs[~real] = 0.0
            targets[~real] = 0.0
            onsets[~real] = 0.0
        frames = FrameBatch(
            inputs=torch.from_numpy(inputs),
            targets=torch.from_numpy(targets),
            input_onsets=torch.from_numpy(onsets[:, :-1]),
            target_onsets=torch.from_numpy(onsets[:, 1:]),
            bar_positions=torch.from_numpy(windows.bar_positions[rows, :length]),
            onsets_known=torch.from_numpy(windows.onsets_known[rows] & real),
        )
        return frames, torch.from_numpy(mask)


def plan_epoch(
    pieces: SplitPieces,
    config,
    rng: np.random.Generator,
    context: DistContext,
) -> EpochPlan:
    """Cut ``pieces`` into windows and order them into batches for one epoch.

    ``config`` is a :class:`~tuneforge.train.TrainConfig` (its transpose_semitones,
    window_steps, batch_size and carry_state are read).
    """
    rolls, onsets = list(pieces.rolls), list(pieces.onsets)
    if config.transpose_semitones > 0:
        shifts = random_transpositions(len(rolls), config.transpose_semitones, rng)
        rolls = [transpose(roll, int(shift)) for roll, shift in zip(rolls, shifts, strict=True)]
        onsets = [
            None if strikes is None else transpose(strikes, int(shift))
            for strikes, shift in zip(onsets, shifts, strict=True)
        ]
    windows = make_windows(
        rolls, window_steps=config.window_steps, onsets=onsets, bar_positions=pieces.bar_positions
    )
    if config.carry_state:
        global_batches = _piece_streams(windows, config.batch_size, rng)
    else:
        order = rng.permutation(len(windows))
        global_batches = [
            Batch(order[start : start + config.batch_size], True)
            for start in range(0, len(order), config.batch_size)
        ]
    # A batch with fewer rows than processes would leave one of them idle in the all-reduce.
    batches = [
        Batch(batch.rows[context.rank :: context.world_size], batch.fresh_state)
        for batch in global_batches
        if len(batch.rows) >= context.world_size
    ]
    return EpochPlan(windows=windows, batches=batches, real_frames=windows.num_frames)


def estimate_steps(rolls: Sequence[np.ndarray], config) -> int:
    """Steps in an epoch, without cutting windows (exact unless state is carried)."""
    per_piece = [-(-(len(roll) - 1) // config.window_steps) for roll in rolls if len(roll) >= 2]
    if config.carry_state:
        # Groups run as long as their longest piece; the unshuffled order gives a fair guess.
        return sum(
            max(per_piece[start : start + config.batch_size])
            for start in range(0, len(per_piece), config.batch_size)
        )
    return -(-sum(per_piece) // config.batch_size)


def _piece_streams(windows: Windows, batch_size: int, rng: np.random.Generator) -> list[Batch]:
    """Groups of ``batch_size`` pieces run side by side, window after window, state carried."""
    by_piece: dict[int, list[int]] = {}
    for row, piece in enumerate(windows.piece.tolist()):
        by_piece.setdefault(piece, []).append(row)  # make_windows keeps a piece's windows in order
    pieces = list(by_piece)
    pieces = [pieces[i] for i in rng.permutation(len(pieces))]
    batches = []
    for start in range(0, len(pieces), batch_size):
        group = [by_piece[p] for p in pieces[start : start + batch_size]]
        for position in range(max(len(rows) for rows in group)):
            rows = [rows[position] if position < len(rows) else -1 for rows in group]
            batches.append(Batch(np.array(rows, dtype=np.int64), position == 0))
    return batches
