"""`tuneforge render`: a MIDI file to a WAV file, offline, through FluidSynth."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tuneforge.cli import panels

console = Console(highlight=False)


def render(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="MIDI file to render.")],
    out: Annotated[
        Path | None, typer.Option(dir_okay=False, help="WAV file (default: beside the MIDI).")
    ] = None,
    soundfont: Annotated[
        Path | None,
        typer.Option(help="SoundFont (.sf2); default: $TUNEFORGE_SOUNDFONT or a system GM font."),
    ] = None,
    sample_rate: Annotated[
        int, typer.Option("--sample-rate-hz", "--sample-rate", help="Sample rate in Hz.")
    ] = 44100,
    gain: Annotated[
        float, typer.Option(help="FluidSynth master gain (0.2 is quiet, 1 is loud).")
    ] = 0.8,
    tail: Annotated[
        float,
        typer.Option(
            "--tail-s",
            "--tail",
            min=0.0,
            help="Seconds rendered after the piece ends, so the last notes ring out.",
        ),
    ] = 1.0,
) -> None:
    """Render a MIDI file to a WAV file, faster than real time."""
    from tuneforge.playback.render import render_midi
    from tuneforge.playback.soundfont import find_soundfont

    soundfont_path = find_soundfont(soundfont)
    started = time.perf_counter()
    report = render_midi(
        file, out, soundfont_path=soundfont_path, sample_rate_hz=sample_rate, gain=gain, tail_s=tail
    )
    elapsed_s = time.perf_counter() - started
    speed = report.duration_s / elapsed_s if elapsed_s > 0 else float("inf")
    console.print(
        f"wrote {report.path} ({report.duration_s:.1f} s at {report.sample_rate_hz} Hz, "
        f"peak {report.peak:.2f}; {speed:.0f}x real time) with {soundfont_path.name}"
    )


def register(app: typer.Typer) -> None:
    """Add `render` to the app."""
    app.command(cls=panels.Command)(render)
