"""Benchmark: one training epoch of each model kind on a data set (JSB by default), with its
frames per second, seconds per epoch (validation included) and peak memory.

Each entry runs in a process of its own (its peak resident memory is its own) with the
defaults of `tuneforge train` for everything but the model options it names:

    .venv/bin/python benchmarks/train_models.py [--data jsb] [--entries sequence note-axis ...]
        [--threads 2]

Entries: sequence (bernoulli head), note-axis (sequence model, note-axis head),
biaxial (lstm time axis), biaxial-lstm-v1 (seed 002's cell). Prints a table and writes
benchmarks/results/train_models.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "train_models.json"
ENTRIES = {
    "sequence": ("sequence", {}),
    "note-axis": ("sequence", {"head": "note-axis"}),
    "biaxial": ("biaxial", {}),
    "biaxial-lstm-v1": ("biaxial", {"cell": "lstm-v1"}),
}


def measure(entry: str, data: str, threads: int) -> dict:
    """Train one epoch of ``entry`` on ``data`` in this process."""
    from tuneforge.cli.model_options import fit_to_data, model_config_from_options
    from tuneforge.data.dataset import load_dataset
    from tuneforge.models import build_model
    from tuneforge.models.registry import describe_model
    from tuneforge.train import TrainConfig, train

    kind, options = ENTRIES[entry]
    dataset = load_dataset(data)
    config = model_config_from_options(kind, dict(options), None)
    config = fit_to_data(
        config,
        steps_per_beat=dataset.steps_per_beat,
        onsets_known=dataset.onsets is not None,
        articulation=None,
    )
    model = build_model(config, seed=0)
    train_config = TrainConfig(epochs=1, threads=threads, device="cpu")
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        result = train(train_config, dataset, model=model, run_dir=Path(folder) / "run")
        total_s = time.perf_counter() - started
    epoch = result.history[0]
    return {
        "entry": entry,
        "model": describe_model(config),
        "parameters": result.parameters,
        "train_frames_per_s": epoch.frames_per_s,
        "epoch_s": epoch.epoch_s,
        "run_s": total_s,
        "valid_nll_after_one_epoch": epoch.valid_nll,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="jsb")
    parser.add_argument("--entries", nargs="*", default=list(ENTRIES), choices=list(ENTRIES))
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument(
        "--one", nargs=3, metavar=("ENTRY", "DATA", "THREADS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.one:  # the child process: one measurement, as JSON on stdout
        print(json.dumps(measure(args.one[0], args.one[1], int(args.one[2]))))
        return
    rows = []
    for entry in args.entries:
        child = [sys.executable, __file__, "--one", entry, args.data, str(args.threads)]
        done = subprocess.run(child, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        row = rows[-1]
        print(
            f"{row['model']:<40} {row['parameters']:>10,} params {row['train_frames_per_s']:>8.0f} "
            f"frames/s {row['epoch_s']:>7.1f} s/epoch {row['peak_rss_mib']:>7.0f} MiB peak",
            flush=True,
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"data": args.data, "rows": rows}, indent=2) + "\n", "utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
