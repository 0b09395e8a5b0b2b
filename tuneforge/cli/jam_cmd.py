"""`tuneforge jam`: play with a model live (call and response, or accompaniment)."""

from __future__ import annotations

import os
import select
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from tuneforge.cli import exit_watchdog, panels
from tuneforge.cli.device_options import DEFAULT_DEVICE, DeviceOption
from tuneforge.cli.play_cmd import (
    ApiChoice,
    AudioDriverOption,
    AudioFileOption,
    SoundfontOption,
    SynthOption,
)
from tuneforge.validate import check_numbers

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)
POLL_S = 0.002  # input is looked at this often while waiting for the next step


class Mode(str, Enum):
    """What the model does with what it hears."""

    call = "call"
    accompany = "accompany"


@contextmanager
def _terminal_keys() -> Iterator[object | None]:
    """Single key presses from the terminal (cbreak mode), or None when stdin is no terminal."""
    if not sys.stdin.isatty():
        yield None
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield fd
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _read_keys(fd) -> str:
    if fd is None or not select.select([fd], [], [], 0)[0]:
        return ""
    return os.read(fd, 64).decode("utf-8", "replace")


def _view(session, last_action: str, keyboard: bool) -> Table:
    s = session.settings
    table = Table(title=f"tuneforge jam: {escape(session.generator.name)}", show_header=False)
    table.add_row("state", session.state)
    table.add_row("bar", f"{session.step // (session.steps_per_beat * s.beats_per_bar) + 1}")
    table.add_row("tempo", f"{s.tempo_bpm:g} bpm  (7/8)")
    table.add_row("temperature", f"{s.temperature}  (1/2)")
    table.add_row("density", f"{s.max_polyphony or 'any'}  (3/4)")
    table.add_row("transpose", f"{s.transpose:+d}  (5/6)")
    table.add_row("metronome", f"{'on' if s.metronome else 'off'}  (m)")
    table.add_row("answers", str(len(session.report.answers)))
    keys = "a w s e d f t g y h u j k = C..C, z/x octave, " if keyboard else ""
    table.add_row("keys", keys + "0 save, q quit, Ctrl-C stop")
    if last_action:
        table.add_row("last", escape(last_action))
    return table


