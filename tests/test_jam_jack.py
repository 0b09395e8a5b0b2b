"""`tuneforge jam` against a real JACK server (dummy driver): a phrase goes in through a port,
the answer comes out on another; Ctrl-C, a lost input and an unusable model."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import mido
import pytest
import rtmidi

from tests.jack_fixtures import MidiRecorder, jack_server, unmatched_note_ons
from tests.tiny_models import save_tiny
from tuneforge.errors import ConfigError
from tuneforge.generate import load_generator, read_provenance
from tuneforge.jam import MODEL_CHANNEL, check_model
from tuneforge.playback.connections import jack_connections

pytestmark = pytest.mark.jack

__all__ = ["jack_server"]  # the fixture is used by name
TEMPO_BPM = 240.0  # 0.25 s a beat keeps the test short
BEAT_S = 60.0 / TEMPO_BPM


@pytest.fixture
def sink(jack_server):
    recorder = MidiRecorder("sink")
    try:
        yield recorder
    finally:
        recorder.close()


@pytest.fixture
def phrase_port(jack_server):
    """A virtual output the test plays the call from (the jam connects to it with --in)."""
    feeder = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="feeder")
    feeder.open_virtual_port("phrase")
    try:
        yield feeder
    finally:
        _close(feeder)


def _close(client) -> None:
    """Close an rtmidi client now, while its server runs (never leave it to the collector,
    which may run after the server has gone)."""
    if not client.is_deleted:
        client.close_port()
        client.delete()


def _start_jam(tmp_path, *args):
    model = save_tiny(tmp_path / "models", "tiny", head_bias=-1.5)
    # -X faulthandler: a jam that hangs is stopped with SIGABRT and shows where it was.
    command = [sys.executable, "-X", "faulthandler", "-m", "tuneforge", "jam"]
    command += ["--model", str(model), "--port", "sink", "--api", "jack", "--tempo", str(TEMPO_BPM)]
    command += ["--save", str(tmp_path / "session.mid"), *args]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy()
    )


def _wait_connected(player, client, port, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while (jack_connections(client, port) or 0) < 1:
        assert player.poll() is None, player.communicate()
        assert time.monotonic() < deadline, "the jam never connected"
        time.sleep(0.05)
    time.sleep(0.1)


def _stop(player, timeout_s=60):
    """Ctrl-C the jam unless it has ended; one that does not end in time is aborted, and the
    failure shows every thread's stack (faulthandler)."""
    if player.poll() is None:
        player.send_signal(signal.SIGINT)
    try:
        return player.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        player.send_signal(signal.SIGABRT)
        stdout, stderr = player.communicate(timeout=30)
        pytest.fail(f"the jam did not end {timeout_s} s after Ctrl-C:\n{stdout}\n{stderr[-6000:]}")
    finally:
        if player.poll() is None:
            player.kill()
            player.communicate()


def _ended(player, timeout_s) -> bool:
    """Wait up to ``timeout_s`` for the jam to end on its own; True if it did."""
    try:
        player.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False
    return True


def _model_note_ons(messages):
    return [(t, d) for t, d in messages if d[0] == 0x90 | MODEL_CHANNEL and d[2] > 0]


def _all_notes_off_everywhere(messages) -> bool:
    return all([0xB0 | channel, 123, 0] in [d for _, d in messages] for channel in range(16))


PHRASE = (60, 62, 64, 65, 67, 65, 64, 62)  # two bars of one-beat notes


