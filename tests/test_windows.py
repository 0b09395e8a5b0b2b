"""Windows for truncated BPTT: pairs, padding masks, piece order; transposition."""

from __future__ import annotations

import numpy as np
import pytest

from tuneforge.data.windows import make_windows, random_transpositions, transpose
from tuneforge.errors import ConfigError


def numbered_roll(length: int, offset: int = 0) -> np.ndarray:
    """A roll whose frame t sounds pitch column (t + offset) % 88, so frames are traceable."""
    roll = np.zeros((length, 88), np.uint8)
    roll[np.arange(length), (np.arange(length) + offset) % 88] = 1
    return roll


def test_windows_pair_frame_t_with_frame_t_plus_1_and_pad_the_end():
    rolls = [numbered_roll(11), numbered_roll(1), numbered_roll(4, offset=50)]
    windows = make_windows(rolls, window_steps=4)
    # Piece 0: 10 pairs -> windows at 0, 4, 8 (the last holds 2); piece 1 has no pair.
    assert windows.piece.tolist() == [0, 0, 0, 2]
    assert windows.start_step.tolist() == [0, 4, 8, 0]
    assert windows.inputs.shape == windows.targets.shape == (4, 4, 88)
    assert windows.inputs.dtype == windows.targets.dtype == np.float32
    assert windows.mask.tolist() == [
        [True] * 4,
        [True] * 4,
        [True, True, False, False],
        [True, True, True, False],
    ]
    assert len(windows) == 4 and windows.window_steps == 4 and windows.num_frames == 10 + 3
    for row in range(4):
        piece, start = windows.piece[row], windows.start_step[row]
        for column in np.flatnonzero(windows.mask[row]):
            step = start + column
            np.testing.assert_array_equal(windows.inputs[row, column], rolls[piece][step])
            np.testing.assert_array_equal(windows.targets[row, column], rolls[piece][step + 1])
    assert not windows.inputs[~windows.mask].any() and not windows.targets[~windows.mask].any()


def test_default_window_is_200_steps():
    windows = make_windows([numbered_roll(450)])
    assert windows.window_steps == 200 and windows.start_step.tolist() == [0, 200, 400]
    assert windows.num_frames == 449


def test_bad_arguments():
    with pytest.raises(ConfigError):
        make_windows([numbered_roll(5)], window_steps=0)
    with pytest.raises(ConfigError):
        make_windows([np.zeros((5, 12), np.uint8)])
    with pytest.raises(ConfigError):
        random_transpositions(3, -1, np.random.default_rng(0))
    empty = make_windows([numbered_roll(1)], window_steps=8)
    assert len(empty) == 0 and empty.inputs.shape == (0, 8, 88)


def test_transpose_shifts_pitches_and_drops_what_falls_out():
    roll = np.zeros((2, 88), np.uint8)
    roll[0, [0, 40, 87]] = 1
    up = transpose(roll, 2)
    assert np.flatnonzero(up[0]).tolist() == [2, 42] and up[1].sum() == 0
    down = transpose(roll, -1)
    assert np.flatnonzero(down[0]).tolist() == [39, 86]
    np.testing.assert_array_equal(transpose(roll, 0), roll)
    assert transpose(roll, 88).sum() == 0 and transpose(roll, -100).sum() == 0
    batch = np.stack([roll, roll]).astype(np.float32)  # (N, T, 88)
    assert transpose(batch, 3).shape == batch.shape and transpose(batch, 3).dtype == np.float32


def test_random_transpositions_are_seeded_and_bounded():
    first = random_transpositions(1000, 5, np.random.default_rng(7))
    again = random_transpositions(1000, 5, np.random.default_rng(7))
    np.testing.assert_array_equal(first, again)
    assert first.min() == -5 and first.max() == 5 and first.dtype == np.int64
    assert random_transpositions(10, 0, np.random.default_rng(0)).tolist() == [0] * 10
