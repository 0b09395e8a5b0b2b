"""Honest ports: warnings when nobody listens, and the README's Listening commands as written,
run against a JACK server with the dummy driver."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rtmidi
from typer.testing import CliRunner

from tests.jack_fixtures import (
    MidiRecorder,
    _need,
    free_server_name,
    jack_server,
    unmatched_note_ons,
)
from tests.midi_factory import write_midi
from tuneforge.cli.app import app
from tuneforge.playback.connections import alsa_connections
from tuneforge.playback.live import HEADLESS_SYNTH_COMMAND, open_output
from tuneforge.playback.outputs import listener_count, wait_for_listener

runner = CliRunner()
README = Path(__file__).resolve().parents[1] / "README.md"
GM_FONT = Path("/usr/share/sounds/sf2/default-GM.sf2")

__all__ = ["jack_server"]  # the fixture is used by name


def _note_ons(messages) -> int:
    return sum(d[0] & 0xF0 == 0x90 and d[2] > 0 for _, d in messages)


@pytest.mark.jack
def test_a_virtual_port_nobody_opens_is_warned_about(jack_server, tmp_path):
    midi = write_midi(tmp_path / "a.mid", [(60, 0, 1)])
    args = ["play", str(midi), "--virtual", "tfnobody", "--api", "jack", "--wait-s", "0.5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "nobody connected to the virtual port jack: tfnobody within 0.5 s" in result.output


@pytest.mark.jack
def test_a_virtual_port_starts_once_a_synth_connects_and_says_nothing(jack_server, tmp_path):
    midi = write_midi(tmp_path / "a.mid", [(60, 0, 2), (64, 2, 4)])
    command = [sys.executable, "-m", "tuneforge", "play", str(midi), "--virtual", "tfwait"]
    command += ["--api", "jack", "--wait-s", "30"]
    player = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    listener = None
    try:
        probe = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="probe")
        deadline = time.monotonic() + 30
        while not any("tfwait" in p for p in probe.get_ports()):
            assert time.monotonic() < deadline, "the virtual port never appeared"
            time.sleep(0.05)
        probe.delete()
        listener = MidiRecorder("in", connect_to="tfwait")
        stdout, stderr = player.communicate(timeout=30)
        assert player.returncode == 0, stderr
        assert "warning" not in stderr
        # It waited for the connection, so the first note was not lost.
        assert listener.wait_for(lambda m: _note_ons(m) >= 2, timeout_s=5)
        assert unmatched_note_ons(listener.snapshot()) == []
    finally:
        if player.poll() is None:
            player.kill()
            player.communicate()
        if listener is not None:
            listener.close()


@pytest.mark.jack
def test_a_jack_port_with_no_connection_counts_zero(jack_server):
    sink = MidiRecorder("sink")
    output = open_output("sink", api="jack")
    try:
        assert listener_count(output) == 1
        ours = next(
            line
            for line in subprocess.run(["jack_lsp"], capture_output=True, text=True).stdout.split(
                "\n"
            )
            if line.startswith("tuneforge") and line.endswith(":RtMidi output")
        )
        subprocess.run(["jack_disconnect", ours, "recorder:sink"], check=True, timeout=10)
        deadline = time.monotonic() + 15
        while listener_count(output) != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert listener_count(output) == 0
        assert wait_for_listener(output, 0.0) is False
    finally:
        output.close()
        sink.close()


def test_unknown_connections_just_wait():
    slept = []
    assert wait_for_listener(object(), 2.0, count=lambda o: None, sleep=slept.append) is None
    assert slept and 1.9 < slept[0] <= 2.0


ALSA_TABLE = """Client info
  cur  clients : 3

Client   0 : "System" [Kernel]
  Port   0 : "Timer" (Rwe-)
  Port   1 : "Announce" (R-e-)
Client 128 : "tuneforge" [User Legacy]
  Port   0 : "tfout" (R-e-)
    Connecting To: 129:0, 130:0[real:0]
  Port   1 : "lonely" (R-e-)
Client 129 : "FLUID Synth (1234)" [User Legacy]
  Port   0 : "Synth input port (1234:0)" (-We-)
    Connected From: 128:0
"""


def test_alsa_subscribers_are_read_from_the_sequencer_table():
    assert alsa_connections("tuneforge", "tfout", ALSA_TABLE) == 2
    assert alsa_connections("tuneforge", "lonely", ALSA_TABLE) == 0
    assert alsa_connections("tuneforge", "absent", ALSA_TABLE) is None
    assert alsa_connections("tuneforge", "tfout", "") is None


def _stop(pid: int) -> None:
    """Terminate the process ``pid`` and wait (up to 15 s) until it is gone: a killed jackd
    leaves its entry in JACK's registry."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


def _readme_listening_block() -> str:
    text = README.read_text("utf-8")
    marker = "<!-- the block below is run by tests/test_ports.py -->"
    block = re.search(re.escape(marker) + r"\n```bash\n(.*?)```", text, re.S)
    assert block, "README lost its tested Listening block"
    return block.group(1)


HINT_SCRIPT = f"""{HEADLESS_SYNTH_COMMAND}
tuneforge play piece.mid --api jack --port fluidsynth --wait-s 20
"""


@pytest.mark.jack
@pytest.mark.parametrize("source", ["readme", "error hint"])
def test_the_listening_commands_work_as_written(source, tmp_path):
    """The README's block, and the synth command the no-port error suggests."""
    _need("jackd", "jack_wait", "fluidsynth")
    if not GM_FONT.is_file():
        pytest.skip(f"needs {GM_FONT} (apt-get install fluid-soundfont-gm)")
    midi = write_midi(tmp_path / "piece.mid", [(60, 0, 2), (64, 2, 4), (67, 4, 8)])
    script = _readme_listening_block() if source == "readme" else HINT_SCRIPT
    script = script.replace("piece.mid", str(midi))
    # `tuneforge` is this checkout's, whichever console script is on PATH; jackd detaches
    # into a session of its own, so its process id is written down to stop it at the end.
    pid_file = tmp_path / "jackd.pid"
    prelude = f'tuneforge() {{ "{sys.executable}" -m tuneforge "$@"; }}\n'
    prelude += f'jackd() {{ command jackd "$@" & echo $! > "{pid_file}"; wait $!; }}\n'
    env = {
        **os.environ,
        "JACK_DEFAULT_SERVER": free_server_name(),
        "JACK_NO_START_SERVER": "1",
    }
    # A session of its own, so jackd, fluidsynth and sleep are stopped together at the end;
    # files, not pipes, for the output: the background jobs keep theirs open after bash ends.
    out_path, err_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out_path.open("w") as out_file, err_path.open("w") as err_file:
        shell = subprocess.Popen(
            ["bash", "-c", prelude + script],
            stdout=out_file,
            stderr=err_file,
            env=env,
            start_new_session=True,
        )
        timed_out = False
        try:
            shell.wait(timeout=90)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            try:
                os.killpg(shell.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if shell.poll() is None:
                shell.kill()
                shell.wait()
            if pid_file.exists():
                _stop(int(pid_file.read_text()))
    stdout, stderr = out_path.read_text(), err_path.read_text()
    assert not timed_out, f"the commands did not finish in 90 s:\n{stdout}\n{stderr[-3000:]}"
    assert shell.returncode == 0, stdout + stderr
    assert "on jack: fluidsynth" in stdout and "sent 6 messages" in stdout, stdout
    assert "warning" not in stderr
