"""MIDI -> roll against hand-computed rolls, every rejection reason, and roll -> MIDI -> roll."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mido
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.midi_factory import write_midi
from tuneforge.errors import ConfigError, MidiError
from tuneforge.music.midi import MidiRejected, midi_to_roll, read_midi, roll_to_midi
from tuneforge.music.pianoroll import Note, canonical_onsets, notes_to_roll


def expected_roll(length, notes):
    """The roll drawn by hand: notes are (pitch, start, end)."""
    roll = np.zeros((length, 88), np.uint8)
    onsets = np.zeros((length, 88), np.uint8)
    for pitch, start, end in notes:
        roll[start:end, pitch - 21] = 1
        onsets[start, pitch - 21] = 1
    return roll, onsets


def assert_roll(piece, length, notes):
    roll, onsets = expected_roll(length, notes)
    np.testing.assert_array_equal(piece.roll, roll)
    np.testing.assert_array_equal(piece.onsets, onsets)


def test_tempo_change_mid_file_keeps_steps_on_the_beat(tmp_path):
    path = write_midi(
        tmp_path / "tempo.mid",
        [(60, 0, 4), (62, 4, 8), (64, 8, 12)],
        tempo_changes=[(0, 120.0), (4, 60.0)],
    )
    piece = read_midi(path)
    assert_roll(piece, 12, [(60, 0, 4), (62, 4, 8), (64, 8, 12)])
    assert piece.tempo_changes == ((0, 120.0), (4, 60.0))
    # One beat (4 steps) at 120 bpm, then two beats at 60 bpm.
    assert piece.duration_s == pytest.approx(0.5 + 2.0)


def test_three_four_time_is_kept_as_metadata(tmp_path):
    path = write_midi(
        tmp_path / "waltz.mid",
        [(67, 0, 2), (71, 2, 4), (74, 4, 6), (79, 6, 12)],
        time_signatures=[(0, 3, 4)],
        steps_per_beat=2,
    )
    piece = read_midi(path, steps_per_beat=2)
    assert piece.time_signatures == ((0, 3, 4),)
    assert_roll(piece, 12, [(67, 0, 2), (71, 2, 4), (74, 4, 6), (79, 6, 12)])


def test_two_tracks_are_merged(tmp_path):
    path = write_midi(tmp_path / "two.mid", [(72, 0, 4)], extra_tracks=[[(48, 2, 6), (52, 2, 3)]])
    piece = read_midi(path)
    assert piece.midi_format == 1
    assert_roll(piece, 6, [(72, 0, 4), (48, 2, 6), (52, 2, 3)])


def test_overlapping_notes_of_one_pitch_each_keep_their_onset(tmp_path):
    # note-on 60 at 0, note-on 60 at 2, note-off at 4 and 6: the first off ends the oldest note.
    path = write_midi(tmp_path / "overlap.mid", [(60, 0, 4), (60, 2, 6)])
    piece = read_midi(path)
    assert piece.roll[:, 39].tolist() == [1, 1, 1, 1, 1, 1]
    assert piece.onsets[:, 39].tolist() == [1, 0, 1, 0, 0, 0]
    assert piece.num_notes == 2


def test_repeated_notes_and_velocity_zero_note_offs(tmp_path):
    notes = [(60, 0, 2), (60, 2, 4), (60, 4, 5)]
    for zero_velocity_off in (False, True):
        path = write_midi(
            tmp_path / f"rep{zero_velocity_off}.mid", notes, zero_velocity_off=zero_velocity_off
        )
        assert_roll(read_midi(path), 5, notes)


def test_quantization_to_the_beat(tmp_path):
    # 480 ticks per quarter: at 1 step per beat a note of 2 quarters spans 2 steps, and a note
    # shorter than half a step still sounds for one step.
    path = write_midi(tmp_path / "q.mid", [(60, 0, 8), (62, 8, 9)], steps_per_beat=4)
    assert_roll(read_midi(path, steps_per_beat=1), 3, [(60, 0, 2), (62, 2, 3)])
    roll, onsets = midi_to_roll(path, steps_per_beat=8)
    assert roll.shape == (18, 88) and onsets.sum() == 2


def test_note_never_released_ends_with_its_track(tmp_path):
    track = mido.MidiTrack(
        [
            mido.Message("note_on", note=60, velocity=90, time=0),
            mido.Message("note_on", note=64, velocity=90, time=0),
            mido.Message("note_off", note=64, time=960),
            mido.MetaMessage("end_of_track", time=960),
        ]
    )
    midi = mido.MidiFile(type=0, ticks_per_beat=480)
    midi.tracks.append(track)
    midi.save(tmp_path / "hang.mid")
    piece = read_midi(tmp_path / "hang.mid")
    assert_roll(piece, 16, [(60, 0, 16), (64, 0, 8)])


def test_a_riff_wrapped_file_is_read(tmp_path):
    smf = write_midi(tmp_path / "plain.mid", [(60, 0, 4), (62, 4, 6)]).read_bytes()
    padded = smf + b"\x00" * (len(smf) & 1)
    body = b"RMID" + b"data" + len(smf).to_bytes(4, "little") + padded
    (tmp_path / "riff.mid").write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body)
    assert_roll(read_midi(tmp_path / "riff.mid"), 6, [(60, 0, 4), (62, 4, 6)])


def test_format_2_tracks_play_one_after_another(tmp_path):
    path = write_midi(tmp_path / "f2.mid", [(60, 0, 4)], extra_tracks=[[(62, 0, 4)]], midi_format=2)
    piece = read_midi(path)
    assert piece.midi_format == 2
    assert_roll(piece, 8, [(60, 0, 4), (62, 4, 8)])


def test_percussion_is_left_out_unless_kept(tmp_path):
    path = write_midi(tmp_path / "drums.mid", [(60, 0, 4), (36, 0, 1, 9), (38, 2, 3, 9)])
    piece = read_midi(path)
    assert piece.dropped_percussion == 2
    assert_roll(piece, 4, [(60, 0, 4)])
    kept = read_midi(path, keep_percussion=True)
    assert_roll(kept, 4, [(60, 0, 4), (36, 0, 1), (38, 2, 3)])


def test_out_of_range_notes_are_counted_and_dropped_or_folded(tmp_path):
    path = write_midi(tmp_path / "range.mid", [(60, 0, 2), (12, 0, 2), (120, 2, 4)])
    piece = read_midi(path)
    assert piece.dropped_out_of_range == 2 and piece.num_notes == 1
    assert_roll(piece, 4, [(60, 0, 2)])
    folded = read_midi(path, fold_octaves=True)
    assert folded.folded_notes == 2
    assert_roll(folded, 4, [(60, 0, 2), (24, 0, 2), (108, 2, 4)])


def _reject(path, **options) -> MidiRejected:
    with pytest.raises(MidiRejected) as caught:
        read_midi(path, **options)
    assert isinstance(caught.value, MidiError) and "\n" not in str(caught.value)
    return caught.value


def test_rejections_name_their_reason(tmp_path):
    good = write_midi(tmp_path / "good.mid", [(60, 0, 4), (64, 4, 8)]).read_bytes()
    cases = {
        "empty.mid": (b"", "failed", "not MIDI"),
        "text.mid": (b"this is a text file, not music\n", "failed", "not MIDI"),
        "truncated.mid": (good[: len(good) - 9], "failed", "truncated"),
        "header.mid": (good[:14], "failed", "truncated"),
        "zero.mid": (good[:12] + b"\x00\x00" + good[14:], "failed", "zero division"),
        "smpte.mid": (good[:12] + bytes([0xE7, 40]) + good[14:], "failed", "SMPTE division"),
    }
    for name, (data, outcome, reason) in cases.items():
        (tmp_path / name).write_bytes(data)
        error = _reject(tmp_path / name)
        assert (error.outcome, error.reason) == (outcome, reason), name
    assert _reject(tmp_path / "missing.mid").reason == "unreadable"


def test_files_with_nothing_usable_are_skipped(tmp_path):
    assert _reject(write_midi(tmp_path / "none.mid", [])).reason == "empty"
    drums = write_midi(tmp_path / "drums.mid", [(36, 0, 1, 9), (38, 1, 2, 9)])
    assert _reject(drums).reason == "percussion only"
    high = write_midi(tmp_path / "high.mid", [(120, 0, 4)])
    assert _reject(high).reason == "out of range"
    short = write_midi(tmp_path / "short.mid", [(60, 0, 1)])
    assert _reject(short).reason == "too short"


def test_an_absurdly_long_note_is_skipped_without_allocating(tmp_path):
    # One note lasting 50 million ticks would be a roll of ~400,000 steps.
    path = write_midi(tmp_path / "long.mid", [(60, 0, 400_000)])
    error = _reject(path)
    assert (error.outcome, error.reason) == ("skipped", "too long")
    assert _reject(write_midi(tmp_path / "s.mid", [(60, 0, 64)]), max_steps=32).reason == "too long"


def test_silence_after_a_huge_final_delta_is_trimmed(tmp_path):
    track = mido.MidiTrack(
        [
            mido.Message("note_on", note=60, velocity=90, time=0),
            mido.Message("note_off", note=60, time=480),
            mido.MetaMessage("end_of_track", time=100_000_000),
        ]
    )
    midi = mido.MidiFile(type=0, ticks_per_beat=480)
    midi.tracks.append(track)
    midi.save(tmp_path / "tail.mid")
    assert read_midi(tmp_path / "tail.mid").length_steps == 4


def test_bad_settings_are_config_errors(tmp_path):
    path = write_midi(tmp_path / "a.mid", [(60, 0, 4)])
    with pytest.raises(ConfigError):
        read_midi(path, steps_per_beat=0)
    roll, _ = notes_to_roll([Note(60, 0, 4)], 4)
    with pytest.raises(ConfigError):
        roll_to_midi(roll, tmp_path / "b.mid", velocity=0)
    with pytest.raises(ConfigError):
        roll_to_midi(roll, tmp_path / "b.mid", tempo_bpm=0)


def test_roll_to_midi_sets_tempo_program_velocity_text_and_is_deterministic(tmp_path):
    roll, onsets = notes_to_roll([Note(60, 0, 2), Note(60, 2, 4), Note(67, 1, 4)], 6)
    options = dict(onsets=onsets, tempo_bpm=90.0, velocity=100, program=40, text_meta="seed=1 é ☃")
    first = roll_to_midi(roll, tmp_path / "a.mid", **options)
    second = roll_to_midi(roll, tmp_path / "b.mid", **options)
    assert first.read_bytes() == second.read_bytes()
    midi = mido.MidiFile(first)
    messages = list(midi.tracks[0])
    assert messages[0].type == "text" and messages[0].text == "seed=1 é ?"
    assert any(m.type == "set_tempo" and round(mido.tempo2bpm(m.tempo)) == 90 for m in messages)
    assert any(m.type == "program_change" and m.program == 40 for m in messages)
    assert {m.velocity for m in messages if m.type == "note_on"} == {100}
    piece = read_midi(first)
    np.testing.assert_array_equal(piece.roll, roll)
    np.testing.assert_array_equal(piece.onsets, onsets)
    assert piece.tempo_changes[0][1] == pytest.approx(90.0, abs=0.01)


random_pieces = st.tuples(
    st.integers(2, 40),
    st.lists(
        st.tuples(st.integers(21, 108), st.integers(0, 39), st.integers(1, 12)),
        min_size=1,
        max_size=40,
    ),
    st.sampled_from([1, 2, 3, 4, 12]),
)


@settings(max_examples=40, deadline=None)
@given(random_pieces)
def test_roll_to_midi_to_roll_is_the_identity(case):
    length, raw_notes, steps_per_beat = case
    notes = [Note(p, s % length, s % length + d) for p, s, d in raw_notes]
    roll, onsets = notes_to_roll(notes, length)
    with tempfile.TemporaryDirectory() as folder:
        path = roll_to_midi(
            roll, Path(folder) / "x.mid", onsets=onsets, steps_per_beat=steps_per_beat
        )
        piece = read_midi(path, steps_per_beat=steps_per_beat)
    np.testing.assert_array_equal(piece.roll, roll)
    np.testing.assert_array_equal(piece.onsets, canonical_onsets(roll, onsets))
