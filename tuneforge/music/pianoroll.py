"""Notes <-> piano roll, in pure numpy.

A piano roll is a ``(T, 88)`` ``uint8`` matrix of 0/1: ``roll[t, k] == 1`` when MIDI pitch
``LOWEST_PITCH + k`` sounds during step ``t``. A second matrix of the same shape, ``onsets``,
marks the steps where a note starts, so that a note repeated without a gap stays two notes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

LOWEST_PITCH = 21  # A0, the lowest key of a piano
NUM_PITCHES = 88  # A0..C8
HIGHEST_PITCH = LOWEST_PITCH + NUM_PITCHES - 1  # C8 = 108
DEFAULT_VELOCITY = 80  # what roll_to_notes gives a note, since a roll carries no velocity


@dataclass(frozen=True)
class Note:
    """One note on the step grid: ``start_step`` inclusive, ``end_step`` exclusive."""

    pitch: int  # MIDI note number
    start_step: int
    end_step: int
    velocity: int = DEFAULT_VELOCITY


def notes_to_roll(notes: Iterable[Note], length_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``notes`` into a roll of ``length_steps`` frames; returns ``(roll, onsets)``.

    Overlapping notes of one pitch merge in ``roll`` and keep one onset each. Parts of notes past
    ``length_steps`` are cut off; a note must lie in the piano range and last at least one step.

    Shape:
        roll, onsets: (length_steps, 88) uint8.
    """
    if length_steps < 0:
        raise ValueError(f"length_steps must be >= 0, got {length_steps}")
    roll = np.zeros((length_steps, NUM_PITCHES), dtype=np.uint8)
    onsets = np.zeros((length_steps, NUM_PITCHES), dtype=np.uint8)
    for note in notes:
        column = note.pitch - LOWEST_PITCH
        if not 0 <= column < NUM_PITCHES:
            raise ValueError(f"pitch {note.pitch} is outside the piano range 21..108")
        if note.start_step < 0 or note.end_step <= note.start_step:
            raise ValueError(f"note {note} must start at step >= 0 and last at least one step")
        if note.start_step >= length_steps:
            continue
        roll[note.start_step : note.end_step, column] = 1
        onsets[note.start_step, column] = 1
    return roll, onsets


def canonical_onsets(roll: np.ndarray, onsets: np.ndarray | None = None) -> np.ndarray:
    """Onsets as :func:`roll_to_notes` reads them: the first frame of every sounding run, plus
    any given onset that falls on a sounding frame.

    Shape:
        roll, onsets: (T, 88); returns (T, 88) uint8.
    """
    sounding = np.asarray(roll).astype(bool)
    starts = sounding.copy()
    starts[1:] &= ~sounding[:-1]  # a run starts where the previous frame was silent
    if onsets is not None:
        starts |= sounding & np.asarray(onsets).astype(bool)
    return starts.astype(np.uint8)


def roll_to_notes(
    roll: np.ndarray, onsets: np.ndarray | None = None, *, velocity: int = DEFAULT_VELOCITY
) -> list[Note]:
    """Read notes off a roll: consecutive sounding frames make one note, and a new note begins
    at each onset. With ``onsets=None`` every run of sounding frames is one note.

    Returns the notes sorted by start step, then pitch.

    Shape:
        roll, onsets: (T, 88).
    """
    roll = np.asarray(roll)
    if roll.ndim != 2 or roll.shape[1] != NUM_PITCHES:
        raise ValueError(f"a piano roll has shape (T, {NUM_PITCHES}), got {roll.shape}")
    if onsets is not None and np.shape(onsets) != roll.shape:
        raise ValueError(f"onsets shape {np.shape(onsets)} differs from roll shape {roll.shape}")
    starts = canonical_onsets(roll, onsets).astype(bool)
    sounding = roll.astype(bool)
    length_steps = roll.shape[0]
    notes: list[Note] = []
    # Work column by column: the start steps of a pitch are sorted, and each note ends at the
    # next start or the first silent frame after it, whichever comes first.
    for column in range(NUM_PITCHES):
        start_steps = np.flatnonzero(starts[:, column])
        if start_steps.size == 0:
            continue
        silent_steps = np.flatnonzero(~sounding[:, column])
        for index, start in enumerate(start_steps):
            next_start = start_steps[index + 1] if index + 1 < start_steps.size else length_steps
            silent_after = silent_steps[np.searchsorted(silent_steps, start) :]
            first_silent = silent_after[0] if silent_after.size else length_steps
            end = int(min(next_start, first_silent))
            notes.append(Note(LOWEST_PITCH + column, int(start), end, velocity))
    notes.sort(key=lambda note: (note.start_step, note.pitch))
    return notes
