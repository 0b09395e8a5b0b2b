"""Tiny sequence models for tests: built in a second, saved with the real checkpoint API."""

from __future__ import annotations

from pathlib import Path

import torch

from tuneforge.checkpoint import save_checkpoint
from tuneforge.models import ModelConfig, SequenceModel


def tiny_model(*, hidden_size: int = 16, seed: int = 0, head_bias: float | None = None):
    """An LSTM model with random weights; ``head_bias`` replaces the output bias."""
    torch.manual_seed(seed)
    model = SequenceModel(ModelConfig(cell="lstm", hidden_size=hidden_size))
    if head_bias is not None:
        with torch.no_grad():
            model.head.bias.fill_(head_bias)
    return model.eval()


def save_tiny(folder: Path, name: str = "default", *, steps_per_beat: int = 4, **options) -> Path:
    """Save a tiny model as ``folder/NAME.safetensors`` + ``NAME.json``; return the tensor path."""
    model = tiny_model(**options)
    meta = {"steps_per_beat": steps_per_beat, "lowest_pitch": 21, "data": "none (test model)"}
    return save_checkpoint(Path(folder) / name, model, meta=meta)
