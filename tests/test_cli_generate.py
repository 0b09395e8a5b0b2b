"""`tuneforge generate` and `tuneforge models`, run as a user runs them."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.midi_factory import write_midi
from tests.tiny_models import save_tiny
from tuneforge.cli.app import app
from tuneforge.generate import read_provenance
from tuneforge.music.midi import read_midi
from tuneforge.shipped import PRETRAINED_DIR_ENV

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, list(args))


def test_generate_with_no_model_uses_the_default_and_records_provenance(shipped, tmp_path):
    out = tmp_path / "out"
    result = _run("generate", "--length", "8", "--seed", "5", "--num", "2", "--out", str(out))
    assert result.exit_code == 0, result.output
    midis = sorted(out.glob("*.mid"))
    assert [m.name for m in midis] == ["tuneforge-default-s5-01.mid", "tuneforge-default-s5-02.mid"]
    record = read_provenance(midis[0])
    assert record["model"] == "default" and record["seed"] == 5 and record["temperature"] == 0.8
    assert record["cell"] == "lstm" and len(record["model_sha256"]) == 64
    sidecar = json.loads(midis[0].with_suffix(".json").read_text())
    assert sidecar["model_sha256"] == record["model_sha256"]
    assert sidecar["midi_file"] == midis[0].name and sidecar["length_steps"] == 32
    piece = read_midi(midis[0], steps_per_beat=4)
    assert piece.length_steps <= 32  # trailing silence is not written


def test_same_model_options_and_seed_give_byte_identical_midi(shipped, tmp_path):
    args = ["generate", "--steps", "24", "--seed", "11", "--temp", "1.1", "--max-polyphony", "3"]
    first = _run(*args, "--out", str(tmp_path / "a"))
    second = _run(*args, "--out", str(tmp_path / "b"))
    assert first.exit_code == 0 and second.exit_code == 0
    name = "tuneforge-default-s11-01.mid"
    assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    third = _run(*args[:-1], "4", "--out", str(tmp_path / "c"))  # another polyphony cap
    assert third.exit_code == 0
    assert read_provenance(tmp_path / "c" / name)["options"]["max_polyphony"] == 4


def test_constraints_reach_the_notes(shipped, tmp_path):
    result = _run(
        "generate",
        "--steps", "64", "--seed", "2", "--temp", "1.5",
        "--key", "C major", "--pitch-range", "C4..C5", "--max-silence-beats", "1",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    piece = read_midi(next(tmp_path.glob("*.mid")), steps_per_beat=4)
    pitches = 21 + np.flatnonzero(piece.roll.any(axis=0))
    assert pitches.size and pitches.min() >= 60 and pitches.max() <= 72
    assert set(pitches % 12) <= {0, 2, 4, 5, 7, 9, 11}


def test_a_primer_opens_the_piece(shipped, tmp_path):
    primer = write_midi(tmp_path / "primer.mid", [(60, 0, 8), (64, 8, 16), (67, 16, 32)])
    result = _run(
        "generate", "--primer", str(primer), "--primer-beats", "4", "--steps", "16",
        "--seed", "1", "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    midi = next((tmp_path / "out").glob("*.mid"))
    roll = read_midi(midi, steps_per_beat=4).roll
    assert roll[:8, 39].all() and roll[8:16, 43].all()  # C4 then E4: the first 4 beats
    record = read_provenance(midi)
    assert record["primer"]["file"] == "primer.mid" and record["primer"]["steps"] == 16


def test_render_writes_a_wav_beside_each_midi(shipped, tmp_path):
    result = _run("generate", "--steps", "16", "--seed", "3", "--render", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    midi = next(tmp_path.glob("*.mid"))
    with wave.open(str(midi.with_suffix(".wav"))) as wav:
        duration_s = wav.getnframes() / wav.getframerate()
    # 16 steps at 120 bpm is 2 s at most (trailing silence is not written), plus a 1 s tail.
    assert 1.0 < duration_s <= 3.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--temp", "0"], "temperature must be > 0"),
        (["--temp", "-1"], "temperature must be > 0"),
        (["--length", "4", "--steps", "8"], "not both"),
        (["--primer-beats", "2"], "needs --primer"),
        (["--key", "H major"], "unknown tonic"),
        (["--pitch-range", "60"], "pitch range"),
        (["--model", "no-such-model"], "no shipped model"),
        (["--tempo", "0"], "tempo-bpm must be at least 4"),
    ],
)
def test_bad_options_are_one_line_errors(shipped, tmp_path, args, message):
    length = [] if "--steps" in args else ["--steps", "4"]
    result = _run("generate", *args, *length, "--out", str(tmp_path))
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


def test_models_lists_what_is_shipped(shipped):
    (shipped / "default.card.json").write_text(
        json.dumps({"cell": "lstm", "parameters": 10_000, "data": "tests", "valid_nll": 7.25})
    )
    result = _run("models")
    assert result.exit_code == 0
    assert "default" in result.output and "7.250" in result.output and "10,000" in result.output
    listed = json.loads(_run("models", "--json").output)
    assert listed[0]["name"] == "default" and listed[0]["card"]["valid_nll"] == 7.25


def test_generate_with_the_real_shipped_default_model(tmp_path, monkeypatch):
    monkeypatch.delenv(PRETRAINED_DIR_ENV, raising=False)
    if not (REPO / "pretrained" / "default.safetensors").is_file():
        pytest.skip(
            "pretrained/default.safetensors is not shipped yet (train it with `tuneforge train`)"
        )
    result = _run("generate", "--length", "8", "--seed", "0", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    midi = next(tmp_path.glob("*.mid"))
    assert read_provenance(midi)["model"] == "default"
    assert "default" in _run("models").output


def test_generate_harmonizes_a_melody(shipped, tmp_path):
    tune = write_midi(tmp_path / "tune.mid", [(72, 0, 4), (74, 4, 8), (76, 8, 16)])
    out = tmp_path / "out"
    result = _run("generate", "--melody", str(tune), "--seed", "3", "--num", "2", "--out", str(out))
    assert result.exit_code == 0, result.output
    melody = read_midi(tune, steps_per_beat=4).roll
    for midi in sorted(out.glob("*.mid")):
        roll = read_midi(midi, steps_per_beat=4).roll
        assert len(roll) == len(melody)
        assert (roll[melody.astype(bool)] == 1).all()  # the tune is kept
        top = 76 - 21
        assert not roll[:, top + 1 :].any()  # and nothing plays above it
        assert read_provenance(midi)["melody"]["file"] == "tune.mid"
    both = _run("generate", "--melody", str(tune), "--length", "4", "--out", str(out))
    assert both.exit_code == 1 and "melody sets the length" in both.output


def test_pieces_from_a_run_folder_are_named_after_the_run(tmp_path):
    save_tiny(tmp_path / "runs" / "folk-lstm", "best")
    out = tmp_path / "out"
    result = _run(
        "generate",
        "--model",
        str(tmp_path / "runs" / "folk-lstm"),
        "--steps",
        "8",
        "--seed",
        "1",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert [m.name for m in out.glob("*.mid")] == ["tuneforge-folk-lstm-best-s1-01.mid"]


def test_generate_stats_prints_one_line_against_the_training_data(tmp_path):
    from tests.test_cli_train import write_tiny_mat
    from tests.tiny_models import tiny_model
    from tuneforge.checkpoint import save_checkpoint

    data = write_tiny_mat(tmp_path / "tiny.mat")
    meta = {"steps_per_beat": 1, "data_spec": str(data), "split_seed": 0}
    save_checkpoint(tmp_path / "model", tiny_model(), meta=meta)
    args = ["generate", "--model", str(tmp_path / "model"), "--steps", "24", "--seed", "3"]
    result = _run(*args, "--num", "2", "--stats", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("stats: ")]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("stats: 2 pieces: polyphony")
    assert "gaps vs tiny (all)" in lines[0] and "copied from train: longest run" in lines[0]
    assert "valid vs train" in lines[0]  # the calibration beside it
    plain = _run(*args, "--out", str(tmp_path / "plain"))
    assert plain.exit_code == 0 and "stats: " not in plain.output


def test_generate_stats_says_when_the_model_records_no_data(shipped, tmp_path):
    result = _run("generate", "--steps", "16", "--seed", "1", "--stats", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("stats: "))
    assert "model default records no training data; 1 pieces: polyphony" in line
    assert "copied from train" not in line
