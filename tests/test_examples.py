"""The programs of examples/, run as a user runs them (a subprocess each, at smoke size)."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import wave
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
pytestmark = pytest.mark.slow


def _env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TUNEFORGE_SMOKE="1",  # every training one short epoch (tuneforge/smoke.py)
        TUNEFORGE_CACHE_DIR=str(cache),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        OMP_NUM_THREADS="1",
        COLUMNS="120",
    )
    return env


def _run(args: list[str], cwd: Path) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=_env(cwd / "cache"), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def _python(example: str, *args: str, cwd: Path) -> str:
    return _run([sys.executable, str(EXAMPLES / example), *args], cwd)


def _wav_frames(path: Path) -> int:
    with wave.open(str(path)) as sound:
        return sound.getnframes()


def _numbers(pattern: str, text: str) -> list[float]:
    found = [float(value) for value in re.findall(pattern, text)]
    assert found, f"{pattern!r} not in:\n{text}"
    return found


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, str]:
    """examples/train_model.py, run once: (its working folder, its output)."""
    folder = tmp_path_factory.mktemp("train")
    return folder, _python("train_model.py", cwd=folder)


def test_train_model_writes_a_run_with_finite_scores(trained):
    folder, output = trained
    run = folder / "runs" / "example-lstm"
    config = json.loads((run / "config.json").read_text())
    assert config["model_config"]["cell"] == "lstm"
    assert config["train_config"]["epochs"] == 1  # smoke size honoured
    assert (run / "best.safetensors").is_file() and (run / "curves.png").is_file()
    assert "epoch 1: train" in output
    (valid,) = _numbers(r"best valid NLL ([\d.]+)", output)
    (test,) = _numbers(r"test NLL ([\d.]+)", output)
    assert math.isfinite(valid) and math.isfinite(test) and 0 < valid < 100


def test_generate_and_render_samples_from_the_trained_run(trained):
    folder, _ = trained
    output = _python(
        "generate_and_render.py", "--model", "runs/example-lstm", "--num", "2", cwd=folder
    )
    pieces = sorted((folder / "out" / "example").glob("tuneforge-example-lstm-best-s7-*.mid"))
    assert len(pieces) == 2
    for midi in pieces:
        assert _wav_frames(midi.with_suffix(".wav")) > 44100  # 16 beats at 110 bpm: ~9 s
        provenance = json.loads(midi.with_suffix(".json").read_text())
        assert provenance["options"]["key"] == "G major" and provenance["seed"] == 7
    assert len(_numbers(r"peak ([\d.]+)", output)) == 2


def test_custom_cell_is_registered_and_trained(tmp_path):
    output = _python("custom_cell.py", cwd=tmp_path)
    assert re.search(r"cells now: .*\bmgu\b", output)
    sizes = dict(re.findall(r"(mgu|gru): ([\d,]+) parameters", output))
    assert int(sizes["mgu"].replace(",", "")) < int(sizes["gru"].replace(",", ""))  # a gate fewer
    config = json.loads((tmp_path / "runs" / "example-mgu" / "config.json").read_text())
    assert config["model_config"]["cell"] == "mgu" and config["model_config"]["num_layers"] == 2
    (valid,) = _numbers(r"best valid NLL ([\d.]+)", output)
    assert math.isfinite(valid)


def test_score_folder_writes_finite_scores_and_a_plot(tmp_path):
    output = _python("score_folder.py", cwd=tmp_path)
    document = json.loads((tmp_path / "out" / "scores" / "scores.json").read_text())
    assert document["model"] == "default"
    scores = [piece["nll_per_frame"] for piece in document["pieces"]]
    assert len(scores) == len(list((EXAMPLES / "tunes").glob("*.mid"))) == 12
    assert all(math.isfinite(value) and 0 < value < 20 for value in scores)
    assert (tmp_path / "out" / "scores" / "scores.png").read_bytes()[:4] == b"\x89PNG"
    assert output.count("nats/frame") == 12


def test_the_shell_script_trains_compares_and_renders(tmp_path):
    _run(["bash", str(EXAMPLES / "train_compare_listen.sh")], tmp_path)
    out = tmp_path / "runs" / "example-sh"
    assert json.loads((out / "gru" / "config.json").read_text())["train_config"]["epochs"] == 1
    report = json.loads((out / "compare" / "report.json").read_text())
    assert report["settings"]["cells"] == ["lstm", "gru"] and report["entries_done"] == 2
    assert all(math.isfinite(entry["test_nll"]) for entry in report["leaderboard"])
    assert (out / "compare" / "report.md").is_file()
    (wav,) = (out / "listen").glob("*.wav")
    assert _wav_frames(wav) > 0


def test_register_cell_refuses_a_name_that_is_taken():
    from tuneforge.cells.registry import CELLS, register_cell
    from tuneforge.errors import ConfigError

    for name in ("gru", "lstm-variant", "Gru"):
        with pytest.raises(ConfigError, match="pick a new lower-case name"):
            register_cell(replace(CELLS["gru"], name=name))
    assert CELLS["gru"].factory.endswith(":GRULayer")
