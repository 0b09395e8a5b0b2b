"""Benchmark: the hashed dropout layer against ``nn.Dropout``, alone and inside a Biaxial
training step, measured side by side in one process.

Layer rows: forward and backward of each dropout on the Biaxial time axis's output at JSB's
default batch (8 windows x 88 pitches, 200 steps, 200 units: 28.2M elements), laid out as the
time axis leaves it (transposed). Step rows: one training step (forward, backward, Adam) of the
Biaxial model at its default sizes on a random batch of 8 x 200 frames, with the model's four
dropout layers hashed or swapped for ``nn.Dropout`` in a copy of the same model. Variants run
round by round, interleaved; the table gives each one's fastest round and its median.

    .venv/bin/python benchmarks/dropout.py [--rounds 5] [--threads 1] [--no-step]

Prints a table and writes benchmarks/results/dropout.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

RESULTS = Path(__file__).resolve().parent / "results" / "dropout.json"
P = 0.5  # the Biaxial model's default rate


def layer_variants() -> dict[str, Callable[[], None]]:
    """Forward and backward of one dropout on a (704, 200, 200) batch-first view."""
    from tuneforge.cells import jit
    from tuneforge.cells.dropout_mask import Dropout

    x = torch.randn(200, 704, 200).transpose(0, 1).requires_grad_()  # (B P, T, H) as LSTM gives
    grad = torch.randn(704, 200, 200)
    torch_layer, hashed = nn.Dropout(P), Dropout(P)

    def run(layer: nn.Module) -> None:
        x.grad = None
        layer(x).backward(grad)

    def without_numba() -> None:
        os.environ[jit.DISABLE_ENV] = "1"
        try:
            run(hashed)
        finally:
            del os.environ[jit.DISABLE_ENV]

    return {
        "layer: nn.Dropout": lambda: run(torch_layer),
        "layer: Dropout (hashed, numba)": lambda: run(hashed),
        "layer: Dropout without numba": without_numba,
    }


def step_variants() -> dict[str, Callable[[], None]]:
    """One Biaxial training step with hashed dropout, and with ``nn.Dropout`` in a copy."""
    from tuneforge.cells.dropout_mask import Dropout
    from tuneforge.models import build_model
    from tuneforge.models.frames import FrameBatch

    hashed = build_model({"kind": "biaxial"}, seed=0).train()
    plain = copy.deepcopy(hashed)
    for module in list(plain.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, Dropout):
                setattr(module, name, nn.Dropout(child.p))
    generator = torch.Generator().manual_seed(0)
    frames = (torch.rand(8, 201, 88, generator=generator) < 0.045).float()
    batch = FrameBatch.from_frames(frames)

    def stepper(model: nn.Module) -> Callable[[], None]:
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

        def step() -> None:
            log_lik, _ = model(batch)
            loss = -log_lik.play.mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        return step

    return {"Biaxial step: nn.Dropout": stepper(plain), "Biaxial step: hashed": stepper(hashed)}


def measure(variants: dict[str, Callable[[], None]], rounds: int) -> dict[str, list[float]]:
    """Seconds of each variant per round, after one warm-up call of each."""
    for run in variants.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-step", action="store_true", help="the layer rows only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    times = measure(layer_variants(), args.rounds)
    if not args.no_step:
        times.update(measure(step_variants(), args.rounds))
    rows = []
    for name, seconds in times.items():
        baseline = next(v for k, v in times.items() if k.split(":")[0] == name.split(":")[0])
        rows.append(
            {
                "variant": name,
                "best_s": min(seconds),
                "median_s": statistics.median(seconds),
                "speedup_vs_nn_dropout": min(baseline) / min(seconds),
            }
        )
    print(f"dropout p={P}, {args.threads} torch thread(s), {args.rounds} rounds")
    print(f"{'variant':<30} {'best s':>8} {'median s':>9} {'x nn.Dropout':>13}")
    for row in rows:
        print(
            f"{row['variant']:<30} {row['best_s']:>8.3f} {row['median_s']:>9.3f} "
            f"{row['speedup_vs_nn_dropout']:>13.2f}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "machine": platform.processor() or platform.machine(),
        "threads": args.threads,
        "rounds": args.rounds,
        "rows": rows,
    }
    RESULTS.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
