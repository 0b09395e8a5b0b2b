"""GPU check: every cell and both structured models train, sample and agree with the CPU on CUDA.

One run, a few minutes on one GPU, in five parts:

1. train: a sequence model of every registered cell, then the two structured models (Biaxial,
   and a sequence model with the note-axis head), each for ``--steps`` Adam steps on synthetic
   chord progressions, in float32 and under bf16 autocast (AMP); each run stops early at
   ``--run-seconds`` so the whole check keeps to its time, and the steps it reached are shown.
   A run fails when a loss is not finite, or (from 50 steps on) when its last losses are not
   below its first ones;
2. sample: each trained structured model and the LSTM sequence model sample pieces there;
3. ddp: a one-process DistributedDataParallel group (NCCL on CUDA, gloo on the CPU) takes a few
   steps, which must equal the same steps taken without DDP, and an all-reduce is checked;
4. agree: every cell's outputs and gradients there equal the CPU's (TF32 off); with
   ``--device cpu`` the CPU's torch fallback is the reference, so two implementations still
   meet;
5. speed: training throughput (forward, backward, Adam) of every cell beside torch's nn.LSTM
   (cuDNN on CUDA), in float32 and with AMP, printed as a table.

Everything goes into one JSON file (``--json``). The exit status is 0 when every check passed,
1 when one failed (listed at the end), 2 when the device is missing. ``--device cpu`` runs the
same code at tiny sizes, as a smoke test of the script itself.

    .venv/bin/python benchmarks/gpu_check.py                   # CUDA, under 5 minutes
    .venv/bin/python benchmarks/gpu_check.py --device cpu --steps 2
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tuneforge.cells import build_stack, cell_names  # noqa: E402  (after the path fix above)
from tuneforge.cells.jit import DISABLE_ENV  # noqa: E402
from tuneforge.device import autocast  # noqa: E402
from tuneforge.models.frames import FrameBatch  # noqa: E402
from tuneforge.models.registry import build_model, make_config, with_width  # noqa: E402
from tuneforge.sample import sample_rolls  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "gpu_check.json"
STRUCTURED = ("biaxial", "note-axis")
REFERENCE = "nn.LSTM"
# Sizes per device: the GPU check proper, and the CPU smoke run of this script.
SIZES = {
    "cuda": {
        "hidden_size": 128,
        "batch": 16,
        "window": 64,
        "steps": 300,
        "run_seconds": 3.0,
        "bench_hidden_size": 256,
        "bench_window": 200,
        "bench_iterations": 5,
        "sample_steps": 64,
    },
    "cpu": {
        "hidden_size": 8,
        "batch": 2,
        "window": 8,
        "steps": 2,
        "run_seconds": 5.0,
        "bench_hidden_size": 16,
        "bench_window": 12,
        "bench_iterations": 1,
        "sample_steps": 4,
    },
}
INPUT_SIZE = 88  # the benchmark's input width (a piano roll)
LEARN_FROM_STEPS = 50  # runs this long must lower their loss
AGREE_ATOL, AGREE_RTOL = 2e-4, 2e-3  # float32, TF32 off; the CPU's float32 tanh is within 4e-7


class NoDevice(Exception):
    """The requested device is not here."""


def synthetic_rolls(batch: int, steps: int, seed: int) -> torch.Tensor:
    """(batch, steps + 1, 88) float 0/1: triads of a four-chord progression, each held four
    steps, and a melody note above; a pattern any cell learns in a few hundred steps."""
    generator = torch.Generator().manual_seed(seed)
    rolls = torch.zeros(batch, steps + 1, 88)
    roots = torch.tensor([0, 5, 7, 9])  # I IV V vi, in semitones
    for b in range(batch):
        key = int(torch.randint(0, 12, (1,), generator=generator)) + 27  # MIDI 48..59 - 21
        for t in range(steps + 1):
            root = key + int(roots[(t // 4) % 4])
            minor = (t // 4) % 4 == 3
            for interval in (0, 3 if minor else 4, 7):
                rolls[b, t, root + interval] = 1.0
            rolls[b, t, root + 24 + (2 * (t % 4))] = 1.0
    return rolls


def model_config(name: str, hidden_size: int):
    """The config of a sequence model of cell ``name``, or of a structured model."""
    if name == "biaxial":
        config = make_config("biaxial", {"cell": "lstm", "hidden_size": hidden_size})
        return with_width(config, hidden_size)
    if name == "note-axis":
        return make_config(
            "sequence", {"cell": "lstm", "hidden_size": hidden_size, "head": "note-axis"}
        )
    return make_config("sequence", {"cell": name, "hidden_size": hidden_size})


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _loss(model: nn.Module, batch: FrameBatch, device: torch.device, amp: bool) -> torch.Tensor:
    with autocast(device, amp=amp):
        log_lik, _ = model(batch)
    return -(log_lik.play.float() + log_lik.articulation.float()).mean()


def train_run(name: str, amp: bool, sizes: dict, device: torch.device) -> dict:
    """Train one model for ``steps`` steps (or ``run_seconds``); return its losses and rate."""
    model = build_model(model_config(name, sizes["hidden_size"]), seed=0).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    batches = [
        FrameBatch.from_frames(synthetic_rolls(sizes["batch"], sizes["window"], seed)).to(device)
        for seed in range(4)
    ]
    losses = []
    model.train()
    _sync(device)
    start = time.perf_counter()
    for step in range(sizes["steps"]):
        loss = _loss(model, batches[step % len(batches)], device, amp)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]) or time.perf_counter() - start > sizes["run_seconds"]:
            break
    _sync(device)
    seconds = time.perf_counter() - start
    head, tail = losses[: max(1, len(losses) // 10)], losses[-max(1, len(losses) // 10) :]
    first, last = sum(head) / len(head), sum(tail) / len(tail)
    problem = None
    if not all(math.isfinite(v) for v in losses):
        problem = f"the loss became {losses[-1]} at step {len(losses)}"
    elif len(losses) >= LEARN_FROM_STEPS and not last < first:
        problem = f"the loss did not fall in {len(losses)} steps ({first:.3f} -> {last:.3f})"
    return {
        "model": name,
        "amp": amp,
        "steps": len(losses),
        "seconds": round(seconds, 2),
        "frames_per_s": round(len(losses) * sizes["batch"] * sizes["window"] / seconds, 1),
        "first_loss": round(first, 4),
        "last_loss": round(last, 4),
        "problem": problem,
    }, model


def sample_check(name: str, model: nn.Module, sizes: dict) -> dict:
    """Sample two pieces from a trained model on its device; check their shape and values."""
    model.eval()
    start = time.perf_counter()
    rolls = sample_rolls(model, num_steps=sizes["sample_steps"], batch_size=2, seed=1)
    seconds = time.perf_counter() - start
    problem = None
    shapes = {roll.shape for roll in rolls}
    if shapes != {(sizes["sample_steps"], model.num_pitches)}:
        problem = f"sampled rolls of shapes {sorted(shapes)}"
    elif any(int(roll.max(initial=0)) > 1 for roll in rolls):
        problem = "sampled values other than 0 and 1"
    notes = int(sum(int(roll.sum()) for roll in rolls))
    return {"model": name, "seconds": round(seconds, 2), "notes": notes, "problem": problem}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ddp_check(sizes: dict, device: torch.device) -> dict:
    """A one-process DDP group takes the steps a plain model takes, to rounding."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend, init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1
    )
    try:
        reduced = torch.tensor([1.5, -2.0], device=device)
        dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
        plain = build_model(model_config("lstm", sizes["hidden_size"]), seed=0).to(device)
        shared = copy.deepcopy(plain)
        wrapped = DistributedDataParallel(
            shared, device_ids=[device.index] if device.type == "cuda" else None
        )
        batches = [
            FrameBatch.from_frames(synthetic_rolls(sizes["batch"], sizes["window"], s)).to(device)
            for s in range(3)
        ]
        for module, network in ((plain, plain), (shared, wrapped)):
            optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
            for batch in batches:
                optimizer.zero_grad(set_to_none=True)
                _loss(network, batch, device, amp=False).backward()
                optimizer.step()
        difference = max(
            float((a - b).abs().max())
            for a, b in zip(plain.parameters(), shared.parameters(), strict=True)
        )
    finally:
        dist.destroy_process_group()
    problem = None
    if reduced.tolist() != [1.5, -2.0]:
        problem = f"a one-process all-reduce changed its tensor to {reduced.tolist()}"
    elif difference > 1e-5:
        problem = f"DDP's parameters differ from the plain model's by {difference:.2e}"
    return {"backend": backend, "max_parameter_difference": difference, "problem": problem}


