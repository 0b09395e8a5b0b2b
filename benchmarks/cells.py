"""Training throughput of every registered cell beside torch's own nn.LSTM, in one run.

One iteration is a forward pass over a (batch, window, input) block, a backward pass of a
mean-squared loss and an Adam step; throughput is frames (batch x window) per second of the
fastest timed iteration (on a shared machine the fastest is the least disturbed; the median is
kept in the JSON too). Cells and the reference run interleaved, round by round, so that a change
in machine load hits them all alike.

    .venv/bin/python benchmarks/cells.py                      # defaults: 88, 256, 16, 200
    .venv/bin/python benchmarks/cells.py --cells lstm rru --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tuneforge.cells import build_stack, cell_names  # noqa: E402  (after the path fix above)

RESULTS = Path(__file__).resolve().parent / "results" / "cells.json"
REFERENCE = "nn.LSTM"
# torch's own GRU, timed beside the others: on CPU no fused GRU kernel exists, which bounds
# what the GRU family can reach relative to nn.LSTM.
TORCH_GRU = "nn.GRU"


def _make_model(name: str, input_size: int, hidden_size: int, device: torch.device) -> nn.Module:
    if name == REFERENCE:
        return nn.LSTM(input_size, hidden_size, batch_first=True).to(device)
    if name == TORCH_GRU:
        return nn.GRU(input_size, hidden_size, batch_first=True).to(device)
    return build_stack(name, input_size=input_size, hidden_size=hidden_size).to(device)


def _iteration(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    y = model(x)[0]
    y.square().mean().backward()
    optimizer.step()


def run(args: argparse.Namespace) -> dict:
    """Time every cell and the reference; return the results as a JSON-ready dict."""
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    names = [REFERENCE, TORCH_GRU] + (args.cells or cell_names())
    x = torch.randn(args.batch, args.window, args.input_size, device=device)
    models = {name: _make_model(name, args.input_size, args.hidden_size, device) for name in names}
    optimizers = {name: torch.optim.Adam(m.parameters(), lr=1e-3) for name, m in models.items()}
    times: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm-up: allocator, kernels, Adam state
        for _ in range(args.warmup):
            _iteration(models[name], optimizers[name], x)
    for _ in range(args.iterations):
        for name in names:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            _iteration(models[name], optimizers[name], x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    frames = args.batch * args.window
    reference_rate = frames / min(times[REFERENCE])
    reference_median = frames / statistics.median(times[REFERENCE])
    rows = []
    for name in names:
        rate = frames / min(times[name])
        median_rate = frames / statistics.median(times[name])
        params = sum(p.numel() for p in models[name].parameters())
        rows.append(
            {
                "cell": name,
                "parameters": params,
                "frames_per_s": round(rate, 1),
                "ratio_to_nn_lstm": round(rate / reference_rate, 3),
                "median_frames_per_s": round(median_rate, 1),
                "median_ratio_to_nn_lstm": round(median_rate / reference_median, 3),
            }
        )
    return {
        "settings": {
            "input_size": args.input_size,
            "hidden_size": args.hidden_size,
            "batch": args.batch,
            "window_steps": args.window,
            "iterations": args.iterations,
            "threads": torch.get_num_threads(),
            "device": str(device),
            "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
        },
        "results": rows,
    }


def _table(report: dict) -> str:
    header = f"{'cell':<12} {'parameters':>11} {'frames/s':>10} {'x nn.LSTM':>10} {'(median)':>9}"
    lines = [header]
    for row in report["results"]:
        lines.append(
            f"{row['cell']:<12} {row['parameters']:>11,} {row['frames_per_s']:>10,.0f} "
            f"{row['ratio_to_nn_lstm']:>10.2f} {row['median_ratio_to_nn_lstm']:>9.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    """Parse the command line, run the benchmark, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-size", type=int, default=88)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--window", type=int, default=200, help="steps per window")
    parser.add_argument("--iterations", type=int, default=10, help="timed iterations per cell")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations per cell")
    parser.add_argument("--threads", type=int, default=0, help="0: the machine's default")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cells", nargs="*", help="cells to time (default: all)")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    report = run(args)
    print(_table(report))
    print(f"settings: {json.dumps(report['settings'])}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
