"""Compile every CPU kernel ahead of use, so that a first run loads machine code from numba's
on-disk cache instead of waiting for the compiler.

Each compiled path is compiled when a process first calls it (see
:mod:`tuneforge.cells.jit`); a fresh clone's first training of a Mogrifier LSTM waited about
6 s for that. :func:`warm_up` runs every cell's layer, forward and backward, in training mode
(its dropout too) and a few sampled steps of the note-axis models at tiny sizes in float32, the
dtype training and sampling use; ``scripts/setup.sh`` calls it through ``tuneforge cells
--compile``. Later processes, tests included, then start from the cache.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from tuneforge.cells import CELLS, build_stack

# Tiny models whose sampling calls the note-axis scan kernels (dropout and the cells' kernels
# are warmed by the cells' own runs).
_SAMPLED_MODELS = {
    "note-axis scan (sequence model)": {
        "kind": "sequence",
        "head": "note-axis",
        "hidden_size": 8,
        "note_hidden_size": 6,
    },
    "note-axis scan (biaxial model)": {"kind": "biaxial", "hidden_size": 8, "note_hidden_size": 6},
}


@dataclass(frozen=True)
class WarmedPath:
    """One cell or model run to compile its kernels, and how long the run took."""

    name: str
    path: str  # what ran: "numba" (compiled), "fused" (torch's fused kernel) or "torch"
    seconds: float


def warm_up() -> list[WarmedPath]:
    """Run every compiled CPU path once in this process; one entry per cell and sampled model."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        warmed = [_warm_cell(name) for name in CELLS]
        warmed += [_warm_sampling(name, spec) for name, spec in _SAMPLED_MODELS.items()]
    return warmed


def _warm_cell(name: str) -> WarmedPath:
    started = time.perf_counter()
    stack = build_stack(name, input_size=5, hidden_size=8, num_layers=2, dropout=0.5).train()
    x = torch.randn(2, 3, 5, requires_grad=True)
    out, _ = stack(x)
    out.sum().backward()
    path = getattr(stack.layers[0], "last_path", None) or "torch"
    return WarmedPath(name, path, time.perf_counter() - started)


def _warm_sampling(name: str, spec: dict) -> WarmedPath:
    from tuneforge.models import build_model
    from tuneforge.sample import sample_rolls

    started = time.perf_counter()
    model = build_model(dict(spec), seed=0).eval()
    sample_rolls(model, num_steps=2)
    path = "numba" if model.note_axis.last_scan == "compiled" else "torch"
    return WarmedPath(name, path, time.perf_counter() - started)
