"""Sequence models built from the cell registry."""

from tuneforge.models.sequence import ModelConfig, SequenceModel

__all__ = ["ModelConfig", "SequenceModel"]
