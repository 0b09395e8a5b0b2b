"""The training dashboard, the log lines and the summary: what they show, and metrics.jsonl."""

from __future__ import annotations

import io
import json
import math
import re
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from tests.test_cli_train import FAST, write_tiny_mat
from tuneforge.cli.app import app
from tuneforge.cli.dashboard import (
    Dashboard,
    PlainLog,
    epoch_time_text,
    eta_bound,
    eta_text,
    summary_table,
    train_loss_figures,
)
from tuneforge.train_config import TrainConfig
from tuneforge.train_events import (
    EpochInfo,
    RunInfo,
    StepInfo,
    TrainResult,
    epoch_to_metrics_line,
    read_metrics,
)

runner = CliRunner()


def epoch(index: int, *, train_loss=2.0, valid_nll=2.0, best_epoch=None, epoch_s=1.0, **more):
    """A finished epoch's record; ``index`` counts from 0 as in the events."""
    return EpochInfo(
        epoch=index,
        train_loss=train_loss,
        valid_nll=valid_nll,
        valid_accuracy=0.5,
        best_valid_nll=more.pop("best_valid_nll", valid_nll),
        best_epoch=index if best_epoch is None else best_epoch,
        lr=1e-3,
        grad_norm=1.0,
        frames_per_s=100.0,
        epoch_s=epoch_s,
        eta_s=0.0,
        **more,
    )


def step(index: int, *, epoch_loss: float, number: int = 3, steps: int = 10) -> StepInfo:
    return StepInfo(index, number, steps, epoch_loss, 1.0, 1e-3, 100.0, epoch_loss)


def run_info(epochs: int = 20, patience: int = 3) -> RunInfo:
    config = TrainConfig(epochs=epochs, patience=patience)
    return RunInfo(Path("runs/x"), "cpu", 1000, epochs, 0, 10, 100, "jsb", config, 1, "lstm")


def rendered(renderable, width: int = 110) -> str:
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


def row(text: str, label: str) -> str:
    return next(line for line in text.splitlines() if label in line)


# --- the training loss: like with like ------------------------------------------------------


def test_the_running_mean_of_an_epoch_is_not_a_best():
    history = [epoch(0, train_loss=3.0), epoch(1, train_loss=2.5)]
    # Epoch 3 is under way and its first batches happen to score better than epoch 2 did.
    assert train_loss_figures(history, step(2, epoch_loss=2.0)) == (2.5, 2.5, 2.0)
    # Once an epoch is finished the last step belongs to it: nothing is under way.
    last, best, running = train_loss_figures(history, step(1, epoch_loss=2.5))
    assert (last, best) == (2.5, 2.5) and math.isnan(running)
    worse = [*history, epoch(2, train_loss=2.7)]
    assert train_loss_figures(worse, None)[:2] == (2.7, 2.5)


def test_the_dashboard_never_shows_a_best_above_the_last_epoch():
    dashboard = Dashboard(Console(file=io.StringIO()))
    dashboard.info = run_info()
    dashboard.history = [epoch(0, train_loss=3.0), epoch(1, train_loss=2.5)]
    dashboard.last_step = step(2, epoch_loss=2.0, number=4)
    text = rendered(dashboard.render())
    last, best = (float(x) for x in re.findall(r"\d+\.\d{4}", row(text, "train loss"))[:2])
    assert last == 2.5 and best == 2.5
    assert "2.0000" in row(text, "this epoch") and "step 4/10" in row(text, "this epoch")


# --- one epoch time for every view ----------------------------------------------------------


def test_epoch_time_reads_the_same_on_the_dashboard_and_in_the_summary():
    history = [epoch(0, epoch_s=3.0), epoch(1, epoch_s=1.0)]
    assert epoch_time_text(history) == "2.0s mean, 1.0s last"
    assert epoch_time_text(history[:1]) == "3.0s" and epoch_time_text([]) == "-"
    dashboard = Dashboard(Console(file=io.StringIO()))
    dashboard.info, dashboard.history = run_info(), history
    result = TrainResult(Path("runs/x"), history, 1, 2.0, None, None, 0, 1000, "epochs", 2.0)
    for text in (rendered(dashboard.render()), rendered(summary_table(result))):
        assert "2.0s mean, 1.0s last" in row(text, "epoch time")


# --- ETA: at most, and early stopping -------------------------------------------------------


