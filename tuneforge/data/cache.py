"""On-disk cache of parsed MIDI folders, keyed by file content and read settings.

One *pack* per (folder, settings) holds the result of every file it has seen, each entry keyed
by the hash of the file's bytes: a changed file misses, an unchanged one hits, a renamed one
still hits. A pack is two files, written atomically: ``<key>.json`` (the entries: content hash,
report, time signatures, offset into the frames) and ``<key>.npz`` (all rolls and all onsets
concatenated, bit-packed along the pitch axis, loaded with ``allow_pickle=False``). No pickle
is involved, so a cache is safe to load.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tuneforge.data.report import OUTCOMES, USED, FileReport
from tuneforge.errors import ConfigError
from tuneforge.music.pianoroll import NUM_PITCHES
from tuneforge.schema import ANY, ListOf, Obj, OneOf, Range, SchemaError, load_json_text, validate

CACHE_ENV = "TUNEFORGE_CACHE_DIR"
CACHE_FORMAT = 2  # bump when the pack layout or the meaning of a setting changes

_HEX = str
_ENTRY_SCHEMA = Obj(
    required={
        "hash": _HEX,
        "offset": Range(int, 0),
        "length": Range(int, 0),
        "report": Obj(
            required={"path": str, "outcome": str},
            optional={
                "reason": str,
                "detail": str,
                "length_steps": Range(int, 0),
                "duration_s": Range(float, 0),
                "num_notes": Range(int, 0),
                "frames_notes_on": Range(int, 0),
                "lowest_pitch": Range(int, 0, 127),
                "highest_pitch": Range(int, 0, 127),
                "dropped_out_of_range": Range(int, 0),
                "folded_notes": Range(int, 0),
                "dropped_percussion": Range(int, 0),
            },
        ),
    },
    optional={"meter": ListOf(ListOf(Range(int), min_items=3, max_items=3))},
)
INDEX_SCHEMA = Obj(
    required={
        "format": int,
        "settings": str,
        "token": str,
        "entries": ListOf(_ENTRY_SCHEMA),
    },
    optional={"folder": OneOf((str, None)), "extra": ANY},
)


@dataclass(frozen=True)
class ReadSettings:
    """The options of :func:`~tuneforge.music.midi.read_midi` that change its result."""

    steps_per_beat: int = 4
    keep_percussion: bool = False
    fold_octaves: bool = False
    max_steps: int = 100_000

    def validate(self) -> None:
        """Raise ConfigError for a setting no file could be read with."""
        if self.steps_per_beat < 1:
            raise ConfigError(f"steps_per_beat must be >= 1, got {self.steps_per_beat}")
        if self.max_steps < 2:
            raise ConfigError(f"max_steps must be >= 2, got {self.max_steps}")

    def key(self) -> str:
        """A stable text form, part of every cache key; a new tuneforge version is a new key,
        since a newer reader may read the same bytes differently."""
        from tuneforge import __version__

        fields = {"format": CACHE_FORMAT, "version": __version__, **asdict(self)}
        return json.dumps(fields, sort_keys=True)


@dataclass(frozen=True)
class CacheEntry:
    """A cached result: the file's report (path as first seen) and, if it was used, its roll,
    onsets and time signatures."""

    report: FileReport
    roll: np.ndarray | None  # (T, 88) uint8
    onsets: np.ndarray | None = None  # (T, 88) uint8, where notes are struck
    time_signatures: tuple[tuple[int, int, int], ...] = ()  # (step, numerator, denominator)


def content_hash(data: bytes) -> str:
    """The hex digest that identifies a file's content in the cache."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def resolve_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir`` if given, else ``$TUNEFORGE_CACHE_DIR``, else the user's cache directory."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    import platformdirs

    return Path(platformdirs.user_cache_dir("tuneforge"))


def _pack_stem(cache_dir: Path, folder: Path, settings: ReadSettings) -> Path:
    key = hashlib.sha256(f"{folder.resolve()}\n{settings.key()}".encode()).hexdigest()[:32]
    return cache_dir / "folders" / key


