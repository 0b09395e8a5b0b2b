"""The Biaxial model (Johnson 2015; "Generating polyphonic music using tied parallel networks",
Johnson 2017): a time axis tied across pitches, then a note axis across the pitches of a step.

Time axis: recurrent layers of any registry cell run along time once per pitch, with the same
weights for every pitch. At step ``t`` pitch ``p`` reads features of the frame before the one
predicted, all taken relative to ``p``:

- the frame's window of +-``window_semitones`` around ``p`` (25 play bits by default, and as many
  onset bits with articulation);
- the frame's 12 pitch-class counts, rotated so that column 0 is ``p``'s own pitch class;
- the position of the predicted step in its beat and bar (when ``meter`` is on);
- the MIDI number of ``p`` (when ``pitch_feature`` is on), so that registers may differ.

Note axis: :class:`~tuneforge.models.note_axis.NoteAxis` scans the pitches from low to high,
reading the time axis's output for each pitch and the value chosen for the pitch below.

Transposition: every time-axis feature but the MIDI number is relative to the pitch, and the
weights are shared across pitches, so with ``pitch_feature=False`` the time axis is exactly
transposition-equivariant (shift the frames by k semitones and its outputs shift by k, as long
as no note crosses the edge of the window at the keyboard's ends). The note axis scans a
different number of silent pitches below a shifted chord, so the whole model's likelihood is
nearly, not exactly, invariant.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from tuneforge.cells import build_stack
from tuneforge.cells.dropout_mask import Dropout
from tuneforge.errors import ConfigError
from tuneforge.models.base import Drawer, MusicModel
from tuneforge.models.frames import FrameBatch, FrameLogLik, meter_features, meter_width
from tuneforge.models.note_axis import (
    NoteAxis,
    mode_drawer,
    scan_log_likelihood,
)


@dataclass(frozen=True)
class BiaxialConfig:
    """Everything needed to rebuild a Biaxial model; defaults are Johnson 2017's sizes."""

    cell: str = "lstm"  # time axis: a cell of the registry (seed 002 uses lstm-v1)
    time_hidden_size: int = 200  # time axis: units per layer
    time_layers: int = 2  # time axis: layers
    note_cell: str = "lstm"  # note axis: a cell of the registry
    note_hidden_size: int = 100  # note axis: units per layer
    note_layers: int = 2  # note axis: layers
    dropout: float = 0.5  # between layers and before each output (Johnson 2017: 0.5)
    cell_options: dict[str, Any] = field(default_factory=dict)  # time-axis cell options
    note_cell_options: dict[str, Any] = field(default_factory=dict)  # note-axis cell options
    window_semitones: int = 12  # each pitch sees the previous frame within +-this
    pitch_feature: bool = True  # read the MIDI number (breaks exact transposition symmetry)
    meter: bool = True  # read the position of the next step in its beat and bar
    articulation: bool = False  # read onsets and predict re-struck notes
    steps_per_beat: int = 4  # the grid the meter features are computed on
    num_pitches: int = 88  # width of a piano-roll frame
    lowest_pitch: int = 21  # MIDI pitch of column 0 (A0)

    kind: ClassVar[str] = "biaxial"

    def __post_init__(self) -> None:
        if self.window_semitones < 0:
            raise ConfigError(f"window_semitones must be >= 0, got {self.window_semitones}")
        if self.steps_per_beat < 1:
            raise ConfigError(f"steps_per_beat must be >= 1, got {self.steps_per_beat}")

    @property
    def hidden_size(self) -> int:
        """The time axis's width (what ``--hidden-size`` sets)."""
        return self.time_hidden_size

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that :meth:`from_dict` turns back into this config."""
        return {"kind": self.kind, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BiaxialConfig:
        """Rebuild a config from :meth:`to_dict` output, ignoring unknown keys."""
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


class BiaxialModel(MusicModel):
    """Tied time axis over every pitch, then a note axis over the pitches of each step.

    Shape:
        a :class:`FrameBatch` of (B, T, P) frames -> log-likelihoods (B, T); the time axis runs
        over B * P sequences, the note axis over B * T scans of P pitches.
    """

    kind = "biaxial"

    def __init__(self, config: BiaxialConfig) -> None:
        super().__init__()
        self.config = config
        pitches = config.num_pitches
        window = 2 * config.window_semitones + 1
        feature_size = window * (2 if config.articulation else 1) + 12
        feature_size += meter_width(config.steps_per_beat) if config.meter else 0
        feature_size += 1 if config.pitch_feature else 0
        self.feature_size = feature_size
        self.time_axis = build_stack(
            config.cell,
            input_size=feature_size,
            hidden_size=config.time_hidden_size,
            num_layers=config.time_layers,
            dropout=config.dropout,
            **config.cell_options,
        )
        self.dropout = Dropout(config.dropout)
        self.note_axis = NoteAxis(
            context_size=self.time_axis.output_size,
            num_pitches=pitches,
            cell=config.note_cell,
            hidden_size=config.note_hidden_size,
            num_layers=config.note_layers,
            dropout=config.dropout,
            cell_options=dict(config.note_cell_options),
            articulation=config.articulation,
            pitch_embedding_size=0,
        )
        midi = torch.arange(pitches, dtype=torch.float32) + config.lowest_pitch
        self.register_buffer("pitch_value", (midi - 64.0) / 24.0, persistent=False)  # (P,)
        # relative[p, k]: the pitch class k semitones above pitch p.
        relative = (midi.long()[:, None] + torch.arange(12)[None, :]) % 12
        self.register_buffer("relative_class", relative, persistent=False)  # (P, 12)
        pitch_class = midi.long() % 12
        self.register_buffer(
            "class_matrix", F.one_hot(pitch_class, 12).float(), persistent=False
        )  # (P, 12)

    @property
    def joint(self) -> bool:
        """The note axis draws a chord's pitches one after another."""
        return True

    def pitch_features(self, frames: Tensor, onsets: Tensor, bar_positions: Tensor) -> Tensor:
        """Per-pitch time-axis inputs.

        Shape:
            frames, onsets: (B, T, P); bar_positions: (B, T) -> (B, T, P, F).
        """
        span = self.config.window_semitones
        width = 2 * span + 1
        rows, length, pitches = frames.shape
        parts = [F.pad(frames, (span, span)).unfold(-1, width, 1)]  # (B, T, P, W)
        if self.config.articulation:
            parts.append(F.pad(onsets.to(frames.dtype), (span, span)).unfold(-1, width, 1))
        counts = frames @ self.class_matrix.to(frames.dtype)  # (B, T, 12)
        parts.append(counts[:, :, self.relative_class])  # (B, T, P, 12)
        if self.config.meter:
            meter = meter_features(bar_positions, self.config.steps_per_beat).to(frames.dtype)
            parts.append(meter[:, :, None].expand(-1, -1, pitches, -1))
        if self.config.pitch_feature:
            value = self.pitch_value.to(frames.dtype)
            parts.append(value[None, None, :, None].expand(rows, length, -1, 1))
        return torch.cat(parts, dim=-1)

    def time_outputs(
        self, frames: Tensor, onsets: Tensor, bar_positions: Tensor, state: Any = None
    ) -> tuple[Tensor, Any]:
        """The time axis over every pitch: (B, T, P, H) and its state (B * P rows)."""
        features = self.pitch_features(frames, onsets, bar_positions)  # (B, T, P, F)
        rows, length, pitches, width = features.shape
        by_pitch = features.permute(0, 2, 1, 3).reshape(rows * pitches, length, width)
        hidden, state = self.time_axis(by_pitch, state)  # (B * P, T, H)
        hidden = hidden.reshape(rows, pitches, length, -1).permute(0, 2, 1, 3)
        return hidden, state

    def forward(self, batch: FrameBatch, state: Any = None) -> tuple[FrameLogLik, Any]:
        """Log-likelihood of every target frame of ``batch``."""
        hidden, state = self.time_outputs(
            batch.inputs, batch.input_onsets, batch.bar_positions, state
        )
        rows, length, pitches, width = hidden.shape
        context = self.dropout(hidden).reshape(rows * length, pitches, width)
        play_logits, art_logits = self.note_axis.logits(
            context,
            batch.targets.reshape(rows * length, -1),
        )
        if art_logits is not None:
            art_logits = art_logits.reshape(rows, length, -1)
        return scan_log_likelihood(play_logits.reshape(rows, length, -1), art_logits, batch), state

    def predict(self, batch: FrameBatch) -> Tensor:
        """The greedy scan of the note axis at every step (see :func:`mode_drawer`)."""
        hidden, _ = self.time_outputs(batch.inputs, batch.input_onsets, batch.bar_positions)
        rows, length, pitches, width = hidden.shape
        previous = batch.inputs.reshape(rows * length, -1) > 0.5
        drawer = mode_drawer(self.num_pitches)
        drawer.begin(rows * length, articulation=self.articulation)
        play, _ = self.note_axis.scan(
            hidden.reshape(rows * length, pitches, width), previous, drawer
        )
        return play.reshape(rows, length, -1).to(batch.inputs.device)

    def read(self, frames, onsets, bar_positions, state=None):
        """Run the time axis over frames (B, T, P); the context is its last step (B, P, H)."""
        hidden, state = self.time_outputs(frames, onsets, bar_positions, state)
        return hidden[:, -1], state

    def draw(self, context: Tensor, previous: Tensor, drawer: Drawer) -> tuple[Tensor, Tensor]:
        """One step from the time axis's output ``context`` (B, P, H)."""
        return self.note_axis.scan(context, previous, drawer)
