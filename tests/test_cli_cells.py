"""`tuneforge cells` through the command line, as a user runs it."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tuneforge.cells import cell_names, count_parameters
from tuneforge.cli.app import app

runner = CliRunner()


def test_cells_json_lists_every_cell_with_its_parameter_count():
    result = runner.invoke(app, ["cells", "--input-size", "10", "--hidden-size", "16", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["settings"] == {"input_size": 10, "hidden_size": 16, "num_layers": 1}
    rows = {row["name"]: row for row in report["cells"]}
    assert list(rows) == cell_names()
    for name, row in rows.items():
        assert row["parameters"] == count_parameters(name, input_size=10, hidden_size=16)
        assert row["description"] and row["paper"]
        assert row["kernel"] == ("loop" if name in {"clockwork", "rru", "mogrifier"} else "fused")
    assert rows["lstm"]["parameters"] == 4 * 16 * (10 + 16 + 1)
    assert rows["lstm-v1"]["aliases"] == ["lstm-variant"]
    assert rows["mogrifier"]["options"] == {"rounds": 5, "rank": 32, "forget_bias": 1.0}


def test_cells_table_names_every_cell():
    result = runner.invoke(app, ["cells", "--num-layers", "2"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for name in cell_names():
        assert name in result.output
    assert "lstm-variant" in result.output
    assert f"{count_parameters('lstm', input_size=88, hidden_size=256, num_layers=2):,}" in (
        result.output
    )


def test_cells_rejects_a_zero_hidden_size():
    result = runner.invoke(app, ["cells", "--hidden-size", "0"])
    assert result.exit_code == 2
