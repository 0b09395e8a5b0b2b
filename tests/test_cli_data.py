"""`tuneforge data inspect` through the CLI, as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.midi_factory import write_midi, write_mixed_folder
from tuneforge.cli.app import app
from tuneforge.errors import DataError

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
runner = CliRunner()


def inspect(*args: str):
    return runner.invoke(app, ["data", "inspect", *args], env={"COLUMNS": "200"})


@pytest.fixture
def mixed(tmp_path):
    real = sorted((DATA / "nottingham-midi").glob("*.mid"))[:2]
    expected = write_mixed_folder(tmp_path / "mixed", real)
    return tmp_path / "mixed", expected, tmp_path / "cache"


def test_inspect_a_mixed_folder_reports_every_file_and_exits_0(mixed):
    folder, expected, cache = mixed
    result = inspect(str(folder), "--cache-dir", str(cache), "--workers", "1")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for word in ("files", "pieces", "frames", "duration", "pitch range", "mean polyphony"):
        assert word in out
    assert "failed: not MIDI" in out and "skipped: percussion only" in out
    assert "huge_delta.mid" in out and "SMPTE division" in out
    assert "Preview" in out and "▌" in out and "train" in out


def test_inspect_json_lists_every_file_with_its_reason(mixed):
    folder, expected, cache = mixed
    result = inspect(str(folder), "--json", "--cache-dir", str(cache))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    report = data["report"]
    got = {f["path"]: (f["outcome"], f["reason"]) for f in report["file_reports"]}
    assert got == expected
    assert report["files"] == len(expected) == sum(report["outcomes"].values())
    splits = data["splits"]
    assert sum(s["pieces"] for s in splits.values()) == report["pieces"]
    assert sum(s["frames"] for s in splits.values()) == report["frames"]
    again = json.loads(inspect(str(folder), "--json", "--cache-dir", str(cache)).stdout)
    assert again["report"]["cached_files"] == report["files"] - report["outcomes"]["ignored"]
    assert again["fingerprint"] == data["fingerprint"]


def test_options_reach_the_reader(mixed):
    folder, _, cache = mixed
    args = [
        str(folder),
        "--json",
        "--cache-dir",
        str(cache),
        "--keep-percussion",
        "--fold-octaves",
        "--max-steps",
        "12",
        "--steps-per-beat",
        "2",
    ]
    data = json.loads(inspect(*args).stdout)
    got = {f["path"]: f for f in data["report"]["file_reports"]}
    assert got["drums.mid"]["outcome"] == "used"
    assert got["all_out_of_range.mid"]["outcome"] == "used"
    assert data["steps_per_beat"] == 2 and got["good.mid"]["length_steps"] == 8
    assert got["hanging.mid"]["outcome"] == "used"  # 8 steps at 2 per beat, under 12


def test_inspect_a_benchmark_by_name_and_by_path():
    benchmarks = DATA / "benchmarks"
    if not (benchmarks / "JSB_Chorales.mat").is_file():
        pytest.skip("the benchmark sets are not in ../shared/data/benchmarks")
    result = inspect("jsb", "--data-dir", str(benchmarks))
    assert result.exit_code == 0, result.output
    assert "13,807" in result.stdout and "229" in result.stdout
    data = json.loads(inspect(str(benchmarks / "Piano_midi.mat"), "--json").stdout)
    assert [data["splits"][s]["pieces"] for s in ("train", "valid", "test")] == [87, 12, 25]
    assert data["splits"]["train"]["frames"] == 75_911 and data["report"] is None


def test_errors_are_one_red_line_on_stderr_with_exit_1(tmp_path):
    result = inspect("mozart", "--data-dir", str(tmp_path))
    assert result.exit_code == 1
    assert "error:" in result.stderr and "Traceback" not in result.output
    assert "jsb" in result.stderr and result.stdout == ""
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.mid").write_bytes(b"\x00" * 10)
    write_midi(junk / "b.mid", [(40, 0, 4, 9)])
    result = inspect(str(junk), "--cache-dir", str(tmp_path / "c"))
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "no usable MIDI file" in message and "1 failed: not MIDI" in message
    assert "1 skipped: percussion only" in message


def test_debug_shows_the_exception_and_usage_errors_exit_2(tmp_path):
    result = runner.invoke(
        app, ["--debug", "data", "inspect", "mozart", "--data-dir", str(tmp_path)]
    )
    assert isinstance(result.exception, DataError)
    assert inspect(str(tmp_path), "--steps-per-beat", "0").exit_code == 2
    assert inspect(str(tmp_path), "--workers", "0").exit_code == 2


@pytest.mark.slow
def test_the_nottingham_folder_is_fully_accounted_for(tmp_path):
    folder = DATA / "nottingham-midi"
    if not folder.is_dir():
        pytest.skip("../shared/data/nottingham-midi is absent")
    first = json.loads(inspect(str(folder), "--json", "--cache-dir", str(tmp_path)).stdout)
    report = first["report"]
    assert report["files"] == 1034 == sum(report["outcomes"].values())
    assert report["outcomes"]["used"] == 1034
    second = json.loads(inspect(str(folder), "--json", "--cache-dir", str(tmp_path)).stdout)
    assert second["report"]["cached_files"] == 1034
    assert second["fingerprint"] == first["fingerprint"]
    # jigs283.mid has the bytes of jigs282.mid (valid), so it is left out of train.
    assert [second["splits"][s]["pieces"] for s in ("train", "valid", "test")] == [827, 103, 103]
    assert second["duplicates_left_out"] == ["jigs283.mid"]
    assert len(second["report"]["duplicates"]) == 5
