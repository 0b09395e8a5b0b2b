"""DDP with two CPU processes (gloo, launched by torchrun) matches single-process training."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tests.test_cli_train import write_tiny_mat
from tuneforge.cli.app import app

# No dropout: each process would draw its own masks. The global batch (4 windows) is split in
# two halves of 2, and the loss is normalised by the frames of the whole batch, so both runs
# take the same gradient steps up to float summation order.
SETTINGS = [
    "--hidden-size",
    "16",
    "--batch-size",
    "4",
    "--window",
    "16",
    "--threads",
    "1",
    "--dropout",
    "0",
    "--transpose",
    "3",
    "--epochs",
    "3",
    "--seed",
    "3",
]


def _metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    data = write_tiny_mat(tmp_path / "tiny.mat", counts=(16, 4, 4))
    single = tmp_path / "single"
    result = CliRunner().invoke(app, ["train", str(data), "--out", str(single), *SETTINGS])
    assert result.exit_code == 0, result.output

    launcher = tmp_path / "launch_tuneforge.py"
    launcher.write_text("from tuneforge.cli.app import main\n\nmain()\n")
    ddp = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        str(launcher),
        "train",
        str(data),
        "--out",
        str(ddp),
        "--device",
        "cpu",
        *SETTINGS,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert finished.stdout.count("training summary") == 1  # only rank 0 draws

    config = json.loads((ddp / "config.json").read_text())
    assert config["world_size"] == 2
    for one, two in zip(_metrics(single), _metrics(ddp), strict=True):
        assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-4)
        assert two["valid_nll"] == pytest.approx(one["valid_nll"], rel=1e-4)
