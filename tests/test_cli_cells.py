"""`tuneforge cells` through the command line, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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


def test_compile_fills_numba_cache_so_a_second_process_compiles_nothing(tmp_path):
    cache = tmp_path / "numba-cache"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    env.pop("TUNEFORGE_NO_NUMBA", None)
    command = [sys.executable, "-m", "tuneforge", "cells", "--compile", "--json"]

    def run() -> dict[str, str]:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return {row["name"]: row["path"] for row in json.loads(done.stdout)["compiled"]}

    paths = run()
    assert list(paths)[: len(cell_names())] == cell_names()
    compiled = {"gru", "diag-rnn", "diag-lstm", "diag-gru", "gru-v1", "rru", "mogrifier"}
    assert {name for name, path in paths.items() if path == "numba"} >= compiled
    assert paths["note-axis scan (biaxial model)"] == "numba"
    files = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}
    assert any(p.suffix == ".nbc" for p in files) and any(p.suffix == ".nbi" for p in files)
    assert run() == paths
    # Loaded from the cache, not compiled again: no cache file was written or added.
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()} == files
