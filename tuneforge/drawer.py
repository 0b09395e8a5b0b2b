"""The random choices of one sampled step, under temperature and constraints.

A model asks a :class:`StepDrawer` for every choice (see :class:`tuneforge.models.base.Drawer`):
all pitches at once, one pitch at a time from low to high, or a whole scan at once through a
compiled kernel that follows the same rules (:meth:`StepDrawer.scan_plan` and
:meth:`StepDrawer.record_scan`). The drawer divides logits by the temperature, never draws a
forbidden pitch, stops drawing once ``max_polyphony`` notes are on (a scan; a model that draws
all pitches at once keeps the K likeliest of those drawn, as tuneforge 0.1 did) and forces the
pitches a melody fixes. It records what the model said and what was drawn, and
:meth:`StepDrawer.finish` turns that into, per row:

- ``log_likelihood``: the model's own log-probability (temperature 1) of the drawn play bits,
  the figure `tuneforge score` gives back for a written piece;
- ``articulation_log_likelihood``: the same for the re-struck bits of held notes;
- ``log_weight``: the log-probability (tempered) of the values a melody forced, for resampling
  candidate steps in proportion to how well they fit the melody;
- ``probs``: the probability each pitch had of sounding, to end a silence with the likeliest.

Uniform numbers for a step are drawn up front from the sampler's CPU generator, one ``(B, P)``
block for play and, for a model with articulation, one for articulation, so a seed fixes every
draw. With ``mode=True`` every uniform is 1/2 and the temperature 1: the likelier value of every
choice (greedy decoding, for frame accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class ScanPlan:
    """What a compiled scan needs to draw a step exactly as :meth:`StepDrawer.draw_pitch`."""

    uniform: Tensor  # (N, P) float32
    articulation_uniform: Tensor  # (N, P) float32 (zeros when unused)
    allowed: Tensor  # (P,) bool
    inverse_temperature: float
    max_polyphony: int  # -1: no limit
    fixed: Tensor  # (N, P) bool: pitches a melody sets
    fixed_value: Tensor  # (N, P) bool: the value it sets them to


class StepDrawer:
    """Draws one step for ``rows`` pieces; see the module docstring.

    Args:
        inverse_temperature: 1 / temperature.
        allowed: (P,) bool, pitches that may be drawn.
        max_polyphony: most notes per step (the melody's own note not counted), or None.
        generator: the CPU generator every uniform draw comes from (None with ``mode``).
        mode: take the likelier value of every choice instead of drawing.
    """

    def __init__(
        self,
        *,
        inverse_temperature: float = 1.0,
        allowed: Tensor,
        max_polyphony: int | None = None,
        generator: torch.Generator | None = None,
        mode: bool = False,
    ) -> None:
        self.inverse_temperature = 1.0 if mode else inverse_temperature
        self.allowed = allowed
        self.forbidden = torch.where(allowed, 0.0, float("-inf"))  # (P,)
        self.max_polyphony = max_polyphony
        self.generator = generator
        self.mode = mode

    def begin(
        self,
        rows: int,
        *,
        articulation: bool = False,
        melody_on: Tensor | None = None,
        melody_below: Tensor | None = None,
    ) -> None:
        """Start a step for ``rows`` pieces; ``melody_on`` / ``melody_below`` (rows, P) bool fix
        the melody's note on and every pitch above it off (None: nothing is fixed)."""
        pitches = self.allowed.shape[0]
        shape = (rows, pitches)
        if self.mode:
            self.uniform = torch.full(shape, 0.5)
            self.articulation_uniform = torch.full(shape, 0.5)
        else:
            self.uniform = torch.rand(shape, generator=self.generator)
            self.articulation_uniform = (
                torch.rand(shape, generator=self.generator) if articulation else torch.zeros(shape)
            )
        self.melody_on, self.melody_below = melody_on, melody_below
        self.count = torch.zeros(rows, dtype=torch.long)
        self.probs = torch.zeros(shape)
        self.play_logits = torch.zeros(shape)
        self.play = torch.zeros(shape, dtype=torch.bool)
        self.articulation_logits = torch.zeros(shape)
        self.held = torch.zeros(shape, dtype=torch.bool)
        self.struck = torch.zeros(shape, dtype=torch.bool)

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
            draws = (draws & self.melody_below) | self.melody_on
        self.probs, self.play_logits, self.play = probs, logits, draws
        return draws

    def draw_pitch(self, pitch: int, logits: Tensor) -> Tensor:
        """One pitch given those below it: (B,) logits -> (B,) bool."""
        tempered = logits * self.inverse_temperature
        prob = torch.sigmoid(tempered) if bool(self.allowed[pitch]) else torch.zeros_like(logits)
        if self.max_polyphony is not None:
            prob = torch.where(self.count >= self.max_polyphony, 0.0, prob)
        draws = self.uniform[:, pitch] < prob
        if self.melody_on is not None:
            free = self.melody_below[:, pitch]
            draws = torch.where(free, draws, self.melody_on[:, pitch])
            self.count += (draws & free).long()
        else:
            self.count += draws.long()
        self.probs[:, pitch], self.play_logits[:, pitch], self.play[:, pitch] = prob, logits, draws
        return draws

    def draw_articulation(self, pitch: int, logits: Tensor, held: Tensor) -> Tensor:
        """Whether each held note is struck again: (B,) logits, (B,) bool -> (B,) bool."""
        prob = torch.sigmoid(logits * self.inverse_temperature)
        struck = held & (self.articulation_uniform[:, pitch] < prob)
        self.articulation_logits[:, pitch] = logits
        self.held[:, pitch], self.struck[:, pitch] = held, struck
        return struck

    def scan_plan(self) -> ScanPlan:
        """The rules of :meth:`draw_pitch` and :meth:`draw_articulation` as arrays."""
        rows, pitches = self.uniform.shape
        if self.melody_on is None:
            fixed = fixed_value = torch.zeros(rows, pitches, dtype=torch.bool)
        else:
            fixed, fixed_value = ~self.melody_below, self.melody_on
        return ScanPlan(
            uniform=self.uniform,
            articulation_uniform=self.articulation_uniform,
            allowed=self.allowed,
            inverse_temperature=float(self.inverse_temperature),
            max_polyphony=-1 if self.max_polyphony is None else int(self.max_polyphony),
            fixed=fixed.contiguous(),
            fixed_value=fixed_value.contiguous(),
        )

    def record_scan(
        self,
        play_logits: Tensor,
        play: Tensor,
        probs: Tensor,
        articulation_logits: Tensor,
        held: Tensor,
        struck: Tensor,
    ) -> None:
        """Take what a compiled scan drew (all (N, P)) as if drawn pitch by pitch."""
        self.play_logits, self.play, self.probs = play_logits, play, probs
        self.articulation_logits, self.held, self.struck = articulation_logits, held, struck

    def finish(self) -> None:
        """Compute the step's log-likelihoods and melody weights from what was recorded."""
        self.log_likelihood = _log_prob(self.play_logits, self.play).sum(1)
        self.log_weight = torch.zeros_like(self.log_likelihood)
        if self.melody_on is not None:
            fixed = ~self.melody_below
            tempered = self.play_logits * self.inverse_temperature
            self.log_weight = torch.where(fixed, _log_prob(tempered, self.play), 0.0).sum(1)
        self.articulation_log_likelihood = torch.where(
            self.held, _log_prob(self.articulation_logits, self.struck), 0.0
        ).sum(1)


def _log_prob(logits: Tensor, values: Tensor) -> Tensor:
    """log Bernoulli(values | sigmoid(logits)), element-wise, in float64."""
    logits = logits.double()
    return torch.where(values, F.logsigmoid(logits), F.logsigmoid(-logits))
