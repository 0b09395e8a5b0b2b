"""`tuneforge play`: send a MIDI file to a synthesizer live, through python-rtmidi."""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tuneforge.errors import ConfigError

console = Console(highlight=False)


class ApiChoice(str, Enum):
    """MIDI APIs by rtmidi's names; auto tries every one compiled in."""

    auto = "auto"
    alsa = "alsa"
    jack = "jack"
    core = "core"
    winmm = "winmm"


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
    list_ports: Annotated[bool, typer.Option(help="List the output ports and exit.")] = False,
    api: Annotated[ApiChoice, typer.Option(help="MIDI API to use.")] = ApiChoice.auto,
    wait_s: Annotated[
        float, typer.Option(help="Seconds to wait before the first note (to connect a synth).")
    ] = 0.0,
) -> None:
    """Play a MIDI file live on a MIDI output port, honouring its tempo changes."""
    from tuneforge.music.events import read_events
    from tuneforge.playback.live import list_output_ports, open_output, play_events

    if list_ports:
        found = list_output_ports(api.value)
        if not found:
            console.print(f"no MIDI API usable here (tried {api.value})")
        for api_name, names in found.items():
            console.print(f"[bold]{api_name}[/bold]: " + (", ".join(names) or "no output ports"))
        return
    if file is None:
        raise ConfigError("give a MIDI file to play, or --list-ports")
    if wait_s < 0:
        raise ConfigError(f"--wait-s must be >= 0, got {wait_s}")
    events = read_events(file)
    output = open_output(port, virtual=virtual, api=api.value)
    try:
        console.print(
            f"playing {file.name} ({events.duration_s:.1f} s) on {output.api}: "
            f"{output.port_name} (Ctrl-C stops)"
        )
        if wait_s:
            time.sleep(wait_s)
        report = play_events(events.events, output)
    except KeyboardInterrupt:
        console.print("[yellow]stopped[/yellow]; all notes off")
        raise typer.Exit(130) from None
    finally:
        output.close()
    console.print(
        f"sent {report.messages_sent} messages in {report.duration_s:.1f} s "
        f"(latest {report.max_late_s * 1000:.1f} ms behind schedule)"
    )


def register(app: typer.Typer) -> None:
    """Add `play` to the app."""
    app.command()(play)
