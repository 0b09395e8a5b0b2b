"""`tuneforge stats`: statistics of MIDI files, beside a data set's, with the memorization meter."""

from __future__ import annotations

import json
import math
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tuneforge.cli import panels
from tuneforge.cli.data_options import (
    DataDirOption,
    FoldOctavesOption,
    KeepPercussionOption,
    SplitSeedOption,
    StepsPerBeatOption,
)


class Split(str, Enum):
    """Which split of DATA the figures are read from."""

    train = "train"
    valid = "valid"
    test = "test"
    all = "all"


# (figure, label, format) in the order of the tables; see docs/stats.md for the definitions.
FIGURES = (
    ("polyphony", "polyphony (notes per sounding frame)", "{:.2f}"),
    ("notes_per_frame", "notes per frame", "{:.2f}"),
    ("silent_share", "silent frames", "{:.1%}"),
    ("silent_share_after_first_note", "silent frames after the first note", "{:.1%}"),
    ("onsets_per_beat", "onsets per beat", "{:.2f}"),
    ("melody_presence", "steps with a note >= C4", "{:.1%}"),
    ("pitch_range", "pitch range (semitones)", "{:d}"),
    ("mean_pitch", "mean pitch (MIDI)", "{:.1f}"),
    ("mean_note_beats", "mean note length (beats)", "{:.2f}"),
    ("scale_consistency", "onsets in the best major-mode scale", "{:.1%}"),
    ("repeated_bar_share", "bars repeating an earlier bar", "{:.1%}"),
)
PIECE_COLUMNS = (  # the figures of the per-file table, short headers so that files get room
    ("steps", None),
    ("poly", "{:.2f}"),
    ("on/beat", "{:.2f}"),
    (">=C4", "{:.0%}"),
    ("silent", "{:.0%}"),
    ("rep bars", "{:.0%}"),
    ("in scale", "{:.0%}"),
)


def register(app: typer.Typer) -> None:
    """Add `stats` to the app."""
    app.command(cls=panels.Command)(stats)


def _gap(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:+.1%}"


def _position_label(position: int, steps_per_beat: int) -> str:
    return f"onsets on step {position + 1} of {steps_per_beat} in the beat"


def _pieces_table(comparison) -> Table:
    table = Table(title="Pieces")
    # Every column folds (headers too): a narrow terminal wraps text, never cuts it.
    table.add_column("file", overflow="fold")
    for header, _ in PIECE_COLUMNS:
        table.add_column(header, justify="right", overflow="fold")
    for piece in comparison.pieces:
        s = piece.stats
        values = (
            s.polyphony,
            s.onsets_per_beat,
            s.melody_presence,
            s.silent_share_after_first_note,
            s.repeated_bar_share,
            s.scale_consistency,
        )
        cells = [escape(piece.name), f"{s.frames:,}"]
        cells += [style.format(v) for (_, style), v in zip(PIECE_COLUMNS[1:], values, strict=True)]
        table.add_row(*cells)
    return table


def _copies_table(comparison) -> Table:
    from tuneforge.data.comparison import format_bars

    table = Table(title="Copied from the training split (runs of at least a bar)")
    table.add_column("file", overflow="fold")
    table.add_column("longest (bars)", justify="right", overflow="fold")
    table.add_column("from", overflow="fold")
    table.add_column("bars found", justify="right", overflow="fold")
    for piece in comparison.pieces:
        memo = piece.memorization
        run = memo.longest
        where = f"{run.corpus_name} bar {run.corpus_bar} (here bar {run.query_bar})" if run else "-"
        table.add_row(
            escape(piece.name),
            format_bars(memo.longest_bars),
            escape(where),
            f"{memo.copied_bars}/{memo.bars}",
        )
    return table


def _figures_table(comparison) -> Table:
    total, reference = comparison.total, comparison.reference
    title = f"{total.pieces} piece(s)" + (
        f" against {comparison.reference_label}" if reference else ""
    )
    table = Table(title=escape(title))
    table.add_column("figure", overflow="fold")
    table.add_column("pieces", justify="right", overflow="fold")
    if reference:
        table.add_column(escape(comparison.reference_label), justify="right", overflow="fold")
        table.add_column("relative gap", justify="right", overflow="fold")
    mine, theirs = total.figures(), reference.figures() if reference else {}
    rows = [(label, key, style, None) for key, label, style in FIGURES]
    spb = total.steps_per_beat
    rows += [(_position_label(i, spb), "onset_position_shares", "{:.1%}", i) for i in range(spb)]
    for label, key, style, index in rows:
        value = mine[key] if index is None else mine[key][index]
        cells = [label, style.format(value)]
        if reference:
            other = theirs[key] if index is None else theirs[key][index]
            gap = comparison.gaps[key] if index is None else comparison.gaps[key][index]
            cells += [style.format(other), _gap(gap)]
        table.add_row(*cells)
    if reference:
        distance = comparison.gaps["pitch_class_distance"]
        table.add_row("pitch-class histogram (total-variation distance)", "", "", f"{distance:.3f}")
    return table


