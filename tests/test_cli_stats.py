"""`tuneforge stats` through the CLI, on tiny MIDI files built for each test."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.midi_factory import write_midi, write_mixed_folder
from tuneforge.cli.app import app
from tuneforge.data.dataset import split_indices

runner = CliRunner()
BAR = 16  # steps of a 4/4 bar at 4 steps per beat


def stats(*args: str, columns: int = 200):
    return runner.invoke(app, ["stats", *args], env={"COLUMNS": str(columns)})


def tune(index: int, bars: int = 4) -> list[tuple[int, int, int]]:
    """A different melody over a held chord for every index: no two tunes share a bar."""
    notes = []
    for bar in range(bars):
        notes.append((48 + index % 5, bar * BAR, bar * BAR + BAR))
        for beat in range(4):
            start = bar * BAR + beat * 4
            notes.append((60 + (index * 7 + bar * 3 + beat) % 24, start, start + 2))
    return notes


@pytest.fixture
def data_folder(tmp_path):
    """12 tunes: 10 in train, one in valid and one in test (split seed 0)."""
    folder = tmp_path / "data"
    for index in range(12):
        write_midi(folder / f"tune{index:02d}.mid", tune(index))
    return folder


def test_table_of_one_file(tmp_path):
    path = write_midi(tmp_path / "chord.mid", [(60, 0, 8), (64, 0, 8)])
    result = stats(str(path), "--cache-dir", str(tmp_path / "cache"))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "chord.mid" in out and "Pieces" in out and "polyphony" in out
    assert "2.00" in out  # two notes on every sounding frame
    assert "relative gap" not in out and "Calibration" not in out


def test_json_is_one_document_with_the_figures(tmp_path):
    path = write_midi(tmp_path / "chord.mid", [(60, 0, 8), (64, 0, 8)])
    result = stats(str(path), "--json", "--cache-dir", str(tmp_path / "cache"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    figures = data["pieces"][0]["figures"]
    assert figures["polyphony"] == 2.0 and figures["onsets_per_beat"] == pytest.approx(2 / 2)
    assert figures["onset_position_shares"] == [1.0, 0.0, 0.0, 0.0]
    assert data["total"]["figures"]["polyphony"] == 2.0
    assert data["reference"] is None and data["memorization"] is None
    assert data["files"]["pieces"] == 1


def test_against_a_folder_shows_gaps_and_finds_a_copied_training_tune(tmp_path, data_folder):
    train, _, _ = split_indices(12, seed=0)
    copied = train[3]
    query = write_midi(tmp_path / "q" / "copy.mid", tune(copied))
    fresh = write_midi(tmp_path / "q" / "fresh.mid", [(90, 0, 64)])
    args = [str(query), str(fresh), "--against", str(data_folder), "--cache-dir"]
    args += [str(tmp_path / "cache"), "--workers", "1"]
    result = stats(*args)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "relative gap" in out and "data (all)" in out
    assert f"tune{copied:02d}.mid bar 1" in out
    assert "Copied from the training split" in out and "Calibration, valid vs train" in out

    data = json.loads(stats(*args, "--json", "--split", "train").stdout)
    first, second = data["pieces"]
    assert first["memorization"]["longest_bars"] == 4.0
    assert first["memorization"]["longest"]["corpus_name"] == f"tune{copied:02d}.mid"
    assert first["memorization"]["copied_bar_share"] == 1.0
    assert second["memorization"]["longest"] is None
    assert data["memorization"]["max_longest_bars"] == 4.0
    assert data["memorization"]["median_longest_bars"] == 2.0
    assert data["calibration"]["pieces"] == 1 and data["calibration"]["max_longest_bars"] == 0
    assert data["reference_label"] == "data (train)"
    assert data["reference"]["counts"]["pieces"] == 10
    gaps = data["gaps"]
    mine = data["total"]["figures"]["polyphony"]
    theirs = data["reference"]["figures"]["polyphony"]
    assert gaps["polyphony"] == pytest.approx((mine - theirs) / theirs)


def test_broken_files_are_skipped_and_reported(tmp_path):
    expected = write_mixed_folder(tmp_path / "mixed")
    broken = tmp_path / "broken.mid"
    broken.write_bytes(b"not MIDI at all")
    args = [str(tmp_path / "mixed"), str(broken), "--cache-dir", str(tmp_path / "cache")]
    result = stats(*args, "--workers", "1")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Files not used" in out and "failed: not MIDI" in out
    assert "skipped: percussion only" in out and "broken.mid" in out
    data = json.loads(stats(*args, "--json").stdout)
    reports = {f["path"]: f["outcome"] for f in data["files"]["file_reports"]}
    assert reports[str(broken)] == "failed"
    assert reports[str(tmp_path / "mixed" / "random.mid")] == "failed"
    used = sum(1 for outcome, _ in expected.values() if outcome == "used")
    assert len(data["pieces"]) == used


def test_nothing_usable_is_one_error(tmp_path):
    broken = tmp_path / "broken.mid"
    broken.write_bytes(b"")
    result = stats(str(broken), "--cache-dir", str(tmp_path / "cache"))
    assert result.exit_code == 1
    assert "no usable MIDI file" in result.stderr


def test_long_paths_are_folded_never_cut(tmp_path, data_folder):
    name = "a-rather-long-file-name-" + "x" * 60 + ".mid"
    path = write_midi(tmp_path / name, [(60, 0, 8)])
    args = [str(path), "--against", str(data_folder), "--cache-dir", str(tmp_path / "cache")]
    result = stats(*args, columns=80)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "…" not in result.stdout
    tables = [line for line in lines if line[:1] in "┏┃┡│└"]
    # A table wider than the terminal is cropped: its lines lose their right border.
    assert tables and all(len(line) <= 80 and line[-1] in "┓┃┩│┘" for line in tables)
    assert "x" * 20 in "".join(line.split("│")[1] for line in tables if line.startswith("│"))


def test_the_json_beside_each_generated_piece_is_counted_not_listed(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    for index in range(2):
        write_midi(folder / f"piece-{index}.mid", tune(index))
        (folder / f"piece-{index}.json").write_text("{}")
    broken = folder / "broken.mid"
    broken.write_bytes(b"not midi")
    result = stats(str(folder))
    assert result.exit_code == 0, result.output
    assert "ignored: not a MIDI file name" in result.output
    assert "piece-0.json" not in result.output and "piece-1.json" not in result.output
    assert "broken.mid" in result.output  # a file that failed is still listed by name
