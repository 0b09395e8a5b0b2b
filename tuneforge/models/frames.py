"""What every model reads and returns: a batch of next-frame predictions and its likelihood.

Step ``t`` of a batch pairs the input frame ``t`` of a piece with the target frame ``t + 1``.
Beside the frames travel the onsets (where a note is struck anew; for data without onsets they
are the first frames of sounding runs) and the position of the *target* step in its bar, so a
model that reads the meter knows where the step it predicts falls.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class FrameBatch:
    """Inputs and targets of next-frame prediction, batch first.

    Shape:
        inputs, targets, input_onsets, target_onsets: (B, T, P) float 0/1;
        bar_positions: (B, T) int64, the step of the target frame within its bar;
        onsets_known: (B,) bool, whether ``target_onsets`` are real (from MIDI) or derived.
    """

    inputs: Tensor
    targets: Tensor
    input_onsets: Tensor
    target_onsets: Tensor
    bar_positions: Tensor
    onsets_known: Tensor

    @property
    def batch_size(self) -> int:
        """B."""
        return int(self.inputs.shape[0])

    @property
    def length_steps(self) -> int:
        """T."""
        return int(self.inputs.shape[1])

    @classmethod
    def from_frames(cls, frames: Tensor, *, steps_per_beat: int = 4) -> FrameBatch:
        """Next-frame pairs of whole pieces (B, T + 1, P) that start on a 4/4 downbeat, with
        the onsets the frames imply (not known from a file)."""
        onsets = canonical_onsets_t(frames)
        positions = torch.arange(1, frames.shape[1], device=frames.device) % (4 * steps_per_beat)
        return cls(
            inputs=frames[:, :-1],
            targets=frames[:, 1:],
            input_onsets=onsets[:, :-1],
            target_onsets=onsets[:, 1:],
            bar_positions=positions[None].expand(frames.shape[0], -1),
            onsets_known=torch.zeros(frames.shape[0], dtype=torch.bool, device=frames.device),
        )

    def to(self, device: torch.device | str) -> FrameBatch:
        """The same batch on ``device``."""
        return FrameBatch(*(getattr(self, name).to(device) for name in _FIELDS))


_FIELDS = ("inputs", "targets", "input_onsets", "target_onsets", "bar_positions", "onsets_known")


@dataclass
class FrameLogLik:
    """Log-likelihood in nats of each target frame, in two terms.

    ``play`` is log p(which pitches sound | the past): the per-frame figure of the protocol in
    ``docs/cells.md``. ``articulation`` is log p(which held notes are struck again | play, the
    past), zero for models without articulation and for rows whose onsets are not known.

    Shape:
        play, articulation: (B, T) float32.
    """

    play: Tensor
    articulation: Tensor


def canonical_onsets_t(frames: Tensor, previous: Tensor | None = None) -> Tensor:
    """Onsets a roll implies by itself: sounding frames whose previous frame was silent.

    Shape:
        frames: (B, T, P); previous: (B, P) frame before the first (None: silence).
    """
    before = torch.zeros_like(frames[:, :1]) if previous is None else previous[:, None]
    shifted = torch.cat([before, frames[:, :-1]], dim=1)
    return frames * (1 - shifted)


def meter_features(bar_positions: Tensor, steps_per_beat: int) -> Tensor:
    """One-hot position within the beat and beat within the bar, for models that read meter.

    A beat is a quarter note. ``steps_per_beat`` columns mark the step within the beat (at most
    8 are kept: finer grids fold onto 8) and 8 columns the beat within the bar (beats past the
    eighth fold onto the last), plus one that marks a downbeat.

    Shape:
        bar_positions: (B, T) int64 -> (B, T, meter_width(steps_per_beat)).
    """
    sub_width = min(steps_per_beat, 8)
    in_beat = (bar_positions % steps_per_beat).clamp(max=sub_width - 1)
    beat = (bar_positions // steps_per_beat).clamp(max=7)
    parts = [
        torch.nn.functional.one_hot(in_beat, sub_width),
        torch.nn.functional.one_hot(beat, 8),
        (bar_positions == 0).long()[..., None],
    ]
    return torch.cat(parts, dim=-1).float()


def meter_width(steps_per_beat: int) -> int:
    """Columns of :func:`meter_features`."""
    return min(steps_per_beat, 8) + 8 + 1
