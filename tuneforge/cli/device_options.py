"""The options that say where a model runs, shared by every command that runs one, so that each
spells them alike and has the same default."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from tuneforge.cli.panels import DEVICE


class DeviceChoice(str, Enum):
    """Where a model runs (tuneforge.device.DEVICE_CHOICES)."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


DEFAULT_DEVICE = DeviceChoice.auto

DeviceOption = Annotated[
    DeviceChoice,
    typer.Option(
        help="Where the model runs: auto (CUDA, then MPS, else the CPU), cpu, cuda or mps.",
        rich_help_panel=DEVICE,
    ),
]
ThreadsOption = Annotated[
    int,
    typer.Option(
        help="CPU threads for torch (0: one per core; 1 helps on busy CPUs).",
        rich_help_panel=DEVICE,
    ),
]