def test_eta_bounds_the_epochs_left_and_says_when_early_stopping_could_end_the_run():
    # Epoch 10 of 20 is done, the best was epoch 9, --patience 3, 10 s an epoch: epochs 11 and
    # 12 without a better valid NLL would stop the run after epoch 12, in 20 s.
    bound = eta_bound(epoch(9, best_epoch=8), epochs=20, patience=3, seconds_per_epoch=10.0)
    assert (bound.epochs_left, bound.seconds_left) == (10, 100.0)
    assert (bound.early_stop_epoch, bound.early_stop_s) == (12, 20.0)
    assert eta_text(bound) == (
        "at most 1m40s (10 epochs), or 20.0s if early stopping ends it after epoch 12"
    )
    # Patience longer than what is left: only the epoch limit bounds the run.
    far = eta_bound(epoch(9, best_epoch=9), epochs=12, patience=5, seconds_per_epoch=10.0)
    assert far.early_stop_epoch is None and eta_text(far) == "at most 20.0s (2 epochs)"
    # Three epochs without a better NLL under --patience 3: the run ends now.
    now = eta_bound(epoch(9, best_epoch=6), epochs=20, patience=3, seconds_per_epoch=10.0)
    assert now.early_stop_epoch == 10
    assert eta_text(now) == "0.0s (early stopping ends the run after epoch 10)"
    last = eta_bound(epoch(19, best_epoch=19), epochs=20, patience=3, seconds_per_epoch=10.0)
    assert eta_text(last) == "0.0s (last epoch)"


def test_dashboard_and_log_lines_use_the_patience_of_the_run():
    history = [epoch(0, epoch_s=10.0), epoch(1, best_epoch=0, epoch_s=10.0)]
    dashboard = Dashboard(Console(file=io.StringIO()))
    dashboard.info, dashboard.history = run_info(epochs=20, patience=3), history
    assert "or 20.0s if early stopping ends it after epoch 4" in rendered(dashboard.render())
    out = io.StringIO()
    log = PlainLog(Console(file=out, width=80))
    log.on_start(run_info(epochs=20, patience=3))
    for entry in history:
        log.on_epoch(entry)
    lines = out.getvalue().splitlines()
    # After epoch 1 (the best so far) three epochs without a better NLL would end it after 4.
    assert lines[1].startswith("epoch 1/20 ") and lines[1].endswith("early_stop_after=4")
    assert lines[2].startswith("epoch 2/20 ") and "best=2.0000@1" in lines[2]
    assert lines[2].endswith("eta_max=3m00s early_stop_after=4")


# --- Ctrl-C: the panel is stopped once --------------------------------------------------------


class Screen:
    """A terminal, as far as rich's live display drives one: CR, LF (the tty adds CR), cursor
    up, erase line, and autowrap (a character past the last column starts the next row)."""

    def __init__(self, width: int) -> None:
        self.width, self.rows, self.row, self.col, self.pending_wrap = width, [[]], 0, 0, False

    def feed(self, text: str) -> None:
        for token in re.findall(r"\x1b\[[0-9;?]*[A-Za-z]|.", text, re.S):
            if token.startswith("\x1b["):
                if token[-1] == "A":
                    self.row = max(0, self.row - int(token[2:-1] or 1))
                    self.pending_wrap = False
                elif token[-1] == "K":
                    self.rows[self.row] = []
            elif token == "\r":
                self.col, self.pending_wrap = 0, False
            elif token == "\n":
                self._next_row()
            else:
                if self.pending_wrap:
                    self._next_row()
                cells = self.rows[self.row]
                cells.extend(" " * (self.col + 1 - len(cells)))
                cells[self.col] = token
                self.pending_wrap = self.col == self.width - 1
                self.col = min(self.col + 1, self.width - 1)

    def _next_row(self) -> None:
        self.row, self.col, self.pending_wrap = self.row + 1, 0, False
        if self.row == len(self.rows):
            self.rows.append([])

    def text(self) -> str:
        return "\n".join("".join(cells).rstrip() for cells in self.rows)


def test_ctrl_c_leaves_one_panel_on_screen():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=72, height=60, color_system=None)
    dashboard = Dashboard(console, auto_refresh=False)
    dashboard.on_start(run_info())
    dashboard.on_epoch(epoch(0))
    dashboard.on_step(step(1, epoch_loss=1.9))
    dashboard._live.refresh()
    out.write("^C")  # what the terminal echoes when the user presses Ctrl-C
    dashboard.stop()
    dashboard.stop()  # the command stops its view on the way out again: nothing more is drawn
    screen = Screen(72)
    screen.feed(out.getvalue())
    text = screen.text()
    assert text.count("╭") == 1 and text.count("╰") == 1, text
    assert "^C" not in text


