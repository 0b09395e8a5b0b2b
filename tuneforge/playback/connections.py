"""Whether anyone listens to a port tuneforge opened: its connections on JACK or ALSA.

rtmidi cannot say who is connected to a port, so JACK is asked through libjack (the library
rtmidi itself runs on) and ALSA through the kernel's sequencer table in
``/proc/asound/seq/clients``. Either answer is a count of connections, or None where the
API cannot be asked (CoreMIDI, Windows, a JACK that went away).
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import os
import re
import threading
from pathlib import Path

ALSA_SEQ_CLIENTS = Path("/proc/asound/seq/clients")
JACK_NO_START_SERVER = 0x01  # jack_options_t: never launch a server just to ask


class _JackProbe:
    """One JACK client per process, kept open, through which connections are asked.

    Opening and closing a client for every question (``play`` and ``jam`` ask every 0.1 s
    while they wait for a listener) makes the server reorder its graph each time, and a busy
    server in synchronous mode can stall for seconds on a client that is closing. The client
    is opened for the server named by ``JACK_DEFAULT_SERVER`` and opened again when that name
    changes or the server shuts down (libjack's shutdown callback says so).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jack = None
        self._client = None
        self._server: str | None = None
        self._alive = False
        # One ctypes callback for every client, kept for the life of the process.
        self._on_shutdown = SHUTDOWN_CALLBACK(self._shut_down)

    def _library(self):
        if self._jack is None:
            library = ctypes.util.find_library("jack") or "libjack.so.0"
            jack = ctypes.CDLL(library)  # OSError: no libjack
            jack.jack_client_open.restype = ctypes.c_void_p
            jack.jack_client_open.argtypes = [
                ctypes.c_char_p,
                ctypes.c_int,
                ctypes.POINTER(ctypes.c_int),
            ]
            jack.jack_get_ports.restype = ctypes.POINTER(ctypes.c_char_p)
            jack.jack_get_ports.argtypes = [
                ctypes.c_void_p,
                ctypes.c_char_p,
                ctypes.c_char_p,
                ctypes.c_ulong,
            ]
            jack.jack_port_by_name.restype = ctypes.c_void_p
            jack.jack_port_by_name.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            jack.jack_port_get_all_connections.restype = ctypes.POINTER(ctypes.c_char_p)
            jack.jack_port_get_all_connections.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
            jack.jack_on_shutdown.argtypes = [ctypes.c_void_p, SHUTDOWN_CALLBACK, ctypes.c_void_p]
            jack.jack_free.argtypes = [ctypes.c_void_p]
            jack.jack_client_close.argtypes = [ctypes.c_void_p]
            self._jack = jack
        return self._jack

    def _shut_down(self, _arg) -> None:
        self._alive = False  # runs on libjack's thread; the next question reopens

    def _close(self) -> None:
        from tuneforge.playback.native import native_stderr_captured

        if self._client is not None:
            with native_stderr_captured():
                self._jack.jack_client_close(self._client)
        self._client, self._alive = None, False

    def forget(self) -> None:
        """Close the client now (before stopping a server this process started)."""
        with self._lock:
            self._close()

    def _connected(self):
        """The client for the current server, opened if need be; None when none answers."""
        from tuneforge.playback.native import native_stderr_captured

        server = os.environ.get("JACK_DEFAULT_SERVER", "default")
        if self._client is not None and self._alive and self._server == server:
            return self._client
        self._close()
        jack = self._library()
        status = ctypes.c_int(0)
        with native_stderr_captured():
            client = jack.jack_client_open(
                b"tuneforge-probe", JACK_NO_START_SERVER, ctypes.byref(status)
            )
            if client:
                # Heard on libjack's notification thread; the client stays inactive, so it
                # takes no part in the server's cycles.
                jack.jack_on_shutdown(client, self._on_shutdown, None)
        if not client:
            return None
        self._client, self._server, self._alive = client, server, True
        return client

    def connections(self, client_name: str, port_name: str) -> int | None:
        with self._lock:
            try:
                client = self._connected()
            except OSError:
                return None
            if client is None:
                return None
            jack = self._jack
            pattern = f"^{re.escape(client_name)}(-[0-9]+)?:{re.escape(port_name)}$".encode()
            names = _strings(jack, jack.jack_get_ports(client, pattern, None, 0))
            if not names:
                return None
            total = 0
            for name in names:
                port = jack.jack_port_by_name(client, name.encode())
                if port:
                    total += len(_strings(jack, jack.jack_port_get_all_connections(client, port)))
            return total


SHUTDOWN_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_PROBE = _JackProbe()
atexit.register(_PROBE.forget)  # leave the server's graph as tidy as it was found


def jack_connections(client_name: str, port_name: str) -> int | None:
    """Connections of the JACK port ``client_name:port_name`` (None: JACK cannot be asked).

    JACK renames a second client of one name to ``NAME-01``; those count as the same client.
    Several ports matching (two tuneforge processes) are summed. The question goes through one
    client kept open per process (see :class:`_JackProbe`).
    """
    return _PROBE.connections(client_name, port_name)


def forget_jack_probe() -> None:
    """Close the kept JACK client, e.g. before stopping a JACK server this process started."""
    _PROBE.forget()


def _strings(jack, array) -> list[str]:
    """The strings of a NULL-terminated ``const char **`` from libjack, which is then freed."""
    if not array:
        return []
    found = []
    index = 0
    while array[index] is not None:
        found.append(array[index].decode("utf-8", "replace"))
        index += 1
    jack.jack_free(array)
    return found


def alsa_connections(client_name: str, port_name: str, table: str | None = None) -> int | None:
    """Subscribers of the ALSA sequencer port ``client_name:port_name`` (None: no sequencer).

    ``table`` is the text of ``/proc/asound/seq/clients`` (read from there when None).
    """
    if table is None:
        try:
            table = ALSA_SEQ_CLIENTS.read_text("utf-8", "replace")
        except OSError:
            return None
    found = False
    total = 0
    in_client = in_port = False
    for line in table.splitlines():
        client = re.match(r'^Client\s+\d+\s*:\s*"(.*)"', line)
        if client:
            in_client, in_port = client.group(1) == client_name, False
            continue
        port = re.match(r'^\s+Port\s+\d+\s*:\s*"(.*)"', line)
        if port:
            in_port = in_client and port.group(1) == port_name
            found = found or in_port
            continue
        connecting = re.match(r"^\s+Connecting To:\s*(.*)$", line)
        if connecting and in_port:
            total += len([c for c in connecting.group(1).split(",") if c.strip()])
    return total if found else None
