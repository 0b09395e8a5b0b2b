"""The sequence model: a stack of recurrent cells, dropout and a linear head over the pitches.

Outputs are logits of independent Bernoulli variables, one per pitch: the probability that pitch
``k`` sounds at step ``t`` given the frames before ``t``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from tuneforge.cells import build_stack


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model; saved in every checkpoint."""

    cell: str = "lstm"  # a name (or alias) from the cell registry
    hidden_size: int = 256  # units per recurrent layer
    num_layers: int = 1  # recurrent layers stacked
    dropout: float = 0.0  # between layers and before the head
    cell_options: dict[str, Any] = field(default_factory=dict)  # passed to the cell
    num_pitches: int = 88  # width of a piano-roll frame
    lowest_pitch: int = 21  # MIDI pitch of column 0 (A0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that :meth:`from_dict` turns back into this config."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Rebuild a config from :meth:`to_dict` output, ignoring unknown keys."""
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


class SequenceModel(nn.Module):
    """Cell stack -> dropout -> linear; logits over the pitches of the next frame.

    Shape:
        x: (B, T, P) float frames; returns logits (B, T, P) and the stack's state.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.rnn = build_stack(
            config.cell,
            input_size=config.num_pitches,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout,
            **config.cell_options,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(self.rnn.output_size, config.num_pitches)

    def forward(self, x: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Run the model over ``x`` (B, T, P) from ``state`` (None: a fresh start)."""
        features, state = self.rnn(x, state)  # (B, T, H)
        return self.head(self.dropout(features)), state  # (B, T, P)

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
