"""Benchmark: what a model's pieces look like next to held-out music of the data it learned.

For each temperature, runs `tuneforge generate --num N --length L` exactly as a user would,
reads the MIDI files back and measures them with tuneforge.music.stats; the reference row is
the HELD-OUT split (valid or test) of the data, and the copy figures are the memorization
meter against the training split (for the held-out row: held-out vs train, the calibration).

    .venv/bin/python benchmarks/generation_stats.py [--model runs/NAME] \
        [--data ../shared/data/nottingham-midi] [--temps 1.0,0.8 --num 16 --length 64]

Prints a table and writes benchmarks/results/generation_stats.json. The figures are defined
in docs/stats.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tuneforge.data.comparison import (
    NamedRoll,
    compare_to_dataset,
    format_bars,
    measure,
    split_named,
)
from tuneforge.data.dataset import load_dataset
from tuneforge.data.memorization import MemorizationSummary
from tuneforge.music.midi import read_midi
from tuneforge.music.stats import PieceStats, aggregate_stats

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "generation_stats.json"
DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "nottingham-midi"
MIN_WIDTH = 150  # columns of the printed table


def generate(args: argparse.Namespace, temp: float, out: Path, spb: int) -> list[NamedRoll]:
    """Run `tuneforge generate` in a subprocess and read its MIDI files back."""
    command = [sys.executable, "-m", "tuneforge", "generate", "--temp", str(temp)]
    command += ["--num", str(args.num), "--length", str(args.length), "--seed", str(args.seed)]
    command += ["--out", str(out)] + (["--model", args.model] if args.model else [])
    command += ["--render"] if args.render else []
    subprocess.run(command, check=True, capture_output=True)
    pieces = [read_midi(p, steps_per_beat=spb) for p in sorted(out.glob("*.mid"))]
    return [NamedRoll(p.name, p.roll, p.onsets, p.time_signatures) for p in pieces]


def row(source: str, stats: PieceStats, copies: MemorizationSummary) -> dict:
    """One row of the table and of the JSON file."""
    return {
        "source": source,
        "pieces": stats.pieces,
        "steps": stats.frames,
        "polyphony": stats.polyphony,
        "onsets_per_beat": stats.onsets_per_beat,
        "melody_presence": stats.melody_presence,
        "silent_share_after_first_note": stats.silent_share_after_first_note,
        "onset_position_shares": list(stats.onset_position_shares),
        "repeated_bar_share": stats.repeated_bar_share,
        "copied_from_train": copies.to_dict(),
        "figures": stats.figures(),
    }


def show(rows: list[dict], title: str) -> None:
    """The table, on stdout."""
    table = Table(title=title)
    headers = ("source", "pieces", "polyphony", "onsets/beat", ">=C4", "silent after 1st")
    headers += ("onsets per 16th (1/2/3/4)", "repeated bars", "copied run bars (median/max)")
    for header in headers:
        justify = "left" if header == "source" else "right"
        table.add_column(header, justify=justify, overflow="fold")
    for r in rows:
        copies = r["copied_from_train"]
        table.add_row(
            r["source"],
            str(r["pieces"]),
            f"{r['polyphony']:.2f}",
            f"{r['onsets_per_beat']:.2f}",
            f"{r['melody_presence']:.0%}",
            f"{r['silent_share_after_first_note']:.1%}",
            "/".join(f"{share:.0%}" for share in r["onset_position_shares"]),
            f"{r['repeated_bar_share']:.0%}",
            f"{format_bars(copies['median_longest_bars'])} / "
            f"{format_bars(copies['max_longest_bars'])}",
        )
    console = Console(highlight=False)
    console.width = max(console.width, MIN_WIDTH)  # piped to a file, rich would assume 80
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint or run folder (default: shipped)")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="the data the model learned")
    parser.add_argument("--split", default="valid", choices=("valid", "test"), help="held out")
    parser.add_argument("--temps", default="1.0,0.8")
    parser.add_argument("--num", type=int, default=16, help="pieces per temperature")
    parser.add_argument("--length", type=float, default=64, help="beats per piece")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--render", action="store_true", help="also render WAVs (slow)")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()

    from tuneforge.generate import load_generator

    spb = load_generator(args.model).steps_per_beat
    dataset = load_dataset(args.data, steps_per_beat=spb)
    rows = []
    for temp in [float(t) for t in args.temps.split(",")]:
        with tempfile.TemporaryDirectory() as out:
            pieces = generate(args, temp, Path(out), spb)
        comparison = compare_to_dataset(
            pieces, dataset, steps_per_beat=spb, split=args.split, calibration_split=args.split
        )
        if not rows:  # the data row, once: the calibration is the same for every temperature
            held_out_pieces = measure(split_named(dataset, args.split), spb)
            reference = aggregate_stats(r.stats for r in held_out_pieces)
            calibration = comparison.calibration
            rows.append(row(f"{dataset.name} ({args.split}, held out)", reference, calibration))
        rows.append(row(f"generated, T={temp:g}", comparison.total, comparison.memorization))

    show(rows, f"model {args.model or 'default'}: {args.num} pieces of {args.length:g} beats")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "model": args.model or "default",
        "data": str(args.data),
        "held_out_split": args.split,
        "num": args.num,
        "length_beats": args.length,
        "seed": args.seed,
        "rows": rows,
    }
    args.json.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
