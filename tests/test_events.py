"""MIDI file -> timed messages (tempo map, track merge) and frames -> timed messages."""

from __future__ import annotations

import mido
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tests.midi_factory import write_midi
from tuneforge.errors import MidiError
from tuneforge.music.events import frames_to_events, read_events
from tuneforge.music.midi import roll_to_midi


def _notes(events):
    """(time_s to 0.1 ms, kind, note), note-on velocity 0 counted as an off (MIDI stores
    tempo in whole microseconds, so 90 bpm is off by nanoseconds)."""
    out = []
    for event in events:
        message = event.message
        if message.type in ("note_on", "note_off"):
            on = message.type == "note_on" and message.velocity > 0
            out.append((round(event.time_s, 4), "on" if on else "off", message.note))
    return out


def test_times_follow_the_steps_at_120_bpm(tmp_path):
    path = write_midi(tmp_path / "a.mid", [(60, 0, 4), (64, 4, 8)])
    events = read_events(path)
    # 4 steps per beat at 120 bpm: a step lasts 0.125 s.
    assert _notes(events.events) == [
        (0.0, "on", 60),
        (0.5, "off", 60),
        (0.5, "on", 64),
        (1.0, "off", 64),
    ]
    assert events.duration_s == pytest.approx(1.0)


def test_a_tempo_change_applies_from_where_it_stands(tmp_path):
    path = write_midi(
        tmp_path / "t.mid",
        [(60, 0, 4), (62, 4, 8), (64, 8, 12)],
        tempo_changes=[(0, 120.0), (4, 60.0)],
    )
    times = [t for t, kind, _ in _notes(read_events(path).events) if kind == "on"]
    # The first beat at 120 bpm (0.5 s), every later beat at 60 bpm (1 s).
    assert times == pytest.approx([0.0, 0.5, 1.5])


def test_tracks_are_merged_in_time_order(tmp_path):
    path = write_midi(tmp_path / "m.mid", [(60, 0, 8)], extra_tracks=[[(48, 2, 4), (50, 4, 6)]])
    notes = _notes(read_events(path).events)
    assert [n[0] for n in notes] == sorted(n[0] for n in notes)
    assert (0.25, "on", 48) in notes and (0.5, "on", 50) in notes


def test_a_zero_length_note_stays_on_then_off(tmp_path):
    midi = mido.MidiFile(type=0, ticks_per_beat=480)
    track = mido.MidiTrack(
        [
            mido.Message("note_on", note=60, velocity=90, time=0),
            mido.Message("note_off", note=60, time=0),
            mido.MetaMessage("end_of_track", time=480),
        ]
    )
    midi.tracks.append(track)
    midi.save(tmp_path / "z.mid")
    assert [kind for _, kind, _ in _notes(read_events(tmp_path / "z.mid").events)] == ["on", "off"]
    assert read_events(tmp_path / "z.mid").duration_s == pytest.approx(0.5)


def test_controls_and_programs_are_kept_and_meta_events_dropped(tmp_path):
    midi = mido.MidiFile(type=0, ticks_per_beat=480)
    midi.tracks.append(
        mido.MidiTrack(
            [
                mido.MetaMessage("track_name", name="x", time=0),
                mido.Message("program_change", program=40, channel=2, time=0),
                mido.Message("control_change", control=64, value=127, channel=2, time=240),
            ]
        )
    )
    midi.save(tmp_path / "c.mid")
    kinds = [(e.time_s, e.message.type) for e in read_events(tmp_path / "c.mid").events]
    assert kinds == [(0.0, "program_change"), (0.25, "control_change")]


def test_missing_and_corrupt_files_are_midi_errors(tmp_path):
    with pytest.raises(MidiError, match="no MIDI file"):
        read_events(tmp_path / "absent.mid")
    (tmp_path / "bad.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    with pytest.raises(MidiError, match="Standard MIDI File"):
        read_events(tmp_path / "bad.mid")


def test_the_real_folder_reads_with_increasing_times():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "nottingham-midi"
    files = sorted(folder.glob("*.mid"))[:5]
    if not files:
        pytest.skip("../shared/data/nottingham-midi is absent")
    for path in files:
        events = read_events(path)
        times = [e.time_s for e in events.events]
        assert times == sorted(times) and events.duration_s >= times[-1] > 0


@settings(max_examples=40, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 24), st.just(88)), elements=st.integers(0, 1)))
def test_streamed_frames_play_the_same_notes_as_the_written_file(roll):
    """What `generate --play` sends equals what the MIDI file it writes contains."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = roll_to_midi(roll, Path(folder) / "r.mid", steps_per_beat=4, tempo_bpm=90.0)
        from_file = _notes(read_events(path).events)
    streamed = _notes(frames_to_events(iter(roll), steps_per_beat=4, tempo_bpm=90.0))
    key = lambda n: (n[0], n[1] == "on", n[2])  # noqa: E731 - order within one instant is free
    assert sorted(streamed, key=key) == sorted(from_file, key=key)


def test_frames_are_turned_into_messages_as_they_arrive():
    produced = []

    def frames():
        for step in range(100):
            produced.append(step)
            frame = np.zeros(88, np.uint8)
            frame[step % 88] = 1
            yield frame

    events = frames_to_events(frames(), steps_per_beat=4, tempo_bpm=120.0, program=None)
    first = next(events)
    assert first.message.type == "note_on" and first.time_s == 0.0
    assert len(produced) == 1  # only the first frame was needed