def run_in_a_terminal(argv: list[str], *, press_ctrl_c_after: bytes, width: int = 80) -> str:
    """Run ``argv`` in a pseudo-terminal ``width`` columns wide, type Ctrl-C once its output
    holds ``press_ctrl_c_after`` and then pauses (between two refreshes, as a person presses
    it), and return the screen it leaves (through :class:`Screen`)."""
    import fcntl
    import os
    import pty
    import select
    import signal
    import struct
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # the child: the command, on the terminal
        os.execv(sys.executable, [sys.executable, *argv])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 60, width, 0, 0))
    output, pressed, armed_reads = b"", False, 0
    try:
        while True:
            armed = not pressed and press_ctrl_c_after in output
            # Once armed, a read that waits 50 ms in vain means a frame is drawn whole; after
            # 200 busy reads it is pressed anyway.
            ready, _, _ = select.select([fd], [], [], 0.05 if armed else 120)
            if armed and (not ready or armed_reads > 200):
                os.write(fd, b"\x03")  # the terminal sends SIGINT and echoes "^C"
                pressed = True
                continue
            if not ready:
                break  # nothing for two minutes: give up, the assertions will say so
            armed_reads += armed
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child has gone
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(fd)
        if os.waitpid(pid, os.WNOHANG) == (0, 0):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    screen = Screen(width)
    screen.feed(output.decode("utf-8", "replace"))
    return screen.text()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs a Linux pseudo-terminal")
def test_ctrl_c_in_a_terminal_leaves_one_dashboard_and_the_resume_line(tmp_path):
    data = write_tiny_mat(tmp_path / "tiny.mat")
    args = ["train", str(data), "--out", str(tmp_path / "run"), "--epochs", "300"]
    argv = ["-m", "tuneforge", *args, "--patience", "1000", *FAST]
    # Pressed once the dashboard shows a finished epoch, while the run has far to go.
    text = run_in_a_terminal(argv, press_ctrl_c_after=b"(epoch ")
    # The resume line folds at the terminal's width wherever the path's length puts the fold.
    unfolded = text.replace("\n", "")
    assert "interrupted" in unfolded and "--resume" in unfolded, text
    assert text.count("╭") == 1 and text.count("╰") == 1, text


# --- metrics.jsonl: epochs from 1, old files still read ---------------------------------------


def test_metrics_lines_number_epochs_from_1_and_old_lines_still_read():
    info = epoch(0, best_epoch=0, valid_articulation_nll=0.25)
    document = json.loads(epoch_to_metrics_line(info))
    assert document["epoch"] == 1 and document["best_epoch"] == 1
    assert document["epochs_counted_from"] == 1


def test_a_metrics_file_written_before_epochs_counted_from_1_reads_the_same(tmp_path):
    history = [epoch(0), epoch(1, best_epoch=0, valid_nll=2.5, best_valid_nll=2.0)]
    new = tmp_path / "new"
    new.mkdir()
    (new / "metrics.jsonl").write_text("".join(epoch_to_metrics_line(e) for e in history))
    old = tmp_path / "old.jsonl"  # as earlier versions wrote it: asdict, epochs from 0
    old.write_text("".join(json.dumps({k: v for k, v in vars(e).items()}) + "\n" for e in history))
    assert read_metrics(new) == history == read_metrics(old)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    data = write_tiny_mat(folder / "tiny.mat")
    out = folder / "run"
    args = ["train", str(data), "--out", str(out), "--epochs", "1", *FAST]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return data, out, result.output


def test_training_through_the_cli_writes_epochs_from_1(trained_run):
    _, out, output = trained_run
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1]
    assert lines[0]["best_epoch"] == 1
    assert "epoch 1/1 " in output and "best=" in output and "@1 " in output
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_resuming_a_run_written_before_the_change_keeps_reading_it(trained_run, tmp_path):
    import shutil

    data, out, _ = trained_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    # Make it a run of an earlier version: metrics.jsonl with epochs counted from 0.
    old = [
        {**json.loads(line), "epoch": 0, "best_epoch": 0}
        for line in (run / "metrics.jsonl").read_text().splitlines()
    ]
    for line in old:
        line.pop("epochs_counted_from")
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in old))
    assert [e.epoch for e in read_metrics(run)] == [0]
    args = ["train", str(data), "--out", str(run), "--resume", "--epochs", "2", "--threads", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "epoch 2/2 " in result.output
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]
    assert [e.epoch for e in read_metrics(run)] == [0, 1]