def test_the_answer_follows_the_pause_and_the_session_holds_call_and_answer(
    sink, phrase_port, tmp_path
):
    pause_beats = 1
    args = ("--in", "phrase", "--pause-beats", str(pause_beats), "--answer-bars", "1")
    player = _start_jam(tmp_path, *args)
    try:
        _wait_connected(player, "feeder", "phrase")
        _wait_connected(player, "recorder", "sink")  # its output reaches the recorder
        # The call, on the test's own schedule against the monotonic clock.
        start = time.monotonic() + 0.1
        for index, note in enumerate(PHRASE):
            for offset, data in ((0.0, [0x90, note, 90]), (0.9, [0x80, note, 0])):
                target = start + (index + offset) * BEAT_S
                time.sleep(max(0.0, target - time.monotonic()))
                sent_s = time.monotonic()
                phrase_port.send_message(data)
        last_off_sent_s = sent_s
        assert sink.wait_for(lambda m: len(_model_note_ons(m)) >= 1, timeout_s=30)
        time.sleep(1.5)  # the 1-bar answer (1 s) plays out
    finally:
        stdout, stderr = _stop(player)
    assert player.returncode == 130, stderr
    assert sink.wait_for(_all_notes_off_everywhere, timeout_s=5)
    messages = sink.snapshot()
    # Every note-on, the call's echo and the answer's, has its own note-off.
    assert unmatched_note_ons(messages, all_notes_off_ends=False) == []

    schedule = json.loads((tmp_path / "session.json").read_text())
    answer = schedule["answers"][0]
    step_s, steps_per_beat = schedule["step_s"], schedule["steps_per_beat"]
    pause_s = pause_beats * BEAT_S
    # The plan on the session's grid: the answer is due exactly one pause after the call's
    # last sounding step, and its first note was planned for that very boundary.
    assert answer["answer_start_step"] - answer["call_end_step"] == pause_beats * steps_per_beat
    assert answer["call_end_s"] == pytest.approx(answer["answer_start_step"] * step_s, abs=1e-6)
    assert answer["first_note_due_s"] == pytest.approx(answer["call_end_s"], abs=1e-9)
    assert answer["first_note_s"] >= answer["first_note_due_s"]  # never before its time
    # Within 100 ms of the expected time, one pause after the call's end as the jam heard it:
    # the grid rounds the end up to the next step (62.5 ms here), never further; a boundary
    # the jam reached late (a busy machine) may see the end one step early by that lateness.
    heard_s = answer["heard_end_s"]
    error_s = answer["first_note_due_s"] - (heard_s + pause_s)
    late_s = schedule["step_sent_late_s"][answer["call_end_step"]]
    assert -late_s - 1e-6 <= error_s <= step_s + 1e-6
    assert step_s < 0.1
    # The jam heard the end no earlier than the test sent it (one monotonic clock for both).
    assert last_off_sent_s <= schedule["clock_start_s"] + heard_s <= last_off_sent_s + 10
    # What arrived: the answer after the echo of the call's last note-off.
    echoed_offs = [t for t, d in messages if d[0] == 0x80 and d[1] == PHRASE[-1]]
    assert echoed_offs and _model_note_ons(messages)[0][0] > echoed_offs[-1]

    record = read_provenance(tmp_path / "session.mid")
    assert record["kind"] == "jam" and len(record["answers"]) >= 1
    # The saved roll, step by step: the call's notes before its end, the answer's after.
    track = mido.MidiFile(tmp_path / "session.mid")
    onsets, ticks = [], 0
    for message in mido.merge_tracks(track.tracks):
        ticks += message.time
        if message.type == "note_on" and message.velocity > 0:
            onsets.append((ticks / track.ticks_per_beat * steps_per_beat, message.note))
    start_step = answer["answer_start_step"]
    call = {note for step, note in onsets if step < answer["call_end_step"]}
    reply = [note for step, note in onsets if step >= start_step - 1e-6]
    assert call >= set(PHRASE) and reply, (call, reply)  # the call and the answer


