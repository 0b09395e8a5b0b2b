"""Pieces next to a data set: their statistics, the data's, the gaps, and the memorization
meter against the data's training split with its calibration (held-out vs train).

:func:`compare_to_dataset` does the work for ``tuneforge stats --against`` and, through
:meth:`Comparison.short_line`, for the one line ``tuneforge generate --stats`` shows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tuneforge.data.dataset import Dataset
from tuneforge.data.memorization import (
    CorpusIndex,
    Memorization,
    MemorizationSummary,
    summarize,
)
from tuneforge.errors import ConfigError
from tuneforge.music.meter import bar_starts, step_in_bar
from tuneforge.music.stats import PieceStats, aggregate_stats, piece_stats, relative_gaps

SPLITS = ("train", "valid", "test", "all")


@dataclass(frozen=True)
class NamedRoll:
    """One piece to measure: a roll and what the roll does not carry."""

    name: str
    roll: np.ndarray  # (T, 88) uint8
    onsets: np.ndarray | None = None  # (T, 88) uint8; None: derived from the roll
    time_signatures: tuple[tuple[int, int, int], ...] = ()  # (step, num, den); none: 4/4


@dataclass(frozen=True)
class PieceResult:
    """One piece's statistics and, against a data set, its memorization meter."""

    name: str
    stats: PieceStats
    memorization: Memorization | None = None

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return {
            "name": self.name,
            **self.stats.to_dict(),
            "memorization": self.memorization.to_dict() if self.memorization else None,
        }


@dataclass(frozen=True)
class Comparison:
    """Pieces, their total, and (with a data set) the data's figures and the gaps."""

    pieces: list[PieceResult]
    total: PieceStats  # aggregate of the pieces
    reference: PieceStats | None = None  # aggregate of the data set's chosen split
    reference_label: str = ""  # e.g. "nottingham-midi (all)"
    gaps: dict = field(default_factory=dict)  # relative gap of each figure to the reference
    memorization: MemorizationSummary | None = None  # the pieces against the training split
    calibration: MemorizationSummary | None = None  # held-out pieces against the training split
    calibration_split: str = ""  # which split the calibration measured

    def to_dict(self) -> dict:
        """A JSON-ready dict (NaN gaps become None)."""
        return {
            "pieces": [p.to_dict() for p in self.pieces],
            "total": self.total.to_dict(),
            "reference": self.reference.to_dict() if self.reference else None,
            "reference_label": self.reference_label,
            "gaps": _without_nan(self.gaps),
            "memorization": self.memorization.to_dict() if self.memorization else None,
            "calibration": self.calibration.to_dict() if self.calibration else None,
            "calibration_split": self.calibration_split,
        }

    def short_line(self) -> str:
        """The comparison in one line: key figures with their gaps, then the copy figures
        beside the calibration."""
        total = self.total
        items = [
            ("polyphony", total.polyphony, "polyphony", "{:.2f}"),
            ("onsets/beat", total.onsets_per_beat, "onsets_per_beat", "{:.2f}"),
            (">=C4", total.melody_presence, "melody_presence", "{:.0%}"),
            (
                "silent",
                total.silent_share_after_first_note,
                "silent_share_after_first_note",
                "{:.0%}",
            ),
            ("repeated bars", total.repeated_bar_share, "repeated_bar_share", "{:.0%}"),
        ]
        parts = []
        for label, value, key, style in items:
            gap = self.gaps.get(key)
            parts.append(
                f"{label} {style.format(value)}" + (f" ({_gap(gap)})" if gap is not None else "")
            )
        line = f"{len(self.pieces)} pieces: " + ", ".join(parts)
        if self.reference_label:
            line += f" (gaps vs {self.reference_label})"
        if self.memorization is not None:
            m = self.memorization
            line += (
                f"; copied from train: longest run {format_bars(m.median_longest_bars)} bars "
                f"median, {format_bars(m.max_longest_bars)} max, {m.copied_bar_share:.0%} of bars"
            )
        if self.calibration is not None:
            c = self.calibration
            line += (
                f" ({self.calibration_split} vs train: {format_bars(c.median_longest_bars)} "
                f"median, {format_bars(c.max_longest_bars)} max, {c.copied_bar_share:.0%})"
            )
        return line


def format_bars(value: float) -> str:
    """Bars to two decimals at most: 1.3125 -> "1.31", 8.0 -> "8"."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _gap(gap: float) -> str:
    return "n/a" if math.isnan(gap) else f"{gap:+.0%}"


def _without_nan(value):
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nan(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def dataset_piece_names(dataset: Dataset) -> dict[str, list[str]]:
    """The name of every piece of each split: the file a MIDI folder's piece came from (as
    the data set carries them), ``"train #12"`` for a benchmark set, which has no file names."""
    if dataset.names is not None:
        return {split: list(dataset.names[split]) for split in dataset.splits()}
    return {
        split: [f"{split} #{i + 1}" for i in range(len(rolls))]
        for split, rolls in dataset.splits().items()
    }


def split_named(dataset: Dataset, split: str) -> list[NamedRoll]:
    """The pieces of one split (or of all three for ``"all"``) with their names, and the
    onsets and time signatures a MIDI folder carries."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    chosen = ("train", "valid", "test") if split == "all" else (split,)
    names = dataset_piece_names(dataset)
    pieces = []
    for name in chosen:
        rolls = dataset.splits()[name]
        onsets = dataset.onsets[name] if dataset.onsets else [None] * len(rolls)
        meters = dataset.time_signatures[name] if dataset.time_signatures else [()] * len(rolls)
        for roll, title, struck, meter in zip(rolls, names[name], onsets, meters, strict=True):
            pieces.append(NamedRoll(title, roll, struck, tuple(tuple(m) for m in meter)))
    return pieces


