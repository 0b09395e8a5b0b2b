"""What happened to every file of a MIDI folder, and the totals the CLI shows.

Every file found under a folder gets one :class:`FileReport`: ``used`` (it became a piece),
``skipped`` (valid MIDI with nothing usable: empty, percussion only, too short, too long...),
``failed`` (not MIDI, truncated, corrupt...) or ``ignored`` (not a MIDI file name), each with
its reason, so the files of a folder are always all accounted for.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tuneforge.music.pianoroll import LOWEST_PITCH

USED = "used"
SKIPPED = "skipped"
FAILED = "failed"
IGNORED = "ignored"
NOT_MIDI_NAME = "not a MIDI file name"  # the reason of a file ignored for its name
OUTCOMES = (USED, SKIPPED, FAILED, IGNORED)


@dataclass(frozen=True)
class FileReport:
    """The outcome of one file; the numbers are 0 unless the file was used."""

    path: str  # relative to the folder, with "/" separators
    outcome: str  # one of OUTCOMES
    reason: str = ""  # short key counted in the totals, e.g. "truncated"; "" when used
    detail: str = ""  # one line that explains the reason
    length_steps: int = 0
    duration_s: float = 0.0
    num_notes: int = 0
    frames_notes_on: int = 0  # sum of the roll: notes sounding, summed over frames
    lowest_pitch: int = 0  # MIDI pitch range of the piece (0 when unused)
    highest_pitch: int = 0
    dropped_out_of_range: int = 0
    folded_notes: int = 0
    dropped_percussion: int = 0
    duplicate_of: str = ""  # a used file with the same bytes as an earlier one: that file

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` reads it back."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileReport:
        """Rebuild a report written by :meth:`to_dict`, ignoring unknown keys."""
        known = cls.__dataclass_fields__  # a cached run rebuilds ~1,000 of these: no fields()
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class FolderReport:
    """Reports of all files under ``folder`` and the totals over them."""

    folder: str
    steps_per_beat: int
    files: list[FileReport] = field(default_factory=list)
    cached_files: int = 0  # files whose result came from the cache instead of being parsed
    warnings: list[str] = field(default_factory=list)  # one line each, e.g. an unusable cache

    @property
    def duplicates(self) -> dict[str, str]:
        """Used files with the same bytes as an earlier used file -> that file."""
        return {f.path: f.duplicate_of for f in self.files if f.duplicate_of}

    def with_outcome(self, outcome: str) -> list[FileReport]:
        """The reports with the given outcome, in folder order."""
        return [f for f in self.files if f.outcome == outcome]

    @property
    def outcome_counts(self) -> dict[str, int]:
        """Number of files per outcome (all four outcomes present, zeros included)."""
        counts = Counter(f.outcome for f in self.files)
        return {outcome: counts.get(outcome, 0) for outcome in OUTCOMES}

    @property
    def reason_counts(self) -> dict[str, int]:
        """Number of unused files per ``"outcome: reason"``, most frequent first."""
        counts = Counter(f"{f.outcome}: {f.reason}" for f in self.files if f.outcome != USED)
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    @property
    def num_pieces(self) -> int:
        """Number of files used as pieces."""
        return len(self.with_outcome(USED))

    @property
    def total_frames(self) -> int:
        """Frames over all pieces."""
        return sum(f.length_steps for f in self.with_outcome(USED))

    @property
    def total_duration_s(self) -> float:
        """Playing time of all pieces under their tempo maps."""
        return sum(f.duration_s for f in self.with_outcome(USED))

    @property
    def pitch_range(self) -> tuple[int, int] | None:
        """Lowest and highest MIDI pitch over all pieces, None without pieces."""
        used = self.with_outcome(USED)
        if not used:
            return None
        return min(f.lowest_pitch for f in used), max(f.highest_pitch for f in used)

    @property
    def mean_polyphony(self) -> float:
        """Mean number of notes sounding per frame over all pieces."""
        frames = self.total_frames
        return sum(f.frames_notes_on for f in self.with_outcome(USED)) / frames if frames else 0.0

    def summary_line(self) -> str:
        """Counts per outcome and per reason in one line, for error messages (for a single
        unused file: its path, outcome, reason and detail)."""
        if len(self.files) == 1 and self.files[0].outcome != USED:
            only = self.files[0]  # one file: say what is wrong with it
            return f"{only.path} {only.outcome} ({only.reason}): {only.detail}"
        counts = ", ".join(f"{n} {o}" for o, n in self.outcome_counts.items() if n)
        reasons = "; ".join(f"{n} {r}" for r, n in self.reason_counts.items())
        return f"{len(self.files)} files ({counts or 'none'})" + (f": {reasons}" if reasons else "")

    def to_dict(self) -> dict[str, Any]:
        """Totals and every file's report, ready for ``json.dumps``."""
        pitch_range = self.pitch_range
        return {
            "folder": self.folder,
            "steps_per_beat": self.steps_per_beat,
            "files": len(self.files),
            "cached_files": self.cached_files,
            "outcomes": self.outcome_counts,
            "reasons": self.reason_counts,
            "pieces": self.num_pieces,
            "frames": self.total_frames,
            "duration_s": round(self.total_duration_s, 3),
            "pitch_range": list(pitch_range) if pitch_range else None,
            "mean_polyphony": round(self.mean_polyphony, 4),
            "duplicates": self.duplicates,
            "warnings": list(self.warnings),
            "file_reports": [f.to_dict() for f in self.files],
        }


def used_report(path: str, roll: np.ndarray, piece) -> FileReport:
    """The report of a file read into ``piece`` (a :class:`~tuneforge.music.midi.Piece`)."""
    columns = np.flatnonzero(roll.any(axis=0))
    return FileReport(
        path=path,
        outcome=USED,
        length_steps=piece.length_steps,
        duration_s=round(piece.duration_s, 6),
        num_notes=piece.num_notes,
        frames_notes_on=int(np.count_nonzero(roll)),
        lowest_pitch=int(columns[0]) + LOWEST_PITCH if columns.size else 0,
        highest_pitch=int(columns[-1]) + LOWEST_PITCH if columns.size else 0,
        dropped_out_of_range=piece.dropped_out_of_range,
        folded_notes=piece.folded_notes,
        dropped_percussion=piece.dropped_percussion,
    )


def rolls_summary(splits: dict[str, list[np.ndarray]]) -> dict[str, Any]:
    """Pieces, frames, mean polyphony and pitch range of each split of a data set."""
    summary: dict[str, Any] = {}
    for split, rolls in splits.items():
        frames = sum(int(r.shape[0]) for r in rolls)
        notes_on = sum(np.count_nonzero(r) for r in rolls)  # rolls are 0/1; 6x faster than sum
        columns = np.flatnonzero(np.any([r.any(axis=0) for r in rolls], axis=0)) if rolls else []
        summary[split] = {
            "pieces": len(rolls),
            "frames": frames,
            "mean_polyphony": round(notes_on / frames, 4) if frames else 0.0,
            "pitch_range": [int(columns[0]) + LOWEST_PITCH, int(columns[-1]) + LOWEST_PITCH]
            if len(columns)
            else None,
        }
    return summary
