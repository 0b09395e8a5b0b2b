"""The jam session's logic on a fake clock: when answers start, what is saved, the controls."""

from __future__ import annotations

import json

import mido
import pytest

from tests.jack_fixtures import unmatched_note_ons
from tests.tiny_models import save_tiny
from tuneforge.errors import ConfigError
from tuneforge.generate import load_generator, read_provenance
from tuneforge.jam import MODEL_CHANNEL, JamSession, JamSettings, keyboard_note


class _Recorder:
    api = "test"
    port_name = "recorder"

    def __init__(self, clock) -> None:
        self.clock = clock
        self.sent: list[tuple[float, list[int]]] = []

    def send(self, data) -> None:
        self.sent.append((self.clock(), list(data)))

    def close(self) -> None:
        pass


class _Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def generator(tmp_path, one_thread):
    path = save_tiny(tmp_path / "models", "tiny", head_bias=-1.5)
    return load_generator(str(path))


def _run_until(session, clock, end_s, feed=()):
    """Advance the fake clock in 1 ms ticks, feeding (time_s, message) at their times."""
    pending = sorted(feed, key=lambda item: item[0])
    while clock.now < end_s:
        while pending and pending[0][0] <= clock.now:
            session.player_message(pending.pop(0)[1])
        session.advance()
        clock.now = round(clock.now + 0.001, 6)


def _phrase(start_s, beat_s):
    """Four notes of one beat each: C E G C, from ``start_s``."""
    feed = []
    for index, note in enumerate((60, 64, 67, 72)):
        feed.append((start_s + index * beat_s, [0x90, note, 90]))
        feed.append((start_s + (index + 0.9) * beat_s, [0x80, note, 0]))
    return feed


def test_the_answer_starts_when_the_pause_is_over_and_everything_is_saved(generator, tmp_path):
    clock = _Clock()
    output = _Recorder(clock)
    settings = JamSettings(tempo_bpm=120, pause_beats=1, answer_bars=1, max_polyphony=3)
    session = JamSession(generator, output, settings, clock=clock)
    beat_s = 0.5
    start = clock.now + 0.26  # off the step grid on purpose
    feed = _phrase(start, beat_s)
    _run_until(session, clock, start + 10 * beat_s, feed)
    session.stop()
    assert len(session.report.answers) == 1
    answer = session.report.answers[0]
    last_off_s = feed[-1][0] - session.start_s
    step_s = session.step_s
    # Due one pause after the last note-off, rounded up to the step grid.
    assert last_off_s + 2 * step_s <= answer.call_end_s <= last_off_s + beat_s + 2 * step_s
    assert answer.first_note_s == pytest.approx(answer.call_end_s, abs=0.002)
    model_ons = [t for t, d in output.sent if d[0] == 0x90 | MODEL_CHANNEL and d[2] > 0]
    assert model_ons and min(model_ons) - session.start_s == pytest.approx(answer.call_end_s)
    assert unmatched_note_ons(output.sent) == []
    midi_path, json_path = session.save(tmp_path / "jam.mid")
    record = read_provenance(midi_path)
    assert record["kind"] == "jam" and record["answers"][0]["answer_steps"] == 16
    schedule = json.loads(json_path.read_text())
    assert schedule["answers"][0]["call_end_s"] == pytest.approx(answer.call_end_s)
    notes = [m for m in mido.MidiFile(midi_path).tracks[0] if m.type == "note_on"]
    ticks = 0
    starts = {}
    for message in mido.MidiFile(midi_path).tracks[0]:
        ticks += message.time
        if message.type == "note_on":
            starts.setdefault(message.note, []).append(ticks)
    assert {60, 64, 67, 72} <= set(starts)  # the call
    tpb = mido.MidiFile(midi_path).ticks_per_beat
    answer_tick = answer.answer_start_step * tpb // session.steps_per_beat
    assert any(t >= answer_tick for ts in starts.values() for t in ts)  # and the answer
    assert notes


def test_no_answer_while_the_player_keeps_playing(generator):
    clock = _Clock()
    session = JamSession(generator, _Recorder(clock), JamSettings(tempo_bpm=120), clock=clock)
    feed = [(clock.now + 0.3 * i, [0x90, 60 + i % 5, 80]) for i in range(12)]
    feed += [(clock.now + 0.3 * i + 0.25, [0x80, 60 + i % 5, 0]) for i in range(12)]
    _run_until(session, clock, clock.now + 3.5, feed)
    assert session.report.answers == []  # gaps of 50 ms are no pause of one beat


def test_accompaniment_keeps_the_grid_and_stays_under_the_melody(generator):
    clock = _Clock()
    output = _Recorder(clock)
    settings = JamSettings(mode="accompany", tempo_bpm=240, bars=2, max_polyphony=3)
    session = JamSession(generator, output, settings, clock=clock)
    feed = [(clock.now, [0x90, 84, 90])]
    _run_until(session, clock, clock.now + 3.0, feed)
    assert session.finished and session.step == 2 * 4 * 4
    ons = [d[1] for _, d in output.sent if d[0] == 0x90 | MODEL_CHANNEL and d[2] > 0]
    assert ons and max(ons) < 84  # the harmony lies under the held melody note
    assert max(session.report.step_late_s) < 0.0015  # each boundary within a tick


def test_tempo_changes_keep_the_boundaries_already_passed(generator):
    clock = _Clock()
    session = JamSession(generator, _Recorder(clock), JamSettings(tempo_bpm=120), clock=clock)
    _run_until(session, clock, clock.now + 1.0)
    step, at = session.step, session.step_time(session.step)
    assert session.control("tempo up") == "tempo 125 bpm"
    assert session.step_time(step) == at
    assert session.step_time(step + 4) == pytest.approx(at + 4 * 60 / (125 * 4))


def test_controls_and_keys():
    assert keyboard_note("a") == 60 and keyboard_note("k") == 72 and keyboard_note("w", 1) == 73
    assert keyboard_note("q") is None
    with pytest.raises(ConfigError, match="unknown jam mode"):
        JamSettings(mode="solo").check()