def shortest_bar_steps(pieces: Sequence[NamedRoll], steps_per_beat: int) -> int:
    """Steps of the shortest full bar of any piece by its meter (4/4 without one): the
    window of a memorization index that every piece's bars can be looked up in."""
    shortest = 4 * steps_per_beat
    for piece in pieces:
        if not piece.time_signatures:
            continue
        starts = bar_starts(step_in_bar(len(piece.roll), steps_per_beat, piece.time_signatures))
        if len(starts) > 1:
            shortest = min(shortest, int(np.diff(starts).min()))
    return max(1, shortest)


def measure(pieces: Sequence[NamedRoll], steps_per_beat: int) -> list[PieceResult]:
    """The statistics of each piece."""
    return [
        PieceResult(
            p.name,
            piece_stats(
                p.roll, p.onsets, steps_per_beat=steps_per_beat, time_signatures=p.time_signatures
            ),
        )
        for p in pieces
    ]


def compare_to_dataset(
    pieces: Sequence[NamedRoll],
    dataset: Dataset | None,
    *,
    steps_per_beat: int,
    split: str = "all",
    calibration_split: str | None = None,
) -> Comparison:
    """Measure ``pieces``; with a data set, also its ``split`` (rolls only: onsets derived,
    4/4), the gaps, and the memorization meter of every piece against its training split,
    calibrated by ``calibration_split`` (default: valid, or test when valid is empty).

    The data's pieces come with their onsets and time signatures where the data set carries
    them (MIDI folders), and every piece's bars follow its own meter.

    Raises:
        ValueError: no pieces.
        ConfigError: a data set of another ``steps_per_beat``.
    """
    if not pieces:
        raise ValueError("compare_to_dataset needs at least one piece")
    results = measure(pieces, steps_per_beat)
    total = aggregate_stats(r.stats for r in results)
    if dataset is None:
        return Comparison(results, total)
    if dataset.steps_per_beat != steps_per_beat:
        raise ConfigError(
            f"the pieces have {steps_per_beat} steps per beat and {dataset.name} has "
            f"{dataset.steps_per_beat}; read the pieces with --steps-per-beat "
            f"{dataset.steps_per_beat}"
        )
    reference = aggregate_stats(
        [r.stats for r in measure(split_named(dataset, split), steps_per_beat)]
        or [piece_stats(np.zeros((0, 88), np.uint8), steps_per_beat=steps_per_beat)]
    )
    train = split_named(dataset, "train")
    held_out = calibration_split or ("valid" if dataset.valid else "test")
    calibration_pieces = split_named(dataset, held_out)
    window = shortest_bar_steps([*pieces, *train, *calibration_pieces], steps_per_beat)
    index = CorpusIndex([p.roll for p in train], [p.name for p in train], steps_per_bar=window)

    def copies(piece: NamedRoll) -> Memorization:
        return index.query(
            piece.roll, time_signatures=piece.time_signatures, steps_per_beat=steps_per_beat
        )

    results = [
        PieceResult(r.name, r.stats, copies(p)) for r, p in zip(results, pieces, strict=True)
    ]
    return Comparison(
        pieces=results,
        total=total,
        reference=reference,
        reference_label=f"{dataset.name} ({split})",
        gaps=relative_gaps(total, reference),
        memorization=summarize(r.memorization for r in results),
        calibration=summarize(copies(p) for p in calibration_pieces),
        calibration_split=held_out,
    )


def short_summary(
    pieces: Sequence[NamedRoll | np.ndarray],
    dataset: Dataset | None,
    *,
    steps_per_beat: int,
    split: str = "all",
) -> str:
    """:meth:`Comparison.short_line` of ``pieces`` (rolls, or :class:`NamedRoll` with their
    onsets and time signatures) against ``dataset`` (None: the pieces' figures only)."""
    named = [
        p if isinstance(p, NamedRoll) else NamedRoll(f"piece {i + 1}", p)
        for i, p in enumerate(pieces)
    ]
    comparison = compare_to_dataset(named, dataset, steps_per_beat=steps_per_beat, split=split)
    return comparison.short_line()


def training_data_of(meta: dict, *, data_dir=None) -> Dataset | None:
    """The data set a checkpoint's ``meta`` names (``data_spec``, read with its
    ``steps_per_beat``, ``split_seed``, percussion and octave settings, as training read it);
    None when the meta names none (a shipped or hand-made model).

    Raises:
        DataError: the data named cannot be found or read.
    """
    from tuneforge.data.dataset import load_dataset

    spec = meta.get("data_spec")
    if not spec:
        return None
    return load_dataset(
        spec,
        data_dir=data_dir,
        steps_per_beat=int(meta.get("steps_per_beat", 4)),
        split_seed=int(meta.get("split_seed", 0)),
        keep_percussion=bool(meta.get("keep_percussion", False)),
        fold_octaves=bool(meta.get("fold_octaves", False)),
    )
