"""A data set as train/valid/test piano rolls, from a MIDI folder or a benchmark set.

``load_dataset(spec)`` accepts a folder of MIDI files, a benchmark file (.mat or .pickle) or a
benchmark name (``jsb``, ``nottingham``, ``musedata``, ``piano-midi``). Benchmark sets keep
their own splits; a folder is split by piece with a seeded permutation, before any augmentation.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tuneforge.data.benchmarks import (
    BENCHMARKS,
    BenchmarkInfo,
    benchmark_by_file,
    benchmark_by_name,
    file_digest,
    load_benchmark,
)
from tuneforge.data.cache import ReadSettings, resolve_cache_dir
from tuneforge.data.folder import read_folder
from tuneforge.data.report import FolderReport
from tuneforge.errors import ConfigError, DataError

DATA_DIR_ENV = "TUNEFORGE_DATA_DIR"
DEFAULT_DATA_DIRS = ("data", "benchmarks")  # relative to the working directory


@dataclass
class Dataset:
    """Pieces of one data set, split by piece; every roll is (T, 88) uint8.

    A MIDI folder also gives each piece's onsets (where notes are struck, so a repeated note
    stays two notes) and time signatures; the benchmark sets have neither (see
    :func:`split_pieces` for what stands in).
    """

    name: str
    train: list[np.ndarray]
    valid: list[np.ndarray]
    test: list[np.ndarray]
    steps_per_beat: int
    fingerprint: str  # hex digest of the data content and every setting that shaped it
    report: FolderReport | None = None  # the per-file report of a MIDI folder, else None
    source: str = ""  # the folder or file the pieces came from
    onsets: dict[str, list[np.ndarray]] | None = None  # by split, as the rolls; None: unknown
    time_signatures: dict[str, list[tuple]] | None = None  # by split: (step, num, den) events
    names: dict[str, list[str]] | None = None  # by split: the file of each piece (folders)
    # Files left out of a split because a file with the same bytes is in another split.
    duplicates_left_out: list[str] = field(default_factory=list)

    def splits(self) -> dict[str, list[np.ndarray]]:
        """``{"train": ..., "valid": ..., "test": ...}``."""
        return {"train": self.train, "valid": self.valid, "test": self.test}


@dataclass(frozen=True)
class SplitPieces:
    """The pieces of one split with what models read beside the rolls, all in one order."""

    rolls: list[np.ndarray]  # (T, 88) uint8
    onsets: list[np.ndarray | None]  # (T, 88) uint8 from MIDI, None where unknown
    bar_positions: list[np.ndarray]  # (T,) int32, each step's position in its bar

    @property
    def onsets_known(self) -> list[bool]:
        """Whether each piece's onsets come from its file."""
        return [onsets is not None for onsets in self.onsets]


def split_pieces(dataset, split: str) -> SplitPieces:
    """The rolls of ``split`` with their onsets and bar positions.

    Pieces without time signatures (the benchmark sets) are read as 4/4 from their first step;
    pieces without onsets (the benchmark sets) have None, and models use the onsets the roll
    implies (a note starts where the pitch was silent the step before).
    """
    from tuneforge.music.meter import step_in_bar

    rolls = list(getattr(dataset, split))
    onsets_by_split = getattr(dataset, "onsets", None)
    meters_by_split = getattr(dataset, "time_signatures", None)
    onsets = list(onsets_by_split[split]) if onsets_by_split else [None] * len(rolls)
    meters = list(meters_by_split[split]) if meters_by_split else [()] * len(rolls)
    spb = int(dataset.steps_per_beat)
    bars = [step_in_bar(len(roll), spb, meter) for roll, meter in zip(rolls, meters, strict=True)]
    return SplitPieces(rolls, onsets, bars)


