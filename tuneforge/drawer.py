"""The random choices of one sampled step, under temperature and constraints.

A model asks a :class:`StepDrawer` for every choice (see :class:`tuneforge.models.base.Drawer`):
all pitches at once, or one pitch at a time from low to high. The drawer divides logits by the
temperature, never draws a forbidden pitch, stops drawing once ``max_polyphony`` notes are on
(a scan; a model that draws all pitches at once keeps the K likeliest of those drawn, as
tuneforge 0.1 did), forces the pitches a melody fixes, and records, per row:

- ``log_likelihood``: the model's own log-probability (temperature 1) of what was drawn, the
  figure `tuneforge score` gives back for a written piece;
- ``log_weight``: the log-probability (tempered) of the values a melody forced, for resampling
  candidate steps in proportion to how well they fit the melody;
- ``probs``: the probability each pitch had of sounding, to end a silence with the likeliest.

Uniform numbers for a step are drawn up front from the sampler's CPU generator, one ``(B, P)``
block for play (and one for articulation when a model asks), so a seed fixes every draw.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class StepDrawer:
    """Draws one step for ``rows`` pieces; see the module docstring.

    Args:
        inverse_temperature: 1 / temperature.
        allowed: (P,) bool, pitches that may be drawn.
        max_polyphony: most notes per step (the melody's own note not counted), or None.
        generator: the CPU generator every uniform draw comes from.
    """

    def __init__(
        self,
        *,
        inverse_temperature: float,
        allowed: Tensor,
        max_polyphony: int | None,
        generator: torch.Generator,
    ) -> None:
        self.inverse_temperature = inverse_temperature
        self.allowed = allowed
        self.forbidden = torch.where(allowed, 0.0, float("-inf"))  # (P,)
        self.max_polyphony = max_polyphony
        self.generator = generator

    def begin(self, rows: int, melody_on: Tensor | None = None, melody_below: Tensor | None = None):
        """Start a step for ``rows`` pieces; ``melody_on`` / ``melody_below`` (rows, P) bool fix
        the melody's note on and every pitch above it off (None: nothing is fixed)."""
        pitches = self.allowed.shape[0]
        self.uniform = torch.rand((rows, pitches), generator=self.generator)
        self._articulation_uniform: Tensor | None = None
        self.melody_on, self.melody_below = melody_on, melody_below
        self.count = torch.zeros(rows, dtype=torch.long)
        self.probs = torch.zeros(rows, pitches)
        self.log_likelihood = torch.zeros(rows, dtype=torch.float64)
        self.articulation_log_likelihood = torch.zeros(rows, dtype=torch.float64)
        self.log_weight = torch.zeros(rows, dtype=torch.float64)

    def draw_all(self, logits: Tensor) -> Tensor:
        """Every pitch independently: (B, P) logits -> (B, P) bool."""
        probs = torch.sigmoid(logits * self.inverse_temperature + self.forbidden)
        draws = self.uniform < probs
        if self.max_polyphony is not None and self.max_polyphony < probs.shape[1]:
            # Among drawn pitches keep the K likeliest; undrawn ones rank below all.
            ranked = torch.where(draws, probs, torch.full_like(probs, -1.0))
            top = ranked.topk(self.max_polyphony, dim=1).indices
            draws &= torch.zeros_like(draws).scatter_(1, top, True)
        if self.melody_on is not None:
            self.log_weight += _log_prob(logits * self.inverse_temperature, self.melody_on).sum(1)
            draws = (draws & self.melody_below) | self.melody_on
        self.probs = probs
        self.log_likelihood += _log_prob(logits, draws).sum(1)
        return draws

    def draw_pitch(self, pitch: int, logits: Tensor) -> Tensor:
        """One pitch given those below it: (B,) logits -> (B,) bool."""
        tempered = logits * self.inverse_temperature
        prob = torch.sigmoid(tempered) if bool(self.allowed[pitch]) else torch.zeros_like(logits)
        if self.max_polyphony is not None:
            prob = torch.where(self.count >= self.max_polyphony, 0.0, prob)
        draws = self.uniform[:, pitch] < prob
        if self.melody_on is not None:
            on, free = self.melody_on[:, pitch], self.melody_below[:, pitch]
            fixed = ~free  # the melody's note, and everything above it
            draws = torch.where(fixed, on, draws)
            self.log_weight += torch.where(fixed, _log_prob(tempered, on), 0.0)
            self.count += (draws & free).long()
        else:
            self.count += draws.long()
        self.probs[:, pitch] = prob
        self.log_likelihood += _log_prob(logits, draws)
        return draws

    def draw_articulation(self, pitch: int, logits: Tensor, held: Tensor) -> Tensor:
        """Whether each held note is struck again: (B,) logits, (B,) bool -> (B,) bool."""
        if self._articulation_uniform is None:
            shape = self.uniform.shape
            self._articulation_uniform = torch.rand(shape, generator=self.generator)
        prob = torch.sigmoid(logits * self.inverse_temperature)
        struck = held & (self._articulation_uniform[:, pitch] < prob)
        self.articulation_log_likelihood += torch.where(held, _log_prob(logits, struck), 0.0)
        return struck


def _log_prob(logits: Tensor, values: Tensor) -> Tensor:
    """log Bernoulli(values | sigmoid(logits)), element-wise, in float64."""
    logits = logits.double()
    return torch.where(values, F.logsigmoid(logits), F.logsigmoid(-logits))
