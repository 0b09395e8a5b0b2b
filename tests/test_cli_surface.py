"""The command line's surface as a user meets it: help that reads at 80 columns, options named
as the library names them, one device default, scriptable `generate` output, full paths in
tables, and `evaluate RUN` on the data the run recorded."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from tests.test_cli_train import FAST, write_tiny_mat
from tests.tiny_models import save_tiny
from tuneforge.cli.app import app
from tuneforge.generate import read_provenance
from tuneforge.music.midi import read_midi
from tuneforge.shipped import PRETRAINED_DIR_ENV

runner = CliRunner()
NARROW = {"COLUMNS": "80"}


def _commands(group=None, path=()):
    """Every command of the app (with its words), sub-commands of groups included."""
    group = group or typer.main.get_command(app)
    for name, command in group.commands.items():
        words = (*path, name)
        if hasattr(command, "commands"):
            yield words, command, True
            yield from _commands(command, words)
        else:
            yield words, command, False


def _help(words) -> str:
    result = runner.invoke(app, [*words, "--help"], env=NARROW)
    assert result.exit_code == 0, result.output
    return result.output


COMMANDS = list(_commands())


def test_the_app_has_the_commands_this_module_checks():
    names = {" ".join(words) for words, _, _ in COMMANDS}
    assert {"train", "evaluate", "generate", "jam", "compare", "cells", "data inspect"} <= names


@pytest.mark.parametrize("words", [w for w, _, _ in COMMANDS], ids=" ".join)
def test_help_reads_at_80_columns(words):
    """No line past 80 columns, no value shown for a flag, nothing cut: every option name of
    the command appears whole on one line."""
    text = _help(words)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "<bool>" not in text and "…" not in text
    command = dict((w, c) for w, c, _ in COMMANDS)[words]
    for param in command.params:
        for name in (*param.opts, *param.secondary_opts):
            if name.startswith("-"):
                assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text), name


def test_the_root_help_shows_flags_as_flags():
    result = runner.invoke(app, ["--help"], env=NARROW)
    assert result.exit_code == 0 and "--version" in result.output
    assert "<bool>" not in result.output


def _panels(text: str) -> dict[str, str]:
    """Panel title -> the text inside it."""
    panels: dict[str, str] = {}
    title = None
    for line in text.splitlines():
        opened = re.match(r"╭─ (.+?) ─", line)
        if opened:
            title = opened.group(1)
            panels[title] = ""
        elif title is not None:
            panels[title] += line + "\n"
    return panels


def test_train_groups_its_options_in_panels():
    panels = _panels(_help(["train"]))
    expected = {
        "Model": ["--kind", "--hidden-size", "--num-layers", "--init", "--dropout"],
        "Optimisation": ["--lr", "--epochs", "--patience", "--window-steps", "--optimizer"],
        "Data": ["--data-dir", "--steps-per-beat", "--split-seed", "--fold-octaves"],
        "Run": ["--out", "--resume", "--quiet"],
        "Device": ["--device", "--threads", "--amp"],
    }
    for title, options in expected.items():
        for option in options:
            assert option in panels[title], (title, option)
    assert set(panels) == {"Arguments", *expected, "Options"}  # Options holds --help only
    assert "--lr" not in panels["Model"]


@pytest.mark.parametrize("words", [["generate"], ["compare"], ["jam"]], ids=" ".join)
def test_commands_with_many_options_use_panels(words):
    panels = _panels(_help(words))
    assert len(panels) >= 4 and "Device" in panels
    assert panels["Options"].count("--") == 1  # only --help is left outside a panel


def test_every_command_that_takes_a_device_has_the_same_default():
    defaults = {}
    for words, command, _ in COMMANDS:
        for param in command.params:
            if param.name == "device":
                defaults[" ".join(words)] = getattr(param.default, "value", param.default)
                assert "[default: auto]" in _help(words)
    assert {"train", "evaluate", "generate", "score", "jam", "compare"} <= set(defaults)
    assert set(defaults.values()) == {"auto"}


def _generate(*args: str, env=None):
    return runner.invoke(app, ["generate", "--device", "cpu", *args], env=env)


def test_generate_json_is_one_document_listing_every_file_with_its_figures(shipped, tmp_path):
    out = tmp_path / "out"
    result = _generate(
        "--num-pieces", "2", "--length", "8", "--seed", "3", "--out", str(out), "--json"
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)  # stdout holds the document and nothing else
    assert document["seed"] == 3 and document["temperature"] == 0.8
    assert len(document["pieces"]) == 2
    written = sorted(p for p in out.iterdir())
    listed = sorted(Path(f) for piece in document["pieces"] for f in piece["files"].values())
    assert listed == written  # every file written, and only those
    for piece in document["pieces"]:
        midi = read_midi(piece["files"]["midi"], steps_per_beat=4)
        assert piece["steps"] == 8 * 4 and piece["seconds"] == pytest.approx(4.0)
        assert piece["notes"] == midi.num_notes
        assert piece["notes_per_step"] == pytest.approx(midi.roll[:32].sum(axis=1).mean(), abs=1e-3)
        assert read_provenance(piece["files"]["midi"])["seed"] == 3


def test_generate_quiet_prints_nothing_and_still_writes(shipped, tmp_path):
    out = tmp_path / "out"
    result = _generate("--length", "4", "--seed", "1", "--out", str(out), "--quiet")
    assert result.exit_code == 0 and result.stdout == ""
    assert len(list(out.glob("*.mid"))) == 1
    both = _generate("--json", "--quiet")
    assert both.exit_code == 1 and "--json" in both.stderr


def test_new_option_names_and_their_old_aliases_do_the_same(shipped, tmp_path):
    new = ["--temperature", "0.6", "--num-pieces", "2", "--num-steps", "12", "--tempo-bpm", "90"]
    old = ["--temp", "0.6", "--num", "2", "--steps", "12", "--tempo", "90"]
    documents = []
    for name, args in (("new", new), ("old", old)):
        result = _generate(*args, "--seed", "4", "--out", str(tmp_path / name), "--json")
        assert result.exit_code == 0, result.output
        document = json.loads(result.stdout)
        for piece in document["pieces"]:
            piece.pop("files")
        documents.append(document)
    assert documents[0] == documents[1]
    assert documents[0]["temperature"] == 0.6 and documents[0]["tempo_bpm"] == 90
    assert [p["steps"] for p in documents[0]["pieces"]] == [12, 12]


def test_train_option_names_follow_the_config_fields_and_keep_the_old_ones(tmp_path):
    data = write_tiny_mat(tmp_path / "tiny.mat")
    configs = []
    for name, args in (
        ("new", ["--kind", "sequence", "--num-layers", "2", "--window-steps", "16"]),
        ("old", ["--model", "sequence", "--layers", "2", "--window", "16"]),
    ):
        out = tmp_path / name
        extra = ["--transpose-semitones" if name == "new" else "--transpose", "2"]
        fast = ["--hidden-size", "8", "--batch-size", "4", "--threads", "1", "--epochs", "1"]
        result = runner.invoke(
            app, ["train", str(data), "--out", str(out), *args, *extra, *fast, "-q"]
        )
        assert result.exit_code == 0, result.output
        configs.append(json.loads((out / "config.json").read_text()))
    for config in configs:
        assert config["model_config"]["num_layers"] == 2
        assert config["train_config"]["window_steps"] == 16
        assert config["train_config"]["transpose_semitones"] == 2
    assert configs[0]["model_config"] == configs[1]["model_config"]


def test_generate_table_shows_the_whole_path(shipped, tmp_path):
    out = tmp_path / ("a-rather-long-folder-name-" * 4) / "pieces"
    result = _generate("--length", "4", "--seed", "2", "--out", str(out), env={"COLUMNS": "60"})
    assert result.exit_code == 0, result.output
    (midi,) = out.glob("*.mid")
    assert "…" not in result.output
    first_column = "".join(
        line.split("│")[1].strip() for line in result.output.splitlines() if line.startswith("│")
    )
    assert str(midi) in first_column


def test_cells_table_reads_at_80_columns():
    result = runner.invoke(app, ["cells"], env=NARROW)
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    assert "…" not in result.output
    from tuneforge.cells import CELLS

    for info in CELLS.values():
        for key, value in info.options.items():
            assert f"{key}={value}" in result.output  # each option on a line of its own, whole


def test_evaluate_a_run_without_data_uses_the_data_it_recorded(tmp_path, monkeypatch):
    data = write_tiny_mat(tmp_path / "tiny.mat")
    run = tmp_path / "run"
    trained = runner.invoke(app, ["train", str(data), "--out", str(run), "--epochs", "1", *FAST])
    assert trained.exit_code == 0, trained.output
    named = runner.invoke(app, ["evaluate", str(run), str(data), "--json", "--device", "cpu"])
    recorded = runner.invoke(app, ["evaluate", str(run), "--json", "--device", "cpu"])
    assert named.exit_code == 0 and recorded.exit_code == 0, recorded.output
    assert json.loads(recorded.stdout) == json.loads(named.stdout)
    assert json.loads(recorded.stdout)["fingerprint_matches"] is True

    data.unlink()  # the recorded data are gone: say so, and what to do
    missing = runner.invoke(app, ["evaluate", str(run)])
    assert missing.exit_code == 1
    assert len(missing.stderr.strip().splitlines()) == 1 and "give DATA" in missing.stderr


def test_evaluate_without_data_of_a_model_that_records_none(tmp_path):
    path = save_tiny(tmp_path, "hand-made")
    result = runner.invoke(app, ["evaluate", str(path)])
    assert result.exit_code == 1 and "records no training data" in result.stderr


def test_models_table_shows_the_whole_folder(tmp_path, monkeypatch):
    folder = tmp_path / ("a-long-name-for-a-folder-of-models-" * 3) / "pretrained"
    save_tiny(folder, "default")
    monkeypatch.setenv(PRETRAINED_DIR_ENV, str(folder))
    result = runner.invoke(app, ["models"], env=NARROW)
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    assert str(folder) in "".join(line.strip() for line in result.output.splitlines())