def jam(
    model: Annotated[
        str | None,
        typer.Option(help="Checkpoint path or shipped model name.", rich_help_panel=panels.MODEL),
    ] = None,
    in_port: Annotated[
        str | None,
        typer.Option(
            "--in",
            help="MIDI input port (name or part of it); default: the computer keyboard.",
            rich_help_panel=panels.PLAYBACK,
        ),
    ] = None,
    mode: Annotated[
        Mode,
        typer.Option(help="call: answer each phrase; accompany.", rich_help_panel=panels.SESSION),
    ] = Mode.call,
    tempo: Annotated[
        float,
        typer.Option(
            "--tempo-bpm", "--tempo", help="Session tempo in bpm.", rich_help_panel=panels.SESSION
        ),
    ] = 100.0,
    pause_beats: Annotated[
        float,
        typer.Option(help="Silence that ends a call, in beats.", rich_help_panel=panels.SESSION),
    ] = 1.0,
    answer_bars: Annotated[
        int, typer.Option(help="Length of each answer in bars.", rich_help_panel=panels.SESSION)
    ] = 2,
    temp: Annotated[
        float,
        typer.Option(
            "--temperature",
            "--temp",
            help="Sampling temperature (> 0).",
            rich_help_panel=panels.SAMPLING,
        ),
    ] = 0.8,
    max_polyphony: Annotated[
        int | None, typer.Option(help="Most notes at once.", rich_help_panel=panels.SAMPLING)
    ] = 4,
    transpose: Annotated[
        int,
        typer.Option(help="Semitones added to the model's notes.", rich_help_panel=panels.SAMPLING),
    ] = 0,
    metronome: Annotated[
        bool,
        typer.Option(
            "--metronome", help="Click every beat (GM drums).", rich_help_panel=panels.SESSION
        ),
    ] = False,
    bars: Annotated[
        int | None, typer.Option(help="Stop after this many bars.", rich_help_panel=panels.SESSION)
    ] = None,
    seed: Annotated[
        int,
        typer.Option(help="Random seed of the model's draws.", rich_help_panel=panels.SAMPLING),
    ] = 0,
    thru: Annotated[
        bool,
        typer.Option(
            help="Echo the player's notes to the output.", rich_help_panel=panels.PLAYBACK
        ),
    ] = True,
    save: Annotated[
        Path | None,
        typer.Option(
            dir_okay=False,
            help="MIDI file for the session (default: out/jam-TIME.mid).",
            rich_help_panel=panels.OUTPUT,
        ),
    ] = None,
    port: Annotated[
        str | None, typer.Option(help="MIDI output port.", rich_help_panel=panels.PLAYBACK)
    ] = None,
    virtual: Annotated[
        str | None,
        typer.Option(help="Open a virtual output port.", rich_help_panel=panels.PLAYBACK),
    ] = None,
    api: Annotated[
        ApiChoice, typer.Option(help="MIDI API.", rich_help_panel=panels.PLAYBACK)
    ] = ApiChoice.auto,
    synth: SynthOption = False,
    audio_driver: AudioDriverOption = None,
    audio_file: AudioFileOption = None,
    soundfont: SoundfontOption = None,
    device: DeviceOption = DEFAULT_DEVICE,
) -> None:
    """Jam with a model: it answers your phrases, or accompanies you, live."""
    from tuneforge.generate import load_generator
    from tuneforge.jam import CONTROL_KEYS, JamSession, JamSettings, check_model, keyboard_note
    from tuneforge.playback.midi_in import InputLost, open_input
    from tuneforge.playback.outputs import OutputRequest, open_player_output

    settings = JamSettings(
        mode=mode.value,
        tempo_bpm=tempo,
        pause_beats=pause_beats,
        answer_bars=answer_bars,
        temperature=temp,
        max_polyphony=max_polyphony,
        transpose=transpose,
        metronome=metronome,
        seed=seed,
        bars=bars,
        thru=thru,
    )
    settings.check()
    check_numbers({"temperature": temp, "seed": seed, "max_polyphony": max_polyphony})
    generator = load_generator(model, device=device.value)
    check_model(generator, settings.mode)  # before any port opens: a clear error, at once
    source = open_input(in_port, api=api.value) if in_port is not None else None
    request = OutputRequest(port, virtual, api.value, synth, audio_driver, audio_file, soundfont)
    try:
        opened = open_player_output(request)
    except BaseException:
        if source is not None:
            source.close()
        raise
    output = opened.output
    if opened.note:
        err_console.print(f"[yellow]{escape(opened.note)}[/yellow]")
    save = save or Path("out") / f"jam-{datetime.now():%Y%m%d-%H%M%S}.mid"
    heard = f"{source.api}: {source.port_name}" if source else "the computer keyboard"
    console.print(
        f"jam: listening to {escape(str(heard))}, playing on {output.api}: "
        f"{escape(output.port_name)}"
    )
    session = JamSession(generator, output, settings)
    octave = 0
    last = ""
    stopped_by: str | None = None
    with _terminal_keys() as keys_fd:
        if source is None and keys_fd is None:
            output.close()
            raise typer.BadParameter("no MIDI input given (--in) and no terminal for keys")
        live = Live(_view(session, last, source is None), console=console, auto_refresh=False)
        try:
            with live if console.is_terminal else _nothing():
                next_view_s = 0.0
                while not session.finished:
                    if source is not None:
                        for data in source.poll():
                            session.player_message(data)
                    for char in _read_keys(keys_fd):
                        note = keyboard_note(char, octave) if source is None else None
                        if note is not None:
                            session.key_note(note)
                        elif char in ("z", "x") and source is None:
                            octave = max(-3, min(3, octave + (1 if char == "x" else -1)))
                            last = f"octave {octave:+d}"
                        elif CONTROL_KEYS.get(char) == "quit":
                            session.finished = True
                        elif CONTROL_KEYS.get(char) == "save":
                            last = f"saved {session.save(save)[0]}"
                        elif char in CONTROL_KEYS:
                            last = session.control(CONTROL_KEYS[char])
                    session.advance()
                    now = time.monotonic()
                    if console.is_terminal and now >= next_view_s:
                        live.update(_view(session, last, source is None), refresh=True)
                        next_view_s = now + 0.1
                    time.sleep(max(0.0, min(POLL_S, session.next_due_s() - time.monotonic())))
        except KeyboardInterrupt:
            stopped_by = "stopped"
        except InputLost as error:
            stopped_by = str(error)
        finally:
            session.stop()
            try:
                midi_path, _ = session.save(save)  # saved before the ports close: nothing lost
            finally:
                if stopped_by is not None:
                    exit_watchdog.arm(130)  # a stalled server may not hang the exit from here
                output.close()
                if source is not None:
                    source.close()
    console.print(
        f"saved the session to {escape(str(midi_path))} ({len(session.report.answers)} answers)"
    )
    if stopped_by is not None:
        console.print(f"[yellow]{stopped_by}[/yellow]; all notes off")
        raise typer.Exit(130)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def register(app: typer.Typer) -> None:
    """Add `jam` to the app."""
    app.command(cls=panels.Command)(jam)
