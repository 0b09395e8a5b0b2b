"""The four benchmark sets: piece and frame counts of ../shared/data/README.md, both forms."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from tuneforge.data.benchmarks import benchmark_by_name, load_benchmark
from tuneforge.data.dataset import load_dataset
from tuneforge.errors import DataError

BENCHMARK_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "benchmarks"

# From ../shared/data/README.md: train / valid / test pieces, train frames.
EXPECTED = {
    "jsb": ("JSB_Chorales.mat", (229, 76, 77), 13_807, 1),
    "nottingham": ("Nottingham.mat", (694, 173, 170), 176_561, 2),
    "musedata": ("MuseData.mat", (524, 135, 124), 245_202, 2),
    "piano-midi": ("Piano_midi.mat", (87, 12, 25), 75_911, 2),
}


@pytest.fixture(scope="module")
def benchmark_dir() -> Path:
    if not (BENCHMARK_DIR / "JSB_Chorales.mat").is_file():
        pytest.skip("the benchmark sets are not in ../shared/data/benchmarks")
    return BENCHMARK_DIR


@pytest.mark.parametrize("name", EXPECTED)
def test_mat_sets_have_the_documented_counts(benchmark_dir, name):
    file_name, pieces, train_frames, steps_per_beat = EXPECTED[name]
    by_name = load_dataset(name, data_dir=benchmark_dir)
    by_path = load_dataset(benchmark_dir / file_name)
    for dataset in (by_name, by_path):
        assert (len(dataset.train), len(dataset.valid), len(dataset.test)) == pieces
        assert sum(r.shape[0] for r in dataset.train) == train_frames
        assert dataset.steps_per_beat == steps_per_beat and dataset.report is None
        assert all(r.dtype == np.uint8 and r.shape[1] == 88 for r in dataset.train)
    assert by_name.fingerprint == by_path.fingerprint and len(by_name.fingerprint) == 64


def test_jsb_mean_polyphony_matches_the_readme(benchmark_dir):
    train = load_benchmark(benchmark_dir / "JSB_Chorales.mat")["train"]
    frames = sum(r.shape[0] for r in train)
    assert sum(int(r.sum()) for r in train) / frames == pytest.approx(3.9, abs=0.05)


def test_the_pickle_form_gives_the_same_rolls(benchmark_dir, tmp_path):
    splits = load_benchmark(benchmark_dir / "JSB_Chorales.mat")
    # The original pickles: {split: [piece: [step: [MIDI pitches]]]}, written by Python 2.
    as_lists = {
        split: [[[int(c) + 21 for c in np.flatnonzero(frame)] for frame in roll] for roll in rolls]
        for split, rolls in splits.items()
    }
    (tmp_path / "JSB Chorales.pickle").write_bytes(pickle.dumps(as_lists, protocol=2))
    from_pickle = load_dataset("jsb", data_dir=tmp_path)
    assert from_pickle.steps_per_beat == 1
    for split in ("train", "valid", "test"):
        loaded = from_pickle.splits()[split]
        assert len(loaded) == len(splits[split])
        for a, b in zip(loaded, splits[split], strict=True):
            np.testing.assert_array_equal(a, b)


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("should never run",))

    (tmp_path / "Nottingham.pickle").write_bytes(pickle.dumps({"train": [Payload()]}))
    with pytest.raises(DataError, match="only plain lists"):
        load_dataset("nottingham", data_dir=tmp_path)


def test_broken_benchmark_files_are_data_errors(tmp_path):
    (tmp_path / "MuseData.mat").write_bytes(b"not a matlab file")
    with pytest.raises(DataError, match="MATLAB"):
        load_dataset("musedata", data_dir=tmp_path)
    (tmp_path / "x.pickle").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(DataError, match="train, valid and test"):
        load_dataset(tmp_path / "x.pickle")


def test_names_and_aliases():
    assert benchmark_by_name("JSB").name == "jsb"
    assert benchmark_by_name("Piano_Midi").name == "piano-midi"
    assert benchmark_by_name("mozart") is None


def test_unknown_or_missing_sets_say_where_to_look(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="benchmark name"):
        load_dataset("mozart", data_dir=tmp_path)
    with pytest.raises(DataError, match="--data-dir or TUNEFORGE_DATA_DIR"):
        load_dataset("jsb", data_dir=tmp_path)
    monkeypatch.setenv("TUNEFORGE_DATA_DIR", str(tmp_path / "env"))
    with pytest.raises(DataError, match="env"):
        load_dataset("piano-midi")


GPU_CHECK = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def _gpu_check_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", GPU_CHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_runs_every_part_on_the_cpu(tmp_path):
    """The GPU check's smoke run: training (both precisions), sampling, DDP, agreement, speed."""
    import json
    import os
    import subprocess
    import sys

    out = tmp_path / "check.json"
    # No time cap on a run: a loaded machine must not cut the two steps short.
    command = [sys.executable, str(GPU_CHECK), "--device", "cpu", "--steps", "2"]
    command += ["--run-seconds", "1000"]
    command += ["--cells", "lstm", "diag-gru", "--json", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    report = json.loads(out.read_text())
    trained = {(row["model"], row["amp"]) for row in report["train"]}
    models = ("lstm", "diag-gru", "biaxial", "note-axis")
    assert trained == {(model, amp) for model in models for amp in (False, True)}
    assert all(row["steps"] == 2 and row["problem"] is None for row in report["train"])
    assert {row["model"] for row in report["sample"]} == {"lstm", "biaxial", "note-axis"}
    assert report["ddp"]["backend"] == "gloo" and report["ddp"]["problem"] is None
    assert [row["cell"] for row in report["agree"]] == ["lstm", "diag-gru"]
    assert [row["cell"] for row in report["speed"]] == ["nn.LSTM", "lstm", "diag-gru"]
    assert report["speed"][0]["fp32_ratio_to_nn_lstm"] == 1.0
    assert report["problems"] == []
    assert "training throughput on cpu" in finished.stdout


def test_gpu_check_without_cuda_says_what_to_do(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    status = _gpu_check_module().main(["--device", "cuda", "--json", str(tmp_path / "x.json")])
    assert status == 2
    message = capsys.readouterr().err
    assert "no CUDA device here" in message and "--device cpu" in message
    assert "Traceback" not in message and len(message.strip().splitlines()) == 1
    assert not (tmp_path / "x.json").exists()
