"""The pictures: curves.png of a run and the piano roll of `show --png`."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from typer.testing import CliRunner

from tests.midi_factory import write_midi
from tests.test_dashboard import epoch
from tuneforge.cli.app import app
from tuneforge.cli.rollview import (
    bar_line_steps,
    note_spans,
    octave_ticks,
    octave_window,
    onset_marks,
)
from tuneforge.curves import (
    curves_figure,
    curves_title,
    epoch_ticks,
    loss_limits,
    off_chart_note,
    plot_curves,
)

runner = CliRunner()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# --- curves.png ---------------------------------------------------------------------------------


def test_epoch_ticks_are_whole_epochs_counted_from_1():
    assert epoch_ticks(0) == [] and epoch_ticks(1) == [1]
    assert epoch_ticks(5) == [1, 2, 3, 4, 5]
    assert epoch_ticks(12) == [2, 4, 6, 8, 10, 12]
    assert epoch_ticks(44) == [1, 5, 10, 15, 20, 25, 30, 35, 40]
    assert epoch_ticks(101) == [1, 20, 40, 60, 80, 100]


def test_the_first_epoch_does_not_set_the_scale():
    # Epochs 2..4 span 2.0..3.2; 8 % of that (0.096) is added on each side.
    assert loss_limits([9.9, 3.0, 2.5, 2.0], [9.6, 3.2, 2.8, 2.6]) == pytest.approx((1.904, 3.296))
    # With fewer than three epochs every epoch counts.
    assert loss_limits([2.0, 1.0], [2.5, 1.5]) == pytest.approx((0.88, 2.62))
    assert loss_limits([5.0], [5.0]) == pytest.approx((4.75, 5.25))  # flat: 5 % of the value


def test_a_first_epoch_above_the_chart_is_named():
    history = [epoch(0, train_loss=9.9, valid_nll=2.5), epoch(1, train_loss=2.0)]
    assert off_chart_note(history, (1.0, 3.0)) == "epoch 1 above: train loss 9.9"
    assert off_chart_note(history, (1.0, 10.0)) is None


def twelve_epochs():
    losses = [9.8, *np.linspace(4.0, 3.0, 11)]
    return [
        epoch(i, train_loss=loss, valid_nll=loss + 0.1, best_epoch=i)
        for i, loss in enumerate(losses)
    ]


def test_the_curves_have_a_title_integer_epoch_ticks_and_the_scale_of_epochs_2_on():
    history = twelve_epochs()
    title = curves_title("jsb-lstm", history)
    assert title == "jsb-lstm: best valid NLL 3.100 at epoch 12 of 12"
    axes = curves_figure(history, title).axes[0]
    assert axes.get_title() == title
    assert list(axes.get_xticks()) == [2, 4, 6, 8, 10, 12]
    # Epochs 2..12 run from 3.0 (train) to 4.1 (valid); 8 % of 1.1 on each side. Epoch 1 (9.8)
    # is above the chart, and named there.
    assert axes.get_ylim() == pytest.approx((2.912, 4.188))
    assert any("epoch 1 above" in text.get_text() for text in axes.texts)


def test_plot_curves_names_the_run_folder(tmp_path):
    run = tmp_path / "nott-gru"
    run.mkdir()
    path = plot_curves(twelve_epochs(), run / "curves.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE


# --- show --png ---------------------------------------------------------------------------------


def test_bar_lines_follow_every_time_signature():
    # 4 steps a beat: 3/4 bars of 12 steps from step 0, then 2/4 bars of 8 steps from step 12.
    assert bar_line_steps(30, 4, [(0, 3, 4), (12, 2, 4)]) == [12, 20, 28]
    assert bar_line_steps(40, 4) == [16, 32]  # no time signature: 4/4
    assert bar_line_steps(48, 2, [(0, 6, 8)]) == [6, 12, 18, 24, 30, 36, 42]  # 3 quarters a bar


def test_every_octave_is_named():
    assert octave_window(45, 76) == (36, 84)  # A2..E5 -> C2..C6
    assert octave_window(22, 107) == (21, 108)  # within the piano, A0..C8
    names = [name for _, name in octave_ticks(21, 108)]
    assert names == ["C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8"]
    assert octave_ticks(36, 84) == [(36, "C2"), (48, "C3"), (60, "C4"), (72, "C5"), (84, "C6")]


def test_a_repeated_note_has_two_onset_marks():
    roll = np.zeros((6, 88), dtype=np.uint8)
    onsets = np.zeros_like(roll)
    roll[0:4, 60 - 21] = 1  # C4 struck at steps 0 and 2 without a gap
    onsets[[0, 2], 60 - 21] = 1
    roll[1:3, 64 - 21] = 1  # E4 once
    assert onset_marks(roll, onsets) == [(0, 60), (1, 64), (2, 60)]
    assert onset_marks(roll) == [(0, 60), (1, 64)]  # without onsets a run is one note
    assert note_spans(roll, onsets) == [(0, 2, 60), (1, 3, 64), (2, 4, 60)]


@pytest.fixture
def drawn(monkeypatch):
    """The figures the command saves."""
    figures: list[Figure] = []
    save = Figure.savefig

    def keep(self, *args, **kwargs):
        figures.append(self)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return figures


def test_show_png_marks_onsets_names_octaves_and_follows_the_time_signatures(tmp_path, drawn):
    # C4 twice without a gap, then G4; a bar of 3/4 (12 steps) then bars of 2/4 (8 steps).
    notes = [(60, 0, 4), (60, 4, 8), (67, 8, 28)]
    tune = write_midi(tmp_path / "tune.mid", notes, time_signatures=[(0, 3, 4), (12, 2, 4)])
    png = tmp_path / "roll.png"
    result = runner.invoke(app, ["show", str(tune), "--png", str(png)])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    axes = drawn[-1].axes[0]
    marks = [c for c in axes.collections if isinstance(c, LineCollection)][0]
    starts = sorted((seg[0][0], round(seg[:, 1].mean())) for seg in marks.get_segments())
    assert starts == [(0.0, 60), (1.0, 60), (2.0, 67)]  # in beats: the repeated C4 shows twice
    assert [label.get_text() for label in axes.get_yticklabels()] == ["C4", "C5"]
    bar_lines = sorted(line.get_xdata()[0] for line in axes.lines if line.get_xdata()[0] > 0)
    assert bar_lines == [3.0, 5.0]  # beats 3 (3/4 bar ends) and 5 (a 2/4 bar later)


# --- show RUN_DIR: a run's epochs and curves, old runs included ---------------------------------


def old_run(folder):
    """A run folder as earlier versions wrote it: metrics.jsonl counts epochs from 0."""
    import json
    from dataclasses import asdict

    folder.mkdir()
    history = [
        epoch(0, train_loss=9.0, valid_nll=8.0),
        epoch(1, train_loss=4.0, valid_nll=3.5),
        epoch(2, train_loss=3.5, valid_nll=3.6, best_epoch=1, best_valid_nll=3.5),
    ]
    lines = "".join(json.dumps(asdict(entry)) + "\n" for entry in history)
    (folder / "metrics.jsonl").write_text(lines)
    return folder


def test_show_of_a_run_folder_lists_its_epochs_from_1_and_draws_the_curves(tmp_path, drawn):
    run = old_run(tmp_path / "nott-gru")
    png = tmp_path / "curves.png"
    result = runner.invoke(app, ["show", str(run), "--png", str(png)], terminal_width=100)
    assert result.exit_code == 0, result.output
    assert "nott-gru: best valid NLL 3.500 at epoch 2 of 3" in result.output
    rows = [line.split() for line in result.output.splitlines() if "│" in line]
    numbers = [cells[1] for cells in rows if len(cells) > 1 and cells[1].isdigit()]
    assert numbers == ["1", "2", "3"]
    assert "3.5000 best" in result.output
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert list(drawn[-1].axes[0].get_xticks()) == [1, 2, 3]


def test_show_of_a_folder_without_good_metrics_is_a_one_line_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["show", str(empty)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "metrics.jsonl is missing" in result.output
    (empty / "metrics.jsonl").write_text('{"epoch": 0, "train_loss": 1.0}\n{"epo')
    result = runner.invoke(app, ["show", str(empty)])
    assert result.exit_code == 1 and "line 1 of" in result.output


def test_terminal_bar_lines_follow_every_time_signature_and_thin_out():
    from tuneforge.cli.rollview import bar_line_columns

    bars = [0, 12, 20, 28]  # a 3/4 bar, then 2/4 bars (4 steps a beat)
    assert np.flatnonzero(bar_line_columns(bars, 1, 36)).tolist() == [12, 20, 28]
    # 4 steps a column: the shortest bar is 2 columns, so every second bar gets a line.
    assert np.flatnonzero(bar_line_columns(bars, 4, 9)).tolist() == [5]
    assert not bar_line_columns([0], 1, 10).any()  # shorter than a bar: no line


def test_show_in_the_terminal_draws_bar_lines_from_every_time_signature(tmp_path):
    notes = [(60, 0, 4), (60, 4, 8), (67, 8, 28)]
    tune = write_midi(tmp_path / "tune.mid", notes, time_signatures=[(0, 3, 4), (12, 2, 4)])
    result = runner.invoke(app, ["show", str(tune)], terminal_width=80)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("  D4 "))
    assert [i for i, ch in enumerate(row[5:]) if ch == "│"] == [12, 20]
    axis = next(line for line in result.output.splitlines() if line.lstrip().startswith("1 "))
    assert axis[5 + 12] == "2" and axis[5 + 20] == "3"  # bar numbers under the lines
