"""Benchmark: how long sampling one minute of music takes (4 steps per beat at 120 bpm).

One minute is 480 steps. The model is the shipped default when there is one, else a fresh
model of the given size (the speed of sampling does not depend on the weights' values).

    .venv/bin/python benchmarks/sampling.py [--cell lstm --hidden-size 256 --num-layers 1]

Prints a table and writes benchmarks/results/sampling.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from tuneforge.models import ModelConfig, SequenceModel
from tuneforge.sample import SamplingOptions, sample_rolls

STEPS_PER_MINUTE = 4 * 120  # steps per beat * beats per minute
RESULTS = Path(__file__).resolve().parent / "results" / "sampling.json"


def _model(args: argparse.Namespace) -> tuple[torch.nn.Module, str]:
    """The shipped default model, or a fresh one of the requested size."""
    from tuneforge.errors import CheckpointError

    if not args.fresh:
        try:
            from tuneforge.checkpoint import load_checkpoint
            from tuneforge.shipped import DEFAULT_MODEL, find_model

            loaded = load_checkpoint(find_model(DEFAULT_MODEL).path)
            config = loaded.config
            return (
                loaded.model,
                f"shipped default ({config.cell}, {config.hidden_size} x {config.num_layers})",
            )
        except CheckpointError:
            pass
    config = ModelConfig(cell=args.cell, hidden_size=args.hidden_size, num_layers=args.num_layers)
    return SequenceModel(
        config
    ).eval(), f"fresh {args.cell}, {args.hidden_size} x {args.num_layers}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--num-layers", type=int, default=1)
    parser.add_argument("--fresh", action="store_true", help="ignore the shipped default model")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, nargs="*", default=[1, 8])
    args = parser.parse_args()

    model, description = _model(args)
    options = SamplingOptions(temperature=0.8, max_polyphony=8)
    sample_rolls(model, num_steps=16, options=options)  # warm-up: first-call allocations
    rows = []
    for batch in args.batch:
        times_s = []
        for repeat in range(args.repeats):
            started = time.perf_counter()
            sample_rolls(
                model, num_steps=STEPS_PER_MINUTE, batch_size=batch, options=options, seed=repeat
            )
            times_s.append(time.perf_counter() - started)
        rows.append(
            {
                "batch": batch,
                "steps": STEPS_PER_MINUTE,
                "median_s": statistics.median(times_s),
                "best_s": min(times_s),
                "per_step_ms": 1000 * statistics.median(times_s) / STEPS_PER_MINUTE,
            }
        )
    # sample_stream runs on one torch thread (see its docstring); this is the default it restores.
    threads = torch.get_num_threads()
    print(f"sampling one minute (480 steps) with {description}, 1 thread (torch default {threads})")
    print(f"{'pieces':>6} {'median s':>9} {'best s':>8} {'ms/step':>8}")
    for row in rows:
        timing = f"{row['median_s']:>9.3f} {row['best_s']:>8.3f} {row['per_step_ms']:>8.2f}"
        print(f"{row['batch']:>6} {timing}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "model": description,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "sampling_threads": 1,
        "torch_default_threads": threads,
        "repeats": args.repeats,
        "rows": rows,
    }
    RESULTS.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
