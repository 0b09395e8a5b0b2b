"""Benchmark: how long sampling one minute of music takes (4 steps per beat at 120 bpm), and the
peak memory of the process that does it.

One minute is 480 steps. Each model is a shipped name (`default`, `nottingham-lstm`, ...) or a
fresh model of a kind at its default sizes (`fresh:sequence`, `fresh:note-axis`,
`fresh:biaxial`; the speed of sampling does not depend on the weights' values). Every model is
measured in a process of its own, so that its peak resident memory is its own.

    .venv/bin/python benchmarks/sampling.py [--models default fresh:biaxial] [--repeats 3]

Prints a table and writes benchmarks/results/sampling.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

STEPS_PER_MINUTE = 4 * 120  # steps per beat * beats per minute
RESULTS = Path(__file__).resolve().parent / "results" / "sampling.json"
FRESH = {
    "fresh:sequence": {"kind": "sequence"},
    "fresh:note-axis": {"kind": "sequence", "head": "note-axis", "meter": True},
    "fresh:biaxial": {"kind": "biaxial"},
}


def _load(spec: str):
    """The model ``spec`` names and a description of it."""
    if spec in FRESH:
        from tuneforge.models import build_model

        model = build_model(dict(FRESH[spec]), seed=0).eval()
        return model, spec
    from tuneforge.generate import load_generator
    from tuneforge.models.registry import describe_model

    generator = load_generator(spec)
    return generator.model, f"{spec} ({describe_model(generator.model.config)})"


def measure(spec: str, repeats: int, batch: int) -> dict:
    """Time sampling a minute with ``spec`` in this process; peak memory included."""
    from tuneforge.sample import SamplingOptions, sample_rolls

    model, description = _load(spec)
    options = SamplingOptions(temperature=1.0)
    sample_rolls(model, num_steps=16, options=options)  # warm-up: compiled kernels, allocations
    times_s = []
    for repeat in range(repeats):
        started = time.perf_counter()
        sample_rolls(
            model, num_steps=STEPS_PER_MINUTE, batch_size=batch, options=options, seed=repeat
        )
        times_s.append(time.perf_counter() - started)
    return {
        "model": description,
        "batch": batch,
        "steps": STEPS_PER_MINUTE,
        "median_s": statistics.median(times_s),
        "best_s": min(times_s),
        "per_step_ms": 1000 * statistics.median(times_s) / STEPS_PER_MINUTE,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=["default", "nottingham-lstm"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, nargs="*", default=[1])
    parser.add_argument(
        "--one", nargs=3, metavar=("MODEL", "REPEATS", "BATCH"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.one:  # the child process: one measurement, as JSON on stdout
        print(json.dumps(measure(args.one[0], int(args.one[1]), int(args.one[2]))))
        return

    rows = []
    for spec in args.models:
        for batch in args.batch:
            child = [sys.executable, __file__, "--one", spec, str(args.repeats), str(batch)]
            done = subprocess.run(child, capture_output=True, text=True, check=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print("sampling one minute (480 steps), 1 torch thread, temperature 1.0")
    print(
        f"{'model':<58} {'pieces':>6} {'median s':>9} {'best s':>7} {'ms/step':>8} {'peak MiB':>9}"
    )
    for row in rows:
        print(
            f"{row['model']:<58} {row['batch']:>6} {row['median_s']:>9.3f} {row['best_s']:>7.3f} "
            f"{row['per_step_ms']:>8.2f} {row['peak_rss_mib']:>9.0f}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "machine": platform.processor() or platform.machine(),
        "repeats": args.repeats,
        "rows": rows,
    }
    RESULTS.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
