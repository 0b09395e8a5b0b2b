"""load_dataset on MIDI folders: seeded splits by piece, fingerprints, errors, the cache."""

from __future__ import annotations

import numpy as np
import pytest

from tests.midi_factory import write_midi, write_mixed_folder
from tuneforge.data.dataset import load_dataset, split_indices
from tuneforge.errors import ConfigError, DataError


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "tunes"
    for index in range(20):
        write_midi(root / f"tune{index:02d}.mid", [(50 + index, 0, 4 + index), (70, 0, 2)])
    return root


def test_split_indices_are_seeded_disjoint_and_80_10_10():
    train, valid, test = split_indices(100, seed=3)
    assert (len(train), len(valid), len(test)) == (80, 10, 10)
    assert sorted(train + valid + test) == list(range(100))
    assert split_indices(100, seed=3) == (train, valid, test)
    assert split_indices(100, seed=4) != (train, valid, test)
    assert split_indices(1) == ([0], [], [])
    assert [len(s) for s in split_indices(3)] == [3, 0, 0]
    assert [len(s) for s in split_indices(2, fractions=(0, 1, 1))] == [1, 0, 1]  # train keeps one
    assert [len(s) for s in split_indices(10, fractions=(0.5, 0.5, 0))] == [5, 5, 0]
    with pytest.raises(ConfigError):
        split_indices(10, fractions=(1.0, -0.5, 0.5))


def test_a_folder_is_split_by_piece_deterministically(folder, tmp_path):
    cache = tmp_path / "cache"
    first = load_dataset(folder, cache_dir=cache, split_seed=1, workers=1)
    assert (len(first.train), len(first.valid), len(first.test)) == (16, 2, 2)
    assert first.steps_per_beat == 4 and first.name == "tunes" and first.report.num_pieces == 20
    lengths = sorted(r.shape[0] for r in first.train + first.valid + first.test)
    assert lengths == sorted(4 + i for i in range(20))  # every piece once, none cut or repeated
    again = load_dataset(folder, cache_dir=cache, split_seed=1, workers=1)
    assert again.report.cached_files == 20 and again.fingerprint == first.fingerprint
    for a, b in zip(first.test, again.test, strict=True):
        np.testing.assert_array_equal(a, b)
    other_seed = load_dataset(folder, cache_dir=cache, split_seed=2, workers=1)
    assert other_seed.fingerprint != first.fingerprint
    assert [r.shape[0] for r in other_seed.test] != [r.shape[0] for r in first.test]
    other_steps = load_dataset(folder, cache_dir=cache, steps_per_beat=2, workers=1)
    assert other_steps.steps_per_beat == 2 and other_steps.fingerprint != first.fingerprint
    assert sum(r.shape[0] for r in other_steps.train + other_steps.valid + other_steps.test) < sum(
        lengths
    )


def test_the_fingerprint_follows_the_content(folder, tmp_path):
    before = load_dataset(folder, cache_dir=tmp_path / "c", workers=1).fingerprint
    write_midi(folder / "tune00.mid", [(51, 0, 4), (70, 0, 2)])
    assert load_dataset(folder, cache_dir=tmp_path / "c", workers=1).fingerprint != before


def test_the_cache_dir_comes_from_the_environment(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEFORGE_CACHE_DIR", str(tmp_path / "env-cache"))
    load_dataset(folder, workers=1)
    assert list((tmp_path / "env-cache").rglob("*.npz"))
    assert load_dataset(folder, workers=1).report.cached_files == 20


def test_progress_is_reported_through_the_callback(folder, tmp_path):
    calls: list[tuple[int, int]] = []

    def on_progress(done: int, total: int) -> None:
        calls.append((done, total))

    load_dataset(folder, cache_dir=tmp_path / "c", workers=1, on_progress=on_progress)
    assert calls[0] == (0, 20) and calls[-1] == (20, 20) and len(calls) == 21


def test_a_mixed_folder_loads_its_usable_files(tmp_path):
    expected = write_mixed_folder(tmp_path / "mixed")
    dataset = load_dataset(tmp_path / "mixed", cache_dir=tmp_path / "c", workers=1)
    num_used = sum(1 for outcome, _ in expected.values() if outcome == "used")
    assert len(dataset.train) + len(dataset.valid) + len(dataset.test) == num_used
    assert len(dataset.report.files) == len(expected)


def test_a_folder_without_a_usable_file_names_the_folder_and_the_reasons(tmp_path):
    root = tmp_path / "junk"
    root.mkdir()
    (root / "a.mid").write_bytes(b"")
    (root / "b.mid").write_bytes(b"hello")
    write_midi(root / "c.mid", [(36, 0, 2, 9)])
    (root / "d.txt").write_text("x")
    with pytest.raises(DataError) as caught:
        load_dataset(root, cache_dir=tmp_path / "c", workers=1)
    message = str(caught.value)
    assert str(root) in message and "\n" not in message
    assert "2 failed: not MIDI" in message and "1 skipped: percussion only" in message
    assert "1 ignored: not a MIDI file name" in message


def test_paths_that_do_not_exist_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="neither an existing folder or file"):
        load_dataset(tmp_path / "missing", data_dir=tmp_path)