def load_pack(cache_dir: Path, folder: Path, settings: ReadSettings) -> dict[str, CacheEntry]:
    """Cached results for ``folder`` under ``settings``, by content hash; {} on a miss.

    A pack that cannot be read (partly written, from another version, edited, truncated) or
    whose index and frames disagree in any way counts as a miss: the cache only ever saves
    work, it never makes a run fail or hands back a roll other than the one it stored.
    """
    stem = _pack_stem(cache_dir, folder, settings)
    try:
        index = load_json_text(stem.with_suffix(".json"))
        validate(index, INDEX_SCHEMA)
        if index["format"] != CACHE_FORMAT or index["settings"] != settings.key():
            return {}
        with (
            open(stem.with_suffix(".npz"), "rb") as file,
            np.load(file, allow_pickle=False) as arrays,
        ):
            bits = arrays["bits"]
            onset_bits = arrays["onset_bits"]
            token = bytes(arrays["token"]).hex()
        if token != index["token"]:  # the two halves come from different writers
            return {}
        packed_width = (NUM_PITCHES + 7) // 8
        if bits.ndim != 2 or bits.shape[1:] != (packed_width,) or bits.shape != onset_bits.shape:
            return {}
        if bits.dtype != np.uint8 or onset_bits.dtype != np.uint8:
            return {}
        return _entries(index["entries"], bits, onset_bits)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, SchemaError):
        return {}


def _entries(items: list, bits: np.ndarray, onset_bits: np.ndarray) -> dict[str, CacheEntry]:
    """The entries of a checked index, or {} when one of them disagrees with the frames: the
    frames are laid out one entry after another, every report agrees with its own rows."""
    frames = np.unpackbits(bits, axis=1, count=NUM_PITCHES)  # (T, 88) over all entries
    strikes = np.unpackbits(onset_bits, axis=1, count=NUM_PITCHES)
    entries: dict[str, CacheEntry] = {}
    expected_offset = 0
    for item in items:
        offset, length = item["offset"], item["length"]
        report = FileReport.from_dict(item["report"])
        if offset != expected_offset or report.outcome not in OUTCOMES:
            return {}
        if (report.outcome == USED) != (length > 0):
            return {}
        roll = frames[offset : offset + length] if length else None
        if roll is not None and (
            roll.shape[0] != length
            or report.length_steps != length
            or report.frames_notes_on != int(np.count_nonzero(roll))
        ):
            return {}
        meter = tuple(tuple(event) for event in item.get("meter", ()))
        entries[item["hash"]] = CacheEntry(
            report, roll, strikes[offset : offset + length] if length else None, meter
        )
        expected_offset += length
    if expected_offset != frames.shape[0]:
        return {}
    return entries


def save_pack(
    cache_dir: Path, folder: Path, settings: ReadSettings, entries: dict[str, CacheEntry]
) -> str | None:
    """Write the pack of ``folder`` (replacing an older one atomically).

    Returns None, or one line saying why the cache could not be written (read-only, full,
    not a folder): the run goes on without it.
    """
    stem = _pack_stem(cache_dir, folder, settings)
    items, rolls, strikes, offset = [], [], [], 0
    for digest, entry in entries.items():
        length = 0 if entry.roll is None else int(entry.roll.shape[0])
        items.append(
            {
                "hash": digest,
                "offset": offset,
                "length": length,
                "report": entry.report.to_dict(),
                "meter": [list(event) for event in entry.time_signatures],
            }
        )
        if length:
            rolls.append(entry.roll)
            strikes.append(entry.roll if entry.onsets is None else entry.onsets)
        offset += length
    empty = np.zeros((0, NUM_PITCHES), dtype=np.uint8)
    frames = np.concatenate(rolls) if rolls else empty
    onsets = np.concatenate(strikes) if strikes else empty
    # A token shared by both halves: two runs writing the same pack at once cannot pair one
    # run's index with the other's frames.
    token = os.urandom(16)
    index = {
        "format": CACHE_FORMAT,
        "settings": settings.key(),
        "folder": str(folder.resolve()),
        "token": token.hex(),
        "entries": items,
    }
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
        # The .npz goes first: a reader finds a new index only once its frames are in place.
        arrays = {
            "bits": np.packbits(frames, axis=1),
            "onset_bits": np.packbits(onsets, axis=1),
            "token": np.frombuffer(token, np.uint8),
        }
        _atomic_write(stem.with_suffix(".npz"), lambda f: np.savez(f, **arrays))
        _atomic_write(stem.with_suffix(".json"), lambda f: f.write(json.dumps(index).encode()))
    except OSError as error:
        return (
            f"the cache in {cache_dir} cannot be written ({error.strerror or error}), so "
            f"nothing was cached; pass --cache-dir or set {CACHE_ENV} to a writable folder"
        )
    return None


def _atomic_write(path: Path, write) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
