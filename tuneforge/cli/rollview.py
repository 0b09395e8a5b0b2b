"""Piano rolls drawn in the terminal (rich) and as PNG images (matplotlib, Agg backend).

Pitch runs upward, time to the right; bar lines follow every time signature of the piece. In the
terminal the left axis names every pitch, and when the roll is wider than the terminal several
steps share a column (a column is lit when any of its steps sounds). In a PNG each note is a box
with a dark mark at its onset, so a note struck again without a gap shows as two, and every C is
named. A per-frame log-likelihood can be shown as a strip underneath. The drawing decisions
(bar positions, octave labels, onset marks) are plain functions, tested without pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

from tuneforge.files import replacing
from tuneforge.music.meter import bar_starts, step_in_bar
from tuneforge.music.pianoroll import (
    HIGHEST_PITCH,
    LOWEST_PITCH,
    canonical_onsets,
    roll_to_notes,
)

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
STRIP_LEVELS = " ▁▂▃▄▅▆▇█"
LABEL_WIDTH = 5  # "C#-1" plus a space
PADDING_PITCHES = 2  # rows shown above and below the sounding range
MIN_LINE_GAP_COLUMNS = 4  # bar lines closer than this would hide the notes


def pitch_name(pitch: int) -> str:
    """Scientific pitch name of a MIDI pitch: 60 -> "C4", 21 -> "A0"."""
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def _pitch_window(
    roll: np.ndarray, lowest_pitch: int, padding: int = PADDING_PITCHES
) -> tuple[int, int]:
    """(low, high) MIDI pitches to draw: the sounding range with ``padding`` pitches around."""
    num_pitches = roll.shape[1]
    used = np.flatnonzero(roll.any(axis=0))
    if used.size == 0:
        low, high = 60 - lowest_pitch - 6, 60 - lowest_pitch + 6  # an empty roll shows C4 +- 6
    else:
        low, high = int(used[0]) - padding, int(used[-1]) + padding
    low, high = max(0, low), min(num_pitches - 1, high)
    return lowest_pitch + low, lowest_pitch + high


def bar_line_columns(
    bar_steps: Sequence[int], steps_per_column: int, num_columns: int
) -> np.ndarray:
    """Which of ``num_columns`` terminal columns show a bar line, for bars beginning at
    ``bar_steps`` (0 first): every bar's when they fit, else every k-th bar's, so that lines
    stay at least ``MIN_LINE_GAP_COLUMNS`` apart. Shape: returns (num_columns,) bool."""
    bars = np.asarray(bar_steps, dtype=np.int64)
    shown = np.zeros(num_columns, dtype=bool)
    if bars.size < 2:
        return shown
    shortest = int(np.diff(bars).min())
    bars_per_line = max(1, math.ceil(MIN_LINE_GAP_COLUMNS * steps_per_column / shortest))
    columns = bars[::bars_per_line] // steps_per_column
    shown[columns[(columns > 0) & (columns < num_columns)]] = True
    return shown


class PianoRollView:
    """A rich renderable of a ``(T, P)`` roll, optionally with a log-likelihood strip."""

    def __init__(
        self,
        roll: np.ndarray,
        *,
        steps_per_beat: int,
        lowest_pitch: int = 21,
        time_signatures: Iterable[tuple[int, int, int]] = (),
        frame_scores: np.ndarray | None = None,
    ) -> None:
        self.roll = np.asarray(roll, dtype=bool)
        self.steps_per_beat = steps_per_beat
        self.lowest_pitch = lowest_pitch
        self.bar_steps = [0, *bar_line_steps(len(self.roll), steps_per_beat, time_signatures)]
        self.frame_scores = None if frame_scores is None else np.asarray(frame_scores, float)

    def _columns(self, width: int) -> tuple[int, int]:
        """(steps per column, number of columns) that fit ``width`` characters of roll."""
        length = max(1, len(self.roll))
        steps_per_column = max(1, math.ceil(length / max(1, width)))
        return steps_per_column, math.ceil(length / steps_per_column)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """Draw the roll to fit the console's width."""
        steps_per_column, num_columns = self._columns(options.max_width - LABEL_WIDTH - 1)
        length = len(self.roll)
        padded = np.zeros((num_columns * steps_per_column, self.roll.shape[1]), dtype=bool)
        padded[:length] = self.roll
        lit = padded.reshape(num_columns, steps_per_column, -1).any(axis=1)  # (C, P)
        bar_start = bar_line_columns(self.bar_steps, steps_per_column, num_columns)
        low, high = _pitch_window(self.roll, self.lowest_pitch)
        for pitch in range(high, low - 1, -1):
            name = pitch_name(pitch)
            black = "#" in name
            line = Text(
                f"{name:>{LABEL_WIDTH - 1}} ",
                style="bold" if name[0] == "C" and not black else "dim",
            )
            column = lit[:, pitch - self.lowest_pitch]
            for c in range(num_columns):
                if column[c]:
                    line.append("█", style="cyan" if black else "bright_cyan")
                elif bar_start[c]:
                    line.append("│", style="grey50")
                else:
                    line.append("·" if not black else " ", style="grey23")
            yield line
        yield self._bar_axis(bar_start, steps_per_column, num_columns)
        if steps_per_column > 1:
            yield Text(
                f"{' ' * LABEL_WIDTH}(bar numbers; 1 column = {steps_per_column} steps)",
                style="dim",
            )
        if self.frame_scores is not None:
            yield from self._strip(steps_per_column, num_columns)

    def _bar_axis(self, bar_start: np.ndarray, steps_per_column: int, num_columns: int) -> Text:
        """Bar numbers under the bar lines, and the scale of a column."""
        axis = [" "] * num_columns
        for c in [0, *np.flatnonzero(bar_start).tolist()]:
            # The number of the first bar that begins in column c.
            label = str(int(np.searchsorted(self.bar_steps, c * steps_per_column)) + 1)
            # Skip a number that would run into the previous one.
            if all(ch == " " for ch in axis[max(0, c - 1) : c + len(label)]):
                axis[c : c + len(label)] = list(label)
        text = " " * LABEL_WIDTH + "".join(axis)[:num_columns]
        return Text(text, style="dim", no_wrap=True, overflow="crop")

    def _strip(self, steps_per_column: int, num_columns: int):
        """The log-likelihood strip: taller is likelier; then the totals."""
        scores = self.frame_scores
        padded = np.full(num_columns * steps_per_column, np.nan)
        padded[: len(scores)] = scores
        grouped = padded.reshape(num_columns, steps_per_column)
        with np.errstate(all="ignore"):
            valid = ~np.isnan(grouped)
            counts = valid.sum(axis=1)
            means = np.where(counts > 0, np.nansum(grouped, axis=1) / np.maximum(counts, 1), np.nan)
        finite = means[~np.isnan(means)]
        line = Text(f"{'LL':>{LABEL_WIDTH - 1}} ", style="bold")
        low, high = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
        span = high - low if high > low else 1.0
        for value in means:
            if np.isnan(value):
                line.append(" ")
                continue
            level = 1 + int(round((value - low) / span * (len(STRIP_LEVELS) - 2)))
            line.append(STRIP_LEVELS[level], style="yellow")
        yield line
        scored = scores[~np.isnan(scores)]
        total = float(scored.sum()) if scored.size else 0.0
        per_frame = total / scored.size if scored.size else float("nan")
        yield Text(
            f"log-likelihood {total:.2f} nats over {scored.size} frames "
            f"({per_frame:.3f} nats/frame; strip from {low:.2f} to {high:.2f})",
            style="dim",
        )


