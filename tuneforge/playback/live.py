"""Live MIDI output through python-rtmidi, scheduled against a monotonic clock.

Every message is sent at ``start + time_s`` read from :func:`time.monotonic`, never after a
chain of relative sleeps, so timing errors do not add up over a long piece. However playback
ends (the last note, Ctrl-C, an error), :func:`panic` releases every sounding note and sends
sustain-off and all-notes-off on all 16 channels, so nothing keeps ringing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from tuneforge.errors import PlaybackError
from tuneforge.music.events import TimedMessage
from tuneforge.playback.native import native_stderr_captured

NUM_CHANNELS = 16
CC_SUSTAIN = 64
CC_ALL_NOTES_OFF = 123
CLIENT_NAME = "tuneforge"
BURST_MESSAGES = 8  # messages sent back to back before a pause
BURST_WINDOW_S = 0.001  # the pause, and the window the burst is counted in
CLOSE_FLUSH_S = 0.1  # longer than a few JACK periods (1024 frames at 48 kHz = 21 ms)

HEADLESS_SYNTH_COMMAND = (
    "jackd --no-realtime -d dummy & jack_wait -w; sleep infinity | fluidsynth -j -a jack"
    " -m jack /usr/share/sounds/sf2/default-GM.sf2 &"
)
SYNTH_HINT = (
    "play through the built-in synthesizer with --synth, render a WAV with `tuneforge render"
    f" FILE.mid`, or start a synth on JACK (`{HEADLESS_SYNTH_COMMAND}`; with a sound card use"
    " `jackd -d alsa`) and pass --api jack --port fluidsynth --wait-s 20"
)
MIDI_API_HINT = (
    "start a JACK server (`sudo apt-get install jackd2`, then `jackd --no-realtime -d dummy &`)"
    " or load ALSA's sequencer (`sudo modprobe snd-seq`); --synth needs neither"
)


class NoMidiPortError(PlaybackError):
    """No MIDI output port exists on any usable API (a named or virtual port was not asked for)."""


@runtime_checkable
class Output(Protocol):
    """Where :func:`play_events` sends raw MIDI: a port (:class:`MidiOutput`) or a synth."""

    api: str
    port_name: str

    def send(self, data: list[int] | bytes) -> None:
        """Send one raw MIDI message now."""

    def close(self) -> None:
        """Release the output once the last message has sounded."""


def _rtmidi():
    """Import rtmidi lazily: it loads ALSA/JACK libraries that `--help` should not need."""
    try:
        import rtmidi
    except ImportError as error:  # pragma: no cover - rtmidi is a declared dependency
        raise PlaybackError(
            "python-rtmidi is not installed; run `pip install python-rtmidi`"
        ) from error
    return rtmidi


def api_names() -> list[str]:
    """Names of the MIDI APIs this rtmidi build supports, in rtmidi's order of preference."""
    rtmidi = _rtmidi()
    return [rtmidi.get_api_name(api) for api in rtmidi.get_compiled_api()]


def _apis_to_try(api: str) -> list[tuple[str, int]]:
    """``(name, rtmidi constant)`` pairs for ``api``: one API, or all compiled ones for auto."""
    rtmidi = _rtmidi()
    compiled = [(rtmidi.get_api_name(a), a) for a in rtmidi.get_compiled_api()]
    # The dummy API opens fine and plays nothing; auto must never settle on it.
    real = [(name, a) for name, a in compiled if a != rtmidi.API_RTMIDI_DUMMY]
    if api == "auto":
        return real
    for name, constant in compiled:
        if name == api:
            return [(name, constant)]
    choices = ", ".join(["auto", *(name for name, _ in compiled)])
    raise PlaybackError(f"unknown MIDI API {api!r}; choose one of: {choices}")


def _open_client(api_name: str, api_constant: int, *, inputs: bool = False):
    """An rtmidi MidiOut (MidiIn with ``inputs``) on one API, or None where it cannot open."""
    rtmidi = _rtmidi()
    kind = rtmidi.MidiIn if inputs else rtmidi.MidiOut
    try:
        with native_stderr_captured():
            return kind(api_constant, name=CLIENT_NAME)
    except rtmidi.SystemError:
        return None


def _port_names(api_name: str, api_constant: int, *, inputs: bool) -> list[str] | None:
    client = _open_client(api_name, api_constant, inputs=inputs)
    if client is None:
        return None
    try:
        return list(client.get_ports())
    finally:
        client.delete()


def list_output_ports(api: str = "auto") -> dict[str, list[str]]:
    """Output ports per usable API: ``{"jack": ["fluidsynth:midi"], ...}``."""
    return {name: ports["outputs"] for name, ports in list_ports(api).items()}


def list_ports(api: str = "auto") -> dict[str, dict[str, list[str]]]:
    """Output and input ports per usable API: ``{"jack": {"outputs": [...], "inputs": [...]}}``.

    Raises:
        PlaybackError: no MIDI API can be opened here; the message says what to install.
    """
    found: dict[str, dict[str, list[str]]] = {}
    tried = []
    for name, constant in _apis_to_try(api):
        outputs = _port_names(name, constant, inputs=False)
        if outputs is None:
            tried.append(name)
            continue
        found[name] = {"outputs": outputs, "inputs": _port_names(name, constant, inputs=True) or []}
    if not found:
        raise PlaybackError(
            f"no MIDI API can be opened here (tried {', '.join(tried)}); {MIDI_API_HINT}"
        )
    return found


