"""Statistics of pieces of music on the step grid, in pure numpy (no I/O, no torch).

A piece is a ``(T, 88)`` 0/1 roll, optional onsets of the same shape, ``steps_per_beat`` and its
time signatures. :func:`piece_stats` counts what the figures need; the figures are ratios of
those counts, so :func:`aggregate_stats` sums the counts of many pieces and every figure of the
aggregate weights each piece by what the figure counts (frames, onsets, bars), never a mean of
per-piece means. The figures are defined in docs/stats.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, fields

import numpy as np

from tuneforge.music.meter import step_in_bar
from tuneforge.music.pianoroll import LOWEST_PITCH, NUM_PITCHES, canonical_onsets

MIDDLE_C = 60  # C4; "melody presence" counts steps with a note at or above it
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)  # pitch classes of C major; its rotations are the modes

# Every transposition of the major scale as a (12, 12) 0/1 matrix: row r holds the scale on r.
_SCALES = np.zeros((12, 12), dtype=np.int64)
for _root in range(12):
    _SCALES[_root, [(_root + degree) % 12 for degree in MAJOR_SCALE]] = 1


@dataclass(frozen=True)
class PieceStats:
    """Counts over one piece or many; every figure is a property computed from them.

    The counts add up over pieces (see :func:`aggregate_stats`), except the pitch extremes,
    which take the min and max.
    """

    steps_per_beat: int
    pieces: int = 1
    frames: int = 0  # steps of the roll(s)
    sounding_frames: int = 0  # frames with at least one note
    frames_after_first_note: int = 0  # frames from the first sounding frame on
    silent_frames_after_first_note: int = 0
    notes_on: int = 0  # sum of the roll: notes sounding, summed over frames
    high_frames: int = 0  # frames with a note at or above C4 (MIDI 60)
    onsets: int = 0  # notes started (canonical onsets: see tuneforge.music.pianoroll)
    onset_pitch_sum: int = 0  # sum of the MIDI pitches of the onsets
    in_scale_onsets: int = 0  # onsets in each piece's best-fitting major-mode scale
    lowest_pitch: int | None = None  # MIDI pitch; None without a note
    highest_pitch: int | None = None
    full_bars: int = 0  # full bars with at least one note
    repeated_bars: int = 0  # of those, bars equal to an earlier bar of the same piece
    onsets_by_position: tuple[int, ...] = field(default=())  # per step of the beat
    pitch_class_onsets: tuple[int, ...] = field(default=(0,) * 12)  # C, C#, ..., B

    # -- figures ------------------------------------------------------------------------------

    @property
    def polyphony(self) -> float:
        """Notes per sounding frame (silent frames left out): frame-weighted."""
        return _ratio(self.notes_on, self.sounding_frames)

    @property
    def notes_per_frame(self) -> float:
        """Notes per frame, silent frames included: frame-weighted."""
        return _ratio(self.notes_on, self.frames)

    @property
    def silent_share(self) -> float:
        """Share of frames with no note: frame-weighted."""
        return _ratio(self.frames - self.sounding_frames, self.frames)

    @property
    def silent_share_after_first_note(self) -> float:
        """Share of silent frames from each piece's first note on (a leading rest left out)."""
        return _ratio(self.silent_frames_after_first_note, self.frames_after_first_note)

    @property
    def onsets_per_beat(self) -> float:
        """Notes started per beat (quarter note): frame-weighted."""
        return _ratio(self.onsets * self.steps_per_beat, self.frames)

    @property
    def onset_position_shares(self) -> tuple[float, ...]:
        """Share of onsets on each step of the beat (index 0: on the beat): onset-weighted."""
        return tuple(_ratio(count, self.onsets) for count in self.onsets_by_position)

    @property
    def melody_presence(self) -> float:
        """Share of frames with a note at or above C4 (MIDI 60): frame-weighted."""
        return _ratio(self.high_frames, self.frames)

    @property
    def mean_pitch(self) -> float:
        """Mean MIDI pitch of the onsets (each note once): onset-weighted."""
        return _ratio(self.onset_pitch_sum, self.onsets)

    @property
    def pitch_range(self) -> int:
        """Semitones from the lowest to the highest pitch sounding (0 without notes)."""
        if self.lowest_pitch is None or self.highest_pitch is None:
            return 0
        return self.highest_pitch - self.lowest_pitch

    @property
    def mean_note_beats(self) -> float:
        """Mean note length in beats: sounding note-frames per onset (each sounding frame of a
        pitch belongs to exactly one note), onset-weighted."""
        return _ratio(self.notes_on, self.onsets * self.steps_per_beat)

    @property
    def pitch_class_histogram(self) -> tuple[float, ...]:
        """Share of onsets per pitch class C, C#, ..., B: onset-weighted."""
        return tuple(_ratio(count, self.onsets) for count in self.pitch_class_onsets)

    @property
    def scale_consistency(self) -> float:
        """Share of onsets in the piece's best-fitting major-mode scale (the best of the 12
        transpositions, chosen per piece): onset-weighted."""
        return _ratio(self.in_scale_onsets, self.onsets)

    @property
    def repeated_bar_share(self) -> float:
        """Share of full bars with notes that repeat an earlier bar of the same piece exactly:
        bar-weighted."""
        return _ratio(self.repeated_bars, self.full_bars)

    def figures(self) -> dict[str, float | int | list[float]]:
        """Every figure by name, ready for JSON (lists for the per-position and pitch-class
        shares)."""
        return {
            "polyphony": self.polyphony,
            "notes_per_frame": self.notes_per_frame,
            "silent_share": self.silent_share,
            "silent_share_after_first_note": self.silent_share_after_first_note,
            "onsets_per_beat": self.onsets_per_beat,
            "onset_position_shares": list(self.onset_position_shares),
            "melody_presence": self.melody_presence,
            "pitch_range": self.pitch_range,
            "mean_pitch": self.mean_pitch,
            "mean_note_beats": self.mean_note_beats,
            "pitch_class_histogram": list(self.pitch_class_histogram),
            "scale_consistency": self.scale_consistency,
            "repeated_bar_share": self.repeated_bar_share,
        }

    def counts(self) -> dict[str, int | None | list[int]]:
        """Every count by name, ready for JSON."""
        return {
            f.name: list(getattr(self, f.name))
            if isinstance(getattr(self, f.name), tuple)
            else getattr(self, f.name)
            for f in fields(self)
        }

    def to_dict(self) -> dict:
        """``{"figures": ..., "counts": ...}``, ready for ``json.dumps``."""
        return {"figures": self.figures(), "counts": self.counts()}


