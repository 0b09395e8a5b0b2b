"""JACK test servers keep starting after earlier ones were killed without unregistering."""

from __future__ import annotations

import pytest

from tests.jack_fixtures import NAME_POOL, _need, start_jack_server


@pytest.mark.jack
def test_killed_servers_do_not_fill_jacks_registry(tmp_path):
    _need("jackd", "jack_wait")
    # JACK's registry holds 8 servers; more kills than that would fill it if names were fresh.
    for _ in range(NAME_POOL + 4):
        server, name = start_jack_server(tmp_path)
        assert name.startswith("tuneforge-test-")
        server.kill()  # no chance to unregister
        server.wait(timeout=10)
    server, _name = start_jack_server(tmp_path)
    server.terminate()
    server.wait(timeout=10)
    assert server.returncode is not None
