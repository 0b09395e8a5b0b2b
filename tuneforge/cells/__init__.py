"""Recurrent cells behind one registry, on one interface.

Names, aliases and options come from :mod:`tuneforge.cells.registry` (no torch needed); the
layers and helpers below import torch, so they are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from tuneforge.cells.registry import ALIASES, CELLS, CellInfo, cell_names, resolve_cell

# Public names served lazily from tuneforge.cells.base, so that importing the registry (for
# `--help`, config checks) does not load torch.
_FROM_BASE = (
    "RecurrentLayer",
    "RecurrentStack",
    "build_stack",
    "count_parameters",
    "detach_state",
    "select_state",
)

__all__ = ["ALIASES", "CELLS", "CellInfo", "cell_names", "resolve_cell", *_FROM_BASE]


def __getattr__(name: str) -> Any:
    if name in _FROM_BASE:
        return getattr(importlib.import_module("tuneforge.cells.base"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