# The counts that add up over pieces (the rest: steps_per_beat, pitch extremes, histograms).
_SUMMED_COUNTS = tuple(
    f.name
    for f in fields(PieceStats)
    if f.name not in ("steps_per_beat", "lowest_pitch", "highest_pitch")
    and f.name not in ("onsets_by_position", "pitch_class_onsets")
)


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / denominator if denominator else 0.0


def derive_onsets(roll: np.ndarray) -> np.ndarray:
    """Onsets of a roll without any: a sounding frame whose previous frame at that pitch is
    silent (the first frame counts as preceded by silence).

    Shape:
        roll: (T, 88); returns (T, 88) uint8.
    """
    return canonical_onsets(roll)


def _bar_bounds(length_steps: int, steps_per_beat: int, time_signatures) -> list[tuple[int, int]]:
    """``(start, end)`` of every full bar: from one bar start to the next. The last bar is full
    when the step after the piece would begin a new bar."""
    positions = step_in_bar(length_steps + 1, steps_per_beat, time_signatures)
    starts = np.flatnonzero(positions == 0)
    return [(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:], strict=True)]


def _repeated_bars(roll: np.ndarray, bounds: list[tuple[int, int]]) -> tuple[int, int]:
    """``(bars with notes, of those bars equal to an earlier one)``."""
    seen: set[bytes] = set()
    bars = repeated = 0
    for start, end in bounds:
        bar = roll[start:end]
        if not bar.any():  # a rest repeating a rest says nothing about the music
            continue
        bars += 1
        key = bar.tobytes()
        if key in seen:
            repeated += 1
        seen.add(key)
    return bars, repeated


