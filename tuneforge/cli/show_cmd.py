"""`tuneforge show` (a MIDI file's piano roll in the terminal or as PNG) and `tuneforge score`
(the model's log-likelihood of each frame, as a strip under the roll)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tuneforge.cli import panels
from tuneforge.cli.device_options import DEFAULT_DEVICE, DeviceOption

console = Console(highlight=False)


def show(
    file: Annotated[
        Path, typer.Argument(exists=True, help="MIDI file, or a run folder of `tuneforge train`.")
    ],
    steps_per_beat: Annotated[int, typer.Option(help="Time resolution: steps per beat.")] = 4,
    png: Annotated[
        Path | None, typer.Option(dir_okay=False, help="Also write a PNG image.")
    ] = None,
) -> None:
    """Draw a MIDI file's piano roll (pitch up, time right, bar lines, note names), or a run
    folder's epochs (with --png, its training curves)."""
    if file.is_dir():
        _show_run(file, png)
        return
    from tuneforge.cli.rollview import PianoRollView, write_roll_png
    from tuneforge.music.midi import read_midi

    piece = read_midi(file, steps_per_beat=steps_per_beat)
    console.print(
        f"[bold]{file.name}[/bold]: {piece.num_notes} notes, {piece.length_steps} steps, "
        f"{piece.duration_s:.1f} s"
    )
    console.print(
        PianoRollView(
            piece.roll, steps_per_beat=steps_per_beat, time_signatures=piece.time_signatures
        )
    )
    if png is not None:
        write_roll_png(
            piece.roll,
            png,
            steps_per_beat=steps_per_beat,
            onsets=piece.onsets,
            time_signatures=piece.time_signatures,
            title=file.name,
        )
        console.print(f"wrote {png}")


def _show_run(run_dir: Path, png: Path | None) -> None:
    """A run's epochs as a table, from its metrics.jsonl (of this version or an earlier one)."""
    from rich.table import Table

    from tuneforge.cli.dashboard import epoch_time_text, format_duration
    from tuneforge.curves import curves_title, plot_curves
    from tuneforge.train_events import read_metrics

    history = read_metrics(run_dir)
    title = curves_title(run_dir.resolve().name, history)
    table = Table(title=title, title_justify="left")
    for name in ("epoch", "train loss", "valid NLL", "epoch time"):
        table.add_column(name, justify="right")
    best = history[-1].best_epoch if history else -1
    for entry in history:
        mark = " best" if entry.epoch == best else ""
        table.add_row(
            str(entry.epoch + 1),
            f"{entry.train_loss:.4f}",
            f"{entry.valid_nll:.4f}{mark}",
            format_duration(entry.epoch_s),
        )
    console.print(table)
    console.print(f"epoch time {epoch_time_text(history)}")
    if png is not None:
        plot_curves(history, png, title=title)
        console.print(f"wrote {png}")


def score(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="MIDI file to score.")],
    model: Annotated[
        str | None, typer.Option(help="Checkpoint path or shipped model name (default: default).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
    png: Annotated[
        Path | None, typer.Option(dir_okay=False, help="Also write a PNG image.")
    ] = None,
    device: DeviceOption = DEFAULT_DEVICE,
) -> None:
    """Score a MIDI file with a model: log-likelihood per frame and in total."""
    from tuneforge.cli.rollview import PianoRollView, write_roll_png
    from tuneforge.evaluate import score_frames
    from tuneforge.generate import load_generator
    from tuneforge.music.meter import step_in_bar
    from tuneforge.music.midi import read_midi

    generator = load_generator(model, device=device.value)
    spb = generator.steps_per_beat
    piece = read_midi(file, steps_per_beat=spb)
    bars = step_in_bar(piece.length_steps, spb, piece.time_signatures)
    per_frame = score_frames(generator.model, piece.roll, onsets=piece.onsets, bar_positions=bars)
    scored = per_frame[1:]
    total = float(scored.sum())
    if as_json:
        document = {
            "file": file.name,
            "model": generator.name,
            "model_sha256": generator.model_sha256,
            "steps_per_beat": spb,
            "scored_frames": int(scored.size),
            "log_likelihood": total,
            "nll_per_frame": -total / scored.size,
            # Frame 0 is never predicted; JSON has no NaN, so it is null.
            "frame_log_likelihood": [None if math.isnan(v) else float(v) for v in per_frame],
        }
        typer.echo(json.dumps(document, indent=2))
    else:
        console.print(
            f"[bold]{file.name}[/bold] under {generator.name}: "
            f"{-total / scored.size:.3f} nats/frame NLL"
        )
        console.print(
            PianoRollView(
                piece.roll,
                steps_per_beat=spb,
                time_signatures=piece.time_signatures,
                frame_scores=per_frame,
            )
        )
    if png is not None:
        write_roll_png(
            piece.roll,
            png,
            steps_per_beat=spb,
            onsets=piece.onsets,
            time_signatures=piece.time_signatures,
            frame_scores=per_frame,
            title=f"{file.name} under {generator.name}",
        )
        if not as_json:
            console.print(f"wrote {png}")


def register(app: typer.Typer) -> None:
    """Add `show` and `score` to the app."""
    app.command(cls=panels.Command)(show)
    app.command(cls=panels.Command)(score)
