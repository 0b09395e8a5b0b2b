"""Time signatures -> the position of every step in its bar, in pure numpy.

A step is ``1 / steps_per_beat`` of a quarter note (as everywhere in tuneforge). A bar of
``n/d`` lasts ``n * 4 / d`` quarter notes, so 4/4 is ``4 * steps_per_beat`` steps, 3/4 is three
quarters and 6/8 is three quarters too (six eighths). A time signature starts a new bar at its
step; before the first one (and in the benchmark sets, which carry none) the meter is 4/4.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

DEFAULT_TIME_SIGNATURE = (4, 4)  # what the MIDI spec assumes, and what rolls without meter get


def bar_steps_of(numerator: int, denominator: int, steps_per_beat: int) -> int:
    """Steps in one bar of ``numerator/denominator`` (at least 1)."""
    if numerator < 1 or denominator < 1:
        return 4 * steps_per_beat
    return max(1, round(numerator * 4 * steps_per_beat / denominator))


def step_in_bar(
    length_steps: int,
    steps_per_beat: int,
    time_signatures: Iterable[tuple[int, int, int]] = (),
) -> np.ndarray:
    """The position of each of ``length_steps`` steps within its bar (0 on a downbeat).

    Args:
        time_signatures: ``(step, numerator, denominator)`` events, as
            :class:`~tuneforge.music.midi.Piece` holds them; later events win at one step.

    Shape:
        returns (length_steps,) int32.
    """
    changes = {0: DEFAULT_TIME_SIGNATURE}
    for step, numerator, denominator in sorted(time_signatures):
        if 0 <= step < max(length_steps, 1):
            changes[int(step)] = (int(numerator), int(denominator))
    positions = np.zeros(max(length_steps, 0), dtype=np.int32)
    starts = sorted(changes)
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else length_steps
        bar = bar_steps_of(*changes[start], steps_per_beat)
        positions[start:end] = np.arange(end - start, dtype=np.int32) % bar
    return positions


def bar_starts(positions: np.ndarray) -> np.ndarray:
    """Indices of the steps that begin a bar (where :func:`step_in_bar` is 0)."""
    return np.flatnonzero(np.asarray(positions) == 0)
