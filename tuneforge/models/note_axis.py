"""The note axis: a recurrent layer that scans the pitches of a step from low to high.

At pitch ``p`` it reads a context (what the time part of the model knows about this step, the
same for every pitch or one per pitch), a learned embedding of the pitch (optional: a model that
must stay transposition-equivariant leaves it out) and whether pitch ``p - 1`` sounds
(teacher-forced in training, drawn in sampling). It outputs ``P(pitch p sounds | pitches below,
the past)`` and, with articulation, ``P(p is struck again | it sounds and sounded before, the
pitches up to p, the past)``. The product of the play conditionals is the exact probability of
the frame's play bits (the family of RNN-NADE and LSTM-NADE, Boulanger-Lewandowski et al. 2012;
Johnson 2017's note axis); articulation bits are never fed back, so the play term stays the
exact marginal that the per-frame NLL protocol scores, and the articulation term is a separate,
exact conditional on top of it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tuneforge.cells import build_stack
from tuneforge.models.base import Drawer


class NoteAxis(nn.Module):
    """Scan of the pitches of each step; exact autoregressive likelihood of a frame.

    Shape:
        context: (N, C) shared by all pitches or (N, P, C) one per pitch;
        targets, held: (N, P) float 0/1; returns logits (N, P) each.
    """

    def __init__(
        self,
        *,
        context_size: int,
        num_pitches: int,
        cell: str,
        hidden_size: int,
        num_layers: int,
        dropout: float,
        cell_options: dict[str, Any],
        articulation: bool,
        pitch_embedding_size: int,
        context_projection: int = 0,
    ) -> None:
        super().__init__()
        self.num_pitches = num_pitches
        # A context shared by all pitches is projected once to a few features: the scan then
        # reads a short input at every pitch instead of the whole stack output 88 times.
        self.project = nn.Linear(context_size, context_projection) if context_projection else None
        if context_projection:
            context_size = context_projection
        self.articulation = articulation
        self.values = 2 if articulation else 1  # logits per pitch: play (and articulation)
        self.pitch_embedding = (
            nn.Parameter(torch.randn(num_pitches, pitch_embedding_size) * 0.1)
            if pitch_embedding_size
            else None
        )
        input_size = context_size + pitch_embedding_size + 1  # + whether the pitch below sounds
        self.rnn = build_stack(
            cell,
            input_size=input_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout,
            **cell_options,
        )
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(self.rnn.output_size, self.values)

    def _base(self, context: Tensor) -> Tensor:
        """(N, P, C + E): the part of every pitch's input that the scan does not choose."""
        if self.project is not None:
            context = self.project(context)
        if context.dim() == 2:
            context = context[:, None].expand(-1, self.num_pitches, -1)
        if self.pitch_embedding is None:
            return context
        embedding = self.pitch_embedding[None].expand(context.shape[0], -1, -1)
        return torch.cat([context, embedding.to(context.dtype)], dim=-1)

    def logits(self, context: Tensor, targets: Tensor) -> tuple[Tensor, Tensor | None]:
        """Teacher-forced logits of every pitch: ``(play, articulation or None)``, (N, P)."""
        below = F.pad(targets, (1, 0))[:, :-1, None]  # (N, P, 1): whether pitch p - 1 sounds
        x = torch.cat([self._base(context), below.to(context.dtype)], dim=-1)
        hidden, _ = self.rnn(x)  # (N, P, H)
        out = self.out(self.dropout(hidden)).float()  # (N, P, V)
        return out[..., 0], (out[..., 1] if self.articulation else None)

    def scan(
        self,
        context: Tensor,
        previous: Tensor,
        drawer: Drawer,
        direct: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Draw a frame pitch by pitch: ``(play, onsets)``, (N, P) bool.

        ``previous`` (N, P) bool is the frame before; ``direct`` (N, P) is added to the play
        logits (a head that also reads the context directly).
        """
        base = self._base(context)  # (N, P, C + E)
        num_rows = base.shape[0]
        play = torch.zeros(num_rows, self.num_pitches, dtype=torch.bool)
        onsets = torch.zeros_like(play)
        previous = previous.cpu()
        value = base.new_zeros(num_rows, 1, 1)
        state = None
        for pitch in range(self.num_pitches):
            x = torch.cat([base[:, pitch : pitch + 1], value], dim=-1)  # (N, 1, in)
            hidden, state = self.rnn(x, state)
            out = self.out(hidden[:, 0]).float()  # (N, V)
            play_logit = out[:, 0] if direct is None else out[:, 0] + direct[:, pitch].float()
            sounds = drawer.draw_pitch(pitch, play_logit.cpu())  # (N,) bool
            struck = sounds & ~previous[:, pitch]
            if self.articulation:
                held = sounds & previous[:, pitch]
                struck = struck | drawer.draw_articulation(pitch, out[:, 1].cpu(), held)
            play[:, pitch], onsets[:, pitch] = sounds, struck
            value = sounds.to(base.device, base.dtype)[:, None, None]
        return play, onsets


def bernoulli_log_likelihood(logits: Tensor, values: Tensor, weights: Tensor | None = None):
    """Sum over the last axis of log Bernoulli(values | sigmoid(logits)), optionally weighted.

    Shape:
        logits, values, weights: (..., P) -> (...).
    """
    terms = -F.binary_cross_entropy_with_logits(logits.float(), values.float(), reduction="none")
    if weights is not None:
        terms = terms * weights
    return terms.sum(-1)


def articulation_weights(inputs: Tensor, targets: Tensor, onsets_known: Tensor) -> Tensor:
    """Where the articulation bit is uncertain: a note sounding in both frames, in a row whose
    onsets are known. Shape: (B, T, P) float."""
    return inputs * targets * onsets_known.to(targets.dtype)[:, None, None]


class ModeDrawer:
    """A :class:`Drawer` that takes the likelier value of every choice (greedy decoding).

    Frame accuracy of a model that scans the pitches uses it: each pitch is predicted on when
    it is likelier than not given the predictions below it.
    """

    def draw_all(self, logits: Tensor) -> Tensor:
        """Pitches whose probability exceeds 1/2."""
        return logits > 0

    def draw_pitch(self, pitch: int, logits: Tensor) -> Tensor:
        """The likelier value of one pitch."""
        return logits > 0

    def draw_articulation(self, pitch: int, logits: Tensor, held: Tensor) -> Tensor:
        """The likelier articulation of a held note."""
        return held & (logits > 0)
