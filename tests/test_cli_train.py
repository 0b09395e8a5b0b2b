"""`tuneforge train` and `tuneforge evaluate` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from typer.testing import CliRunner

from tuneforge.checkpoint import load_checkpoint
from tuneforge.cli.app import app
from tuneforge.cli.dashboard import Dashboard, sparkline
from tuneforge.models.budget import count_model_parameters
from tuneforge.models.sequence import ModelConfig, SequenceModel

runner = CliRunner()
DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
# Small, fast settings shared by the CLI tests (one CPU thread: the test machine is shared).
FAST = ["--hidden-size", "12", "--batch-size", "4", "--window", "16", "--threads", "1"]


def write_tiny_mat(path: Path, seed: int = 0, counts=(12, 3, 3)) -> Path:
    """A benchmark-format .mat file (traindata/validdata/testdata) of arpeggio pieces."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split, count in zip(("traindata", "validdata", "testdata"), counts, strict=True):
        pieces = np.empty((1, count), dtype=object)
        for index in range(count):
            length = int(rng.integers(20, 50))
            root = int(rng.integers(20, 50))
            roll = np.zeros((length, 88))
            for step in range(length):
                roll[step, root + (0, 4, 7, 12)[step % 4]] = 1
                roll[step, root - 12] = 1
            pieces[0, index] = roll
        splits[split] = pieces
    scipy.io.savemat(path, splits)
    return path


def test_train_then_evaluate_a_benchmark_file(tmp_path):
    data = write_tiny_mat(tmp_path / "tiny.mat")
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(data), "--out", str(out), "--epochs", "2", *FAST])
    assert result.exit_code == 0, result.output
    assert "epoch 2/2" in result.output  # not a terminal: plain log lines
    assert "training summary" in result.output and "test NLL" in result.output
    for name in ("config.json", "metrics.jsonl", "curves.png", "best.json", "last.json"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert (
        config["model_config"]["hidden_size"] == 12 and config["model_config"]["kind"] == "sequence"
    )
    assert config["model_config"]["cell"] == "lstm"

    evaluated = runner.invoke(app, ["evaluate", str(out), str(data), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.output)
    assert report["split"] == "test" and report["frames"] > 0
    assert report["scored_frames"].startswith("frames 2..T")
    assert report["fingerprint_matches"] is True
    assert 0.0 < report["nll"] < 88 * np.log(2) * 1.5
    assert 0.0 <= report["frame_accuracy"] <= 1.0
    best = load_checkpoint(out)
    assert best.meta["metrics"]["valid_nll"] == pytest.approx(
        json.loads(
            runner.invoke(
                app, ["evaluate", str(out), str(data), "--split", "valid", "--json"]
            ).output
        )["nll"],
        rel=1e-5,
    )
    table = runner.invoke(app, ["evaluate", str(out / "last.safetensors"), str(data)])
    assert table.exit_code == 0 and "frame accuracy" in table.output
    assert "protocol tcn" in table.output
    windows = runner.invoke(app, ["evaluate", str(out), str(data), "--protocol", "rru"])
    assert windows.exit_code == 0, windows.output
    assert "protocol rru" in windows.output and "windows" in windows.output


def test_params_picks_the_hidden_size_and_quiet_prints_one_line(tmp_path):
    data = write_tiny_mat(tmp_path / "tiny.mat")
    out = tmp_path / "run"
    args = ["train", str(data), "--out", str(out), "--epochs", "1", "--params", "20000", "-q"]
    result = runner.invoke(app, [*args, "--cell", "gru", "--threads", "1", "--window", "16"])
    assert result.exit_code == 0, result.output
    assert result.output.count("\n") == 1 and "best valid NLL" in result.output
    config = json.loads((out / "config.json").read_text())["model_config"]
    assert config["cell"] == "gru"
    count = [
        count_model_parameters(ModelConfig(cell="gru", hidden_size=size))
        for size in (config["hidden_size"], config["hidden_size"] + 1)
    ]
    assert count[0] <= 20000 < count[1]


def test_cell_options_pass_through(tmp_path):
    data = write_tiny_mat(tmp_path / "tiny.mat")
    out = tmp_path / "run"
    args = ["train", str(data), "--out", str(out), "--epochs", "1", "-q", *FAST]
    result = runner.invoke(app, [*args, "--cell-option", "forget_bias=2.5"])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(out).config.cell_options == {"forget_bias": 2.5}


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--cell", "no-such-cell"], "unknown cell"),
        (["--hidden-size", "8", "--params", "1000"], "not both"),
        (["--cell-option", "nonsense"], "KEY=VALUE"),
        (["--cell-option", "wings=2"], "no option wings"),
        (["--lr", "0"], "--lr"),
    ],
)
def test_bad_options_are_one_red_line(tmp_path, extra, message):
    data = write_tiny_mat(tmp_path / "tiny.mat")
    result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "r"), *extra])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


