"""`tuneforge compare`: resuming, refusing other settings, bad input before training."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from tests.test_cli_train import write_tiny_mat
from tuneforge.cli.app import app
from tuneforge.cli.compare_cmd import build_entries
from tuneforge.compare import (
    CompareCallbacks,
    CompareSettings,
    check_folder,
    parse_overrides,
    run_compare,
)
from tuneforge.data.dataset import load_dataset
from tuneforge.errors import ConfigError
from tuneforge.train import TrainCallbacks, TrainConfig, TrainingInterrupted

runner = CliRunner()
PARAMS = 60_000  # the smallest budget every cell below fits
CELLS = ["lstm", "gru", "rru"]


def tiny_settings(data: str, **changes) -> CompareSettings:
    train = TrainConfig(epochs=2, batch_size=4, window_steps=16, lr=1e-2, device="cpu", threads=1)
    settings = CompareSettings(
        data=data,
        models=("sequence",),
        cells=tuple(CELLS),
        params=PARAMS,
        protocol="tcn",
        train=train,
        sample_steps=8,
    )
    return replace(settings, **changes)


class Recorder(CompareCallbacks, TrainCallbacks):
    """Records the bake-off's events; can raise Ctrl-C after one epoch of one entry."""

    def __init__(self, interrupt_entry: str | None = None) -> None:
        self.events: list[str] = []
        self.start_epochs: dict[str, int] = {}
        self.interrupt_entry = interrupt_entry
        self._current = ""

    def on_entry_start(self, index, total, entry, resumed) -> None:
        self._current = entry.label
        self.events.append(f"start {entry.label}" + (" resumed" if resumed else ""))

    def on_entry_skipped(self, index, total, result) -> None:
        self.events.append(f"skip {result.label}")

    def on_entry_end(self, index, total, result) -> None:
        self.events.append(f"end {result.label}")

    def train_callbacks(self, entry):
        return self

    def on_start(self, info) -> None:
        self.start_epochs[self._current] = info.start_epoch

    def on_epoch(self, info) -> None:
        if self._current == self.interrupt_entry:
            raise KeyboardInterrupt  # as Ctrl-C after the first epoch was saved


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = write_tiny_mat(tmp_path_factory.mktemp("data") / "tiny.mat")
    return str(path), load_dataset(path)


def entries_for(dataset, overrides=None):
    from tuneforge.cli.model_options import fit_to_data

    return [
        replace(
            e,
            model_config=fit_to_data(
                e.model_config,
                steps_per_beat=dataset.steps_per_beat,
                onsets_known=False,
                articulation=None,
            ),
        )
        for e in build_entries(["sequence"], CELLS, PARAMS, {}, overrides or {})
    ]


def test_an_interrupted_compare_continues_where_it_stopped(tmp_path, tiny):
    data, dataset = tiny
    settings = tiny_settings(data)
    entries = entries_for(dataset)
    out = tmp_path / "compare"
    first = Recorder(interrupt_entry="sequence/gru")
    with pytest.raises(TrainingInterrupted):
        run_compare(settings, entries, dataset, out, callbacks=first)
    assert first.events == [
        "start sequence/lstm",
        "end sequence/lstm",
        "start sequence/gru",
    ]
    finished = (out / "sequence-lstm" / "result.json").read_text()
    lstm_weights = (out / "sequence-lstm" / "best.safetensors").stat().st_mtime_ns

    second = Recorder()
    report = run_compare(settings, entries, dataset, out, callbacks=second)
    # The finished entry is read back, the interrupted one resumes at its second epoch.
    assert second.events == [
        "skip sequence/lstm",
        "start sequence/gru resumed",
        "end sequence/gru",
        "start sequence/rru",
        "end sequence/rru",
    ]
    assert second.start_epochs == {"sequence/gru": 1, "sequence/rru": 0}
    assert (out / "sequence-lstm" / "result.json").read_text() == finished
    assert (out / "sequence-lstm" / "best.safetensors").stat().st_mtime_ns == lstm_weights
    gru = json.loads((out / "sequence-gru" / "metrics.jsonl").read_text().splitlines()[-1])
    assert gru["epoch"] == 2  # two epochs in all (counted from 1), none repeated
    document = json.loads((out / "report.json").read_text())
    assert document["protocol"] == "tcn" and document["entries_done"] == 3
    assert [row["label"] for row in document["leaderboard"]] == [r.label for r in report.ranked]
    assert all(abs(r.parameters - PARAMS) < PARAMS * 0.05 for r in report.results)
    assert all(
        (out / r.sample_midi).is_file() and "copied from train" in r.stats_line
        for r in report.results
    )
    markdown = (out / "report.md").read_text()
    assert "Protocol `tcn`" in markdown and "| 1 | " in markdown


