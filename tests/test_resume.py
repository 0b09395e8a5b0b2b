"""Ctrl-C during `tuneforge train`, then --resume, ends where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.test_cli_train import write_tiny_mat
from tuneforge.cli.app import app

LAUNCH = "from tuneforge.cli.app import main; main()"
# Enough pieces that an epoch outlasts the gap between polling and the signal.
SETTINGS = [
    "--hidden-size",
    "24",
    "--batch-size",
    "4",
    "--window",
    "12",
    "--threads",
    "1",
    "--dropout",
    "0.2",
    "--transpose",
    "2",
    "--seed",
    "7",
]
EPOCHS = 5


def _metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.slow
def test_sigint_then_resume_matches_an_uninterrupted_run(tmp_path):
    data = write_tiny_mat(tmp_path / "tiny.mat", counts=(40, 4, 4))
    whole = tmp_path / "whole"
    reference = CliRunner().invoke(
        app, ["train", str(data), "--out", str(whole), "--epochs", str(EPOCHS), *SETTINGS]
    )
    assert reference.exit_code == 0, reference.output

    part = tmp_path / "part"
    process = _cli("train", str(data), "--out", str(part), "--epochs", str(EPOCHS), *SETTINGS)
    deadline = time.monotonic() + 120
    while not _metrics(part) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if process.poll() is not None:
        pytest.fail(f"training ended before it could be interrupted: {process.communicate()}")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "resume with:" in stderr and "--resume" in stderr
    done = len(_metrics(part))
    assert 1 <= done < EPOCHS  # stopped mid-run

    resumed = _cli("train", str(data), "--out", str(part), "--resume")
    stdout, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr
    keys = ("train_loss", "valid_nll", "valid_accuracy", "best_valid_nll", "best_epoch")
    assert [{k: m[k] for k in keys} for m in _metrics(part)] == [
        {k: m[k] for k in keys} for m in _metrics(whole)
    ]
    assert "test NLL" in stdout
