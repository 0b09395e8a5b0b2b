"""Benchmark: does a harmonization accompany the whole tune?

Harmonizes a melody (default ``examples/tune.mid``) with each model through
``tuneforge generate --melody`` and reads the files back: for each quarter of the tune, the share
of steps where the melody sounds that also have at least one note under it, and the mean number
of notes under the melody. Also whether the melody was kept (every step's top note is the
melody's).

    .venv/bin/python benchmarks/harmonize.py [--models default nottingham-lstm] [--num 8]

Prints a table and writes benchmarks/results/harmonize.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "harmonize.json"


def measure(model: str, melody: Path, num: int, seed: int, temperature: float) -> dict:
    """Harmonize ``melody`` ``num`` times with ``model``; figures per quarter of the tune."""
    from tuneforge.music.midi import read_midi
    from tuneforge.sample import melody_constraints

    tune = read_midi(melody, steps_per_beat=4).roll
    on, _ = melody_constraints(tune)
    with tempfile.TemporaryDirectory() as folder:
        command = [
            sys.executable,
            "-m",
            "tuneforge",
            "generate",
            "--model",
            model,
            "--melody",
            str(melody),
            "--num",
            str(num),
            "--seed",
            str(seed),
            "--temp",
            str(temperature),
            "--out",
            folder,
        ]
        subprocess.run(command, check=True, capture_output=True)
        rolls = [
            read_midi(path, steps_per_beat=4).roll for path in sorted(Path(folder).glob("*.mid"))
        ]
    length = min(len(tune), *(len(r) for r in rolls))
    sounding = on[:length].any(axis=1)
    kept = all(bool((roll[:length][on[:length]] == 1).all()) for roll in rolls)
    quarters = []
    for index in range(4):
        part = slice(index * length // 4, (index + 1) * length // 4)
        steps = np.flatnonzero(sounding[part]) + part.start
        under = np.array([[roll[s].sum() - 1 for s in steps] for roll in rolls])  # (num, steps)
        quarters.append(
            {"with_harmony": float((under > 0).mean()), "notes_under": float(under.mean())}
        )
    return {
        "model": model,
        "temperature": temperature,
        "pieces": len(rolls),
        "melody_kept": kept,
        "quarters": quarters,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=["default", "nottingham-lstm"])
    parser.add_argument("--melody", type=Path, default=ROOT / "examples" / "tune.mid")
    parser.add_argument("--num", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temp", type=float, default=1.0)
    args = parser.parse_args()
    rows = [measure(m, args.melody, args.num, args.seed, args.temp) for m in args.models]
    print(
        f"harmonizing {args.melody.name}, {args.num} pieces, T = {args.temp}: share of melody "
        "steps with a note under the melody (mean notes under it), per quarter of the tune"
    )
    for row in rows:
        cells = "  ".join(
            f"{q['with_harmony']:6.1%} ({q['notes_under']:.2f})" for q in row["quarters"]
        )
        print(f"{row['model']:<18} kept={str(row['melody_kept']):<5}  {cells}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"melody": args.melody.name, "rows": rows}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
