"""The protocol every kind of model follows, so training, scoring and sampling treat all alike.

A model is an ``nn.Module`` whose ``forward(batch, state)`` returns the log-likelihood of each
target frame (:class:`~tuneforge.models.frames.FrameLogLik`): the one likelihood that training,
``evaluate`` and ``score`` use. Sampling goes through two more methods: :meth:`MusicModel.read`
feeds frames and returns the context for the next one, and :meth:`MusicModel.draw` turns that
context into a frame, asking a :class:`Drawer` (the sampler, which owns temperature, seeds and
constraints) for every random choice.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Protocol

from torch import Tensor, nn

from tuneforge.models.frames import FrameBatch, FrameLogLik


class Drawer(Protocol):
    """Makes the random choices of one step for a batch of pieces (see :mod:`tuneforge.sample`).

    A model that draws all pitches at once calls :meth:`draw_all`; one that scans the pitches
    calls :meth:`draw_pitch` for each pitch from low to high, then :meth:`draw_articulation`
    for a pitch that sounds in both the previous and this step. Logits are the model's own
    (temperature 1); the drawer applies temperature and constraints and records the
    log-likelihood of what it draws.
    """

    def draw_all(self, logits: Tensor) -> Tensor:
        """Draw every pitch of a step independently: logits (B, P) -> (B, P) bool."""

    def draw_pitch(self, pitch: int, logits: Tensor) -> Tensor:
        """Draw one pitch given everything drawn below it: logits (B,) -> (B,) bool."""

    def draw_articulation(self, pitch: int, logits: Tensor, held: Tensor) -> Tensor:
        """Whether a held note is struck again: logits (B,), held (B,) bool -> (B,) bool
        (False where ``held`` is False)."""


class MusicModel(nn.Module, ABC):
    """Base of every model kind: config, sizes, likelihood, mode and step sampler."""

    kind: ClassVar[str]  # the name in the MODELS registry, stored in every checkpoint
    config: Any  # a frozen dataclass with to_dict(); rebuilds the model

    @property
    def num_pitches(self) -> int:
        """Width P of a frame."""
        return int(self.config.num_pitches)

    @property
    def lowest_pitch(self) -> int:
        """MIDI pitch of column 0."""
        return int(self.config.lowest_pitch)

    @property
    def articulation(self) -> bool:
        """Whether the model predicts which held notes are struck again."""
        return bool(getattr(self.config, "articulation", False))

    @property
    def joint(self) -> bool:
        """True when the pitches of a step are drawn one after another, each conditioned on
        those below (so conditioning on some pitches of a step changes the others)."""
        return False

    @abstractmethod
    def forward(self, batch: FrameBatch, state: Any = None) -> tuple[FrameLogLik, Any]:
        """Log-likelihood of ``batch.targets`` given the inputs and ``state`` (None: fresh)."""

    @abstractmethod
    def predict(self, batch: FrameBatch) -> Tensor:
        """The model's most likely target frames (B, T, P) bool, for frame accuracy."""

    @abstractmethod
    def read(
        self, frames: Tensor, onsets: Tensor, bar_positions: Tensor, state: Any = None
    ) -> tuple[Tensor, Any]:
        """Read frames (B, T, P) (with their onsets and the bar positions (B, T) of the steps
        that follow them); return the context that :meth:`draw` needs for the step after the
        last one, batch first, and the new state."""

    @abstractmethod
    def draw(self, context: Tensor, previous: Tensor, drawer: Drawer) -> tuple[Tensor, Tensor]:
        """Draw one step from ``context``: ``(play, onsets)``, both (B, P) bool.
        ``previous`` (B, P) bool is the frame before it (a held note continues it)."""

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