def test_a_folder_of_other_settings_is_refused_naming_the_difference(tmp_path, tiny):
    data, _ = tiny
    settings = tiny_settings(data)
    out = tmp_path / "compare"
    out.mkdir()
    (out / "compare.json").write_text(json.dumps(settings.to_dict()))
    assert check_folder(out, settings) is True
    assert check_folder(out, replace(settings, train=replace(settings.train, threads=2)))
    with pytest.raises(ConfigError, match=r"train\.epochs was 2, now 3"):
        check_folder(out, replace(settings, train=replace(settings.train, epochs=3)))
    with pytest.raises(ConfigError, match=r"protocol was 'tcn', now 'rru'"):
        check_folder(out, replace(settings, protocol="rru"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        check_folder(tmp_path / "other", settings)


def test_overrides_parse_and_apply_to_their_entry_only():
    overrides = parse_overrides(["rru:dropout=0.5,rru_dropout=0.6", "sequence/gru:lr=0.01"])
    assert overrides == {
        "rru": {"dropout": "0.5", "rru_dropout": "0.6"},
        "sequence/gru": {"lr": "0.01"},
    }
    entries = {e.cell: e for e in build_entries(["sequence"], CELLS, PARAMS, {}, overrides)}
    assert entries["rru"].model_config.dropout == 0.5
    assert entries["rru"].model_config.cell_options["rru_dropout"] == 0.6
    assert entries["lstm"].model_config.dropout == 0.4  # the shared default
    assert entries["gru"].overrides == {"lr": "0.01"}
    with pytest.raises(ConfigError, match="TARGET:KEY=VALUE"):
        parse_overrides(["dropout=0.5"])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--cells", "lstm,gruu"], "unknown cell 'gruu'; choose one of"),
        (["--models", "sequence,triaxial"], "unknown model 'triaxial'; choose one of: sequence"),
        (["--override", "rru:wobble=1"], "wobble is not an option of the sequence model"),
        (["--override", "tcn:dropout=0.1"], "no such entry; targets are the cells"),
        (["--protocol", "bptt"], "bptt"),
        (["--epochs", "0"], "epochs must be at least 1"),
    ],
)
def test_bad_input_fails_before_any_entry_trains(tmp_path, tiny, arguments, message):
    data, _ = tiny
    out = tmp_path / "compare"
    result = runner.invoke(
        app,
        [
            "compare",
            data,
            "--cells",
            "lstm,rru",
            "--params",
            str(PARAMS),
            "--out",
            str(out),
            *arguments,
        ],
    )
    assert result.exit_code != 0
    assert message in result.output
    assert not out.exists()


def test_compare_from_the_command_line_names_its_protocol(tmp_path, tiny):
    data, _ = tiny
    out = tmp_path / "compare"
    command = [
        "compare",
        data,
        "--cells",
        "lstm,gru",
        "--params",
        str(PARAMS),
        "--epochs",
        "1",
        "--window",
        "16",
        "--batch-size",
        "4",
        "--threads",
        "1",
        "--sample-beats",
        "4",
        "--protocol",
        "rru",
        "--time-budget-s",
        "1e-9",
        "--out",
        str(out),
    ]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "protocol rru" in result.output and "sequence/gru" in result.output
    document = json.loads((out / "report.json").read_text())
    assert document["protocol"] == "rru" and len(document["leaderboard"]) == 2
    again = runner.invoke(app, command)
    assert again.exit_code == 0 and again.output.count("done before, not retrained") == 2
    other = runner.invoke(app, [*command[:-2], "--epochs", "2", "--out", str(out)])
    assert other.exit_code == 1 and "train.epochs was 1, now 2" in other.output


def test_the_live_view_draws_the_whole_bake_off(tmp_path, tiny):
    import io

    from rich.console import Console

    from tuneforge.cli.compare_cmd import ProgressView, leaderboard_table

    data, dataset = tiny
    settings = tiny_settings(
        data, cells=("gru",), train=replace(tiny_settings(data).train, epochs=1)
    )
    screen = io.StringIO()
    view = ProgressView(Console(file=screen, force_terminal=True, width=120))
    try:
        report = run_compare(settings, entries_for(dataset)[1:2], dataset, tmp_path, callbacks=view)
    finally:
        view.stop()
    drawn = screen.getvalue()
    assert "entries" in drawn and "epoch" in drawn and "sequence/gru: valid NLL" in drawn
    table = io.StringIO()
    Console(file=table, width=150).print(leaderboard_table(report))
    assert "protocol tcn" in table.getvalue() and "sequence/gru" in table.getvalue()
