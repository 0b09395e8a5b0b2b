"""Benchmark: what a model's pieces look like next to the music it was trained on.

For each temperature, runs `tuneforge generate --num N --render` exactly as a user would, reads
the MIDI files back, and compares their mean polyphony (notes sounding per step, silent steps
included) and notes per beat (note onsets per beat) with the training split of the data.

    .venv/bin/python benchmarks/generation_stats.py --model runs/NAME \
        --data ../shared/data/nottingham-midi [--temps 0.5,0.8,1.0 --num 4 --length 64]

Prints a table and writes benchmarks/results/generation_stats.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from tuneforge.music.midi import read_midi
from tuneforge.music.pianoroll import roll_to_notes

RESULTS = Path(__file__).resolve().parent / "results" / "generation_stats.json"


def roll_stats(rolls: list[np.ndarray], onset_rolls: list[np.ndarray | None], spb: int) -> dict:
    """Mean polyphony and notes per beat over a list of rolls (frame-weighted)."""
    steps = sum(len(r) for r in rolls)
    sounding = sum(int(r.sum()) for r in rolls)
    notes = sum(len(roll_to_notes(r, o)) for r, o in zip(rolls, onset_rolls, strict=True))
    return {
        "pieces": len(rolls),
        "steps": steps,
        "mean_polyphony": sounding / max(steps, 1),
        "notes_per_beat": notes / max(steps / spb, 1e-9),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="checkpoint or run folder")
    parser.add_argument("--data", required=True, help="the data the model was trained on")
    parser.add_argument("--temps", default="0.5,0.8,1.0")
    parser.add_argument("--num", type=int, default=4)
    parser.add_argument("--length", type=float, default=64, help="beats per piece")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()

    from tuneforge.checkpoint import load_checkpoint
    from tuneforge.data.dataset import load_dataset

    spb = int(load_checkpoint(args.model).meta.get("steps_per_beat", 4))
    dataset = load_dataset(args.data, steps_per_beat=spb)
    rows = [
        {
            "source": f"{dataset.name} (train split)",
            **roll_stats(dataset.train, [None] * len(dataset.train), spb),
        }
    ]
    tuneforge = Path(sys.executable).with_name("tuneforge")
    for temp in [float(t) for t in args.temps.split(",")]:
        with tempfile.TemporaryDirectory() as out:
            command = [
                str(tuneforge),
                "generate",
                "--model",
                str(args.model),
                "--temp",
                str(temp),
                "--num",
                str(args.num),
                "--length",
                str(args.length),
                "--seed",
                str(args.seed),
                "--render",
                "--out",
                out,
            ]
            subprocess.run(command, check=True, capture_output=True)
            pieces = [read_midi(p, steps_per_beat=spb) for p in sorted(Path(out).glob("*.mid"))]
            wavs = len(list(Path(out).glob("*.wav")))
        stats = roll_stats([p.roll for p in pieces], [p.onsets for p in pieces], spb)
        rows.append({"source": f"generated, T={temp:g}", "wavs": wavs, **stats})

    print(f"{'source':32} {'pieces':>6} {'steps':>8} {'polyphony':>10} {'notes/beat':>11}")
    for row in rows:
        print(
            f"{row['source']:32} {row['pieces']:>6} {row['steps']:>8} "
            f"{row['mean_polyphony']:>10.2f} {row['notes_per_beat']:>11.2f}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"model": str(args.model), "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