def _memorization_lines(comparison) -> list[str]:
    from tuneforge.data.comparison import format_bars

    memo, calibration = comparison.memorization, comparison.calibration
    return [
        "Copied from the training split: longest run median "
        f"{format_bars(memo.median_longest_bars)} bars, max {format_bars(memo.max_longest_bars)} "
        "bars; "
        f"{memo.copied_bar_share:.1%} of bars found verbatim",
        f"Calibration, {comparison.calibration_split} vs train ({calibration.pieces} pieces): "
        f"longest run median {format_bars(calibration.median_longest_bars)} bars, "
        f"max {format_bars(calibration.max_longest_bars)} bars; "
        f"{calibration.copied_bar_share:.1%} of bars found verbatim",
    ]


def stats(
    paths: Annotated[
        list[Path],
        typer.Argument(exists=True, help="MIDI files or folders (searched recursively)."),
    ],
    against: Annotated[
        str | None,
        typer.Option(
            "--against",
            metavar="DATA",
            help="Compare with a data set: a MIDI folder, a .mat/.pickle file or a benchmark name.",
            rich_help_panel=panels.DATA,
        ),
    ] = None,
    split: Annotated[
        Split,
        typer.Option(
            help="The split of DATA whose figures are shown.", rich_help_panel=panels.DATA
        ),
    ] = Split.all,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document only.")] = False,
    steps_per_beat: StepsPerBeatOption = 4,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            help="Cache folder (default: $TUNEFORGE_CACHE_DIR or the user cache directory).",
            rich_help_panel=panels.DATA,
        ),
    ] = None,
    data_dir: DataDirOption = None,
    keep_percussion: KeepPercussionOption = False,
    fold_octaves: FoldOctavesOption = False,
    split_seed: SplitSeedOption = 0,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Processes that parse files (default: all cores).",
            rich_help_panel=panels.DATA,
        ),
    ] = None,
) -> None:
    """Statistics of MIDI files (polyphony, rhythm, range, repetition...), file by file and in
    total; with --against, beside the data's figures with the relative gap, and how much of
    each file occurs verbatim in the data's training split."""
    from tuneforge.cli.data_cmd import show_unused_files
    from tuneforge.cli.progress import parsing_progress
    from tuneforge.data.cache import ReadSettings, resolve_cache_dir
    from tuneforge.data.comparison import compare_to_dataset
    from tuneforge.data.dataset import load_dataset
    from tuneforge.data.pieces import read_pieces
    from tuneforge.errors import DataError

    console = Console(highlight=False)
    settings = ReadSettings(steps_per_beat, keep_percussion, fold_octaves)
    cache = resolve_cache_dir(cache_dir)
    with parsing_progress(enabled=not as_json) as on_progress:
        read = read_pieces(
            paths, settings=settings, cache_dir=cache, workers=workers, on_progress=on_progress
        )
        dataset = None
        if against is not None:
            dataset = load_dataset(
                against,
                data_dir=data_dir,
                steps_per_beat=steps_per_beat,
                cache_dir=cache_dir,
                split_seed=split_seed,
                keep_percussion=keep_percussion,
                fold_octaves=fold_octaves,
                workers=workers,
                on_progress=on_progress,
            )
    if not read.pieces:
        raise DataError(f"no usable MIDI file: {read.report.summary_line()}")
    comparison = compare_to_dataset(
        read.pieces,
        dataset,
        steps_per_beat=steps_per_beat,
        split=split.value,
    )
    if as_json:
        document = {"files": read.report.to_dict(), **comparison.to_dict()}
        typer.echo(json.dumps(document, indent=2))
        return
    console.print(_pieces_table(comparison))
    if comparison.memorization is not None:
        console.print(_copies_table(comparison))
    console.print(_figures_table(comparison))
    if comparison.memorization is not None:
        for line in _memorization_lines(comparison):
            console.print(escape(line), soft_wrap=True)
    show_unused_files(console, read.report)
