"""Live MIDI through a real JACK server (dummy driver) and the real FluidSynth synthesizer.

Each test starts its own ``jackd`` under a unique name (see ``tests/jack_fixtures.py``) and
stops it at the end, so the tests can run side by side and leave nothing behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
import wave
from pathlib import Path

import mido
import numpy as np
import pytest
from typer.testing import CliRunner

from tests.jack_fixtures import MidiRecorder, jack_server, unmatched_note_ons
from tests.midi_factory import write_midi
from tests.tiny_models import save_tiny
from tuneforge.cli.app import app
from tuneforge.music.events import TimedMessage, read_events
from tuneforge.playback.live import open_output, play_events
from tuneforge.shipped import PRETRAINED_DIR_ENV

pytestmark = pytest.mark.jack
runner = CliRunner()
SOUNDFONTS = [
    Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
    Path("/usr/share/sounds/sf2/default-GM.sf2"),
]

__all__ = ["jack_server"]  # the fixture is used by name


def _is_note(data: list[int]) -> bool:
    return data[0] & 0xF0 in (0x80, 0x90)


@pytest.fixture
def recorder(jack_server):
    sink = MidiRecorder("sink")
    try:
        yield sink
    finally:
        sink.close()


def _play_recording_send_times(events, output) -> list[float]:
    """Play ``events`` to ``output``; return each message's send time minus its planned time,
    both on the monotonic clock (the planned time is the playback's start plus the event's)."""
    sent: list[float] = []
    start = time.monotonic()
    play_events(events, output, on_message=lambda event: sent.append(time.monotonic()))
    # play_events takes its own start a moment after ours: the first lateness absorbs that,
    # so lateness is measured against the earliest possible start instead.
    return [t - (start + e.time_s) for t, e in zip(sent, events, strict=True)]


def _arrival_spread_s(received, expected) -> float:
    """Median distance of the arrivals from the schedule, once their common latency (the
    median offset) is taken out: robust to the odd message a busy machine delays."""
    offsets = [
        arrival - event.time_s for (arrival, _), event in zip(received, expected, strict=True)
    ]
    common = float(np.median(offsets))
    return float(np.median([abs(o - common) for o in offsets]))


def test_loopback_every_note_ends_and_arrives_on_the_schedule(recorder, tmp_path):
    notes = [(60 + i % 7, i, i + 2) for i in range(0, 16)] + [(48, 0, 24)]
    midi = write_midi(tmp_path / "loop.mid", notes, tempo_changes=[(0, 240.0), (8, 160.0)])
    events = read_events(midi)
    output = open_output("sink", api="jack")
    try:
        play_events(events.events, output)
    finally:
        output.close()
    expected = [e for e in events.events if e.message.type in ("note_on", "note_off")]
    assert recorder.wait_for(lambda m: sum(_is_note(d) for _, d in m) >= len(expected))
    received = [(t, d) for t, d in recorder.snapshot() if _is_note(d)]
    assert len(received) == len(expected)
    assert unmatched_note_ons(recorder.snapshot(), all_notes_off_ends=False) == []
    assert [d[1] for _, d in received] == [e.message.note for e in expected]
    # Arrival times relative to each other follow the tempo map (0.25 s a beat, then 0.375 s):
    # JACK adds about a period of latency and a loaded machine delays a few messages, so the
    # median distance is checked, with room for two periods.
    assert _arrival_spread_s(received, expected) <= 0.015


def test_a_long_playback_keeps_to_its_schedule_without_drift(recorder):
    """300 messages 10 ms apart against the monotonic clock: a late message (a busy machine)
    delays no later one, so the last ones are as punctual as the first. Relative sleeps would
    add every oversleep to all that follow."""
    events = []
    for index in range(150):
        note = 40 + index % 40
        events.append(TimedMessage(0.02 * index, mido.Message("note_on", note=note, velocity=64)))
        events.append(TimedMessage(0.02 * index + 0.01, mido.Message("note_off", note=note)))
    output = open_output("sink", api="jack")
    try:
        lateness = _play_recording_send_times(events, output)
    finally:
        output.close()
    assert len(lateness) == len(events) and min(lateness) >= 0  # never early
    # The best of the last 50 sends: a drifting clock is late on all of them by then.
    assert min(lateness[-50:]) < 0.010
    assert recorder.wait_for(lambda m: sum(_is_note(d) for _, d in m) >= len(events), 10)
    received = [(t, d) for t, d in recorder.snapshot() if _is_note(d)]
    assert len(received) == len(events)
    assert unmatched_note_ons(recorder.snapshot(), all_notes_off_ends=False) == []
    assert _arrival_spread_s(received, events) <= 0.015


def _interrupt_after_notes(recorder, args, *, env=None, num_notes=3, timeout_s=90):
    """Run `tuneforge ARGS` in a subprocess, send SIGINT once ``num_notes`` note-ons reached
    the recorder, and return (exit status, stdout, stderr)."""
    command = [sys.executable, "-m", "tuneforge", *args]
    player = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        started = recorder.wait_for(
            lambda m: sum(d[0] & 0xF0 == 0x90 and d[2] > 0 for _, d in m) >= num_notes,
            timeout_s=timeout_s,
        )
        assert started, "playback never started"
        player.send_signal(signal.SIGINT)
        stdout, stderr = player.communicate(timeout=timeout_s)
    finally:
        if player.poll() is None:
            player.kill()
            player.communicate()
    return player.returncode, stdout, stderr


def test_ctrl_c_during_play_leaves_no_sounding_note(recorder, tmp_path):
    # Chords held for seconds: Ctrl-C lands while notes sound.
    notes = [(48, 0, 64), (60, 0, 32), (64, 8, 40), (67, 16, 64), (72, 32, 64)]
    midi = write_midi(tmp_path / "long.mid", notes)
    args = ["play", str(midi), "--port", "sink", "--api", "jack"]
    returncode, stdout, stderr = _interrupt_after_notes(recorder, args)
    assert returncode == 130, stderr
    assert "stopped" in stdout
    messages = recorder.snapshot()
    assert recorder.wait_for(lambda m: sum(d[0] & 0xF0 == 0xB0 for _, d in m) >= 32, 5)
    messages = recorder.snapshot()
    assert unmatched_note_ons(messages) == []
    assert not any(d[:2] == [0x90, 72] for _, d in messages)  # it did stop early
    for channel in range(16):
        assert [0xB0 | channel, 64, 0] in [d for _, d in messages]  # sustain off everywhere
        assert [0xB0 | channel, 123, 0] in [d for _, d in messages]


def test_fluidsynth_on_jack_records_the_piece(jack_server, tmp_path):
    if shutil.which("fluidsynth") is None:
        pytest.skip("needs the fluidsynth binary (apt-get install fluidsynth)")
    soundfont = next((s for s in SOUNDFONTS if s.is_file()), None)
    if soundfont is None:
        pytest.skip("needs a GM SoundFont (apt-get install fluid-soundfont-gm)")
    synth_name = f"tfsynth{uuid.uuid4().hex[:6]}"
    wav_path = tmp_path / "heard.wav"
    midi = write_midi(tmp_path / "piece.mid", [(60, 0, 4), (64, 4, 8), (67, 8, 12), (48, 0, 12)])
    duration_s = read_events(midi).duration_s  # 1.5 s
    # Never `-s`: server mode would listen on the network. Commands come from stdin instead.
    command = ["fluidsynth", "-m", "jack", "-o", f"midi.jack.id={synth_name}", "-a", "file"]
    command += ["-o", f"audio.file.name={wav_path}", "-g", "0.8", str(soundfont)]
    synth = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ports = subprocess.run(["jack_lsp"], capture_output=True, text=True).stdout
            if synth_name in ports:
                break
            time.sleep(0.1)
        else:
            pytest.fail("fluidsynth never showed its JACK MIDI port")
        result = runner.invoke(app, ["play", str(midi), "--port", synth_name, "--api", "jack"])
        assert result.exit_code == 0, result.output
        time.sleep(0.5)  # let the last release reach the file
    finally:
        # `quit` closes the WAV properly; a signal would leave its header unfinished.
        synth.communicate("quit\n", timeout=20)
    assert synth.returncode == 0
    with wave.open(str(wav_path), "rb") as wav:
        rate, channels = wav.getframerate(), wav.getnchannels()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    loud = np.flatnonzero(np.abs(samples.reshape(-1, channels).astype(np.int32)).max(axis=1) > 200)
    assert loud.size, "FluidSynth recorded silence"
    sounding_s = (loud[-1] - loud[0]) / rate
    # The piece lasts 1.5 s; the last notes ring on for a little while after their note-off.
    assert duration_s - 0.1 <= sounding_s <= duration_s + 1.5


def test_generate_plays_what_it_writes(recorder, tmp_path, monkeypatch):
    save_tiny(tmp_path / "models", "default", head_bias=-2.5)  # a few notes per step
    monkeypatch.setenv(PRETRAINED_DIR_ENV, str(tmp_path / "models"))
    out = tmp_path / "out"
    args = ["generate", "--steps", "24", "--tempo", "480", "--seed", "4", "--play"]
    result = runner.invoke(app, [*args, "--port", "sink", "--api", "jack", "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = read_events(next(out.glob("*.mid")))
    expected_ons = sorted(
        e.message.note
        for e in written.events
        if e.message.type == "note_on" and e.message.velocity > 0
    )
    assert expected_ons, "the tiny model wrote no notes; pick another seed"
    assert recorder.wait_for(
        lambda m: sum(d[0] & 0xF0 == 0x90 and d[2] > 0 for _, d in m) >= len(expected_ons)
    )
    heard = sorted(d[1] for _, d in recorder.snapshot() if d[0] & 0xF0 == 0x90 and d[2] > 0)
    assert heard == expected_ons
    assert unmatched_note_ons(recorder.snapshot()) == []


def test_ctrl_c_during_generate_play_leaves_no_sounding_note_and_keeps_the_piece(
    recorder, tmp_path
):
    save_tiny(tmp_path / "models", "default", head_bias=-2.5)  # a few notes per step
    out = tmp_path / "out"
    args = ["generate", "--steps", "400", "--seed", "4", "--play", "--port", "sink"]
    args += ["--api", "jack", "--out", str(out)]  # 400 steps last 50 s: SIGINT lands mid-piece
    env = {**os.environ, PRETRAINED_DIR_ENV: str(tmp_path / "models")}
    returncode, _, stderr = _interrupt_after_notes(recorder, args, env=env)
    assert returncode == 130, stderr
    assert recorder.wait_for(lambda m: sum(d[0] & 0xF0 == 0xB0 for _, d in m) >= 32, 5)
    assert unmatched_note_ons(recorder.snapshot()) == []
    written = list(out.glob("*.mid"))  # the whole piece is still sampled and written
    assert len(written) == 1 and read_events(written[0]).duration_s > 45


def test_a_dense_chord_and_the_panic_arrive_whole(recorder):
    """A JACK port takes only a few dozen events per period; bursts must be paced."""
    chord = range(30, 90)
    events = [TimedMessage(0.0, mido.Message("note_on", note=n, velocity=70)) for n in chord]
    output = open_output("sink", api="jack")
    try:
        play_events(events, output)  # the 60 notes still sound at the end: the panic ends them
    finally:
        output.close()
    assert recorder.wait_for(lambda m: len(m) >= 60 + 60 + 32, timeout_s=5)
    assert unmatched_note_ons(recorder.snapshot()) == []


def test_list_ports_shows_the_jack_ports(recorder):
    result = runner.invoke(app, ["play", "--list-ports", "--api", "jack"])
    assert result.exit_code == 0, result.output
    assert "jack" in result.output and "recorder:sink" in result.output


def test_a_virtual_port_plays_to_whoever_connects(jack_server):
    output = open_output(virtual="tfout", api="jack")
    listener = MidiRecorder("in", connect_to="tfout")
    try:
        listener.await_link(output)
        events = [
            TimedMessage(0.0, mido.Message("note_on", note=60, velocity=90)),
            TimedMessage(0.05, mido.Message("note_off", note=60)),
        ]
        play_events(events, output)
        assert listener.wait_for(lambda m: len(m) >= 2 + 32, timeout_s=5)
        assert [d for _, d in listener.snapshot()][:2] == [[0x90, 60, 90], [0x80, 60, 64]]
    finally:
        listener.close()
        output.close()