def test_missing_data_and_checkpoint_are_clear_errors(tmp_path):
    result = runner.invoke(app, ["train", str(tmp_path / "nowhere"), "--out", str(tmp_path)])
    assert result.exit_code == 1 and "error" in result.output
    data = write_tiny_mat(tmp_path / "tiny.mat")
    result = runner.invoke(app, ["evaluate", str(tmp_path / "nothing"), str(data)])
    assert result.exit_code == 1 and "no checkpoint" in result.output


def test_resume_on_the_command_line_extends_a_run(tmp_path):
    data = write_tiny_mat(tmp_path / "tiny.mat")
    out = tmp_path / "run"
    first = runner.invoke(app, ["train", str(data), "--out", str(out), "--epochs", "1", *FAST])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["train", str(data), "--out", str(out), "--epochs", "1", *FAST])
    assert again.exit_code == 1 and "--resume" in again.output
    resumed = runner.invoke(
        app, ["train", str(data), "--out", str(out), "--resume", "--epochs", "2"]
    )
    assert resumed.exit_code == 0, resumed.output
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert json.loads((out / "config.json").read_text())["model_config"]["hidden_size"] == 12


def test_nottingham_folder_trains_with_lstm_variant(tmp_path, monkeypatch):
    folder = DATA / "nottingham-midi"
    if not folder.is_dir():
        pytest.skip("../shared/data/nottingham-midi is not present")
    # Ten real files keep the test fast; the acceptance run uses the whole folder.
    subset = tmp_path / "midi"
    subset.mkdir()
    for source in sorted(folder.glob("*.mid"))[:10]:
        (subset / source.name).write_bytes(source.read_bytes())
    monkeypatch.setenv("TUNEFORGE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "run"
    args = ["train", str(subset), "--cell", "lstm-variant", "--epochs", "1", "--out", str(out)]
    result = runner.invoke(app, [*args, *FAST])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(out).config.cell == "lstm-variant"
    evaluated = runner.invoke(app, ["evaluate", str(out), str(subset), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.output)["frames"] > 0


def test_dashboard_renders_every_figure(tmp_path):
    from rich.console import Console

    from tests.test_train import tiny_dataset
    from tuneforge.train import TrainConfig, train

    console = Console(record=True, width=100, force_terminal=True)
    dashboard = Dashboard(console)
    config = TrainConfig(epochs=2, batch_size=4, window_steps=16, device="cpu", threads=1)
    model = SequenceModel(ModelConfig(hidden_size=8))
    train(config, tiny_dataset(), model=model, run_dir=tmp_path, callbacks=dashboard)
    console.print(dashboard.render())
    text = console.export_text()
    for label in (
        "train loss",
        "valid NLL",
        "frames/s",
        "ETA",
        "lr",
        "grad norm",
        "epoch time",
        "parameters",
        "device cpu",
    ):
        assert label in text, label
    assert sparkline([3.0, 2.0, 1.0]) == "█▅▁"


def test_training_on_a_folder_names_the_files_it_could_not_use(tmp_path, monkeypatch):
    from tests.midi_factory import write_midi

    monkeypatch.setenv("TUNEFORGE_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "midis"
    folder.mkdir()
    for index in range(10):
        notes = [(60 + (step + index) % 12, step, step + 2) for step in range(0, 48, 2)]
        write_midi(folder / f"tune{index}.mid", [*notes, (48, 0, 48)])
    (folder / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01")  # cut off
    write_midi(folder / "drums.mid", [(38, step, step + 1, 9) for step in range(0, 48, 2)])
    out = tmp_path / "run"
    args = ["train", str(folder), "--epochs", "1"]
    result = runner.invoke(app, [*args, "--out", str(out), *FAST])
    assert result.exit_code == 0, result.output
    assert "2 of 12 MIDI files not used" in result.stderr
    assert "broken.mid" in result.stderr and "drums.mid" in result.stderr
    kept = runner.invoke(app, [*args, "--out", str(tmp_path / "run2"), "--keep-percussion", *FAST])
    assert kept.exit_code == 0, kept.output
    assert "1 of 12 MIDI files not used" in kept.stderr and "drums.mid" not in kept.stderr
    assert json.loads((tmp_path / "run2" / "config.json").read_text())["keep_percussion"] is True
    evaluated = runner.invoke(app, ["evaluate", str(tmp_path / "run2"), str(folder), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["fingerprint_matches"] is True  # read as trained


@pytest.mark.parametrize(
    "options, message",
    [
        (["--model", "nade"], "unknown model 'nade'; choose one of: sequence, biaxial"),
        (["--model", "biaxial", "--head", "note-axis"], "takes no --head; its options:"),
        (["--window-semitones", "6"], "the sequence model takes no --window-semitones"),
        (["--head", "nade"], "unknown head 'nade'"),
        (["--cell-option", "rounds=3"], "cell 'lstm' has no option rounds; valid options:"),
        (["--head", "note-axis", "--note-cell", "nope"], "unknown cell 'nope'"),
        (["--articulation"], "articulation needs --head note-axis"),
    ],
)
def test_bad_model_choices_fail_before_any_data_is_read(tmp_path, options, message):
    result = runner.invoke(app, ["train", str(tmp_path / "absent"), *options])
    assert result.exit_code == 1 and message in result.output, result.output
    assert "absent" not in result.output  # the data were never looked at


@pytest.mark.parametrize("model", [["--head", "note-axis"], ["--model", "biaxial"]])
def test_structured_models_train_evaluate_and_generate_from_the_command_line(tmp_path, model):
    data = write_tiny_mat(tmp_path / "tiny.mat")
    out = tmp_path / "run"
    small = ["--note-hidden-size", "6", "--layers", "1"]
    result = runner.invoke(
        app, ["train", str(data), "--out", str(out), "--epochs", "1", *FAST, *small, *model]
    )
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())["model_config"]
    assert config["kind"] == ("biaxial" if "biaxial" in model else "sequence")
    assert not config["articulation"]  # a benchmark file has no onsets
    scored = runner.invoke(app, ["evaluate", str(out), str(data), "--json"])
    assert scored.exit_code == 0, scored.output
    report = json.loads(scored.output)
    assert np.isfinite(report["nll"]) and 0 <= report["frame_accuracy"] <= 1
    made = runner.invoke(app, ["generate", "--model", str(out), "--out", str(tmp_path / "gen")])
    assert made.exit_code == 0, made.output
    midi = next((tmp_path / "gen").glob("*.mid"))
    again = runner.invoke(app, ["score", str(midi), "--model", str(out), "--json"])
    sidecar = json.loads(midi.with_suffix(".json").read_text())
    assert json.loads(again.output)["log_likelihood"] == pytest.approx(
        sidecar["log_likelihood"], abs=1e-3
    )


def test_a_checkpoint_of_an_unknown_kind_is_a_one_line_error(tmp_path):
    from tests.tiny_models import save_tiny

    path = save_tiny(tmp_path, "odd")
    document = json.loads(path.with_suffix(".json").read_text())
    document["model_config"]["kind"] = "transformer"
    path.with_suffix(".json").write_text(json.dumps(document))
    result = runner.invoke(app, ["generate", "--model", str(path), "--out", str(tmp_path / "g")])
    assert result.exit_code == 1
    assert (
        "model kind 'transformer' is unknown" in result.output
        and "sequence, biaxial" in result.output
    )
