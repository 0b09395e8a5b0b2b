"""A private JACK server (dummy driver) per test, and a MIDI input that records what arrives.

Import the fixture into a test module with ``from tests.jack_fixtures import jack_server``.
Each server gets a name no running server has, through ``JACK_DEFAULT_SERVER``, and is stopped
at the end of the test, whatever happens; ``JACK_NO_START_SERVER`` keeps libjack from starting
another.

Names come from a small pool, not fresh ones: JACK's shared registry holds 8 servers, and the
entry of a server that died without unregistering (killed on a loaded machine) is reclaimed only
by a later server of the same name. With fresh names such entries pile up until every start
fails with "Too many servers already active".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tuneforge.playback.connections import forget_jack_probe

SAMPLE_RATE_HZ = 44100
PERIOD_FRAMES = 256  # 5.8 ms per period; shorter periods xrun (and drop MIDI) on a busy CPU
# Synchronous mode: each cycle waits (up to the timeout) until every client has run it. In
# the default asynchronous mode a client the scheduler delays by more than one period, the
# test's recorder or the player under test, misses that cycle and every MIDI event in it; the
# dummy driver has no sound card to keep time for, so waiting costs only latency.
CLIENT_TIMEOUT_MS = 2000


def _need(*binaries: str) -> None:
    missing = [b for b in binaries if shutil.which(b) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install jackd2 fluidsynth)")


NAME_POOL = 6  # of JACK's 8 registry slots, leaving two for a user's own servers
START_ATTEMPTS = 3
START_WAIT_S = 20  # per attempt; a cold start on a loaded 2-core machine takes a few seconds


def _log_tail(path: Path, limit: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def _stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def _shm_state() -> str:
    usage = shutil.disk_usage("/dev/shm") if os.path.isdir("/dev/shm") else None
    if usage is None:
        return "/dev/shm is missing"
    entries = sorted(os.listdir("/dev/shm"))
    return f"/dev/shm: {usage.free // 2**20} MiB free, {len(entries)} entries {entries[:12]}"


def _live_jackd_names() -> set[str]:
    """The server names of the jackd processes running now (from /proc)."""
    names = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            if Path(argv[0].decode(errors="replace")).name != "jackd":
                continue
            if b"-n" in argv:
                names.add(argv[argv.index(b"-n") + 1].decode(errors="replace"))
                continue
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue
        default = [v for v in environ if v.startswith(b"JACK_DEFAULT_SERVER=")]
        names.add(default[0].split(b"=", 1)[1].decode(errors="replace") if default else "default")
    return names


def free_server_name() -> str:
    """A name from the pool that no running jackd uses."""
    live = _live_jackd_names()
    for index in range(NAME_POOL):
        name = f"tuneforge-test-{index}"
        if name not in live:
            return name
    pytest.fail(f"every JACK test server name is in use: {sorted(live)}")


def _clear_stale_registry(log_text: str) -> bool:
    """After "Too many servers already active" with no jackd running, every registry entry is
    stale: remove the registry (JACK makes a new one). Returns whether it did."""
    registry = Path("/dev/shm/jack-shm-registry")
    if "Too many servers" not in log_text or _live_jackd_names() or not registry.exists():
        return False
    registry.unlink()
    return True


def start_jack_server(log_dir: Path) -> tuple[subprocess.Popen, str]:
    """Start ``jackd -n NAME -d dummy`` under a free name; return it and the name once clients
    can connect.

    jackd writes to a log file (an unread pipe would fill and stall it). A start that does not
    come up is retried; the failure names what jackd and /dev/shm said."""
    failures = []
    for attempt in range(START_ATTEMPTS):
        server_name = free_server_name()
        log_path = log_dir / f"jackd-{server_name}-{attempt}.log"
        command = ["jackd", "-n", server_name, "--no-realtime", "--sync"]
        command += ["--timeout", str(CLIENT_TIMEOUT_MS), "-d", "dummy"]
        command += ["-r", str(SAMPLE_RATE_HZ), "-p", str(PERIOD_FRAMES)]
        with log_path.open("w") as log:
            server = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        env = {**os.environ, "JACK_DEFAULT_SERVER": server_name, "JACK_NO_START_SERVER": "1"}
        try:
            ready = subprocess.run(
                ["jack_wait", "-w", "-t", str(START_WAIT_S)],
                capture_output=True,
                text=True,
                timeout=START_WAIT_S + 10,
                env=env,
            )
            up = ready.returncode == 0 and server.poll() is None
        except subprocess.TimeoutExpired:
            up = False
        if up:
            return server, server_name
        _stop_server(server)
        log_text = _log_tail(log_path)
        cleared = _clear_stale_registry(log_text)
        failures.append(
            f"attempt {attempt + 1} ({server_name}): exit {server.returncode}: "
            f"{log_text}{' (stale registry removed)' if cleared else ''}"
        )
    pytest.fail(f"jackd did not start ({_shm_state()}):\n" + "\n".join(failures))


@pytest.fixture
def jack_server(monkeypatch: pytest.MonkeyPatch, tmp_path_factory) -> Iterator[str]:
    """Start ``jackd -d dummy`` under a free name; yield the name; always stop it."""
    _need("jackd", "jack_wait")
    server, name = start_jack_server(tmp_path_factory.mktemp("jackd"))
    monkeypatch.setenv("JACK_DEFAULT_SERVER", name)
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    try:
        yield name
    finally:
        forget_jack_probe()  # this process's probe client goes before its server does
        _stop_server(server)


class MidiRecorder:
    """A virtual JACK MIDI input port that keeps every message with its arrival time.

    Times are seconds since the first message, from the deltas JACK stamps on each event when
    it arrives. Messages wait in rtmidi's own queue and are collected on demand: a Python
    callback would run in JACK's thread and need the GIL, so a busy test process (sampling a
    piece in the same interpreter) would stall JACK's cycle and make it drop events.
    """

    def __init__(self, port_name: str, *, connect_to: str | None = None) -> None:
        """Open a virtual input ``port_name``, or connect to the output port ``connect_to``."""
        import rtmidi

        self.port_name = port_name
        self.messages: list[tuple[float, list[int]]] = []
        self._clock_s = 0.0
        self._midi_in = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="recorder", queue_size_limit=65536)
        if connect_to is None:
            self._midi_in.open_virtual_port(port_name)
        else:
            ports = self._midi_in.get_ports()
            index = next(i for i, name in enumerate(ports) if connect_to in name)
            self._midi_in.open_port(index, port_name)

    def snapshot(self) -> list[tuple[float, list[int]]]:
        """The messages so far, in arrival order."""
        while (item := self._midi_in.get_message()) is not None:
            data, delta_s = item
            self._clock_s += delta_s if self.messages else 0.0
            self.messages.append((self._clock_s, list(data)))
        return list(self.messages)

    def wait_for(self, predicate, timeout_s: float = 10.0) -> bool:
        """Poll until ``predicate(messages)`` holds or the time is up."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self.snapshot()):
                return True
            time.sleep(0.01)
        return predicate(self.snapshot())

    def await_link(self, output, timeout_s: float = 5.0) -> None:
        """Send a harmless message (CC 20, undefined in General MIDI) through ``output`` until
        one arrives, then forget it: JACK connects ports a few periods after asking, and on a
        busy machine messages sent before that are lost."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            output.send([0xB0, 20, 0])
            if self.wait_for(lambda m: len(m) > 0, timeout_s=0.05):
                time.sleep(0.05)
                self.snapshot()
                self.messages.clear()
                return
        raise AssertionError(f"no message reached {self.port_name} within {timeout_s} s")

    def close(self) -> None:
        """Close the port and the client."""
        self._midi_in.close_port()
        self._midi_in.delete()


def unmatched_note_ons(
    messages: list[tuple[float, list[int]]], *, all_notes_off_ends: bool = True
) -> list[tuple[int, int]]:
    """(channel, note) of note-ons never ended by a note-off or (``all_notes_off_ends``) an
    all-notes-off (CC 123) on their channel."""
    sounding: dict[tuple[int, int], int] = {}
    for _time, data in messages:
        status, channel = data[0] & 0xF0, data[0] & 0x0F
        if status == 0x90 and data[2] > 0:
            sounding[(channel, data[1])] = sounding.get((channel, data[1]), 0) + 1
        elif status in (0x80, 0x90):
            if sounding.get((channel, data[1])):
                sounding[(channel, data[1])] -= 1
        elif status == 0xB0 and data[1] == 123 and all_notes_off_ends:
            for key in [k for k in sounding if k[0] == channel]:
                sounding[key] = 0
    return sorted(k for k, count in sounding.items() if count)
