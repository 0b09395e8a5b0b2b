"""Time `tuneforge data inspect` on a folder: a first run (empty cache) against a cached run.

Usage (from the repository root):

    .venv/bin/python benchmarks/data_inspect.py ../shared/data/nottingham-midi --repeats 3

Each repeat runs the command as a user would (a fresh process) twice: once with an empty cache
directory, then again with the cache it filled. ``--baseline`` also times mido alone parsing every
file on one core, the reference the issue quotes. Prints a table, writes JSON to
benchmarks/results/data_inspect.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
COMMAND = "from tuneforge.cli.app import main; main()"


def time_inspect(folder: Path, cache_dir: Path, workers: int | None) -> float:
    """Seconds of one `tuneforge data inspect FOLDER --json` in a new process."""
    args = [
        sys.executable,
        "-c",
        COMMAND,
        "data",
        "inspect",
        str(folder),
        "--json",
        "--cache-dir",
        str(cache_dir),
    ]
    if workers:
        args += ["--workers", str(workers)]
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"inspect failed ({done.returncode}): {done.stderr.strip()}")
    return elapsed


def time_mido_alone(folder: Path) -> float:
    """Seconds for mido to parse every MIDI file under ``folder`` on one core."""
    import mido

    paths = [p for p in sorted(folder.rglob("*")) if p.suffix.lower() in (".mid", ".midi", ".kar")]
    start = time.perf_counter()
    for path in paths:
        try:
            mido.MidiFile(path)
        except Exception:  # noqa: BLE001  broken files count as parsed for the baseline
            pass
    return time.perf_counter() - start


def main() -> None:
    """Run the benchmark, print the table and write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--baseline", action="store_true", help="also time mido alone")
    options = parser.parse_args()

    first_runs, cached_runs = [], []
    for _ in range(options.repeats):
        with tempfile.TemporaryDirectory() as cache:
            first_runs.append(time_inspect(options.folder, Path(cache), options.workers))
            cached_runs.append(time_inspect(options.folder, Path(cache), options.workers))
    rows = [("first run (empty cache)", first_runs), ("cached run", cached_runs)]
    if options.baseline:
        rows.append(("mido alone, one core", [time_mido_alone(options.folder)]))

    print(f"{'run':<26}{'best s':>10}{'median s':>10}{'runs':>6}")
    for name, times in rows:
        print(f"{name:<26}{min(times):>10.3f}{statistics.median(times):>10.3f}{len(times):>6}")
    print(f"speed-up of the cache (best): {min(first_runs) / min(cached_runs):.1f}x")

    result = {
        "folder": str(options.folder),
        "workers": options.workers or os.cpu_count(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "runs": {name: times for name, times in rows},
        "best_s": {name: min(times) for name, times in rows},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "data_inspect.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
