"""The folder cache's two halves (index and frames) carry one token per write: an index paired
with frames from another write is a miss, never another piece's roll."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np

from tuneforge.data.cache import CacheEntry, ReadSettings, load_pack, save_pack
from tuneforge.data.report import FileReport

SETTINGS = ReadSettings()
STEPS = 16


def _entry(pitches: list[int]) -> CacheEntry:
    """A used file whose roll holds ``pitches`` at every step (88 columns from A0)."""
    roll = np.zeros((STEPS, 88), dtype=np.uint8)
    roll[:, pitches] = 1
    report = FileReport(
        path="piece.mid",
        outcome="used",
        length_steps=STEPS,
        duration_s=STEPS / 8,
        num_notes=len(pitches),
        frames_notes_on=int(roll.sum()),
        lowest_pitch=21 + min(pitches),
        highest_pitch=21 + max(pitches),
    )
    return CacheEntry(report, roll, roll.copy(), ((0, 4, 4),))


def _halves(cache_dir: Path) -> tuple[Path, Path]:
    (index,) = cache_dir.rglob("*.json")
    (frames,) = cache_dir.rglob("*.npz")
    return index, frames


def _write(cache_dir: Path, folder: Path, pitches: list[int]) -> tuple[bytes, bytes]:
    """Save one pack; return the bytes of its index and its frames."""
    save_pack(cache_dir, folder, SETTINGS, {"hash0": _entry(pitches)})
    index, frames = _halves(cache_dir)
    return index.read_bytes(), frames.read_bytes()


def _with_token_of(frames: bytes, other: bytes) -> bytes:
    """``frames`` with the token array of ``other`` (everything else unchanged)."""
    with np.load(io.BytesIO(frames), allow_pickle=False) as arrays:
        contents = {name: arrays[name] for name in arrays.files}
    with np.load(io.BytesIO(other), allow_pickle=False) as arrays:
        contents["token"] = arrays["token"]
    buffer = io.BytesIO()
    np.savez(buffer, **contents)
    return buffer.getvalue()


def test_an_index_paired_with_frames_of_another_write_is_a_miss(tmp_path):
    folder, cache_dir = tmp_path / "music", tmp_path / "cache"
    folder.mkdir()
    # Two writes of the same layout (one entry, as many notes): only their contents differ.
    first_index, first_frames = _write(cache_dir, folder, [39, 43, 46])  # C, E, G
    second_index, second_frames = _write(cache_dir, folder, [41, 44, 48])  # D, F, A
    assert first_index != second_index and first_frames != second_frames
    index, frames = _halves(cache_dir)

    loaded = load_pack(cache_dir, folder, SETTINGS)  # the second write, whole: a hit
    assert set(loaded) == {"hash0"}
    assert np.array_equal(loaded["hash0"].roll, _entry([41, 44, 48]).roll)

    frames.write_bytes(first_frames)  # the second index, the first write's frames
    assert load_pack(cache_dir, folder, SETTINGS) == {}
    index.write_bytes(first_index)  # both halves of the first write again: a hit
    assert np.array_equal(load_pack(cache_dir, folder, SETTINGS)["hash0"].roll[0, 39], 1)

    # The token is what tells the halves apart: give the first frames the second token and
    # the mix reads as whole, handing back the first write's chord for the second index.
    index.write_bytes(second_index)
    frames.write_bytes(_with_token_of(first_frames, second_frames))
    mixed = load_pack(cache_dir, folder, SETTINGS)
    assert np.array_equal(mixed["hash0"].roll, _entry([39, 43, 46]).roll)


def test_a_pack_copied_whole_to_another_cache_still_hits(tmp_path):
    folder = tmp_path / "music"
    folder.mkdir()
    _write(tmp_path / "cache", folder, [30, 34])
    shutil.copytree(tmp_path / "cache", tmp_path / "copy")
    loaded = load_pack(tmp_path / "copy", folder, SETTINGS)
    assert np.array_equal(loaded["hash0"].roll, _entry([30, 34]).roll)
    assert loaded["hash0"].time_signatures == ((0, 4, 4),)
