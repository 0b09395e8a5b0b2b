"""Read a folder of MIDI files: scan it, parse the files in parallel, report on every file.

Files are found recursively (``.mid``, ``.midi``, ``.kar`` in any letter case; any other file is
reported as ignored). A linked folder is read once: a link to a folder already read (a loop,
or a second way into one) is reported instead of followed. FIFOs, devices and oversized files
are reported without being opened. Each file's bytes are hashed; results cached under that
hash (see :mod:`tuneforge.data.cache`) are reused and only the rest are parsed, in a process
pool when there are enough of them. One bad file never stops a run: it gets its report and
reason. Files with the same bytes as an earlier one are marked as its duplicates. A Ctrl-C
while files are parsed keeps what was parsed in the cache.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from tuneforge.data.cache import CacheEntry, ReadSettings, content_hash, load_pack, save_pack
from tuneforge.data.report import (
    FAILED,
    IGNORED,
    NOT_MIDI_NAME,
    FileReport,
    FolderReport,
    used_report,
)
from tuneforge.errors import ConfigError, DataError, MidiError

MIDI_SUFFIXES = (".mid", ".midi", ".kar")
CHUNK_FILES = 32  # files per pool task: large enough to amortize the pipe, small for progress
MIN_FILES_FOR_POOL = 64  # below this, starting worker processes costs more than it saves

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class FolderContents:
    """The pieces read from a folder, in folder order, and the report on every file."""

    names: list[str]  # relative paths of the used files
    rolls: list[np.ndarray]  # (T, 88) uint8, one per used file
    report: FolderReport
    file_hashes: list[str]  # content hash of every used file, same order as rolls
    onsets: list[np.ndarray]  # (T, 88) uint8, where notes are struck, same order as rolls
    time_signatures: list[tuple[tuple[int, int, int], ...]]  # (step, num, den) per used file
    # A used file whose bytes equal an earlier used file's (in folder order) -> that file.
    duplicate_of: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Scan:
    midi_files: list[str]
    other_files: list[str]
    unread_folders: list[FileReport]  # links not followed, folders that cannot be listed


def scan_folder(folder: Path) -> tuple[list[str], list[str]]:
    """``(midi_files, other_files)`` under ``folder``, recursively, as sorted relative paths
    with "/" separators; linked folders are followed once (see the module docstring)."""
    scan = _scan(folder)
    return scan.midi_files, scan.other_files


def _scan(folder: Path) -> _Scan:
    """Plain strings and os.scandir: a cached run spends most of its time here. The folder's
    own tree is listed first, then each linked folder not yet seen, so which path a folder is
    read under never depends on the order of the directory entries."""
    midi_files: list[str] = []
    other_files: list[str] = []
    unread: list[FileReport] = []
    seen: set[str] = set()
    links: list[tuple[str, str]] = []  # (path on disk, relative path), followed after the tree

    def walk(top: str, relative: str) -> None:
        pending = [(top, relative)]
        while pending:
            path, prefix = pending.pop()
            real = os.path.realpath(path)
            if real in seen:
                unread.append(_folder_report(prefix, "folder read already", real))
                continue
            seen.add(real)
            try:
                with os.scandir(path) as entries:
                    listed = sorted(entries, key=lambda entry: entry.name)
            except OSError as error:
                detail = f"cannot list the folder: {error.strerror}"
                unread.append(FileReport(prefix or ".", IGNORED, "unreadable folder", detail))
                continue
            for entry in listed:
                name = (prefix + "/" if prefix else "") + entry.name
                try:
                    is_link = entry.is_symlink()
                    is_dir = entry.is_dir()  # follows links
                except OSError:
                    is_link = is_dir = False
                if is_dir and is_link:
                    links.append((entry.path, name))
                elif is_dir:
                    pending.append((entry.path, name))
                elif os.path.splitext(entry.name)[1].lower() in MIDI_SUFFIXES:
                    midi_files.append(name)
                else:
                    other_files.append(name)

    walk(os.fspath(folder), "")
    while links:
        path, name = links.pop(0)
        walk(path, name)
    return _Scan(sorted(midi_files), sorted(other_files), unread)


def _folder_report(path: str, reason: str, target: str) -> FileReport:
    detail = f"a link to {target}, which is read already; not followed again"
    return FileReport(path, IGNORED, reason, detail)


def parse_one(relative_path: str, data: bytes, settings: ReadSettings) -> CacheEntry:
    """Read one file's bytes into a cache entry; any failure becomes a report, never a raise."""
    from tuneforge.music.midi import MidiRejected, read_midi_bytes

    try:
        piece = read_midi_bytes(
            data,
            name=relative_path,
            steps_per_beat=settings.steps_per_beat,
            keep_percussion=settings.keep_percussion,
            fold_octaves=settings.fold_octaves,
            max_steps=settings.max_steps,
        )
    except MidiRejected as error:
        report = FileReport(relative_path, error.outcome, error.reason, error.detail)
        return CacheEntry(report, None)
    except MidiError as error:
        return CacheEntry(FileReport(relative_path, FAILED, "corrupt", str(error)), None)
    except Exception as error:  # noqa: BLE001  a parser bug on one file must not stop the run
        detail = f"unexpected {type(error).__name__}: {error}"
        return CacheEntry(FileReport(relative_path, FAILED, "corrupt", detail), None)
    return CacheEntry(
        used_report(relative_path, piece.roll, piece),
        piece.roll,
        piece.onsets,
        piece.time_signatures,
    )


