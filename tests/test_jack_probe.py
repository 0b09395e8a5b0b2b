"""The JACK connection probe: one client per process, reopened when its server changes."""

from __future__ import annotations

import time

import rtmidi

from tests.jack_fixtures import jack_server
from tuneforge.playback import connections

__all__ = ["jack_server"]  # the fixture is used by name


def test_connections_are_counted_through_one_kept_client(jack_server):
    feeder = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="feeder")
    feeder.open_virtual_port("phrase")
    listener = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="listener")
    try:
        assert connections.jack_connections("feeder", "phrase") == 0
        client = connections._PROBE._client
        assert client is not None
        assert connections.jack_connections("nobody", "nothing") is None  # no such port
        index = next(i for i, name in enumerate(listener.get_ports()) if "phrase" in name)
        listener.open_port(index)
        for _ in range(100):  # JACK connects within a few periods
            if connections.jack_connections("feeder", "phrase") == 1:
                break
            time.sleep(0.05)
        assert connections.jack_connections("feeder", "phrase") == 1
        assert connections._PROBE._client == client  # the same client answered every time
        connections.forget_jack_probe()
        assert connections._PROBE._client is None
        assert connections.jack_connections("feeder", "phrase") == 1  # opened again
    finally:
        listener.delete()
        feeder.close_port()
        feeder.delete()


def test_a_new_server_gets_a_new_client(jack_server, monkeypatch):
    assert connections.jack_connections("nobody", "nothing") is None
    first = connections._PROBE._client
    assert first is not None and connections._PROBE._server == jack_server
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "tuneforge-no-such-server")
    assert connections.jack_connections("nobody", "nothing") is None  # that server is absent
    assert connections._PROBE._client is None
    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server)
    assert connections.jack_connections("nobody", "nothing") is None
    assert connections._PROBE._client is not None