@contextmanager
def _environment(name: str, value: str | None):
    before = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _cell_results(stack: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    x = x.clone().requires_grad_()
    y, state = stack(x)
    weights = torch.linspace(-1.0, 1.0, y.numel(), device=y.device).view_as(y)
    loss = (y * weights).sum() + sum(s.sum() for layer in state for s in layer)
    grads = torch.autograd.grad(loss, [x, *stack.parameters()])
    return [t.detach().cpu() for t in (y, *grads)]


def agree_check(cell: str, device: torch.device) -> dict:
    """Outputs and gradients of ``cell`` on ``device`` against the CPU (eval mode: no dropout)."""
    torch.manual_seed(0)
    stack = build_stack(cell, input_size=20, hidden_size=24).eval()
    x = torch.randn(4, 16, 20)
    if device.type == "cpu":  # the torch fallback is the reference
        with _environment(DISABLE_ENV, "1"):
            reference = _cell_results(stack, x)
    else:
        reference = _cell_results(stack, x)
    ours = _cell_results(copy.deepcopy(stack).to(device), x.to(device))
    worst = 0.0
    for a, b in zip(ours, reference, strict=True):
        excess = (a - b).abs() - (AGREE_ATOL + AGREE_RTOL * b.abs())
        worst = max(worst, float((a - b).abs().max()))
        if bool((excess > 0).any()):
            return {
                "cell": cell,
                "max_abs_difference": worst,
                "problem": f"differs from the CPU by {float((a - b).abs().max()):.2e}",
            }
    return {"cell": cell, "max_abs_difference": worst, "problem": None}


def _bench_model(name: str, sizes: dict, device: torch.device) -> nn.Module:
    hidden = sizes["bench_hidden_size"]
    if name == REFERENCE:
        return nn.LSTM(INPUT_SIZE, hidden, batch_first=True).to(device)
    return build_stack(name, input_size=INPUT_SIZE, hidden_size=hidden).to(device)


def speed_table(cells: list[str], sizes: dict, device: torch.device) -> list[dict]:
    """Frames/s of forward, backward and an Adam step, fastest of the timed iterations,
    float32 and AMP, each cell beside nn.LSTM; cells run interleaved round by round."""
    names = [REFERENCE, *cells]
    x = torch.randn(sizes["batch"], sizes["bench_window"], INPUT_SIZE, device=device)
    frames = x.shape[0] * x.shape[1]
    rows = []
    rates: dict[tuple[str, bool], float] = {}
    failed: dict[str, str] = {}  # name -> what went wrong
    for amp in (False, True):
        models = {}
        for name in names:
            try:
                models[name] = _bench_model(name, sizes, device)
            except Exception as error:  # noqa: BLE001 - reported, the others go on
                failed.setdefault(name, _describe(error))
        optimizers = {n: torch.optim.Adam(m.parameters(), lr=1e-3) for n, m in models.items()}
        best = {name: math.inf for name in names}
        for round_index in range(1 + sizes["bench_iterations"]):  # round 0 warms up
            for name in names:
                if name in failed:
                    continue
                _sync(device)
                start = time.perf_counter()
                try:
                    optimizers[name].zero_grad(set_to_none=True)
                    with autocast(device, amp=amp):
                        y = models[name](x)[0]
                    y.float().square().mean().backward()
                    optimizers[name].step()
                    _sync(device)
                except Exception as error:  # noqa: BLE001 - reported, the others go on
                    failed[name] = f"{'amp' if amp else 'fp32'}: {_describe(error)}"
                    continue
                if round_index > 0:
                    best[name] = min(best[name], time.perf_counter() - start)
        for name in names:
            rates[name, amp] = frames / best[name] if math.isfinite(best[name]) else 0.0
    for name in names:
        row = {"cell": name, "problem": failed.get(name)}
        for amp, label in ((False, "fp32"), (True, "amp")):
            reference = rates[REFERENCE, amp] or math.inf
            row[f"{label}_frames_per_s"] = round(rates[name, amp], 1)
            row[f"{label}_ratio_to_nn_lstm"] = round(rates[name, amp] / reference, 3)
        rows.append(row)
    return rows


def _speed_text(rows: list[dict], device_name: str) -> str:
    lines = [
        f"training throughput on {device_name} (frames/s; x nn.LSTM on the same device)",
        f"{'cell':<12} {'fp32':>10} {'x LSTM':>7} {'amp':>10} {'x LSTM':>7}",
    ]
    for row in rows:
        lines.append(
            f"{row['cell']:<12} {row['fp32_frames_per_s']:>10,.0f} "
            f"{row['fp32_ratio_to_nn_lstm']:>7.2f} {row['amp_frames_per_s']:>10,.0f} "
            f"{row['amp_ratio_to_nn_lstm']:>7.2f}"
        )
    return "\n".join(lines)


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error) else ''}"