def piece_stats(
    roll: np.ndarray,
    onsets: np.ndarray | None = None,
    *,
    steps_per_beat: int,
    time_signatures: Iterable[tuple[int, int, int]] = (),
) -> PieceStats:
    """Count what the figures of one piece need.

    Args:
        roll: 0/1 piano roll, column ``k`` is MIDI pitch ``21 + k``.
        onsets: 1 where a note starts; None derives them from the roll (:func:`derive_onsets`).
            Onsets on silent frames are ignored.
        steps_per_beat: steps per quarter note.
        time_signatures: ``(step, numerator, denominator)`` events; none means 4/4.

    Shape:
        roll, onsets: (T, 88).
    """
    roll = np.asarray(roll)
    if roll.ndim != 2 or roll.shape[1] != NUM_PITCHES:
        raise ValueError(f"a piano roll has shape (T, {NUM_PITCHES}), got {roll.shape}")
    if onsets is not None and np.shape(onsets) != roll.shape:
        raise ValueError(f"onsets shape {np.shape(onsets)} differs from roll shape {roll.shape}")
    if steps_per_beat < 1:
        raise ValueError(f"steps_per_beat must be >= 1, got {steps_per_beat}")
    roll = roll.astype(bool)
    starts = canonical_onsets(roll, onsets).astype(bool)  # (T, 88)
    length_steps = roll.shape[0]
    time_signatures = tuple(time_signatures)

    notes_per_frame = roll.sum(axis=1)  # (T,)
    sounding = notes_per_frame > 0
    first = int(np.argmax(sounding)) if sounding.any() else length_steps
    after = length_steps - first
    columns = np.flatnonzero(roll.any(axis=0))

    onset_steps, onset_columns = np.nonzero(starts)
    position = step_in_bar(length_steps, steps_per_beat, time_signatures) % steps_per_beat
    by_position = np.bincount(position[onset_steps], minlength=steps_per_beat)
    onset_pitches = onset_columns + LOWEST_PITCH
    pitch_classes = np.bincount(onset_pitches % 12, minlength=12)
    bounds = _bar_bounds(length_steps, steps_per_beat, time_signatures)
    bars, repeated = _repeated_bars(roll, bounds)

    return PieceStats(
        steps_per_beat=steps_per_beat,
        frames=length_steps,
        sounding_frames=int(sounding.sum()),
        frames_after_first_note=after,
        silent_frames_after_first_note=int(after - sounding[first:].sum()),
        notes_on=int(notes_per_frame.sum()),
        high_frames=int(roll[:, MIDDLE_C - LOWEST_PITCH :].any(axis=1).sum()),
        onsets=int(onset_steps.size),
        onset_pitch_sum=int(onset_pitches.sum()),
        in_scale_onsets=int((_SCALES @ pitch_classes).max()),
        lowest_pitch=int(columns[0]) + LOWEST_PITCH if columns.size else None,
        highest_pitch=int(columns[-1]) + LOWEST_PITCH if columns.size else None,
        full_bars=bars,
        repeated_bars=repeated,
        onsets_by_position=tuple(int(c) for c in by_position),
        pitch_class_onsets=tuple(int(c) for c in pitch_classes),
    )


def aggregate_stats(stats: Iterable[PieceStats]) -> PieceStats:
    """The stats of many pieces as one: counts summed (pitch extremes: min and max), so each
    figure is weighted by what it counts (frames, onsets or bars), not a mean of means.

    Raises:
        ValueError: no stats, or stats of different ``steps_per_beat``.
    """
    stats = list(stats)
    if not stats:
        raise ValueError("aggregate_stats needs the stats of at least one piece")
    steps_per_beat = stats[0].steps_per_beat
    if any(s.steps_per_beat != steps_per_beat for s in stats):
        raise ValueError("cannot aggregate stats of different steps_per_beat")
    summed = {name: sum(getattr(s, name) for s in stats) for name in _SUMMED_COUNTS}
    lows = [s.lowest_pitch for s in stats if s.lowest_pitch is not None]
    highs = [s.highest_pitch for s in stats if s.highest_pitch is not None]
    return PieceStats(
        steps_per_beat=steps_per_beat,
        **summed,
        lowest_pitch=min(lows) if lows else None,
        highest_pitch=max(highs) if highs else None,
        onsets_by_position=tuple(
            int(c) for c in np.sum([s.onsets_by_position for s in stats], axis=0)
        ),
        pitch_class_onsets=tuple(
            int(c) for c in np.sum([s.pitch_class_onsets for s in stats], axis=0)
        ),
    )


def total_variation(histogram: Iterable[float], reference: Iterable[float]) -> float:
    """Total-variation distance of two histograms: half the sum of absolute differences,
    0 (equal) to 1 (disjoint). Both are normalised first; an empty one counts as uniform."""
    p = _normalised(histogram)
    q = _normalised(reference)
    if p.shape != q.shape:
        raise ValueError(f"histograms of different sizes: {p.size} and {q.size}")
    return float(0.5 * np.abs(p - q).sum())


def _normalised(histogram: Iterable[float]) -> np.ndarray:
    values = np.asarray(list(histogram), dtype=np.float64)
    total = values.sum()
    return values / total if total > 0 else np.full(values.shape, 1.0 / max(values.size, 1))


def relative_gap(value: float, reference: float) -> float:
    """``(value - reference) / |reference|``; NaN when the reference is 0."""
    return (value - reference) / abs(reference) if reference else math.nan


def relative_gaps(stats: PieceStats, reference: PieceStats) -> dict[str, float | list[float]]:
    """The relative gap of every figure of ``stats`` to ``reference`` (see
    :func:`relative_gap`; element by element for the per-position shares), and for the
    pitch-class histogram its total-variation distance instead, as
    ``pitch_class_distance``."""
    mine, theirs = stats.figures(), reference.figures()
    gaps: dict[str, float | list[float]] = {}
    for name, value in mine.items():
        if name == "pitch_class_histogram":
            gaps["pitch_class_distance"] = total_variation(value, theirs[name])
        elif isinstance(value, list):
            gaps[name] = [relative_gap(a, b) for a, b in zip(value, theirs[name], strict=True)]
        else:
            gaps[name] = relative_gap(value, theirs[name])
    return gaps