@dataclass
class MidiOutput:
    """An open rtmidi output and a description of where it goes (for messages to the user)."""

    client: Any  # rtmidi.MidiOut
    api: str
    port_name: str
    virtual: bool = False  # a port we created for others to connect to
    _window_start: float = field(default=0.0, init=False, repr=False)
    _window_count: int = field(default=0, init=False, repr=False)

    def send(self, data: list[int] | bytes) -> None:
        """Send one raw MIDI message, pacing bursts (a chord, a panic) to a few per ms.

        A JACK MIDI port holds only a few dozen events per period and drops the rest, so
        a burst of 80 messages at one instant would lose some; spread over a few
        milliseconds they all arrive, and no listener hears the difference.
        """
        now = time.monotonic()
        if now - self._window_start >= BURST_WINDOW_S:
            self._window_start, self._window_count = now, 0
        elif self._window_count >= BURST_MESSAGES:
            time.sleep(BURST_WINDOW_S)
            self._window_start, self._window_count = time.monotonic(), 0
        self.client.send_message(data)
        self._window_count += 1

    def close(self) -> None:
        """Close the port and the client, once the last messages have left."""
        # rtmidi hands messages to the API's own thread (JACK: once per period); closing at
        # once can drop or garble the final all-notes-off, so give it a few periods first.
        time.sleep(CLOSE_FLUSH_S)
        self.client.close_port()
        self.client.delete()


def open_output(
    port: str | None = None, *, virtual: str | None = None, api: str = "auto"
) -> MidiOutput:
    """Open a MIDI output: a virtual port named ``virtual``, the port matching ``port``
    (exact name, else a case-insensitive substring), or else the first port found.

    Raises:
        PlaybackError: no API could be opened or no matching port exists; the message names
            what was tried and how to get a synth.
    """
    if port is not None and virtual is not None:
        raise PlaybackError("give either --port or --virtual, not both")
    tried: list[str] = []
    for name, constant in _apis_to_try(api):
        client = _open_client(name, constant)
        if client is None:
            tried.append(f"{name} (unavailable)")
            continue
        if virtual is not None:
            try:
                client.open_virtual_port(virtual)
            except (NotImplementedError, _rtmidi().SystemError):
                client.delete()
                tried.append(f"{name} (no virtual ports)")
                continue
            return MidiOutput(client, name, virtual, virtual=True)
        available = list(client.get_ports())
        index = _match_port(available, port)
        if index is None:
            tried.append(
                f"{name} ({len(available)} ports" + (f", none match {port!r})" if port else ")")
            )
            client.delete()
            continue
        client.open_port(index)
        return MidiOutput(client, name, available[index])
    if port:
        what = f"MIDI output port matching {port!r}"
    else:
        what = "MIDI API that can open a virtual port" if virtual else "MIDI output port"
    message = f"found no {what}; tried {', '.join(tried) or 'no API'}; {SYNTH_HINT}"
    if port is None and virtual is None:
        raise NoMidiPortError(message)
    raise PlaybackError(message)


def _match_port(available: list[str], wanted: str | None) -> int | None:
    """Index of the port to open: the first one, an exact name, or a substring match."""
    if not available:
        return None
    if wanted is None:
        return 0
    if wanted in available:
        return available.index(wanted)
    lowered = wanted.lower()
    for index, name in enumerate(available):
        if lowered in name.lower():
            return index
    return None


class _SoundingNotes:
    """The (channel, note) pairs a note-on started and no note-off has ended yet."""

    def __init__(self) -> None:
        self.notes: set[tuple[int, int]] = set()

    def track(self, data: list[int]) -> None:
        """Update from one raw message."""
        status = data[0] & 0xF0
        channel = data[0] & 0x0F
        if status == 0x90 and data[2] > 0:
            self.notes.add((channel, data[1]))
        elif status in (0x80, 0x90):
            self.notes.discard((channel, data[1]))
        elif status == 0xB0 and data[1] == CC_ALL_NOTES_OFF:
            self.notes = {n for n in self.notes if n[0] != channel}


def panic(output: Output, sounding: Iterable[tuple[int, int]] = ()) -> None:
    """Silence everything: note-off for each sounding note, then sustain-off and
    all-notes-off on all 16 channels (some synths ignore one or the other)."""
    for channel, note in sorted(sounding):
        output.send([0x80 | channel, note, 0])
    for channel in range(NUM_CHANNELS):
        output.send([0xB0 | channel, CC_SUSTAIN, 0])
        output.send([0xB0 | channel, CC_ALL_NOTES_OFF, 0])


@dataclass(frozen=True)
class PlaybackReport:
    """What a playback did: messages sent, the largest lateness seen, how long it took."""

    messages_sent: int
    max_late_s: float
    duration_s: float


def play_events(
    events: Iterable[TimedMessage],
    output: Output,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_message: Callable[[TimedMessage], None] | None = None,
) -> PlaybackReport:
    """Send each message at its time against ``clock``; always end with :func:`panic`.

    ``events`` may be a lazy iterator (frames still being sampled): the next message is
    fetched right after the previous one is sent, so its computation overlaps the wait.
    Ctrl-C (KeyboardInterrupt) and errors propagate after the panic.
    """
    sounding = _SoundingNotes()
    sent = 0
    max_late_s = 0.0
    start = clock()
    try:
        for event in events:
            target = start + event.time_s
            remaining = target - clock()
            while remaining > 0:
                sleep(remaining)
                remaining = target - clock()
            max_late_s = max(max_late_s, -remaining)
            data = event.message.bytes()
            output.send(data)
            sounding.track(data)
            sent += 1
            if on_message is not None:
                on_message(event)
    finally:
        panic(output, sounding.notes)
    return PlaybackReport(messages_sent=sent, max_late_s=max_late_s, duration_s=clock() - start)