def split_indices(
    num_pieces: int, *, seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
) -> tuple[list[int], list[int], list[int]]:
    """Deterministic train/valid/test piece indices: a seeded permutation cut by ``fractions``.

    Valid and test get ``round(fraction * n)`` pieces each; train gets the rest, and at least
    one piece whenever there is one, so a tiny folder still trains.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not sum(fractions) > 0:
        raise ConfigError(
            f"split fractions must be 3 numbers >= 0 with a positive sum, got {fractions}"
        )
    total = sum(fractions)
    order = np.random.default_rng(seed).permutation(num_pieces).tolist()
    num_valid = round(fractions[1] / total * num_pieces)
    num_test = round(fractions[2] / total * num_pieces)
    while num_valid + num_test > max(num_pieces - 1, 0) and (num_valid or num_test):
        # Take from the larger of valid/test until train keeps a piece.
        if num_valid >= num_test:
            num_valid -= 1
        else:
            num_test -= 1
    valid = sorted(order[:num_valid])
    test = sorted(order[num_valid : num_valid + num_test])
    train = sorted(order[num_valid + num_test :])
    return train, valid, test


def _fingerprint(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _candidate_dirs(data_dir: str | Path | None) -> list[Path]:
    if data_dir is not None:
        return [Path(data_dir)]
    if os.environ.get(DATA_DIR_ENV):
        return [Path(os.environ[DATA_DIR_ENV])]
    return [Path(name) for name in DEFAULT_DATA_DIRS]


def find_benchmark(name: str, data_dir: str | Path | None = None) -> tuple[BenchmarkInfo, Path]:
    """Locate the file of the benchmark called ``name``: its .mat, else its .pickle, in
    ``data_dir``, else ``$TUNEFORGE_DATA_DIR``, else ./data and ./benchmarks."""
    info = benchmark_by_name(name)
    if info is None:
        known = ", ".join(BENCHMARKS)
        raise DataError(
            f"'{name}' is neither an existing folder or file nor a benchmark name ({known})"
        )
    directories = _candidate_dirs(data_dir)
    for directory in directories:
        for file_name in (info.mat_file, info.pickle_file):
            if (directory / file_name).is_file():
                return info, directory / file_name
    looked = ", ".join(str(d) for d in directories)
    raise DataError(
        f"no {info.mat_file} or '{info.pickle_file}' in {looked}; "
        f"point at the folder that holds it with --data-dir or {DATA_DIR_ENV}"
    )


def _load_benchmark_dataset(info: BenchmarkInfo | None, path: Path) -> Dataset:
    splits = load_benchmark(path)
    steps_per_beat = info.steps_per_beat if info else 1
    fingerprint = _fingerprint(
        {"kind": "benchmark", "content": file_digest(path), "steps_per_beat": steps_per_beat}
    )
    return Dataset(
        name=info.name if info else path.stem,
        train=splits["train"],
        valid=splits["valid"],
        test=splits["test"],
        steps_per_beat=steps_per_beat,
        fingerprint=fingerprint,
        source=str(path),
    )


def load_dataset(
    spec: str | Path,
    *,
    data_dir: str | Path | None = None,
    steps_per_beat: int = 4,
    cache_dir: str | Path | None = None,
    split_seed: int = 0,
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    keep_percussion: bool = False,
    fold_octaves: bool = False,
    max_steps: int = 100_000,
    workers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Dataset:
    """Load a MIDI folder, a benchmark file (.mat/.pickle) or a benchmark by name.

    The MIDI options (``steps_per_beat``, ``keep_percussion``, ``fold_octaves``, ``max_steps``)
    and the split options apply to folders; benchmark sets come with their own splits and time
    resolution (JSB: 1 step per beat, the others: 2). Folder results are cached in
    ``cache_dir`` (else ``$TUNEFORGE_CACHE_DIR``, else the user's cache directory).
    ``on_progress(done, total)`` is called while files are parsed.

    Raises:
        DataError: nothing found under ``spec``, or a folder without one usable file (the
            message names the folder and the counts per reason).
    """
    path = Path(spec)
    if path.is_file():
        return _load_benchmark_dataset(benchmark_by_file(path), path)
    if not path.is_dir():
        info, found = find_benchmark(str(spec), data_dir)
        return _load_benchmark_dataset(info, found)

    settings = ReadSettings(steps_per_beat, keep_percussion, fold_octaves, max_steps)
    contents = read_folder(
        path,
        settings=settings,
        cache_dir=resolve_cache_dir(cache_dir),
        workers=workers,
        on_progress=on_progress,
    )
    report = contents.report
    if not contents.rolls:
        raise DataError(f"no usable MIDI file in {path}: {report.summary_line()}")
    train, valid, test = split_indices(
        len(contents.rolls), seed=split_seed, fractions=tuple(split_fractions)
    )
    fingerprint = _fingerprint(
        {
            "kind": "folder",
            "files": sorted(zip(contents.names, contents.file_hashes, strict=True)),
            "settings": settings.key(),
            "split_seed": split_seed,
            "split_fractions": list(split_fractions),
        }
    )
    rolls = contents.rolls
    chosen = {"train": train, "valid": valid, "test": test}
    left_out = _separate_duplicates(chosen, contents.names, contents.duplicate_of)

    def by_split(values: list) -> dict[str, list]:
        return {split: [values[i] for i in indices] for split, indices in chosen.items()}

    return Dataset(
        name=path.resolve().name,
        train=[rolls[i] for i in train],
        valid=[rolls[i] for i in valid],
        test=[rolls[i] for i in test],
        steps_per_beat=steps_per_beat,
        fingerprint=fingerprint,
        report=report,
        source=str(path),
        onsets=by_split(contents.onsets),
        time_signatures=by_split(contents.time_signatures),
        names=by_split(contents.names),
        duplicates_left_out=left_out,
    )


def _separate_duplicates(
    chosen: dict[str, list[int]], names: list[str], duplicate_of: dict[str, str]
) -> list[str]:
    """Leave out of ``chosen`` (indices by split, edited in place) every duplicate that the
    split put in another split than the first file with its bytes, and return their names.

    The split is drawn over all files first and only then are copies left out, so every other
    file keeps the split it had before duplicates were looked for; copies within one split stay
    (they leak nothing).
    """
    if not duplicate_of:
        return []
    position = {name: index for index, name in enumerate(names)}
    split_of = {index: split for split, indices in chosen.items() for index in indices}
    left_out = []
    for copy, first in duplicate_of.items():
        index = position[copy]
        if split_of[index] != split_of[position[first]]:
            chosen[split_of[index]].remove(index)
            left_out.append(copy)
    return sorted(left_out)