def bar_line_steps(
    length_steps: int,
    steps_per_beat: int,
    time_signatures: Iterable[tuple[int, int, int]] = (),
) -> list[int]:
    """The steps where a bar begins after the first, from the file's ``(step, numerator,
    denominator)`` time signatures (4/4 before the first and without any)."""
    positions = step_in_bar(length_steps, steps_per_beat, time_signatures)
    return [int(step) for step in bar_starts(positions) if step > 0]


def octave_window(low: int, high: int) -> tuple[int, int]:
    """Pitches ``low..high`` widened to whole octaves, C to C, within the piano (A0..C8)."""
    return max(LOWEST_PITCH, low - low % 12), min(HIGHEST_PITCH, high + (-high) % 12)


def octave_ticks(low: int, high: int) -> list[tuple[int, str]]:
    """(pitch, name) of every C from ``low`` to ``high``: ``(24, "C1")`` ... ``(108, "C8")``."""
    return [(pitch, pitch_name(pitch)) for pitch in range(low + (-low) % 12, high + 1, 12)]


def onset_marks(
    roll: np.ndarray, onsets: np.ndarray | None = None, lowest_pitch: int = LOWEST_PITCH
) -> list[tuple[int, int]]:
    """(step, pitch) of every note start, sorted: each sounding run begins one, and so does
    each given onset on a sounding frame (a note struck again without a gap)."""
    starts = canonical_onsets(roll, onsets)
    steps, columns = np.nonzero(starts)
    return sorted(zip(steps.tolist(), (columns + lowest_pitch).tolist(), strict=True))


