"""`tuneforge render`: a MIDI file to a WAV file, offline, through FluidSynth."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from tuneforge.cli import panels
from tuneforge.errors import ConfigError

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
    max_minutes: Annotated[
        float,
        typer.Option(
            "--max-minutes", help="Refuse a piece that plays longer than this many minutes."
        ),
    ] = 60.0,
) -> None:
    """Render a MIDI file to a WAV file, faster than real time."""
    from tuneforge.playback.soundfont import find_soundfont
    from tuneforge.validate import check_numbers

    check_numbers({"sample_rate_hz": sample_rate, "gain": gain, "tail_s": tail})
    target = file.with_suffix(".wav") if out is None else out
    if target.exists() and target.samefile(file):
        raise ConfigError(f"--out {target} is the MIDI file being rendered; name a .wav file")
    soundfont_path = find_soundfont(soundfont)
    if target.exists() and target.samefile(soundfont_path):
        raise ConfigError(f"--out {target} is the SoundFont; name a .wav file")
    started = time.perf_counter()
    report = render_file(
        file,
        target,
        soundfont_path,
        sample_rate_hz=sample_rate,
        gain=gain,
        tail_s=tail,
        max_minutes=max_minutes,
    )
    elapsed_s = time.perf_counter() - started
    speed = report.duration_s / elapsed_s if elapsed_s > 0 else float("inf")
    console.print(
        f"wrote {escape(str(report.path))} ({report.duration_s:.1f} s at "
        f"{report.sample_rate_hz} Hz, peak {report.peak:.2f}; {speed:.0f}x real time) with "
        f"{escape(soundfont_path.name)}",
        soft_wrap=True,
    )


def render_file(midi_path: Path, wav_path: Path, soundfont_path: Path, **options):
    """Render ``midi_path`` to ``wav_path`` through a temporary file that then replaces it
    (:mod:`tuneforge.files`); the render report, naming ``wav_path``."""
    from dataclasses import replace

    from tuneforge.files import replacing
    from tuneforge.playback.render import render_midi

    with replacing(wav_path) as partial:
        report = render_midi(midi_path, partial, soundfont_path=soundfont_path, **options)
    return replace(report, path=wav_path)


def register(app: typer.Typer) -> None:
    """Add `render` to the app."""
    app.command(cls=panels.Command)(render)
