"""`tuneforge data inspect`: what a MIDI folder or benchmark set holds, file by file."""

from __future__ import annotations

import json
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
    StepsPerBeatOption,
)
from tuneforge.data.report import NOT_MIDI_NAME

data_app = typer.Typer(
    cls=panels.Group,
    help="Inspect data: MIDI folders and the benchmark sets.",
    no_args_is_help=True,
)

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
PREVIEW_STEPS = 64  # columns of the piano-roll preview
UNUSED_ROWS = 40  # unused files listed in the table; --json lists them all


def register(app: typer.Typer) -> None:
    """Add the `data` command group to the tuneforge app."""
    app.add_typer(data_app, name="data")


def _note_name(pitch: int) -> str:
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _preview(roll) -> Table:
    """A small text piano roll: one row per pitch used (high to low), one column per step."""
    from tuneforge.music.pianoroll import LOWEST_PITCH, canonical_onsets

    roll = roll[:PREVIEW_STEPS]
    starts = canonical_onsets(roll)
    columns = [c for c in range(roll.shape[1]) if roll[:, c].any()]
    table = Table(show_header=False, box=None, padding=(0, 1))
    table.add_column(justify="right", style="dim")
    table.add_column(no_wrap=True)
    for column in reversed(columns):
        cells = "".join(
            "[bold]▌[/bold]" if starts[t, column] else ("█" if roll[t, column] else "·")
            for t in range(roll.shape[0])
        )
        table.add_row(_note_name(LOWEST_PITCH + column), cells)
    return table


def _splits_table(summary: dict) -> Table:
    table = Table(title="Splits")
    for header in ("split", "pieces", "frames", "mean polyphony", "pitch range"):
        table.add_column(header, justify="left" if header == "split" else "right")
    for split, numbers in summary.items():
        pitch_range = numbers["pitch_range"]
        table.add_row(
            split,
            f"{numbers['pieces']:,}",
            f"{numbers['frames']:,}",
            f"{numbers['mean_polyphony']:.2f}",
            f"{_note_name(pitch_range[0])}..{_note_name(pitch_range[1])}" if pitch_range else "-",
        )
    return table


def _show_folder(console: Console, report) -> None:
    totals = Table(title=f"MIDI folder {escape(report.folder)}", show_header=False)
    totals.add_column(style="bold")
    totals.add_column(justify="right")
    pitch_range = report.pitch_range
    rows = [
        ("files", f"{len(report.files):,}"),
        *((outcome, f"{count:,}") for outcome, count in report.outcome_counts.items()),
        ("pieces", f"{report.num_pieces:,}"),
        ("frames", f"{report.total_frames:,} ({report.steps_per_beat} per beat)"),
        ("duration", _duration(report.total_duration_s)),
        (
            "pitch range",
            f"{_note_name(pitch_range[0])}..{_note_name(pitch_range[1])}" if pitch_range else "-",
        ),
        ("mean polyphony", f"{report.mean_polyphony:.2f}"),
        ("from cache", f"{report.cached_files:,}"),
    ]
    if report.duplicates:
        rows.append(("duplicates", f"{len(report.duplicates):,}"))
    for name, value in rows:
        totals.add_row(name, value)
    console.print(totals)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}", soft_wrap=True)
    for copy, first in report.duplicates.items():
        console.print(f"duplicate: {escape(copy)} has the same bytes as {escape(first)}")
    show_unused_files(console, report)


def show_unused_files(console: Console, report) -> None:
    """The files of a report that were not used: counts per reason, then file by file
    (files ignored for their name, such as the .json beside each generated piece, are only
    counted; --json lists them)."""
    if report.reason_counts:
        reasons = Table(title="Reasons")
        reasons.add_column("outcome: reason")
        reasons.add_column("files", justify="right")
        for reason, count in report.reason_counts.items():
            reasons.add_row(escape(reason), f"{count:,}")
        console.print(reasons)
        unused = [
            f
            for f in report.files
            if f.outcome != "used" and not (f.outcome == "ignored" and f.reason == NOT_MIDI_NAME)
        ]
        if not unused:
            return
        files = Table(title="Files not used")
        for header in ("file", "outcome", "reason", "detail"):
            files.add_column(header, overflow="fold")
        for item in unused[:UNUSED_ROWS]:
            files.add_row(escape(item.path), item.outcome, item.reason, escape(item.detail))
        if len(unused) > UNUSED_ROWS:
            files.add_row(f"... {len(unused) - UNUSED_ROWS} more (see --json)", "", "", "")
        console.print(files)


@data_app.command("inspect", cls=panels.Command)
def inspect(
    path: Annotated[
        str,
        typer.Argument(help="A MIDI folder, a .mat/.pickle benchmark file or a benchmark name."),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON only (no tables, no bar).")
    ] = False,
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
    max_steps: Annotated[
        int,
        typer.Option(
            min=2,
            help="Skip files whose notes span more steps than this.",
            rich_help_panel=panels.DATA,
        ),
    ] = 100_000,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Processes that parse files (default: all cores).",
            rich_help_panel=panels.DATA,
        ),
    ] = None,
) -> None:
    """Show what a data set holds: every file's outcome with its reason, totals, a preview."""
    from tuneforge.cli.progress import parsing_progress
    from tuneforge.data.dataset import load_dataset
    from tuneforge.data.report import rolls_summary

    console = Console(highlight=False)
    with parsing_progress(enabled=not as_json) as on_progress:
        dataset = load_dataset(
            path,
            data_dir=data_dir,
            steps_per_beat=steps_per_beat,
            cache_dir=cache_dir,
            keep_percussion=keep_percussion,
            fold_octaves=fold_octaves,
            max_steps=max_steps,
            workers=workers,
            on_progress=on_progress,
        )

    summary = rolls_summary(dataset.splits())
    if as_json:
        result = {
            "name": dataset.name,
            "source": dataset.source,
            "steps_per_beat": dataset.steps_per_beat,
            "fingerprint": dataset.fingerprint,
            "splits": summary,
            "report": dataset.report.to_dict() if dataset.report else None,
            "duplicates_left_out": dataset.duplicates_left_out,
        }
        typer.echo(json.dumps(result, indent=2))
        return
    if dataset.report is not None:
        _show_folder(console, dataset.report)
        for name in dataset.duplicates_left_out:
            console.print(f"left out of its split: {escape(name)} (a copy lies in another split)")
    else:
        console.print(
            f"[bold]{escape(dataset.name)}[/bold] benchmark set from {escape(dataset.source)}, "
            f"{dataset.steps_per_beat} step(s) per beat"
        )
    console.print(_splits_table(summary))
    for split, pieces in dataset.splits().items():
        if pieces:  # a benchmark file may leave a split empty
            console.print(
                f"Preview: first {PREVIEW_STEPS} steps of the first {split} piece (▌ onset, █ held)"
            )
            console.print(_preview(pieces[0]))
            break
