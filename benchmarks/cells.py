"""Training throughput of every registered cell beside torch's own nn.LSTM, in one run.

One iteration is a forward pass over a (batch, window, input) block, a backward pass of a
mean-squared loss and an Adam step; throughput is frames (batch x window) per second of the
fastest timed iteration (on a shared machine the fastest is the least disturbed; the median is
kept in the JSON too). Cells and the reference run interleaved, round by round, so that a change
in machine load hits them all alike. ``--fallback`` adds a row "<cell> (torch)" for every cell
with a compiled (numba) path, run with ``TUNEFORGE_NO_NUMBA=1`` in the same rounds.

The first use of a compiled path waits for numba: each such cell is also run once in a fresh
process with an empty numba cache (compilation), again with that cache filled (loading it), and
with the compiled paths off (what torch alone takes); the table prints these wall times.

    .venv/bin/python benchmarks/cells.py                      # defaults: 88, 256, 16, 200
    .venv/bin/python benchmarks/cells.py --hidden-size 256 1024 --fallback
    .venv/bin/python benchmarks/cells.py --cells lstm rru --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tuneforge.cells import build_stack, cell_names  # noqa: E402  (after the path fix above)
from tuneforge.cells.jit import DISABLE_ENV  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

RESULTS = Path(__file__).resolve().parent / "results" / "cells.json"
REFERENCE = "nn.LSTM"
# torch's own GRU, timed beside the others: on CPU no fused GRU kernel exists, which bounds
# what the GRU family can reach relative to nn.LSTM.
TORCH_GRU = "nn.GRU"
_CPU_FIELDS = ("ru_utime", "ru_stime")
FALLBACK = " (torch)"  # suffix of a row run on the pure-torch fallback


def _make_model(name: str, input_size: int, hidden_size: int, device: torch.device) -> nn.Module:
    name = name.removesuffix(FALLBACK)
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


@contextmanager
def _path(name: str):
    """Run a "(torch)" row with the compiled paths off."""
    if not name.endswith(FALLBACK):
        yield
        return
    before = os.environ.get(DISABLE_ENV)
    os.environ[DISABLE_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ[DISABLE_ENV]
        else:
            os.environ[DISABLE_ENV] = before


def compiled(model: nn.Module) -> bool:
    """True when the model's last forward ran a numba-compiled path."""
    return any(getattr(m, "last_path", "") == "numba" for m in model.modules())


def run(args: argparse.Namespace, hidden_size: int) -> dict:
    """Time every cell and the reference; return the results as a JSON-ready dict."""
    torch.manual_seed(0)
    load_before = _load()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    names = [REFERENCE, TORCH_GRU] + (args.cells or cell_names())
    x = torch.randn(args.batch, args.window, args.input_size, device=device)
    models = {name: _make_model(name, args.input_size, hidden_size, device) for name in names}
    for name in names:  # warm-up: allocator, kernels, compilation
        for _ in range(args.warmup):
            models[name](x)
    if args.fallback:
        # A fallback row for each cell with a compiled path, right after it.
        with_fallback = []
        for name in names:
            with_fallback.append(name)
            if compiled(models[name]):
                with_fallback.append(name + FALLBACK)
                models[name + FALLBACK] = _make_model(name, args.input_size, hidden_size, device)
                models[name + FALLBACK].load_state_dict(models[name].state_dict())
        names = with_fallback
    optimizers = {name: torch.optim.Adam(m.parameters(), lr=1e-3) for name, m in models.items()}
    times: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm-up: allocator, kernels, Adam state
        with _path(name):
            for _ in range(args.warmup):
                _iteration(models[name], optimizers[name], x)
    for _ in range(args.iterations):
        for name in names:
            with _path(name):
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
                "compiled": compiled(models[name]),
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
            "hidden_size": hidden_size,
            "batch": args.batch,
            "window_steps": args.window,
            "iterations": args.iterations,
            "threads": torch.get_num_threads(),
            "device": str(device),
            "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            # 1-minute load average before and after the timed rounds: on a shared machine it
            # says how many other processes competed for the cores.
            "load_average": [load_before, _load()],
        },
        "results": rows,
    }


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # not every platform has one
        return None