def _guarded(failure: dict, function, *arguments):
    """``function(*arguments)``, or ``failure`` with the exception as its problem: one part
    that breaks is reported, and the check goes on with the others."""
    try:
        return function(*arguments)
    except Exception as error:  # noqa: BLE001 - reported, the check goes on
        return {**failure, "problem": _describe(error)}


def _failed_run(name: str, amp: bool, error: Exception) -> dict:
    return {
        "model": name,
        "amp": amp,
        "steps": 0,
        "seconds": 0.0,
        "frames_per_s": 0.0,
        "first_loss": None,
        "last_loss": None,
        "problem": _describe(error),
    }


def resolve_device(name: str) -> torch.device:
    """The device to check; raises NoDevice with what to do when CUDA is asked for but absent."""
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        built = torch.version.cuda or "none (a CPU-only build)"
        raise NoDevice(
            f"no CUDA device here (torch {torch.__version__}, CUDA build: {built}); run this "
            "check on a machine with an NVIDIA GPU, or pass --device cpu for a smoke run"
        )
    return torch.device(name if ":" in name else "cuda:0")


def run_check(args: argparse.Namespace, device: torch.device) -> dict:
    """Every part of the check; returns the JSON-ready report (with its list of problems)."""
    sizes = dict(SIZES[device.type])
    sizes.update({k: v for k, v in vars(args).items() if k in sizes and v is not None})
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # the CPU comparison needs float32
        torch.backends.cudnn.allow_tf32 = False
    cells = args.cells or cell_names()
    started = time.perf_counter()
    report: dict = {"device": _device_name(device), "sizes": sizes, "timings_s": {}}

    def part(label: str, function):
        begin = time.perf_counter()
        result = function()
        report["timings_s"][label] = round(time.perf_counter() - begin, 2)
        print(f"{label}: {report['timings_s'][label]:.1f} s", flush=True)
        return result

    trained: dict[str, nn.Module] = {}

    def train_all() -> list[dict]:
        rows = []
        for name in [*cells, *STRUCTURED]:
            for amp in (False, True):
                try:
                    row, model = train_run(name, amp, sizes, device)
                except Exception as error:  # noqa: BLE001 - reported, the check goes on
                    row, model = _failed_run(name, amp, error), None
                rows.append(row)
                if model is not None and not amp and name in ("lstm", *STRUCTURED):
                    trained[name] = model
        return rows

    report["train"] = part("train", train_all)
    report["sample"] = part(
        "sample",
        lambda: [
            _guarded({"model": n, "seconds": 0.0, "notes": 0}, sample_check, n, m, sizes)
            for n, m in trained.items()
        ],
    )
    report["ddp"] = part(
        "ddp",
        lambda: _guarded(
            {"backend": "", "max_parameter_difference": 0.0}, ddp_check, sizes, device
        ),
    )
    report["agree"] = part(
        "agree",
        lambda: [
            _guarded({"cell": cell, "max_abs_difference": 0.0}, agree_check, cell, device)
            for cell in cells
        ],
    )
    report["speed"] = part("speed", lambda: speed_table(cells, sizes, device))
    report["total_s"] = round(time.perf_counter() - started, 1)
    problems = [
        f"train {r['model']}{' (amp)' if r['amp'] else ''}: {r['problem']}"
        for r in report["train"]
        if r["problem"]
    ]
    problems += [f"sample {r['model']}: {r['problem']}" for r in report["sample"] if r["problem"]]
    problems += [f"ddp: {report['ddp']['problem']}"] if report["ddp"]["problem"] else []
    problems += [f"agree {r['cell']}: {r['problem']}" for r in report["agree"] if r["problem"]]
    problems += [f"speed {r['cell']}: {r['problem']}" for r in report["speed"] if r["problem"]]
    report["problems"] = problems
    report["settings"] = {
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cuda": torch.version.cuda,
        "threads": torch.get_num_threads(),
    }
    return report


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def _loss_text(row: dict) -> str:
    if row["first_loss"] is None:
        return "-"
    return f"{row['first_loss']:.3f}->{row['last_loss']:.3f}"


