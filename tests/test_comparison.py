"""tuneforge.data.comparison: piece names of a split, the one-line summary, the checks."""

from __future__ import annotations

import numpy as np
import pytest

from tests.midi_factory import write_midi
from tuneforge.data.comparison import (
    NamedRoll,
    compare_to_dataset,
    dataset_piece_names,
    short_summary,
    shortest_bar_steps,
    split_named,
)
from tuneforge.data.dataset import Dataset, load_dataset
from tuneforge.errors import ConfigError
from tuneforge.music.midi import read_midi


@pytest.fixture
def folder_dataset(tmp_path):
    for index in range(10):
        write_midi(tmp_path / "d" / f"t{index}.mid", [(60 + index, 0, 16), (48, 0, 16 + index)])
    return load_dataset(tmp_path / "d", cache_dir=tmp_path / "cache", workers=1), tmp_path / "d"


def test_piece_names_follow_the_split(folder_dataset):
    dataset, folder = folder_dataset
    names = dataset_piece_names(dataset)
    for split, rolls in dataset.splits().items():
        assert len(names[split]) == len(rolls)
        for name, roll in zip(names[split], rolls, strict=True):
            np.testing.assert_array_equal(read_midi(folder / name).roll, roll)


def test_a_benchmark_set_gets_numbered_names():
    roll = np.zeros((8, 88), np.uint8)
    dataset = Dataset("b", [roll, roll], [roll], [], steps_per_beat=1, fingerprint="")
    assert dataset_piece_names(dataset) == {
        "train": ["train #1", "train #2"],
        "valid": ["valid #1"],
        "test": [],
    }


def test_short_summary_names_the_figures_gaps_and_copies(folder_dataset):
    dataset, _ = folder_dataset
    line = short_summary([dataset.train[0]], dataset, steps_per_beat=4)
    assert line.startswith("1 pieces: polyphony 2.00")
    assert "gaps vs d (all)" in line
    assert "copied from train: longest run 1 bars median" in line
    assert "valid vs train" in line
    alone = short_summary([NamedRoll("x", dataset.train[0])], None, steps_per_beat=4)
    assert "copied" not in alone and "(" not in alone


def test_resolutions_must_match(folder_dataset):
    dataset, _ = folder_dataset
    with pytest.raises(ConfigError, match="--steps-per-beat 4"):
        compare_to_dataset([NamedRoll("x", dataset.train[0])], dataset, steps_per_beat=2)
    with pytest.raises(ValueError, match="at least one"):
        compare_to_dataset([], dataset, steps_per_beat=4)


def test_the_data_sets_pieces_bring_their_names_onsets_and_meters(tmp_path):
    # Pieces in 3/4 at 4 steps per beat: a bar is 12 steps, not 16.
    for index in range(10):
        notes = [(60 + index % 3, step, step + 2) for step in range(0, 48, 2)]
        write_midi(tmp_path / "w" / f"waltz{index}.mid", notes, time_signatures=[(0, 3, 4)])
    dataset = load_dataset(tmp_path / "w", cache_dir=tmp_path / "cache", workers=1)
    assert dataset_piece_names(dataset) == dataset.names  # as the data set carries them
    piece = split_named(dataset, "train")[0]
    assert piece.name == dataset.names["train"][0] and piece.time_signatures == ((0, 3, 4),)
    assert piece.onsets is not None
    assert shortest_bar_steps([piece], 4) == 12
    comparison = compare_to_dataset([piece], dataset, steps_per_beat=4, split="train")
    copied = comparison.pieces[0].memorization
    # The piece is in the training split: all of it is copied, in bars of 3/4.
    assert copied.longest.steps_per_bar == 12 and copied.longest_bars == 4.0
    assert copied.bars == copied.copied_bars == 4
    assert copied.longest.corpus_name.startswith("waltz")
    # The repeated notes are 24 onsets in 12 beats in the file (the roll alone would show one
    # held note); the data's figures use the file's.
    assert comparison.reference.onsets_per_beat == pytest.approx(2.0)
