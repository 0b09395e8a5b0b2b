"""MIDI folders: every file reported with its reason, parallel parsing, the content cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.midi_factory import write_midi, write_mixed_folder
from tuneforge.data.cache import ReadSettings, load_pack
from tuneforge.data.folder import MIN_FILES_FOR_POOL, read_folder, scan_folder
from tuneforge.errors import DataError

NOTTINGHAM = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "nottingham-midi"


def real_files(count: int = 3) -> list[Path]:
    """A few real files of ../shared/data/nottingham-midi, or none if it is absent."""
    return sorted(NOTTINGHAM.glob("*.mid"))[:count] if NOTTINGHAM.is_dir() else []


@pytest.fixture
def mixed(tmp_path) -> tuple[Path, dict[str, tuple[str, str]]]:
    folder = tmp_path / "mixed"
    return folder, write_mixed_folder(folder, real_files())


def outcomes(report) -> dict[str, tuple[str, str]]:
    return {f.path: (f.outcome, f.reason) for f in report.files}


def test_every_file_of_a_mixed_folder_is_reported_with_its_reason(mixed):
    folder, expected = mixed
    contents = read_folder(folder, workers=1)
    report = contents.report
    assert outcomes(report) == expected
    assert all(f.detail and "\n" not in f.detail for f in report.files if f.outcome != "used")
    used = sorted(name for name, (outcome, _) in expected.items() if outcome == "used")
    assert sorted(contents.names) == used and len(contents.rolls) == len(used)
    assert report.num_pieces == len(used)
    assert report.total_frames == sum(r.shape[0] for r in contents.rolls)
    counts = report.outcome_counts
    assert sum(counts.values()) == len(expected) and counts["ignored"] == 2
    assert report.reason_counts["failed: not MIDI"] == 3
    by_path = {f.path: f for f in report.files}
    assert by_path["range.mid"].dropped_out_of_range == 2
    assert by_path["good.mid"].length_steps == 16 and by_path["good.mid"].num_notes == 3
    assert (by_path["good.mid"].lowest_pitch, by_path["good.mid"].highest_pitch) == (60, 67)
    assert by_path["good.mid"].duration_s == pytest.approx(2.0)
    # The note never released ends with its track, 4 beats in.
    assert by_path["hanging.mid"].length_steps == 16 and by_path["hanging.mid"].num_notes == 2
    json.dumps(report.to_dict())  # the whole report is JSON-ready


def test_options_change_the_outcomes(mixed):
    folder, _ = mixed
    kept = outcomes(read_folder(folder, settings=ReadSettings(keep_percussion=True)).report)
    assert kept["drums.mid"] == ("used", "")
    folded = outcomes(read_folder(folder, settings=ReadSettings(fold_octaves=True)).report)
    assert folded["all_out_of_range.mid"] == ("used", "")
    capped = outcomes(read_folder(folder, settings=ReadSettings(max_steps=10)).report)
    assert capped["good.mid"] == ("skipped", "too long")


def test_scan_is_recursive_and_ignores_case(mixed):
    folder, _ = mixed
    midi_files, others = scan_folder(folder)
    assert "nested/deeper/upper.MID" in midi_files and "karaoke.KAR" in midi_files
    assert others == ["nested/cover.jpg", "notes.txt"]


def test_the_process_pool_gives_the_same_result(tmp_path):
    folder = tmp_path / "many"
    for index in range(MIN_FILES_FOR_POOL + 6):
        write_midi(folder / f"{index:03d}.mid", [(40 + index % 40, 0, 4 + index % 7)])
    (folder / "broken.mid").write_bytes(b"MThd")
    seen = []
    pooled = read_folder(folder, workers=2, on_progress=lambda done, total: seen.append(done))
    serial = read_folder(folder, workers=1)
    assert pooled.report.files == serial.report.files
    assert pooled.names == serial.names
    for a, b in zip(pooled.rolls, serial.rolls, strict=True):
        np.testing.assert_array_equal(a, b)
    assert seen[-1] == MIN_FILES_FOR_POOL + 7 and seen == sorted(seen)


def test_the_cache_is_keyed_by_content_and_settings(mixed, tmp_path):
    folder, expected = mixed
    cache = tmp_path / "cache"
    first = read_folder(folder, cache_dir=cache, workers=1)
    num_midi = sum(1 for outcome, _ in expected.values() if outcome != "ignored")
    assert first.report.cached_files == 0
    second = read_folder(folder, cache_dir=cache, workers=1)
    assert second.report.cached_files == num_midi
    assert second.report.files == first.report.files
    for a, b in zip(first.rolls, second.rolls, strict=True):
        np.testing.assert_array_equal(a, b)
    # Change one file: only that one is parsed again, and its new content is what counts.
    write_midi(folder / "good.mid", [(61, 0, 3)])
    third = read_folder(folder, cache_dir=cache, workers=1)
    assert third.report.cached_files == num_midi - 1
    assert {f.path: f for f in third.report.files}["good.mid"].length_steps == 3
    # Other settings are another key.
    other = read_folder(folder, cache_dir=cache, settings=ReadSettings(steps_per_beat=2))
    assert other.report.cached_files == 0
    # Nothing in the cache needs pickle to load.
    stored = sorted(p.suffix for p in cache.rglob("*") if p.is_file())
    assert set(stored) == {".json", ".npz"}
    for npz in cache.rglob("*.npz"):
        with np.load(npz, allow_pickle=False) as arrays:
            assert arrays["bits"].dtype == np.uint8


def test_a_damaged_cache_is_a_miss_not_a_failure(mixed, tmp_path):
    folder, expected = mixed
    cache = tmp_path / "cache"
    read_folder(folder, cache_dir=cache, workers=1)
    for index in cache.rglob("*.json"):
        index.write_text("{not json")
    assert load_pack(cache, folder, ReadSettings()) == {}
    again = read_folder(folder, cache_dir=cache, workers=1)
    assert again.report.cached_files == 0 and outcomes(again.report) == expected
    for npz in cache.rglob("*.npz"):
        npz.write_bytes(b"garbage")
    assert read_folder(folder, cache_dir=cache, workers=1).report.cached_files == 0


def test_missing_or_empty_folders_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        read_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        read_folder(tmp_path / "empty")
