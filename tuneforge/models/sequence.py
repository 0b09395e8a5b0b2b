"""The sequence model: a stack of recurrent cells along time, then an output head.

Each step reads the previous frame (with its onsets and the meter when the config asks) and the
head gives the distribution of the next frame:

- ``bernoulli`` (the default): a linear layer, one independent Bernoulli variable per pitch;
- ``note-axis``: a small recurrent layer of any registry cell scans the pitches from low to
  high (:class:`~tuneforge.models.note_axis.NoteAxis`), so the notes of a chord are drawn
  jointly; a linear layer on the stack's output adds a per-pitch term to every conditional.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from tuneforge.cells import build_stack
from tuneforge.cells.dropout_mask import Dropout
from tuneforge.errors import ConfigError
from tuneforge.models.base import Drawer, MusicModel
from tuneforge.models.frames import FrameBatch, FrameLogLik, meter_features, meter_width
from tuneforge.models.note_axis import (
    NoteAxis,
    bernoulli_log_likelihood,
    mode_drawer,
    scan_log_likelihood,
)

HEADS = ("bernoulli", "note-axis")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a sequence model; saved in every checkpoint."""

    cell: str = "lstm"  # a name (or alias) from the cell registry
    hidden_size: int = 256  # units per recurrent layer
    num_layers: int = 1  # recurrent layers stacked
    dropout: float = 0.0  # between layers and before the head
    cell_options: dict[str, Any] = field(default_factory=dict)  # passed to the cell
    num_pitches: int = 88  # width of a piano-roll frame
    lowest_pitch: int = 21  # MIDI pitch of column 0 (A0)
    head: str = "bernoulli"  # one of HEADS
    note_cell: str = "lstm"  # note-axis head: the cell that scans the pitches
    note_hidden_size: int = 48  # note-axis head: units per layer
    note_layers: int = 1  # note-axis head: layers
    note_cell_options: dict[str, Any] = field(default_factory=dict)
    meter: bool = False  # read the position of the next step in its beat and bar
    articulation: bool = False  # read onsets and (note-axis head) predict re-struck notes
    steps_per_beat: int = 4  # the grid the meter features are computed on

    kind: ClassVar[str] = "sequence"

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ConfigError(f"unknown head {self.head!r}; the sequence model takes {HEADS}")
        if self.articulation and self.head != "note-axis":
            raise ConfigError("articulation needs --head note-axis (a bernoulli head has none)")
        if self.steps_per_beat < 1:
            raise ConfigError(f"steps_per_beat must be >= 1, got {self.steps_per_beat}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that :meth:`from_dict` turns back into this config."""
        return {"kind": self.kind, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Rebuild a config from :meth:`to_dict` output, ignoring unknown keys."""
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


SequenceConfig = ModelConfig


class SequenceModel(MusicModel):
    """Cell stack along time -> dropout -> head over the pitches of the next frame.

    Shape:
        a :class:`FrameBatch` of (B, T, P) frames -> log-likelihoods (B, T).
    """

    kind = "sequence"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        pitches = config.num_pitches
        input_size = pitches * (2 if config.articulation else 1)
        if config.meter:
            input_size += meter_width(config.steps_per_beat)
        self.rnn = build_stack(
            config.cell,
            input_size=input_size,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout,
            **config.cell_options,
        )
        self.dropout = Dropout(config.dropout)
        self.head = nn.Linear(self.rnn.output_size, pitches)
        self.note_axis = None
        if config.head == "note-axis":
            self.note_axis = NoteAxis(
                context_size=self.rnn.output_size,
                num_pitches=pitches,
                cell=config.note_cell,
                hidden_size=config.note_hidden_size,
                num_layers=config.note_layers,
                dropout=config.dropout,
                cell_options=dict(config.note_cell_options),
                articulation=config.articulation,
                pitch_embedding_size=8,
                context_projection=32,
            )

    @property
    def joint(self) -> bool:
        """The note-axis head draws a chord's pitches one after another."""
        return self.note_axis is not None

    def _features(self, frames: Tensor, onsets: Tensor, bar_positions: Tensor) -> Tensor:
        parts = [frames]
        if self.config.articulation:
            parts.append(onsets.to(frames.dtype))
        if self.config.meter:
            parts.append(meter_features(bar_positions, self.config.steps_per_beat).to(frames))
        return torch.cat(parts, dim=-1) if len(parts) > 1 else frames

    def read(self, frames, onsets, bar_positions, state=None):
        """Run the stack over frames (B, T, P); the context is its output at the last step."""
        features, state = self.rnn(self._features(frames, onsets, bar_positions), state)
        return features[:, -1], state  # (B, H)

    def forward(self, batch: FrameBatch, state: Any = None) -> tuple[FrameLogLik, Any]:
        """Log-likelihood of every target frame of ``batch``."""
        x = self._features(batch.inputs, batch.input_onsets, batch.bar_positions)
        features, state = self.rnn(x, state)  # (B, T, H)
        features = self.dropout(features)
        direct = self.head(features)  # (B, T, P)
        if self.note_axis is None:
            play = bernoulli_log_likelihood(direct, batch.targets)
            return FrameLogLik(play, torch.zeros_like(play)), state
        rows, length, width = features.shape
        play_logits, art_logits = self.note_axis.logits(
            features.reshape(rows * length, width),
            batch.targets.reshape(rows * length, -1),
        )
        play_logits = play_logits.reshape(rows, length, -1) + direct.float()
        if art_logits is not None:
            art_logits = art_logits.reshape(rows, length, -1)
        return scan_log_likelihood(play_logits, art_logits, batch), state

    def predict(self, batch: FrameBatch) -> Tensor:
        """Bernoulli head: pitches with probability above 1/2. Note-axis head: the greedy
        scan (each pitch on when likelier than not given the predictions below it)."""
        x = self._features(batch.inputs, batch.input_onsets, batch.bar_positions)
        features, _ = self.rnn(x)
        direct = self.head(features)
        if self.note_axis is None:
            return direct > 0
        rows, length, width = features.shape
        previous = batch.inputs.reshape(rows * length, -1) > 0.5
        drawer = mode_drawer(self.num_pitches)
        drawer.begin(rows * length, articulation=self.articulation)
        play, _ = self.note_axis.scan(
            features.reshape(rows * length, width),
            previous,
            drawer,
            direct=direct.reshape(rows * length, -1),
        )
        return play.reshape(rows, length, -1).to(batch.inputs.device)

    def draw(self, context: Tensor, previous: Tensor, drawer: Drawer) -> tuple[Tensor, Tensor]:
        """One step from the stack's output ``context`` (B, H)."""
        direct = self.head(context)  # (B, P)
        if self.note_axis is None:
            play = drawer.draw_all(direct.float().cpu())
            return play, play & ~previous.cpu()
        return self.note_axis.scan(context, previous, drawer, direct=direct)