def note_spans(
    roll: np.ndarray, onsets: np.ndarray | None = None, lowest_pitch: int = LOWEST_PITCH
) -> list[tuple[int, int, int]]:
    """(start_step, end_step, pitch) of every note of a ``(T, 88)`` roll, as
    :func:`~tuneforge.music.pianoroll.roll_to_notes` reads them."""
    shift = lowest_pitch - LOWEST_PITCH
    return [(n.start_step, n.end_step, n.pitch + shift) for n in roll_to_notes(roll, onsets)]


def write_roll_png(
    roll: np.ndarray,
    path: str | Path,
    *,
    steps_per_beat: int,
    lowest_pitch: int = LOWEST_PITCH,
    onsets: np.ndarray | None = None,
    time_signatures: Iterable[tuple[int, int, int]] = (),
    frame_scores: np.ndarray | None = None,
    title: str | None = None,
) -> Path:
    """Draw the roll (and the log-likelihood per frame, when given) into a PNG file.

    Each note is a box from its onset, with a dark mark where it starts, so a note struck again
    without a gap shows as two; bar lines follow ``time_signatures`` (``(step, numerator,
    denominator)``, as :class:`~tuneforge.music.midi.Piece` holds them) and every C is named.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection, PolyCollection
    from matplotlib.figure import Figure

    roll = np.asarray(roll, dtype=bool)
    length = max(1, len(roll))
    low, high = octave_window(*_pitch_window(roll, lowest_pitch, padding=0))
    beats = length / steps_per_beat
    rows = 2 if frame_scores is not None else 1
    figure = Figure(figsize=(min(24.0, 4 + beats / 4), 6 if rows == 2 else 4.5), dpi=100)
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(rows, 1, height_ratios=[4, 1][:rows])
    axes = figure.add_subplot(grid[0])
    spans = note_spans(roll, onsets, lowest_pitch)
    gap = min(0.15, 0.25 / steps_per_beat)  # beats left blank at a note's end
    boxes = [
        [
            (start / steps_per_beat, pitch - 0.4),
            (max(start / steps_per_beat + gap, end / steps_per_beat - gap), pitch - 0.4),
            (max(start / steps_per_beat + gap, end / steps_per_beat - gap), pitch + 0.4),
            (start / steps_per_beat, pitch + 0.4),
        ]
        for start, end, pitch in spans
    ]
    axes.add_collection(PolyCollection(boxes, facecolors="#6baed6", edgecolors="none"))
    marks = [
        [(step / steps_per_beat, pitch - 0.45), (step / steps_per_beat, pitch + 0.45)]
        for step, pitch in onset_marks(roll, onsets, lowest_pitch)
    ]
    axes.add_collection(LineCollection(marks, colors="#08306b", linewidths=1.5))
    length_steps = len(roll)
    for step in bar_line_steps(length_steps, steps_per_beat, time_signatures):
        axes.axvline(step / steps_per_beat, color="0.6", linewidth=0.6, zorder=0)
    ticks = octave_ticks(low, high)
    for pitch, _ in ticks:
        axes.axhline(pitch, color="0.85", linewidth=0.5, zorder=0)
    axes.set_yticks([pitch for pitch, _ in ticks], [name for _, name in ticks])
    axes.set_ylim(low - 0.5, high + 0.5)
    axes.set_xlim(0, beats)
    axes.set_ylabel("pitch")
    axes.set_title(title or "")
    if frame_scores is not None:
        strip = figure.add_subplot(grid[1], sharex=axes)
        times = (np.arange(len(frame_scores)) + 0.5) / steps_per_beat
        strip.plot(times, frame_scores, color="tab:orange", linewidth=0.8)
        strip.set_ylabel("log-lik (nats)")
        strip.set_xlabel("beats")
    else:
        axes.set_xlabel("beats")
    figure.tight_layout()
    path = Path(path)
    with replacing(path) as partial:
        figure.savefig(partial, format="png")
    return path
