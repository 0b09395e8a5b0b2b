"""MIDI files and folders named on a command line -> named rolls, and a report on every file.

A file is read with :func:`~tuneforge.music.midi.read_midi`, so its onsets and time
signatures come along; a folder goes through :func:`~tuneforge.data.folder.read_folder`
(parallel, cached), which keeps rolls only. A file that cannot be used gets its
:class:`~tuneforge.data.report.FileReport` with the reason and never stops the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tuneforge.data.cache import ReadSettings
from tuneforge.data.comparison import NamedRoll
from tuneforge.data.folder import read_folder
from tuneforge.data.report import FileReport, FolderReport, used_report
from tuneforge.errors import DataError, MidiError


@dataclass(frozen=True)
class ReadPieces:
    """What the paths held: the usable pieces, in the order given, and every file's report."""

    pieces: list[NamedRoll]
    report: FolderReport  # over all paths; report paths are as given, plus the folder's files


def read_pieces(
    paths: Sequence[str | Path],
    *,
    settings: ReadSettings = ReadSettings(),
    cache_dir: Path | None = None,
    workers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ReadPieces:
    """Read every MIDI file among ``paths`` (files, or folders searched recursively).

    Raises:
        DataError: a path that does not exist.
    """
    from tuneforge.music.midi import MidiRejected, read_midi

    settings.validate()
    pieces: list[NamedRoll] = []
    reports: list[FileReport] = []
    cached = 0
    for path in map(Path, paths):
        if path.is_dir():
            contents = read_folder(
                path,
                settings=settings,
                cache_dir=cache_dir,
                workers=workers,
                on_progress=on_progress,
            )
            cached += contents.report.cached_files
            reports += [_under(path, f) for f in contents.report.files]
            pieces += [
                NamedRoll(str(path / name), roll)
                for name, roll in zip(contents.names, contents.rolls, strict=True)
            ]
            continue
        if not path.exists():
            raise DataError(f"{path} does not exist; give MIDI files or folders")
        try:
            piece = read_midi(
                path,
                steps_per_beat=settings.steps_per_beat,
                keep_percussion=settings.keep_percussion,
                fold_octaves=settings.fold_octaves,
                max_steps=settings.max_steps,
            )
        except MidiRejected as error:
            reports.append(FileReport(str(path), error.outcome, error.reason, error.detail))
            continue
        except MidiError as error:
            reports.append(FileReport(str(path), "failed", "corrupt", str(error)))
            continue
        reports.append(used_report(str(path), piece.roll, piece))
        pieces.append(NamedRoll(str(path), piece.roll, piece.onsets, piece.time_signatures))
    report = FolderReport(", ".join(map(str, paths)), settings.steps_per_beat, reports, cached)
    return ReadPieces(pieces, report)


def _under(folder: Path, report: FileReport) -> FileReport:
    """A folder's file report with the folder in its path, as the user would type it."""
    return FileReport.from_dict({**report.to_dict(), "path": str(folder / report.path)})
