"""`tuneforge play`: send a MIDI file to a synthesizer live, through python-rtmidi or the
built-in FluidSynth."""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from tuneforge.cli import exit_watchdog, panels
from tuneforge.errors import ConfigError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


class ApiChoice(str, Enum):
    """MIDI APIs by rtmidi's names; auto tries every one compiled in."""

    auto = "auto"
    alsa = "alsa"
    jack = "jack"
    core = "core"
    winmm = "winmm"


# Shared with `generate --play` and `jam`, so the three spell the synth options alike.
SynthOption = Annotated[
    bool,
    typer.Option(
        "--synth",
        help="Play through the built-in synthesizer (FluidSynth) to the audio output;"
        " used anyway when no MIDI output port exists.",
        rich_help_panel=panels.PLAYBACK,
    ),
]
AudioDriverOption = Annotated[
    str | None,
    typer.Option(
        help="FluidSynth audio driver for --synth (default: the first that works of"
        " pulseaudio, pipewire, alsa, jack, coreaudio).",
        rich_help_panel=panels.PLAYBACK,
    ),
]
AudioFileOption = Annotated[
    Path | None,
    typer.Option(
        dir_okay=False,
        help="Record what the built-in synth plays to this WAV file.",
        rich_help_panel=panels.PLAYBACK,
    ),
]
SoundfontOption = Annotated[
    Path | None,
    typer.Option(
        help="SoundFont for the built-in synth (default: system GM font).",
        rich_help_panel=panels.PLAYBACK,
    ),
]


def play(
    file: Annotated[
        Path | None, typer.Argument(exists=True, dir_okay=False, help="MIDI file to play.")
    ] = None,
    port: Annotated[
        str | None, typer.Option(help="Output port: exact name or part of it (default: first).")
    ] = None,
    virtual: Annotated[
        str | None, typer.Option(help="Open a virtual output port of this name instead.")
    ] = None,
    list_ports: Annotated[
        bool, typer.Option("--list-ports", help="List the MIDI output and input ports and exit.")
    ] = False,
    api: Annotated[ApiChoice, typer.Option(help="MIDI API to use.")] = ApiChoice.auto,
    wait_s: Annotated[
        float | None,
        typer.Option(
            help="Seconds to wait for the --port to appear or a synth to connect to the"
            " --virtual port (default: 5 for a virtual port, else 0); playing starts as soon"
            " as one is connected."
        ),
    ] = None,
    synth: SynthOption = False,
    audio_driver: AudioDriverOption = None,
    audio_file: AudioFileOption = None,
    soundfont: SoundfontOption = None,
) -> None:
    """Play a MIDI file live on a MIDI output port or the built-in synth, honouring its
    tempo changes."""
    from tuneforge.music.events import read_events
    from tuneforge.playback.live import play_events
    from tuneforge.playback.outputs import (
        VIRTUAL_WAIT_S,
        OutputRequest,
        open_player_output,
        wait_for_listener,
    )

    if list_ports:
        _print_ports(api.value)
        return
    if file is None:
        raise ConfigError("give a MIDI file to play, or --list-ports")
    if wait_s is not None and wait_s < 0:
        raise ConfigError(f"--wait-s must be >= 0, got {wait_s}")
    events = read_events(file)
    request = OutputRequest(port, virtual, api.value, synth, audio_driver, audio_file, soundfont)
    wait = wait_s if wait_s is not None else (VIRTUAL_WAIT_S if virtual else 0.0)
    started = time.monotonic()
    opened = open_player_output(request, port_wait_s=wait)
    output = opened.output
    if opened.note:
        err_console.print(f"[yellow]{escape(opened.note)}[/yellow]")
    try:
        console.print(
            f"playing {escape(file.name)} ({events.duration_s:.1f} s) on {output.api}: "
            f"{escape(output.port_name)} (Ctrl-C stops)"
        )
        remaining_s = max(0.0, wait - (time.monotonic() - started))
        if wait_for_listener(output, remaining_s) is False:
            err_console.print(f"[yellow]warning:[/yellow] {escape(_nobody_listens(output, wait))}")
        report = play_events(events.events, output)
    except KeyboardInterrupt:
        console.print("[yellow]stopped[/yellow]; all notes off")
        exit_watchdog.arm(130)  # the notes are off: closing the port may not hang the exit
        output.close()
        raise typer.Exit(130) from None
    except BaseException:
        output.close()
        raise
    exit_watchdog.arm(0)
    output.close()
    console.print(
        f"sent {report.messages_sent} messages in {report.duration_s:.1f} s "
        f"(latest {report.max_late_s * 1000:.1f} ms behind schedule)"
    )


def _nobody_listens(output, wait_s: float) -> str:
    """The warning for a port nothing is connected to."""
    where = f"{output.api}: {output.port_name}"
    if getattr(output, "virtual", False):
        return (
            f"nobody connected to the virtual port {where} within {wait_s:g} s, so nothing"
            " will sound; connect a synth to it, or pass --wait-s or --synth"
        )
    return f"nothing is connected to {where}, so nothing will sound; try --synth"


def _print_ports(api: str) -> None:
    """Print every usable API's output and input ports (an error when no API opens)."""
    from tuneforge.playback.live import list_ports

    for api_name, ports in list_ports(api).items():
        outputs = ", ".join(ports["outputs"]) or "none"
        inputs = ", ".join(ports["inputs"]) or "none"
        console.print(f"[bold]{api_name}[/bold] outputs: {escape(outputs)}")
        console.print(f"[bold]{api_name}[/bold] inputs: {escape(inputs)}")


def register(app: typer.Typer) -> None:
    """Add `play` to the app."""
    app.command(cls=panels.Command)(play)
