"""Live MIDI input through python-rtmidi: open a port, poll its messages, notice when it goes.

Messages wait in rtmidi's own queue and are collected by :meth:`MidiInput.poll`; a Python
callback would run in the API's thread and need the GIL, which a busy sampler holds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from tuneforge.errors import PlaybackError
from tuneforge.playback.live import CLIENT_NAME, MIDI_API_HINT, _apis_to_try, _match_port, _rtmidi
from tuneforge.playback.native import native_stderr_captured

PRESENCE_CHECK_S = 0.5  # how often an opened port is looked for in the port list
QUEUE_SIZE = 4096


class InputLost(PlaybackError):
    """The MIDI input port the session listened to has disappeared."""


@dataclass
class MidiInput:
    """An open rtmidi input and the port it listens to."""

    client: Any  # rtmidi.MidiIn
    api: str
    port_name: str
    _next_check_s: float = field(default=0.0, init=False, repr=False)

    def poll(self) -> list[list[int]]:
        """Every message that arrived since the last poll, oldest first (no system messages).

        Raises:
            InputLost: the port is no longer in the API's port list.
        """
        messages = []
        while (item := self.client.get_message()) is not None:
            messages.append(list(item[0]))
        now = time.monotonic()
        if now >= self._next_check_s:
            self._next_check_s = now + PRESENCE_CHECK_S
            if self.port_name not in self.client.get_ports():
                raise InputLost(f"the MIDI input {self.port_name} went away")
        return messages

    def close(self) -> None:
        """Close the port and the client."""
        self.client.close_port()
        self.client.delete()


def open_input(port: str | None = None, *, api: str = "auto") -> MidiInput:
    """Open the MIDI input port matching ``port`` (exact, else substring; None: the first).

    Raises:
        PlaybackError: no API opens, or no input port matches; the message says what exists.
    """
    rtmidi = _rtmidi()
    tried = []
    for name, constant in _apis_to_try(api):
        try:
            with native_stderr_captured():
                client = rtmidi.MidiIn(constant, name=CLIENT_NAME, queue_size_limit=QUEUE_SIZE)
        except rtmidi.SystemError:
            tried.append(f"{name} (unavailable)")
            continue
        available = list(client.get_ports())
        index = _match_port(available, port)
        if index is None:
            tried.append(f"{name} ({len(available)} input ports)")
            client.delete()
            continue
        client.ignore_types(sysex=True, timing=True, active_sense=True)
        client.open_port(index)
        return MidiInput(client, name, available[index])
    what = f"MIDI input port matching {port!r}" if port else "MIDI input port"
    hint = "" if any("input ports" in t for t in tried) else f"; {MIDI_API_HINT}"
    raise PlaybackError(f"found no {what}; tried {', '.join(tried) or 'no API'}{hint}")
