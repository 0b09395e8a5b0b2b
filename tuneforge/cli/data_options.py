"""Options that say how data are read, shared by every command that reads data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tuneforge.cli.panels import DATA

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        file_okay=False,
        help="Where benchmark files are looked up by name "
        "(default: $TUNEFORGE_DATA_DIR, else ./data and ./benchmarks).",
        rich_help_panel=DATA,
    ),
]
StepsPerBeatOption = Annotated[
    int,
    typer.Option(
        min=1, help="Steps per quarter note when reading MIDI files.", rich_help_panel=DATA
    ),
]
KeepPercussionOption = Annotated[
    bool,
    typer.Option(
        "--keep-percussion", help="Keep notes of the percussion channel 10.", rich_help_panel=DATA
    ),
]
FoldOctavesOption = Annotated[
    bool,
    typer.Option(
        "--fold-octaves",
        help="Fold notes outside A0..C8 into range by octaves.",
        rich_help_panel=DATA,
    ),
]
SplitSeedOption = Annotated[
    int, typer.Option(help="Seed of the train/valid/test split.", rich_help_panel=DATA)
]
