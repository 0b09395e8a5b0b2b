"""Smoke size: with ``TUNEFORGE_SMOKE=1`` every training is one short epoch.

This is for checking that a command line or a script runs from end to end (the README and
``examples/`` are tested this way), never for results: at smoke size a run trains for one
epoch of at most :data:`SMOKE_BATCHES` batches of windows of at most
:data:`SMOKE_WINDOW_STEPS` steps whatever its config asks, scores the first
:data:`SMOKE_PIECES` pieces of the valid and test splits, and its saved config says
so (``epochs: 1``, the shorter window). Any value but ``""`` and ``"0"`` turns it on.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, TypeVar

SMOKE_ENV = "TUNEFORGE_SMOKE"
SMOKE_BATCHES = 1  # training batches per epoch at smoke size
SMOKE_WINDOW_STEPS = 16  # longest training window at smoke size
SMOKE_PIECES = 2  # pieces of a split that training scores at smoke size

_Config = TypeVar("_Config")


def smoke_enabled() -> bool:
    """True when ``$TUNEFORGE_SMOKE`` asks for smoke size (read at every call)."""
    return os.environ.get(SMOKE_ENV, "") not in ("", "0")


def smoke_config(config: _Config) -> _Config:
    """``config`` (a :class:`tuneforge.train_config.TrainConfig`) cut to one epoch of short
    windows at smoke size, else unchanged."""
    if not smoke_enabled():
        return config
    window_steps = min(config.window_steps, SMOKE_WINDOW_STEPS)  # type: ignore[attr-defined]
    return replace(config, epochs=1, window_steps=window_steps)  # type: ignore[type-var]


def smoke_batches(batches: list[Any]) -> list[Any]:
    """The first :data:`SMOKE_BATCHES` of an epoch's batches at smoke size, else all of them."""
    return batches[:SMOKE_BATCHES] if smoke_enabled() else batches


def smoke_pieces(indices: list[int]) -> list[int]:
    """The first :data:`SMOKE_PIECES` of a split's piece indices at smoke size, else all."""
    return indices[:SMOKE_PIECES] if smoke_enabled() else indices