def _train_text(rows: list[dict]) -> str:
    lines = [f"{'model':<12} {'amp':>4} {'steps':>6} {'frames/s':>10} {'loss':>17}  problem"]
    for r in rows:
        lines.append(
            f"{r['model']:<12} {'yes' if r['amp'] else 'no':>4} {r['steps']:>6} "
            f"{r['frames_per_s']:>10,.0f} {_loss_text(r):>17}  "
            f"{r['problem'] or ''}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the check, print its tables; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (a smoke run)")
    parser.add_argument("--cells", nargs="*", help="cells to check (default: all)")
    parser.add_argument("--steps", type=int, help="training steps per run")
    parser.add_argument("--run-seconds", type=float, help="time cap of one training run")
    parser.add_argument("--hidden-size", type=int, help="width of the trained models")
    parser.add_argument("--batch", type=int, help="windows per batch")
    parser.add_argument("--window", type=int, help="steps per training window")
    parser.add_argument("--bench-hidden-size", type=int, help="width in the throughput table")
    parser.add_argument("--bench-window", type=int, help="steps per window in the table")
    parser.add_argument("--bench-iterations", type=int, help="timed iterations per cell")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except NoDevice as error:
        print(f"gpu_check: {error}", file=sys.stderr)
        return 2
    report = run_check(args, device)
    print(_train_text(report["train"]))
    for row in report["sample"]:
        print(f"sample {row['model']}: {row['notes']} notes in {row['seconds']:.2f} s")
    print(
        f"ddp ({report['ddp']['backend']}): parameters within "
        f"{report['ddp']['max_parameter_difference']:.1e} of the plain model's"
    )
    worst = max(report["agree"], key=lambda r: r["max_abs_difference"])
    print(
        f"agree: every cell within {worst['max_abs_difference']:.1e} of the CPU "
        f"(largest: {worst['cell']})"
        if not any(r["problem"] for r in report["agree"])
        else "agree: some cells differ (see problems)"
    )
    print(_speed_text(report["speed"], report["device"]))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"total {report['total_s']:.0f} s; wrote {args.json}")
    if report["problems"]:
        print("problems:\n  " + "\n  ".join(report["problems"]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
