"""`tuneforge train DATA --init MODEL`: fine-tuning a model in a new run, as a user runs it."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from tests.midi_factory import write_midi
from tests.test_cli_train import FAST, write_tiny_mat
from tests.tiny_models import save_tiny
from tuneforge.checkpoint import checkpoint_hash, load_checkpoint
from tuneforge.cli.app import app
from tuneforge.shipped import PRETRAINED_DIR_ENV

runner = CliRunner()


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """A tiny benchmark file and a run trained on it for one epoch (hidden size 12); read only."""
    folder = tmp_path_factory.mktemp("parent")
    data = write_tiny_mat(folder / "tiny.mat")
    run = folder / "parent"
    result = runner.invoke(app, ["train", str(data), "--out", str(run), "--epochs", "1", *FAST])
    assert result.exit_code == 0, result.output
    return data, run


def _weights(path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).model.state_dict()


def test_init_starts_a_new_run_from_the_parent_weights_and_records_it(parent, tmp_path):
    data, run = parent
    child = tmp_path / "child"
    # A learning rate of 1e-9 keeps the weights where they started, so `last` shows the start.
    args = ["train", str(data), "--init", str(run), "--out", str(child), "--epochs", "1"]
    result = runner.invoke(app, [*args, "--lr", "1e-9", "--dropout", "0.1", "-q"])
    assert result.exit_code == 0, result.output
    started, trained = _weights(child / "last"), _weights(run / "best")
    assert started.keys() == trained.keys()
    for name, tensor in trained.items():
        assert torch.allclose(started[name], tensor, atol=1e-6), name
    config = json.loads((child / "config.json").read_text())
    assert config["parent"]["name"] == str(run)
    assert config["parent"]["sha256"] == checkpoint_hash(run / "best")
    assert config["parent"]["model"] == "sequence lstm"
    assert config["model_config"]["hidden_size"] == 12  # the parent's, not the default 256
    assert config["model_config"]["dropout"] == 0.1  # a training option is applied
    assert load_checkpoint(child / "best").meta["parent"] == config["parent"]
    assert json.loads((run / "config.json").read_text()).get("parent") is None

    # The same architecture from scratch starts elsewhere: the test above can fail.
    scratch = tmp_path / "scratch"
    fresh = ["train", str(data), "--out", str(scratch), "--epochs", "1", "--lr", "1e-9", "-q"]
    assert runner.invoke(app, [*fresh, *FAST, "--seed", "7"]).exit_code == 0
    other = _weights(scratch / "last")
    assert not all(torch.allclose(other[n], t, atol=1e-3) for n, t in trained.items())

    # Resuming the fine-tuned run keeps its record of the parent.
    resumed = runner.invoke(app, ["train", str(data), "--out", str(child), "--resume", "-q"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((child / "config.json").read_text())["parent"] == config["parent"]


@pytest.mark.parametrize(
    ("extra", "difference"),
    [
        (["--hidden-size", "20"], "hidden_size 12 -> 20"),
        (["--cell", "gru"], "cell 'lstm' -> 'gru'"),
        (["--kind", "biaxial"], "kind 'sequence' -> 'biaxial'"),
        (["--meter"], "meter False -> True"),
        (["--cell-option", "forget_bias=2"], "cell_options.forget_bias"),
    ],
)
def test_init_refuses_an_architecture_change_naming_it(parent, tmp_path, extra, difference):
    data, run = parent
    out = tmp_path / "child"
    result = runner.invoke(app, ["train", str(data), "--init", str(run), "--out", str(out), *extra])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and difference in lines[0] and "keeps its architecture" in lines[0]
    assert not out.exists()


def test_init_keeps_options_that_equal_the_parent_and_refuses_resume(parent, tmp_path):
    data, run = parent
    out = tmp_path / "child"
    same = ["--hidden-size", "12", "--cell", "lstm", "--num-layers", "1", "--epochs", "1", "-q"]
    result = runner.invoke(app, ["train", str(data), "--init", str(run), "--out", str(out), *same])
    assert result.exit_code == 0, result.output
    both = runner.invoke(
        app, ["train", str(data), "--init", str(run), "--out", str(out), "--resume"]
    )
    assert both.exit_code == 1 and "--init" in both.stderr and "--resume" in both.stderr


def test_init_takes_a_shipped_name_and_its_grid(tmp_path, monkeypatch):
    shipped = tmp_path / "pretrained"
    tensor_path = save_tiny(shipped, "default")  # 4 steps per beat, hidden size 16
    monkeypatch.setenv(PRETRAINED_DIR_ENV, str(shipped))
    monkeypatch.setenv("TUNEFORGE_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "tunes"
    for index in range(10):
        notes = [(60 + (step + index) % 7, step, step + 2) for step in range(0, 48, 2)]
        write_midi(folder / f"tune{index}.mid", notes)
    monkeypatch.chdir(tmp_path)
    args = ["train", str(folder), "--init", "default", "--epochs", "1", "--threads", "1", "-q"]
    result = runner.invoke(app, [*args, "--batch-size", "4", "--window-steps", "16"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "tunes-from-default"  # the default run folder names the parent
    config = json.loads((run / "config.json").read_text())
    assert config["parent"]["name"] == "default"
    assert config["parent"]["sha256"] == checkpoint_hash(tensor_path)
    assert config["model_config"]["hidden_size"] == 16
    other_grid = runner.invoke(app, [*args, "--steps-per-beat", "2", "--out", "elsewhere"])
    assert other_grid.exit_code == 1 and "steps_per_beat 4 -> 2" in other_grid.stderr
    unknown = runner.invoke(app, ["train", str(folder), "--init", "no-such-model"])
    assert unknown.exit_code == 1 and "no shipped model 'no-such-model'" in unknown.stderr


def test_a_trained_model_given_as_the_kind_points_to_init(parent):
    data, run = parent
    result = runner.invoke(app, ["train", str(data), "--model", str(run)])
    assert result.exit_code == 1 and f"use --init {run}" in result.stderr
