"""`tuneforge show` and `tuneforge score`, run as a user runs them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from tests.midi_factory import write_midi
from tests.tiny_models import save_tiny, tiny_model
from tuneforge.cli.app import app
from tuneforge.cli.rollview import PianoRollView
from tuneforge.evaluate import score_rolls
from tuneforge.music.midi import read_midi

runner = CliRunner()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def tune(tmp_path):
    # Two bars of 4/4: C4, E4, G4 in the first, a held A3 in the second.
    return write_midi(tmp_path / "tune.mid", [(60, 0, 4), (64, 4, 8), (67, 8, 16), (57, 16, 32)])


def _rows(output: str) -> dict[str, str]:
    """Roll rows by their note name label."""
    rows = {}
    for line in output.splitlines():
        label, _, cells = line[:5].strip(), line[4:5], line[5:]
        if label[:1] in "ABCDEFG" and label[-1:].isdigit():
            rows[label] = cells
    return rows


def test_show_draws_pitch_up_time_right_with_bar_lines(tune):
    result = runner.invoke(app, ["show", str(tune)])
    assert result.exit_code == 0, result.output
    assert "tune.mid" in result.output and "4 notes" in result.output
    rows = _rows(result.output)
    names = list(rows)
    assert names.index("G4") < names.index("C4") < names.index("A3")  # high pitches on top
    # At 80 columns every step has its own column; bar 2 starts at step 16.
    assert rows["C4"][:4] == "████" and rows["C4"][4] != "█"
    assert rows["G4"][8:16] == "█" * 8
    assert rows["A3"][16:32] == "█" * 16 and rows["A3"][:16].count("█") == 0
    assert rows["D4"][16] == "│"  # the bar line crosses rows where nothing sounds


def test_show_writes_a_png(tune, tmp_path):
    png = tmp_path / "roll.png"
    result = runner.invoke(app, ["show", str(tune), "--png", str(png)])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == PNG_SIGNATURE


def test_a_long_roll_shares_columns_to_fit_the_terminal():
    roll = np.zeros((400, 88), np.uint8)
    roll[390:, 39] = 1  # only at the very end
    console = Console(width=60, record=True)
    console.print(PianoRollView(roll, steps_per_beat=4))
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 60
    c4 = next(line for line in lines if line.strip().startswith("C4"))
    assert c4.rstrip().endswith("█") and c4.count("█") <= 2
    assert "1 column = 8 steps" in lines[-1]
    bar_lines = [i for i, ch in enumerate(c4) if ch == "│"]
    assert min(np.diff(bar_lines)) >= 4  # lines are thinned out so that notes stay visible


def test_score_shows_a_strip_and_the_total(tune, tmp_path):
    model_path = save_tiny(tmp_path / "models", "tiny")
    result = runner.invoke(app, ["score", str(tune), "--model", str(model_path)])
    assert result.exit_code == 0, result.output
    assert "nats/frame" in result.output
    strip = next(line for line in result.output.splitlines() if line.strip().startswith("LL"))
    assert any(ch in strip for ch in "▁▂▃▄▅▆▇█")


def test_score_json_matches_the_evaluation(tune, tmp_path):
    model_path = save_tiny(tmp_path / "models", "tiny")
    png = tmp_path / "score.png"
    result = runner.invoke(
        app, ["score", str(tune), "--model", str(model_path), "--json", "--png", str(png)]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    frames = document["frame_log_likelihood"]
    assert frames[0] is None and len(frames) == 32 and document["scored_frames"] == 31
    assert sum(frames[1:]) == pytest.approx(document["log_likelihood"])
    reference = score_rolls(tiny_model(), [read_midi(tune, steps_per_beat=4).roll])
    assert document["nll_per_frame"] == pytest.approx(reference.nll, rel=1e-5)
    assert png.read_bytes()[:8] == PNG_SIGNATURE


def test_show_of_a_broken_file_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not midi at all")
    result = runner.invoke(app, ["show", str(bad)])
    assert result.exit_code == 1 and "Traceback" not in result.output