def test_accompaniment_keeps_time_over_16_bars(sink, phrase_port, tmp_path):
    player = _start_jam(tmp_path, "--in", "phrase", "--mode", "accompany", "--bars", "16")
    try:
        _wait_connected(player, "feeder", "phrase")
        _wait_connected(player, "recorder", "sink")  # its output reaches the recorder
        phrase_port.send_message([0x90, 79, 90])  # a melody note held throughout
        stdout, stderr = player.communicate(timeout=120)  # 16 bars at 240 bpm: 16 s
    finally:
        _stop(player)
    assert player.returncode == 0, stderr
    schedule = json.loads((tmp_path / "session.json").read_text())
    steps, step_s = schedule["steps"], schedule["step_s"]
    assert steps == 16 * 4 * schedule["steps_per_beat"]
    due, late = schedule["step_due_s"], schedule["step_sent_late_s"]
    assert len(due) == len(late) == steps
    # The plan: every boundary on one grid from the start, so nothing drifts (under 10 ms
    # after 16 bars; relative sleeps would add each step's sampling time to the next).
    drift_s = max(abs(t - k * step_s) for k, t in enumerate(due))
    assert drift_s < 0.010
    # What was done: each boundary at or after its planned time, and the last bar as
    # punctual as a busy machine allows (a drifting clock would be seconds late by then).
    assert min(late) >= 0
    last_bar = sorted(late[-4 * schedule["steps_per_beat"] :])
    assert last_bar[len(last_bar) // 2] < 1.0
    assert sink.wait_for(_all_notes_off_everywhere, timeout_s=5), (stdout, sink.snapshot()[-40:])
    messages = sink.snapshot()
    ons = _model_note_ons(messages)
    assert ons and ons[-1][0] - ons[0][0] <= steps * step_s + 2.0, (stdout, len(messages))
    assert unmatched_note_ons(messages, all_notes_off_ends=False) == []


def test_an_input_that_disappears_ends_the_jam_with_the_session_saved(sink, jack_server, tmp_path):
    feeder = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="feeder")
    feeder.open_virtual_port("phrase")
    player = _start_jam(tmp_path, "--in", "phrase", "--mode", "accompany")
    try:
        _wait_connected(player, "feeder", "phrase")
        _wait_connected(player, "recorder", "sink")  # its output reaches the recorder
        feeder.send_message([0x90, 76, 90])
        # The echo and the model both sound before the port goes: closing it earlier could
        # drop the note still queued for the feeder's next JACK cycle on a busy machine.
        assert sink.wait_for(lambda m: any(d[:2] == [0x90, 76] for _, d in m), timeout_s=30)
        assert sink.wait_for(lambda m: len(_model_note_ons(m)) >= 1, timeout_s=30)
        _close(feeder)  # the port goes while the note is held and the model plays
        stdout, stderr = _stop(player, timeout_s=120) if _ended(player, 120) else _stop(player)
    finally:
        _close(feeder)
        _stop(player)
    assert player.returncode == 130, stderr
    assert "went away" in stdout and "saved the session" in stdout and "all notes off" in stdout
    assert "Traceback" not in stderr
    record = read_provenance(tmp_path / "session.mid")
    assert record["kind"] == "jam" and record["steps"] > 0
    assert sink.wait_for(_all_notes_off_everywhere, timeout_s=5)
    messages = sink.snapshot()
    assert unmatched_note_ons(messages, all_notes_off_ends=False) == []
    assert [0x80, 76, 0] in [d for _, d in messages]  # the held echo was ended too


def test_a_model_that_cannot_load_is_one_line_at_start(jack_server, tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a checkpoint")
    command = [sys.executable, "-m", "tuneforge", "jam", "--model", str(bad), "--api", "jack"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error:") and "\n" not in result.stderr.strip()
    assert "Traceback" not in result.stderr


def _diverged_model(folder):
    """A checkpoint that loads but whose weights are NaN (a training that diverged)."""
    import torch

    from tests.tiny_models import tiny_model
    from tuneforge.checkpoint import save_checkpoint

    model = tiny_model()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(math.nan)
    return save_checkpoint(folder / "diverged", model, meta={"steps_per_beat": 4})


@pytest.mark.parametrize("mode", ["call", "accompany"])
def test_a_model_that_cannot_answer_or_accompany_is_one_line_at_start(
    sink, phrase_port, tmp_path, mode
):
    model = _diverged_model(tmp_path)
    command = [sys.executable, "-m", "tuneforge", "jam", "--model", str(model), "--mode", mode]
    command += ["--in", "phrase", "--port", "sink", "--api", "jack"]
    command += ["--save", str(tmp_path / "session.mid")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    message = result.stderr.strip()
    assert message.startswith("error:") and "\n" not in message and "Traceback" not in message
    assert "cannot" in message and "--model" in message
    assert "jam: listening" not in result.stdout  # it never started
    assert not (tmp_path / "session.mid").exists()
    assert sink.snapshot() == []  # nothing was played


def _failing_sampler(*args, **kwargs):
    raise RuntimeError("this model draws no steps\nsecond line")


@pytest.mark.parametrize(("mode", "task"), [("call", "continue"), ("accompany", "accompany")])
def test_the_model_check_names_the_model_and_the_task(tmp_path, mode, task):
    generator = load_generator(str(save_tiny(tmp_path, "tiny")))
    check_model(generator, mode)  # a working model passes
    with pytest.raises(ConfigError) as caught:
        check_model(generator, mode, sample=_failing_sampler)
    message = str(caught.value)
    assert message.startswith(f"model tiny cannot {task}") and "draws no steps" in message
    assert "\n" not in message and "--model" in message
