"""notes <-> piano roll: hand-drawn rolls, repeated notes, and the round trip."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuneforge.music.pianoroll import (
    LOWEST_PITCH,
    NUM_PITCHES,
    Note,
    canonical_onsets,
    notes_to_roll,
    roll_to_notes,
)


def test_constants_cover_the_88_keys():
    assert (LOWEST_PITCH, NUM_PITCHES) == (21, 88)


def test_notes_to_roll_draws_sounding_frames_and_onsets():
    roll, onsets = notes_to_roll([Note(60, 1, 3), Note(21, 0, 1), Note(108, 2, 4)], 5)
    assert roll.shape == onsets.shape == (5, 88) and roll.dtype == np.uint8
    expected = np.zeros((5, 88), np.uint8)
    expected[1:3, 39] = 1
    expected[0, 0] = 1
    expected[2:4, 87] = 1
    np.testing.assert_array_equal(roll, expected)
    assert sorted(zip(*np.nonzero(onsets), strict=True)) == [(0, 0), (1, 39), (2, 87)]


def test_repeated_notes_stay_separate():
    roll, onsets = notes_to_roll([Note(60, 0, 2), Note(60, 2, 4)], 4)
    assert roll[:, 39].tolist() == [1, 1, 1, 1]
    assert onsets[:, 39].tolist() == [1, 0, 1, 0]
    assert roll_to_notes(roll, onsets) == [Note(60, 0, 2), Note(60, 2, 4)]
    # Without onsets a run of frames is one note.
    assert roll_to_notes(roll) == [Note(60, 0, 4)]


def test_overlapping_notes_merge_but_keep_both_onsets():
    roll, onsets = notes_to_roll([Note(64, 0, 6), Note(64, 2, 4)], 8)
    assert roll[:, 43].tolist() == [1, 1, 1, 1, 1, 1, 0, 0]
    assert onsets[:, 43].tolist() == [1, 0, 1, 0, 0, 0, 0, 0]
    assert roll_to_notes(roll, onsets) == [Note(64, 0, 2), Note(64, 2, 6)]


def test_notes_past_the_end_are_cut():
    roll, _ = notes_to_roll([Note(60, 2, 10), Note(62, 7, 9)], 4)
    assert roll[:, 39].tolist() == [0, 0, 1, 1] and roll[:, 41].sum() == 0


@pytest.mark.parametrize("note", [Note(20, 0, 1), Note(109, 0, 1), Note(60, 2, 2), Note(60, -1, 1)])
def test_bad_notes_are_refused(note):
    with pytest.raises(ValueError):
        notes_to_roll([note], 4)


def test_onsets_on_silent_frames_are_ignored():
    roll = np.zeros((3, 88), np.uint8)
    roll[1, 5] = 1
    onsets = np.ones((3, 88), np.uint8)
    assert canonical_onsets(roll, onsets).sum() == 1
    assert roll_to_notes(roll, onsets) == [Note(26, 1, 2)]


def test_roll_of_wrong_width_is_refused():
    with pytest.raises(ValueError, match="88"):
        roll_to_notes(np.zeros((4, 12), np.uint8))


rolls_and_onsets = st.integers(1, 24).flatmap(
    lambda length: st.tuples(
        st.lists(st.tuples(st.integers(0, 87), st.integers(0, length - 1)), max_size=60),
        st.lists(st.tuples(st.integers(0, 87), st.integers(0, length - 1)), max_size=30),
        st.just(length),
    )
)


@settings(max_examples=60, deadline=None)
@given(rolls_and_onsets)
def test_roll_to_notes_to_roll_is_the_identity(case):
    cells, onset_cells, length = case
    roll = np.zeros((length, 88), np.uint8)
    onsets = np.zeros((length, 88), np.uint8)
    for column, step in cells:
        roll[step, column] = 1
    for column, step in onset_cells:
        onsets[step, column] = 1
    again, again_onsets = notes_to_roll(roll_to_notes(roll, onsets), length)
    np.testing.assert_array_equal(again, roll)
    np.testing.assert_array_equal(again_onsets, canonical_onsets(roll, onsets))