def _table(report: dict) -> str:
    header = f"{'cell':<20} {'parameters':>11} {'frames/s':>10} {'x nn.LSTM':>10} {'(median)':>9}"
    lines = [f"hidden {report['settings']['hidden_size']}", header]
    for row in report["results"]:
        lines.append(
            f"{row['cell']:<20} {row['parameters']:>11,} {row['frames_per_s']:>10,.0f} "
            f"{row['ratio_to_nn_lstm']:>10.2f} {row['median_ratio_to_nn_lstm']:>9.2f}"
        )
    return "\n".join(lines)


_FIRST_USE = """
import json, sys, time
start = time.perf_counter()
import torch
from tuneforge.cells import build_stack
torch.manual_seed(0)
stack = build_stack(sys.argv[1], input_size=88, hidden_size=32)
x = torch.randn(2, 5, 88)
stack(x)[0].sum().backward()
path = getattr(stack.layers[0], "last_path", "")
print(json.dumps({"seconds": time.perf_counter() - start, "path": path}))
"""


def first_use(cell: str) -> dict:
    """Wall time of a fresh process's first forward and backward of ``cell`` (import included).

    ``compile_s``: with an empty numba cache; ``cached_s``: with that cache filled;
    ``torch_s``: with the compiled paths off, i.e. what torch alone takes. Each ``*_cpu_s`` is
    the CPU time (user and system) of that process, which other load does not stretch.
    """

    def once(env: dict) -> dict:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(
            [sys.executable, "-c", _FIRST_USE, cell],
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            capture_output=True,
            text=True,
            check=True,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        # CPU time of the whole process: unlike its wall time, not stretched by other load.
        result["cpu_s"] = sum(getattr(after, f) - getattr(before, f) for f in _CPU_FIELDS)
        return result

    with tempfile.TemporaryDirectory() as cache:
        fresh = once({"NUMBA_CACHE_DIR": cache})
        cached = once({"NUMBA_CACHE_DIR": cache})
    torch_only = once({DISABLE_ENV: "1"})
    return {
        "cell": cell,
        "path": fresh["path"],
        "compile_s": round(fresh["seconds"], 2),
        "cached_s": round(cached["seconds"], 2),
        "torch_s": round(torch_only["seconds"], 2),
        "compile_cpu_s": round(fresh["cpu_s"], 2),
        "cached_cpu_s": round(cached["cpu_s"], 2),
        "torch_cpu_s": round(torch_only["cpu_s"], 2),
    }


def _first_use_table(rows: list[dict]) -> str:
    lines = [
        "first use in a fresh process (import, build, one forward and backward), seconds of",
        "wall time (CPU time in brackets):",
        f"{'cell':<12} {'no cache':>15} {'cached':>15} {'torch only':>15}",
    ]
    for row in rows:
        cells = [
            f"{row[key + '_s']:>6.2f} ({row[key + '_cpu_s']:>5.2f})"
            for key in ("compile", "cached", "torch")
        ]
        lines.append(f"{row['cell']:<12} " + " ".join(f"{c:>15}" for c in cells))
    return "\n".join(lines)


def main() -> None:
    """Parse the command line, run the benchmark, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-size", type=int, default=88)
    parser.add_argument(
        "--hidden-size", type=int, nargs="+", default=[256], help="one or more sizes, e.g. 256 1024"
    )
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--window", type=int, default=200, help="steps per window")
    parser.add_argument("--iterations", type=int, default=10, help="timed iterations per cell")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations per cell")
    parser.add_argument("--threads", type=int, default=0, help="0: the machine's default")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cells", nargs="*", help="cells to time (default: all)")
    parser.add_argument(
        "--fallback", action="store_true", help="also time each compiled cell on its torch path"
    )
    parser.add_argument(
        "--no-first-use", action="store_true", help="skip the fresh-process first-use timings"
    )
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    runs = []
    for hidden_size in args.hidden_size:
        runs.append(run(args, hidden_size))
        print(_table(runs[-1]))
        print(f"settings: {json.dumps(runs[-1]['settings'])}", flush=True)
    # One size keeps the report's original form; several are listed under "runs".
    report = runs[0] if len(runs) == 1 else {"runs": runs}
    if not args.no_first_use:
        candidates = [row["cell"] for row in runs[0]["results"] if row["compiled"]]
        report["first_use"] = [first_use(cell) for cell in candidates]
        print(_first_use_table(report["first_use"]))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