def _parse_chunk(
    jobs: list[tuple[str, bytes]], settings: ReadSettings
) -> list[tuple[str, CacheEntry]]:
    """Worker task: parse a list of (relative path, bytes)."""
    return [(path, parse_one(path, data, settings)) for path, data in jobs]


def _pool_context():
    """fork where it exists: workers start in milliseconds and the caller's script needs no
    ``if __name__ == "__main__"`` guard. The children only parse bytes with mido and numpy,
    both imported before the fork, so they take no lock another thread of the caller could
    hold. Elsewhere (macOS, Windows) spawn."""
    import multiprocessing

    import tuneforge.music.midi  # noqa: F401  imported once here, not in every child

    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _parse_all(
    jobs: list[tuple[str, bytes]],
    settings: ReadSettings,
    workers: int,
    report_progress: Callable[[int], None],
    results: dict[str, CacheEntry],
) -> None:
    """Parse ``jobs``, in a process pool when it pays, into ``results`` by relative path
    (filled as files are done, so an interrupted run keeps what it parsed)."""
    if workers <= 1 or len(jobs) < MIN_FILES_FOR_POOL:
        for path, data in jobs:
            results[path] = parse_one(path, data, settings)
            report_progress(1)
        return
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # Chunks go out largest first so that no worker ends the run with a big file alone.
    jobs = sorted(jobs, key=lambda job: -len(job[1]))
    chunks = [jobs[i : i + CHUNK_FILES] for i in range(0, len(jobs), CHUNK_FILES)]
    context = _pool_context()
    pool = ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=context)
    try:
        with warnings.catch_warnings():
            # Python >= 3.12 warns about fork in a threaded process (workers start on submit);
            # see _pool_context for why these children are safe.
            warnings.filterwarnings("ignore", message=".*fork", category=DeprecationWarning)
            futures = [pool.submit(_parse_chunk, chunk, settings) for chunk in chunks]
        for future in as_completed(futures):
            chunk_results = future.result()
            results.update(chunk_results)
            report_progress(len(chunk_results))
    except BaseException:
        # Ctrl-C: waiting for the queued chunks would make the user wait for all of them.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def read_folder(
    folder: str | Path,
    *,
    settings: ReadSettings = ReadSettings(),
    cache_dir: Path | None = None,
    workers: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> FolderContents:
    """Read every MIDI file under ``folder``; returns the pieces and a report on every file.

    Args:
        settings: how files are read (steps per beat, percussion, octave folding, max steps).
        cache_dir: where parsed results are cached; None disables the cache.
        workers: processes used to parse (default: the number of CPU cores).
        on_progress: called as ``on_progress(done, total)`` while files are parsed.

    Raises:
        DataError: the folder does not exist or holds no file at all.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder; give a folder of MIDI files")
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    from tuneforge.music.midi import MidiRejected, read_file_bytes

    settings.validate()
    workers = workers or os.cpu_count() or 1
    scan = _scan(folder)
    relative, other_files = scan.midi_files, scan.other_files
    if not relative and not other_files:
        raise DataError(f"{folder} is empty; give a folder that holds .mid/.midi/.kar files")
    hashes: dict[str, str] = {}
    entries: dict[str, CacheEntry] = {}  # by relative path
    jobs: list[tuple[str, bytes]] = []
    cached = load_pack(cache_dir, folder, settings) if cache_dir is not None else {}
    for name in relative:
        try:
            data = read_file_bytes(os.path.join(folder, name))
        except MidiRejected as error:
            report = FileReport(name, error.outcome, error.reason, error.detail)
            entries[name] = CacheEntry(report, None)
            continue
        hashes[name] = digest = content_hash(data)
        if digest in cached:
            hit = cached[digest]
            entries[name] = CacheEntry(
                _renamed(hit.report, name), hit.roll, hit.onsets, hit.time_signatures
            )
        else:
            jobs.append((name, data))
    num_cached = len(hashes) - len(jobs)

    total = len(relative)
    done = total - len(jobs)  # cached and unreadable files need no parsing

    def report_progress(count: int) -> None:
        nonlocal done
        done += count
        if on_progress is not None:
            on_progress(done, total)

    report_progress(0)
    warnings_: list[str] = []

    def save() -> None:
        # The pack keeps only this folder's current files, so it never grows without bound.
        done = {hashes[n]: entries[n] for n in relative if n in hashes and n in entries}
        problem = save_pack(cache_dir, folder, settings, done)
        if problem:
            warnings_.append(problem)

    try:
        _parse_all(jobs, settings, workers, report_progress, entries)
    except KeyboardInterrupt:
        if cache_dir is not None:
            save()  # the next run starts where this one stopped
        raise
    if cache_dir is not None and jobs:
        save()

    duplicate_of: dict[str, str] = {}
    first_by_hash: dict[str, str] = {}
    for name in relative:
        if entries[name].roll is None:
            continue
        first = first_by_hash.setdefault(hashes[name], name)
        if first != name:
            duplicate_of[name] = first
    reports = [
        replace(entries[name].report, duplicate_of=duplicate_of[name])
        if name in duplicate_of
        else entries[name].report
        for name in relative
    ]
    reports += [
        FileReport(path, IGNORED, NOT_MIDI_NAME, "only .mid, .midi and .kar files are read")
        for path in other_files
    ]
    reports += scan.unread_folders
    reports.sort(key=lambda report: report.path)
    used = [name for name in relative if entries[name].roll is not None]
    report = FolderReport(str(folder), settings.steps_per_beat, reports, cached_files=num_cached)
    report.warnings = warnings_
    return FolderContents(
        names=used,
        rolls=[entries[name].roll for name in used],
        report=report,
        file_hashes=[hashes[name] for name in used],
        onsets=[entries[name].onsets for name in used],
        time_signatures=[entries[name].time_signatures for name in used],
        duplicate_of=duplicate_of,
    )


def _renamed(report: FileReport, path: str) -> FileReport:
    """A cached report under the file's current path (the content may have moved)."""
    if report.path == path:
        return report
    return FileReport.from_dict({**report.to_dict(), "path": path})
