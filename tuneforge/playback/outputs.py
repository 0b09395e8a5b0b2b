"""Choose what the live player sends to (a MIDI port or the built-in synth) and check that
someone listens.

This is the one place where `play`, `generate --play` and `jam` decide between a port and
FluidSynth, so the fallback and its message are the same everywhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tuneforge.errors import PlaybackError
from tuneforge.playback.connections import alsa_connections, jack_connections
from tuneforge.playback.live import CLIENT_NAME, MidiOutput, NoMidiPortError, Output, open_output

RTMIDI_OUTPUT_PORT = "RtMidi output"  # what rtmidi names the port it connects from
VIRTUAL_WAIT_S = 5.0  # how long a virtual port waits for a listener unless told otherwise
LINK_SETTLE_S = 0.05  # a new JACK connection carries messages a few periods after it appears
POLL_S = 0.1
LINK_WAIT_S = 2.0  # how long a port just opened may take to show its connection


@dataclass(frozen=True)
class OutputRequest:
    """Where the user asked to play: a port, a virtual port, or the built-in synth."""

    port: str | None = None
    virtual: str | None = None
    api: str = "auto"
    synth: bool = False
    audio_driver: str | None = None
    audio_file: Path | None = None
    soundfont: Path | None = None

    @property
    def wants_synth(self) -> bool:
        """Any of --synth, --audio-driver or --audio-file asks for the built-in synth."""
        return self.synth or self.audio_driver is not None or self.audio_file is not None


@dataclass
class OpenedOutput:
    """The output to play to, and a line for the user when it is not what was asked for."""

    output: Output
    note: str | None = None  # e.g. why the built-in synth is playing


def open_synth_output(request: OutputRequest) -> Output:
    """Start the built-in synth (FluidSynth) as the request says."""
    from tuneforge.playback.soundfont import find_soundfont
    from tuneforge.playback.synth import open_synth

    return open_synth(
        find_soundfont(request.soundfont),
        audio_driver=request.audio_driver,
        audio_file=request.audio_file,
    )


def open_player_output(
    request: OutputRequest,
    *,
    port_wait_s: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> OpenedOutput:
    """Open a port, or the built-in synth when asked or when no MIDI output port exists.

    A port named in the request that does not exist yet is looked for again until
    ``port_wait_s`` has passed, so a synth started just before (its port appears a moment
    later) is found.

    Raises:
        PlaybackError: a port and the synth were both asked for; the named port is missing;
            or no port exists and the synth has no audio driver (the message says both).
    """
    if request.wants_synth:
        if request.port is not None or request.virtual is not None:
            raise PlaybackError("give either --synth (or --audio-file) or a MIDI port, not both")
        return OpenedOutput(open_synth_output(request))
    deadline = clock() + port_wait_s
    while True:
        try:
            output = open_output(request.port, virtual=request.virtual, api=request.api)
            if isinstance(output, MidiOutput) and not output.virtual:
                ensure_link(output, clock=clock, sleep=sleep)
            return OpenedOutput(output)
        except NoMidiPortError:
            break
        except PlaybackError:
            if request.port is None or clock() >= deadline:
                raise
            sleep(POLL_S)
    try:
        output = open_synth_output(request)
    except PlaybackError as error:
        raise PlaybackError(f"found no MIDI output port, and {error}") from error
    return OpenedOutput(output, "no MIDI output port found; playing through the built-in synth")


def ensure_link(
    output: MidiOutput,
    wait_s: float = LINK_WAIT_S,
    *,
    count: Callable[[Output], int | None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool | None:
    """Make sure the port ``output`` opened is connected to it, reopening the port once.

    rtmidi asks JACK for the connection when it opens a port and ignores a refusal (a server
    slowed down by a busy machine can refuse), after which every message would go nowhere.
    Returns True once connected, False if still not, None when the API cannot tell.
    """
    count = count or listener_count
    for attempt in range(2):
        deadline = clock() + wait_s
        while True:
            connected = count(output)
            if connected is None:
                return None
            if connected > 0:
                return True
            if clock() >= deadline:
                break
            sleep(POLL_S)
        if attempt == 0:
            ports = list(output.client.get_ports())
            if output.port_name not in ports:
                return False
            output.client.close_port()
            output.client.open_port(ports.index(output.port_name))
    return False


def listener_count(output: Output) -> int | None:
    """How many ports receive from ``output`` (None: unknown, e.g. the synth or CoreMIDI)."""
    if not isinstance(output, MidiOutput):
        return None
    port_name = output.port_name if output.virtual else RTMIDI_OUTPUT_PORT
    if output.api == "jack":
        return jack_connections(CLIENT_NAME, port_name)
    if output.api == "alsa":
        return alsa_connections(CLIENT_NAME, port_name)
    return None


def wait_for_listener(
    output: Output,
    wait_s: float,
    *,
    count: Callable[[Output], int | None] = listener_count,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool | None:
    """Wait up to ``wait_s`` until something is connected to ``output``.

    Returns True as soon as a connection exists, False when none came within ``wait_s``,
    and None when the API cannot tell (then it simply waits ``wait_s``, as a pause to
    connect a synth by hand).
    """
    deadline = clock() + wait_s
    while True:
        connected = count(output)
        if connected is None:
            remaining = deadline - clock()
            if remaining > 0:
                sleep(remaining)
            return None
        if connected > 0:
            sleep(LINK_SETTLE_S)
            return True
        if clock() >= deadline:
            return False
        sleep(min(POLL_S, max(0.0, deadline - clock())))
