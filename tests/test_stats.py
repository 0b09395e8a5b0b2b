"""tuneforge.music.stats on hand-built rolls whose figures are computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tuneforge.music.stats import (
    aggregate_stats,
    derive_onsets,
    piece_stats,
    relative_gap,
    relative_gaps,
    total_variation,
)


def roll_of(length_steps: int, notes: list[tuple[int, int, int]]) -> np.ndarray:
    """A roll from (MIDI pitch, start, end) notes, end exclusive."""
    roll = np.zeros((length_steps, 88), dtype=np.uint8)
    for pitch, start, end in notes:
        roll[start:end, pitch - 21] = 1
    return roll


# 8 steps at 2 steps per beat (one 4/4 bar): rests at 0-1, C4 held 2-3, C3 + E4 at 4,
# a rest at 5-6, C5 at 7 (off the beat).
EXAMPLE = roll_of(8, [(60, 2, 4), (48, 4, 5), (64, 4, 5), (72, 7, 8)])


def test_frame_figures_of_a_hand_built_roll():
    stats = piece_stats(EXAMPLE, steps_per_beat=2)
    assert stats.frames == 8 and stats.sounding_frames == 4
    assert stats.polyphony == pytest.approx(5 / 4)  # 2 + 2 + 1 notes over 4 sounding frames
    assert stats.notes_per_frame == pytest.approx(5 / 8)
    assert stats.silent_share == pytest.approx(4 / 8)
    assert stats.silent_share_after_first_note == pytest.approx(2 / 6)  # steps 5, 6 of 2..7
    assert stats.melody_presence == pytest.approx(4 / 8)  # steps 2, 3, 4 (E4), 7


def test_onset_figures_of_a_hand_built_roll():
    stats = piece_stats(EXAMPLE, steps_per_beat=2)
    assert stats.onsets == 4
    assert stats.onsets_per_beat == pytest.approx(4 / 4)  # 4 onsets in 4 beats
    assert stats.onset_position_shares == pytest.approx((3 / 4, 1 / 4))  # C5 on step 7: off
    assert stats.pitch_range == 72 - 48
    assert stats.mean_pitch == pytest.approx((60 + 48 + 64 + 72) / 4)
    assert stats.mean_note_beats == pytest.approx((2 + 1 + 1 + 1) / 4 / 2)
    histogram = np.zeros(12)
    histogram[0], histogram[4] = 3 / 4, 1 / 4  # C4, C3, C5 and E4
    assert stats.pitch_class_histogram == pytest.approx(tuple(histogram))
    assert stats.scale_consistency == 1.0


def test_given_onsets_split_a_held_pitch_into_notes():
    roll = roll_of(4, [(60, 0, 4)])
    onsets = np.zeros_like(roll)
    onsets[[0, 2], 60 - 21] = 1
    onsets[1, 70 - 21] = 1  # an onset on a silent frame is no note
    assert piece_stats(roll, steps_per_beat=1).mean_note_beats == 4.0
    split = piece_stats(roll, onsets, steps_per_beat=1)
    assert split.onsets == 2 and split.mean_note_beats == 2.0


def test_derived_onsets_start_where_the_previous_frame_is_silent():
    roll = roll_of(6, [(60, 0, 2), (60, 3, 6)])
    expected = np.zeros_like(roll)
    expected[[0, 3], 60 - 21] = 1
    np.testing.assert_array_equal(derive_onsets(roll), expected)


def test_scale_consistency_takes_the_best_of_the_twelve_major_scales():
    chromatic = roll_of(12, [(60 + i, i, i + 1) for i in range(12)])
    assert piece_stats(chromatic, steps_per_beat=1).scale_consistency == pytest.approx(7 / 12)
    # D major (D E F# G A B C#) plus one F: 7 of 8 onsets fit D major, fewer fit any other.
    d_major = [62, 64, 66, 67, 69, 71, 73, 65]
    roll = roll_of(8, [(p, i, i + 1) for i, p in enumerate(d_major)])
    assert piece_stats(roll, steps_per_beat=1).scale_consistency == pytest.approx(7 / 8)


def test_repeated_bars_count_full_bars_with_notes_only():
    a = [(60, 0, 2), (64, 2, 4)]
    b = [(62, 0, 4)]
    shifted = lambda notes, by: [(p, s + by, e + by) for p, s, e in notes]  # noqa: E731
    # 1 step per beat, 4/4: bars A B A, a silent bar, a silent bar, then half of A (not full).
    notes = a + shifted(b, 4) + shifted(a, 8) + [(60, 20, 22)]
    stats = piece_stats(roll_of(22, notes), steps_per_beat=1)
    assert stats.full_bars == 3 and stats.repeated_bars == 1
    assert stats.repeated_bar_share == pytest.approx(1 / 3)


def test_bars_follow_the_time_signatures():
    # 3/4 at 1 step per beat: bars of 3 steps; the same 3-step figure twice repeats.
    notes = [(60, 0, 1), (62, 1, 3), (60, 3, 4), (62, 4, 6)]
    stats = piece_stats(roll_of(6, notes), steps_per_beat=1, time_signatures=[(0, 3, 4)])
    assert (stats.full_bars, stats.repeated_bars) == (2, 1)
    assert piece_stats(roll_of(6, notes), steps_per_beat=1).full_bars == 1  # 4/4: one bar


def test_onset_positions_are_within_the_beat_not_the_bar():
    # 4 steps per beat: one onset on each 16th of the first beat and two on the beat later.
    notes = [(60, 0, 1), (62, 1, 2), (64, 2, 3), (65, 3, 4), (67, 4, 5), (69, 8, 9)]
    stats = piece_stats(roll_of(16, notes), steps_per_beat=4)
    assert stats.onset_position_shares == pytest.approx((3 / 6, 1 / 6, 1 / 6, 1 / 6))


def test_a_silent_piece_has_zero_figures_not_errors():
    stats = piece_stats(np.zeros((8, 88), np.uint8), steps_per_beat=4)
    assert stats.polyphony == 0.0 and stats.silent_share == 1.0
    assert stats.silent_share_after_first_note == 0.0 and stats.pitch_range == 0
    assert stats.lowest_pitch is None and stats.scale_consistency == 0.0


def test_aggregate_weights_by_frames_and_onsets_not_a_mean_of_means():
    one = piece_stats(roll_of(4, [(60, 0, 4)]), steps_per_beat=1)  # 1 note, 4 frames
    three = piece_stats(roll_of(12, [(70, 0, 12), (74, 0, 12), (77, 0, 12)]), steps_per_beat=1)
    total = aggregate_stats([one, three])
    assert total.pieces == 2 and total.frames == 16
    assert total.polyphony == pytest.approx((4 * 1 + 12 * 3) / 16)  # not (1 + 3) / 2
    assert total.mean_pitch == pytest.approx((60 + 70 + 74 + 77) / 4)  # onset-weighted
    assert total.onsets_per_beat == pytest.approx(4 / 16)
    assert (total.lowest_pitch, total.highest_pitch) == (60, 77)
    assert total.pitch_class_onsets[0] == 1 and total.pitch_class_onsets[10] == 1


def test_aggregate_refuses_mixed_resolutions_and_nothing():
    with pytest.raises(ValueError, match="steps_per_beat"):
        aggregate_stats(
            [piece_stats(EXAMPLE, steps_per_beat=2), piece_stats(EXAMPLE, steps_per_beat=4)]
        )
    with pytest.raises(ValueError, match="at least one"):
        aggregate_stats([])


def test_total_variation_and_relative_gaps():
    assert total_variation([1, 0, 0, 0], [1, 1, 0, 0]) == pytest.approx(0.5)
    assert total_variation([2, 0], [0, 5]) == pytest.approx(1.0)
    assert relative_gap(2.5, 2.0) == pytest.approx(0.25)
    assert math.isnan(relative_gap(1.0, 0.0))
    mine = piece_stats(roll_of(4, [(60, 0, 4), (64, 0, 4)]), steps_per_beat=1)
    reference = piece_stats(roll_of(4, [(60, 0, 4)]), steps_per_beat=1)
    gaps = relative_gaps(mine, reference)
    assert gaps["polyphony"] == pytest.approx(1.0)  # 2 against 1
    assert gaps["pitch_class_distance"] == pytest.approx(0.5)  # C + E against C
    assert gaps["onset_position_shares"] == [pytest.approx(0.0)]


def test_to_dict_holds_figures_and_counts():
    data = piece_stats(EXAMPLE, steps_per_beat=2).to_dict()
    assert data["figures"]["polyphony"] == pytest.approx(1.25)
    assert data["counts"]["onsets_by_position"] == [3, 1]
    assert data["counts"]["frames"] == 8


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="shape"):
        piece_stats(np.zeros((4, 12), np.uint8), steps_per_beat=1)
    with pytest.raises(ValueError, match="onsets"):
        piece_stats(EXAMPLE, np.zeros((3, 88), np.uint8), steps_per_beat=2)
