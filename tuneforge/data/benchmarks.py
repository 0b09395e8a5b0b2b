"""The four polyphonic music benchmarks of Boulanger-Lewandowski et al. (ICML 2012).

Two forms of the same data are read: the MATLAB files of the TCN benchmark (``traindata``,
``validdata``, ``testdata``: 1 x N object arrays of (T, 88) rolls) and the original pickles
(a dict ``train``/``valid``/``test`` of pieces, each a list of steps, each a list of the MIDI
pitches sounding). The pickles are read with an unpickler that refuses every class or function,
so a hostile file cannot run code: only lists, tuples, dicts, numbers and strings load.

Steps per beat: JSB chorales are sampled once per quarter note (documented with the set). For
Nottingham, MuseData and Piano-midi.de the sampling step is not stored in the files; we use 2
(an eighth note), the resolution the sets are usually described with. It only matters when a
roll is turned back into MIDI (it sets the playing speed), never for training or scores.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tuneforge.errors import DataError
from tuneforge.music.pianoroll import LOWEST_PITCH, NUM_PITCHES

SPLITS = ("train", "valid", "test")
MAX_PICKLE_BYTES = 256 * 1024 * 1024  # the original pickles are 1..30 MB
MAX_MAT_EXPANDED_BYTES = 2 * 1024**3  # MuseData.mat (0.9 MB) holds about 0.2 GB of arrays
_MAT_COMPRESSED = 15  # miCOMPRESSED, a zlib-compressed element of a MATLAB 5 file


@dataclass(frozen=True)
class BenchmarkInfo:
    """One benchmark set: its short name, file names and time resolution."""

    name: str  # short name used on the command line
    title: str
    mat_file: str
    pickle_file: str
    steps_per_beat: int
    aliases: tuple[str, ...] = ()


BENCHMARKS: dict[str, BenchmarkInfo] = {
    info.name: info
    for info in (
        BenchmarkInfo(
            "jsb",
            "JSB Chorales",
            "JSB_Chorales.mat",
            "JSB Chorales.pickle",
            1,
            ("jsb-chorales", "jsb_chorales"),
        ),
        BenchmarkInfo("nottingham", "Nottingham", "Nottingham.mat", "Nottingham.pickle", 2),
        BenchmarkInfo(
            "musedata", "MuseData", "MuseData.mat", "MuseData.pickle", 2, ("muse-data", "muse_data")
        ),
        BenchmarkInfo(
            "piano-midi",
            "Piano-midi.de",
            "Piano_midi.mat",
            "Piano-midi.de.pickle",
            2,
            ("piano_midi", "pianomidi", "piano-midi.de"),
        ),
    )
}


def benchmark_by_name(name: str) -> BenchmarkInfo | None:
    """The set called ``name`` (case-insensitive, aliases accepted), or None."""
    key = name.strip().lower()
    for info in BENCHMARKS.values():
        if key == info.name or key in info.aliases:
            return info
    return None


def benchmark_by_file(path: Path) -> BenchmarkInfo | None:
    """The set whose .mat or .pickle file name is ``path.name``, or None."""
    for info in BENCHMARKS.values():
        if path.name.lower() in (info.mat_file.lower(), info.pickle_file.lower()):
            return info
    return None


class _PlainDataUnpickler(pickle.Unpickler):
    """An unpickler that loads plain containers only; any class or function is refused."""

    def find_class(self, module: str, name: str):
        raise DataError(
            f"the pickle refers to {module}.{name}; only plain lists of pitches can be loaded"
        )


def _pitch_lists_to_roll(steps, where: str) -> np.ndarray:
    """A list of steps (each an iterable of MIDI pitches) as a (T, 88) uint8 roll."""
    roll = np.zeros((len(steps), NUM_PITCHES), dtype=np.uint8)
    for step, pitches in enumerate(steps):
        for pitch in pitches:
            column = int(pitch) - LOWEST_PITCH
            if not 0 <= column < NUM_PITCHES:
                raise DataError(f"{where}: pitch {pitch} at step {step} is outside 21..108")
            roll[step, column] = 1
    return roll


def _check_unshared(data: dict, path: Path) -> None:
    """Refuse a pickle that reuses one list in several places: its memo lets a few kilobytes
    stand for billions of steps (a list of a list of a list, each a thousand times), which
    would fill memory and take hours to turn into rolls. Without sharing, what is loaded is
    as large as the file. Empty containers cost nothing and are allowed to repeat."""
    seen: set[int] = set()
    pending = [data[split] for split in SPLITS]
    while pending:
        value = pending.pop()
        if not isinstance(value, list | tuple) or not value:
            continue
        if id(value) in seen:
            raise DataError(
                f"{path} reuses one list in several places (a pickle of shared references, "
                "which can expand without bound); only plain lists of pitches are read"
            )
        seen.add(id(value))
        pending.extend(item for item in value if isinstance(item, list | tuple))


def _load_pickle(path: Path) -> dict[str, list[np.ndarray]]:
    size = path.stat().st_size
    if size > MAX_PICKLE_BYTES:
        raise DataError(f"{path} has {size:,} bytes, more than a benchmark pickle may have")
    try:
        # latin1: the original files were written by Python 2, whose str is bytes.
        data = _PlainDataUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except DataError:
        raise
    except Exception as error:  # a broken pickle can raise nearly anything
        raise DataError(f"{path} is not a readable benchmark pickle: {error}") from error
    if not isinstance(data, dict) or not all(split in data for split in SPLITS):
        raise DataError(f"{path} must hold a dict with keys train, valid and test")
    _check_unshared(data, path)
    return {
        split: [
            _pitch_lists_to_roll(piece, f"{path.name} {split}[{index}]")
            for index, piece in enumerate(data[split])
        ]
        for split in SPLITS
    }


def _mat_expanded_bytes(path: Path, limit: int) -> int:
    """What the top-level elements of a MATLAB 5 file hold once decompressed, counted by
    streaming through each compressed element; stops counting past ``limit``. A file it cannot
    walk (another version, a damaged header) counts its own size: scipy then judges it."""
    data = path.read_bytes()
    if len(data) < 128 or data[126:128] not in (b"IM", b"MI"):
        return len(data)
    order = "<" if data[126:128] == b"IM" else ">"
    total, offset = 0, 128
    while offset + 8 <= len(data) and total <= limit:
        kind, size = struct.unpack_from(order + "II", data, offset)
        if kind >> 16:  # a small element: its data sits in the tag
            offset += 8
            continue
        body = data[offset + 8 : offset + 8 + size]
        if kind == _MAT_COMPRESSED:
            inflate = zlib.decompressobj()
            try:
                while body and total <= limit:
                    total += len(inflate.decompress(body, 1 << 24))
                    body = inflate.unconsumed_tail
            except zlib.error:
                return total + len(data)  # damaged: scipy reports it
            offset += 8 + size
        else:
            total += size
            offset += 8 + size + (-size % 8)
    return total


def _load_mat(path: Path) -> dict[str, list[np.ndarray]]:
    import scipy.io

    expanded = _mat_expanded_bytes(path, MAX_MAT_EXPANDED_BYTES)
    if expanded > MAX_MAT_EXPANDED_BYTES:
        raise DataError(
            f"{path} would expand to more than {MAX_MAT_EXPANDED_BYTES:,} bytes of arrays "
            "(a compression bomb, or not a benchmark set); it is not read"
        )
    try:
        data = scipy.io.loadmat(path)
    except Exception as error:  # scipy raises ValueError, TypeError, OSError... on bad files
        raise DataError(f"{path} is not a readable MATLAB file: {error}") from error
    splits: dict[str, list[np.ndarray]] = {}
    for split in SPLITS:
        key = f"{split}data"
        if key not in data:
            raise DataError(f"{path} has no '{key}' array; expected traindata/validdata/testdata")
        pieces = []
        for index, piece in enumerate(np.asarray(data[key]).ravel()):
            piece = np.asarray(piece)
            if piece.ndim != 2 or piece.shape[1] != NUM_PITCHES:
                raise DataError(
                    f"{path.name} {key}[{index}] has shape {piece.shape}; expected (T, 88)"
                )
            pieces.append((piece != 0).astype(np.uint8))
        splits[split] = pieces
    return splits


def load_benchmark(path: str | Path) -> dict[str, list[np.ndarray]]:
    """Read a benchmark file (.mat or .pickle) into its own train/valid/test rolls.

    Returns a dict ``{"train": [...], "valid": [...], "test": [...]}`` of (T, 88) uint8 rolls.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"benchmark file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".mat":
        return _load_mat(path)
    if suffix in (".pickle", ".pkl"):
        return _load_pickle(path)
    raise DataError(f"{path} is neither a .mat nor a .pickle benchmark file")


def file_digest(path: Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()
