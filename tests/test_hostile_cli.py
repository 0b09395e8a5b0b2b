"""Hostile input on the command line, by class: files the user did not name, signals, options
that a resumed run cannot take, absurd numbers, markup in names, and failing file systems.

Each test runs the command as a user would (typer's CliRunner, or a subprocess where a signal
is sent) and checks for one line that says what to do, a non-zero exit and no traceback.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.midi_factory import write_midi
from tests.test_cli_train import FAST, write_tiny_mat
from tests.tiny_models import save_tiny
from tuneforge import files
from tuneforge.checkpoint import load_checkpoint
from tuneforge.cli.app import app
from tuneforge.run_folder import LOCK_FILE

runner = CliRunner()
LAUNCH = "from tuneforge.cli.app import main; main()"


def _run(*args: str):
    return runner.invoke(app, [str(arg) for arg in args])


def _one_line_error(result, *fragments: str) -> str:
    """The error line of a failed command, checked to be one line holding ``fragments``."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _saved_epochs(run_dir: Path) -> int:
    """How many epochs the run's `last` checkpoint holds (0 before the first is saved)."""
    try:
        document = json.loads((run_dir / "last.json").read_text())
    except (OSError, ValueError):
        return 0
    return int(document["meta"]["progress"]["epoch"])


def _dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    return write_tiny_mat(tmp_path_factory.mktemp("data") / "tiny.mat")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_file) -> Path:
    """A one-epoch run of a tiny model (hidden size 12); copy it before changing it."""
    out = tmp_path_factory.mktemp("runs") / "run"
    result = _run("train", data_file, "--out", out, "--epochs", "1", "--quiet", *FAST)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def run_copy(trained_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    return copy


# --- Nothing the user did not name is overwritten -------------------------------------------


def test_render_never_writes_over_its_input(tmp_path):
    midi = write_midi(tmp_path / "a.mid", [(60, 0, 4)])
    before = midi.read_bytes()
    result = _run("render", midi, "--out", midi)
    _one_line_error(result, "is the MIDI file being rendered")
    assert midi.read_bytes() == before


def test_generate_keeps_an_existing_piece_and_says_where_the_new_one_went(shipped, tmp_path):
    out = tmp_path / "out"
    args = ("generate", "--steps", "4", "--seed", "3", "--num", "2", "--out", out)
    assert _run(*args).exit_code == 0
    first = out / "tuneforge-default-s3-01.mid"
    first.write_bytes(b"the user's own file")

    again = _run(*args)
    assert again.exit_code == 0, again.output
    assert first.read_bytes() == b"the user's own file"
    # Both pieces of the batch move to the same new number, so they stay a pair.
    assert (out / "tuneforge-default-s3-01-2.mid").is_file()
    assert (out / "tuneforge-default-s3-02-2.mid").is_file()
    assert "tuneforge-default-s3-01.mid exists; wrote tuneforge-default-s3-01-2.mid" in (
        again.output
    )
    sidecar = json.loads((out / "tuneforge-default-s3-01-2.json").read_text())
    assert sidecar["midi_file"] == "tuneforge-default-s3-01-2.mid"

    replaced = _run(*args, "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert first.read_bytes().startswith(b"MThd")  # replaced, as asked
    assert not list(out.glob("*-3.mid"))


def test_train_refuses_a_folder_that_is_not_a_run(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"not music")
    # The data do not exist: the folder is refused before any data are read.
    result = _run("train", tmp_path / "missing.mat", "--out", folder, *FAST)
    _one_line_error(result, str(folder), "not a tuneforge run", "--out")
    assert sorted(p.name for p in folder.iterdir()) == ["holiday.jpg"]


def test_a_run_folder_held_by_a_live_training_is_refused_naming_its_pid(run_copy, data_file):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run_copy / LOCK_FILE).write_text(f"{holder.pid}\n")
        result = _run("train", data_file, "--out", run_copy, "--resume", "--epochs", "2")
        _one_line_error(result, f"in use by a training (pid {holder.pid})")
    finally:
        holder.kill()
        holder.wait()
    assert len(_metrics(run_copy)) == 1  # nothing was trained


def test_a_stale_lock_of_a_dead_training_is_taken_over(run_copy, data_file):
    (run_copy / LOCK_FILE).write_text(f"{_dead_pid()}\n")
    result = _run("train", data_file, "--out", run_copy, "--resume", "--epochs", "2", "-q")
    assert result.exit_code == 0, result.output
    assert len(_metrics(run_copy)) == 2
    assert not (run_copy / LOCK_FILE).exists()  # released at the end


def test_writes_replace_a_planted_symlink_instead_of_following_it(run_copy, data_file, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    planted = {}
    for name in ("metrics.jsonl", "curves.png", "config.json"):
        target = run_copy / name
        content = target.read_bytes()
        target.unlink()
        target.symlink_to(victim)
        planted[name] = content
    # config.json is a link now: the resumed run reads it through the link (the victim), so
    # point the victim's text at a real config for the read and check it is never written.
    victim.write_bytes(planted["config.json"])
    before = victim.read_bytes()
    result = _run("train", data_file, "--out", run_copy, "--resume", "--epochs", "2", "-q")
    assert result.exit_code == 0, result.output
    assert victim.read_bytes() == before
    for name in planted:
        assert not (run_copy / name).is_symlink(), name
    assert len(_metrics(run_copy)) == 2


def test_generated_files_replace_a_planted_symlink(shipped, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for name in ("tuneforge-default-s1-01.mid", "tuneforge-default-s1-01.json"):
        (out / name).symlink_to(victim)
    result = _run("generate", "--steps", "4", "--seed", "1", "--out", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "precious"
    assert (out / "tuneforge-default-s1-01.mid").read_bytes().startswith(b"MThd")


def test_the_file_writer_never_writes_through_a_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "out.json"
    link.symlink_to(victim)
    files.write_text(link, "{}")
    assert victim.read_text() == "precious"
    assert link.read_text() == "{}" and not link.is_symlink()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no leftovers


# --- SIGTERM during training is handled like Ctrl-C -----------------------------------------


def test_sigterm_keeps_the_checkpoint_pair_prints_the_resume_command_and_exits_143(
    data_file, tmp_path
):
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", LAUNCH, "train", str(data_file), "--out", str(run_dir)]
    # More epochs than could run before the signal: the run cannot end on its own first.
    process = subprocess.Popen(
        [*command, "--epochs", "100000", "--patience", "100000", *FAST],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while _saved_epochs(run_dir) < 1 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, process.communicate()
        # While it trains, a second training of the folder is refused, naming the first.
        second = _run("train", data_file, "--out", run_dir, "--resume")
        _one_line_error(second, f"pid {process.pid}")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 143, stderr
    assert "terminated" in stderr and "resume with:" in stderr and "--resume" in stderr
    assert "Traceback" not in stderr
    assert not (run_dir / LOCK_FILE).exists()
    last = load_checkpoint(run_dir / "last")  # the pair matches (hash checked) and loads
    done = last.meta["progress"]["epoch"]
    assert done >= 1

    resumed = subprocess.run(
        [*command, "--resume", "--epochs", str(done + 1), "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert len(_metrics(run_dir)) == done + 1


# --- Options a resumed run cannot take -------------------------------------------------------


def test_resume_applies_a_new_learning_rate(run_copy, data_file):
    result = _run(
        "train", data_file, "--out", run_copy, "--resume", "--epochs", "2", "--lr", "0.0005", "-q"
    )
    assert result.exit_code == 0, result.output
    assert [m["lr"] for m in _metrics(run_copy)] == [0.003, 0.0005]
    last = json.loads((run_copy / "last.json").read_text())
    assert {group["lr"] for group in last["optimizer"]["param_groups"]} == {0.0005}


@pytest.mark.parametrize(
    ("args", "difference"),
    [
        (["--hidden-size", "32"], "hidden_size 12 (asked: 32)"),
        (["--num-layers", "2"], "num_layers 1 (asked: 2)"),
        (["--cell-option", "forget_bias=3"], "cell_options"),
        (["--params", "20000"], "hidden_size 12"),
        (["--cell", "gru"], "cell 'lstm' (asked: 'gru')"),
    ],
)
def test_resume_refuses_a_model_change_naming_the_difference(run_copy, args, difference):
    # The data do not exist: the refusal comes before any data are read.
    result = _run("train", "missing.mat", "--out", run_copy, "--resume", *args)
    _one_line_error(result, "--resume keeps the run's model", difference)


def test_resume_accepts_a_model_option_that_matches_the_run(run_copy, data_file):
    result = _run("train", data_file, "--out", run_copy, "--resume", "--hidden-size", "12", "-q")
    assert result.exit_code == 0, result.output


def test_hidden_size_zero_is_an_error_not_the_default(tmp_path):
    out = tmp_path / "run"
    result = _run("train", tmp_path / "missing.mat", "--out", out, "--hidden-size", "0")
    _one_line_error(result, "--hidden-size must be at least 1")
    assert not (tmp_path / "run").exists()


# --- Non-finite and out-of-range numbers -------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lr", "nan"], "--lr must be a finite number"),
        (["--lr", "inf"], "--lr must be a finite number"),
        (["--lr", "-1"], "--lr must be > 0"),
        (["--seed", "-1"], "--seed must be at least 0"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--batch-size", "-4"], "--batch-size must be at least 1"),
        (["--num-layers", "5000"], "--num-layers must be at least 1 and at most 64"),
        (["--dropout", "1.5"], "--dropout must be"),
        (["--clip", "nan"], "--clip must be a finite number"),
        (["--epochs", "0"], "--epochs must be at least 1"),
    ],
)
def test_train_numbers_out_of_range_fail_before_any_work(tmp_path, args, message):
    result = _run("train", tmp_path / "missing.mat", "--out", tmp_path / "run", *args)
    _one_line_error(result, message)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--temperature", "nan"], "--temperature must be a finite number"),
        (["--temperature", "0"], "--temperature must be > 0"),
        (["--temperature", "-0.5"], "--temperature must be > 0"),
        (["--tempo", "2"], "--tempo-bpm must be at least 4"),
        (["--tempo", "inf"], "--tempo-bpm must be a finite number"),
        (["--num", "100000"], "--num-pieces must be at least 1 and at most 256"),
        (["--num", "0"], "--num-pieces must be at least 1"),
        (["--length", "1e9"], "--length must be > 0 and at most 25000 beats"),
        (["--length", "nan"], "--length must be a finite number"),
        (["--steps", "0"], "--num-steps must be at least 1"),
        (["--seed", "-1"], "--seed must be at least 0"),
        (["--program", "300"], "--program must be at least 0 and at most 127"),
    ],
)
def test_generate_numbers_out_of_range_fail_before_the_model_loads(tmp_path, args, message):
    # No such model: had the numbers not been checked first, the error would name the model.
    result = _run("generate", "--model", tmp_path / "no-model", "--out", tmp_path / "out", *args)
    _one_line_error(result, message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gain", "nan"], "--gain must be a finite number"),
        (["--sample-rate", "0"], "--sample-rate-hz must be at least 8000"),
    ],
)
def test_render_numbers_out_of_range_fail_before_rendering(tmp_path, args, message):
    midi = write_midi(tmp_path / "a.mid", [(60, 0, 4)])
    result = _run("render", midi, *args)
    _one_line_error(result, message)
    assert not (tmp_path / "a.wav").exists()


def test_a_diverging_run_stops_with_advice(data_file, tmp_path):
    out = tmp_path / "run"
    result = _run(
        "train", data_file, "--out", out, "--epochs", "3", "--lr", "50", "--clip", "0", *FAST
    )
    line = _one_line_error(result, "lower --lr")
    assert "diverged" in line and "nats per frame" in line
    assert load_checkpoint(out / "last").meta["progress"]["epoch"] == 0  # the last good state


def _held_notes_mat(path: Path, *, valid_steps: int, test_steps: int) -> Path:
    """A benchmark .mat of held notes: 4 training pieces of 30 steps, 2 valid and 2 test
    pieces of the given lengths (a piece of 1 step has nothing to score)."""
    import numpy as np
    import scipy.io

    splits = {}
    for split, (count, length) in {
        "traindata": (4, 30),
        "validdata": (2, valid_steps),
        "testdata": (2, test_steps),
    }.items():
        pieces = np.empty((1, count), dtype=object)
        for index in range(count):
            roll = np.zeros((length, 88))
            roll[:, 40 + index] = 1
            pieces[0, index] = roll
        splits[split] = pieces
    scipy.io.savemat(path, splits)
    return path


def test_pieces_too_short_to_score_are_an_error_not_an_infinite_nll(tmp_path):
    data = _held_notes_mat(tmp_path / "short.mat", valid_steps=1, test_steps=1)
    result = _run("train", data, "--out", tmp_path / "run", "--epochs", "1", *FAST)
    _one_line_error(result, "valid split", "too short to score")
    assert "inf" not in result.output


# --- Text that reaches rich is never read as markup ------------------------------------------


def test_markup_in_a_model_name_is_printed_as_written(tmp_path):
    model = save_tiny(tmp_path / "models", "[bold]odd")
    out = tmp_path / "[red]out[/red]"
    args = ("generate", "--model", model, "--steps", "4", "--seed", "1", "--out", out)
    assert _run(*args).exit_code == 0
    again = _run(*args)
    assert again.exit_code == 0, again.output
    assert "tuneforge-[bold]odd-s1-01.mid exists" in again.output


def test_markup_in_a_run_folder_is_printed_as_written(data_file, tmp_path):
    out = tmp_path / "[bold]run[/bold]"
    result = _run("train", data_file, "--out", out, "--epochs", "1", "--quiet", *FAST)
    assert result.exit_code == 0, result.output
    assert "[bold]run[/bold]" in result.output


def test_markup_in_a_model_card_is_printed_as_written(shipped, monkeypatch):
    from tuneforge.cli import generate_cmd

    monkeypatch.setattr(generate_cmd.console, "width", 200)  # no folding of the table's cells
    card = {"data": "[red]nottingham[/red]", "cell": "[blink]lstm"}
    (shipped / "default.card.json").write_text(json.dumps(card))
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    assert "[red]nottingham[/red]" in result.output and "[blink]lstm" in result.output


# --- OSErrors become one line naming the path --------------------------------------------------


def test_a_missing_parent_folder_is_one_line_naming_the_path(tmp_path, monkeypatch):
    midi = write_midi(tmp_path / "a.mid", [(60, 0, 4)])
    soundfont = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
    if not soundfont.is_file():
        pytest.skip("no small SoundFont on this machine")
    target = tmp_path / "no" / "such" / "folder" / "a.wav"
    result = _run("render", midi, "--out", target, "--soundfont", soundfont)
    _one_line_error(result, f"cannot write {target}", "No such file or directory")


def test_a_read_only_output_folder_is_one_line_naming_the_path(shipped, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: make the folder refuse as a read-only one would

        def read_only(*args, **kwargs):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))

        monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    else:
        out.chmod(0o555)
    try:
        result = _run("generate", "--steps", "4", "--seed", "1", "--out", out)
    finally:
        out.chmod(0o755)
    _one_line_error(result, f"cannot write {out / 'tuneforge-default-s1-01.mid'}")


def test_a_full_disk_is_one_line_naming_the_path(data_file, tmp_path, monkeypatch):
    def disk_full(source, target):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "replace", disk_full)
    out = tmp_path / "run"
    result = _run("train", data_file, "--out", out, "--epochs", "1", *FAST)
    _one_line_error(result, f"cannot write {out / 'config.json'}", "No space left on device")
    assert not (out / LOCK_FILE).exists()
    assert not [p for p in out.iterdir() if ".partial" in p.name]


def test_a_full_disk_while_saving_a_checkpoint_keeps_the_last_good_pair(
    run_copy, data_file, monkeypatch
):
    real_replace = os.replace
    before = (run_copy / "last.json").read_bytes()

    def disk_full_for_checkpoints(source, target):
        if str(target).endswith(".safetensors"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", disk_full_for_checkpoints)
    result = _run("train", data_file, "--out", run_copy, "--resume", "--epochs", "2", "-q")
    monkeypatch.undo()
    _one_line_error(result, "cannot write", "safetensors", "No space left on device")
    assert (run_copy / "last.json").read_bytes() == before
    load_checkpoint(run_copy / "last")  # still a matching pair


def test_an_os_error_of_any_command_is_one_line_naming_the_file(shipped, tmp_path, monkeypatch):
    primer = write_midi(tmp_path / "primer.mid", [(60, 0, 4)])

    def broken_disk(self):
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(self))

    monkeypatch.setattr(Path, "read_bytes", broken_disk)
    result = _run("generate", "--primer", primer, "--steps", "4", "--out", tmp_path / "out")
    _one_line_error(result, str(primer), "Input/output error")


def test_train_out_naming_a_file_is_refused(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    result = _run("train", tmp_path / "missing.mat", "--out", target)
    _one_line_error(result, "is a file, not a run folder")
    assert target.read_text() == "keep me"


def test_a_test_split_too_short_to_score_gives_no_figure_and_evaluate_refuses(tmp_path):
    data = _held_notes_mat(tmp_path / "short-test.mat", valid_steps=30, test_steps=1)
    out = tmp_path / "run"
    trained = _run("train", data, "--out", out, "--epochs", "1", *FAST)
    assert trained.exit_code == 0, trained.output
    assert "inf" not in trained.output.lower().replace("info", "")
    result = _run("evaluate", out, data, "--split", "test")
    _one_line_error(result, "test split", "long enough to score")
