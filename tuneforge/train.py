"""The training loop: truncated BPTT over windows, validation NLL, early stopping, checkpoints.

It never prints: progress goes to a :class:`TrainCallbacks` object (the CLI's dashboard), and the
run folder gets ``config.json``, ``metrics.jsonl``, the ``best`` and ``last`` checkpoints and a
PNG of the curves.

Resuming is exact because every epoch draws its randomness (window order, transpositions,
dropout masks) from generators seeded with ``(seed, epoch)`` at the start of the epoch, and
``last`` always holds the state at the start of the next epoch to run: an interrupted epoch is
run again from its beginning with the same random stream.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tuneforge import __version__
from tuneforge.checkpoint import load_checkpoint, save_checkpoint
from tuneforge.data.dataset import split_pieces
from tuneforge.device import (
    autocast,
    choose_device,
    describe_device,
    seed_everything,
    set_cpu_threads,
)
from tuneforge.distributed import (
    DistContext,
    all_reduce_sum,
    barrier,
    context_from_env,
    destroy_process_group,
    init_process_group,
    shard,
)
from tuneforge.errors import ConfigError, DataError, OutputError, TrainingError
from tuneforge.evaluate import FrameScores, score_rolls
from tuneforge.files import os_error_line, replacing, write_text
from tuneforge.models.registry import describe_model
from tuneforge.run_folder import check_run_folder, locked
from tuneforge.smoke import smoke_batches, smoke_config, smoke_pieces
from tuneforge.stop_signals import interrupts_deferred
from tuneforge.train_batches import estimate_steps, plan_epoch
from tuneforge.train_config import OPTIMIZERS, TrainConfig, make_optimizer
from tuneforge.train_events import (
    EpochInfo,
    RunInfo,
    StepInfo,
    TrainCallbacks,
    TrainingInterrupted,
    TrainResult,
    epoch_to_metrics_line,
)

__all__ = [
    "OPTIMIZERS",
    "EpochInfo",
    "RunInfo",
    "StepInfo",
    "TrainCallbacks",
    "TrainConfig",
    "TrainResult",
    "TrainingInterrupted",
    "train",
]

# Guessing each of 88 pitches by a coin flip costs 88 ln 2 = 61 nats per frame; a loss ten
# times that is no longer learning anything, it is diverging.
COIN_FLIP_NATS = 88 * math.log(2)
DIVERGED_NATS = 10 * COIN_FLIP_NATS


def train(
    config: TrainConfig,
    dataset: Any,
    *,
    model: torch.nn.Module,
    run_dir: Path | str,
    callbacks: TrainCallbacks | None = None,
    resume: bool = False,
    data_meta: dict[str, Any] | None = None,
    parent: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``model`` (any kind of the model registry, see
    :func:`tuneforge.models.build_model`) on ``dataset`` (``.train/.valid/.test`` rolls, and
    onsets and time signatures where it has them) into ``run_dir``.

    The loss is the model's negative log-likelihood per real frame, play and articulation
    terms together; the validation NLL (which picks ``best`` and stops early) is the play term,
    the figure of the protocol in ``docs/cells.md``. Under ``torchrun`` each process trains on
    its shard of every batch and only rank 0 writes files and calls ``callbacks``.
    ``data_meta`` (how the data were loaded: spec, split seed) goes into every checkpoint so
    that evaluation can load the same split. With ``resume`` the weights and optimizer come
    from ``run_dir/last``. ``parent`` (:meth:`tuneforge.finetune.Parent.to_dict`) records the
    model a fine-tuning run started from, in config.json and every checkpoint. Raises
    :class:`TrainingInterrupted` on Ctrl-C and :class:`TrainingError` when the loss stops
    being finite or diverges. ``run_dir`` must be missing, empty or a run
    (:mod:`tuneforge.run_folder`); it is locked while the training writes to it.
    """
    config.check()
    config = smoke_config(config)  # TUNEFORGE_SMOKE=1: one short epoch (tuneforge/smoke.py)
    run_dir = Path(run_dir)
    check_run_folder(run_dir, resume=resume)
    _check_lengths(dataset)
    context = context_from_env()
    device = choose_device(config.device, local_rank=context.local_rank)
    set_cpu_threads(config.threads)
    init_process_group(context, device)
    try:
        with locked(run_dir) if context.is_main else nullcontext():
            result = _train(
                config,
                model,
                dataset,
                run_dir,
                callbacks or TrainCallbacks(),
                resume,
                {**(data_meta or {}), **({"parent": parent} if parent else {})},
                context,
                device,
            )
        # Leave together: a process that tears its group down while another still talks to
        # the group's store aborts ("terminate called without an active exception").
        barrier(context)
        return result
    except KeyboardInterrupt:
        raise TrainingInterrupted(run_dir, _resume_epoch(run_dir)) from None
    finally:
        destroy_process_group(context)


def _check_lengths(dataset) -> None:
    """Training needs pieces of two frames or more (a frame is predicted from the one before)."""
    for split in ("train", "valid"):
        rolls = getattr(dataset, split)
        if rolls and not any(len(roll) >= 2 for roll in rolls):
            raise DataError(
                f"every piece of the {split} split of {dataset.name} is shorter than 2 steps, "
                "too short to score; use longer pieces or more --steps-per-beat"
            )


def _train(
    config, model, dataset, run_dir, callbacks, resume, data_meta, context: DistContext, device
):
    if not dataset.train or not dataset.valid:
        raise ConfigError("training needs pieces in both the train and the valid split")
    seed_everything(config.seed)
    model = model.to(device)
    optimizer = make_optimizer(config, model)
    progress = {
        "epoch": 0,
        "history": [],
        "best_valid_nll": math.inf,
        "best_epoch": -1,
        "bad_epochs": 0,
    }
    last_path = run_dir / "last"
    if resume:
        progress = _restore(last_path, config, model, optimizer, device, dataset.fingerprint)
    elif (run_dir / "last.json").exists():
        raise ConfigError(
            f"{run_dir} already holds a run; add --resume to continue it or pick another --out"
        )
    meta_base = {
        "steps_per_beat": int(dataset.steps_per_beat),
        "lowest_pitch": 21,
        "dataset": dataset.name,
        "data_fingerprint": dataset.fingerprint,
        "time_signatures": training_meters(dataset),
        "train_config": asdict(config),
        **(data_meta or {}),
    }
    history = [EpochInfo(**entry) for entry in progress["history"]]
    barrier(context)  # every process has checked the run folder before rank 0 writes to it
    if context.is_main:
        write_text(
            run_dir / "config.json",
            json.dumps(
                {
                    **meta_base,
                    "model_config": model.config.to_dict(),
                    "tuneforge_version": __version__,
                    "world_size": context.world_size,
                },
                indent=2,
                sort_keys=True,
            ),
        )
        _write_metrics(run_dir, history)
        if not resume:
            _save(last_path, model, optimizer, meta_base, progress)
    network = model
    if context.enabled:
        from torch.nn.parallel import DistributedDataParallel

        network = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    parameters = model.num_parameters()
    if context.is_main:
        callbacks.on_start(
            RunInfo(
                run_dir,
                describe_device(device),
                parameters,
                config.epochs,
                progress["epoch"],
                estimate_steps(dataset.train, config),
                sum(max(len(roll) - 1, 0) for roll in dataset.train),
                dataset.name,
                config,
                context.world_size,
                describe_model(model.config),
            )
        )
    out_of_time = False
    for epoch in range(progress["epoch"], config.epochs):
        if progress["bad_epochs"] >= config.patience:
            break
        # Measured as the sum of the finished epochs' times, so a resumed run keeps its budget.
        out_of_time = 0 < config.time_budget_s <= sum(h.epoch_s for h in history)
        if out_of_time:
            break
        started = time.perf_counter()
        train_loss, grad_norm, frames = _run_epoch(
            network, model, optimizer, dataset, config, epoch, context, device, callbacks, started
        )
        scores = _score(model, dataset, "valid", config, context, device)
        if not math.isfinite(scores.nll) or scores.nll > DIVERGED_NATS:
            raise TrainingError(
                f"the valid NLL became {scores.nll:.4g} nats per frame at epoch {epoch + 1}; "
                f"the run diverged; lower --lr (now {config.lr:g})"
            )
        epoch_s = time.perf_counter() - started
        improved = scores.nll < progress["best_valid_nll"]
        if improved:
            progress.update(best_valid_nll=scores.nll, best_epoch=epoch, bad_epochs=0)
        else:
            progress["bad_epochs"] += 1
        info = EpochInfo(
            epoch=epoch,
            train_loss=train_loss,
            valid_nll=scores.nll,
            valid_accuracy=scores.accuracy,
            best_valid_nll=progress["best_valid_nll"],
            best_epoch=progress["best_epoch"],
            lr=optimizer.param_groups[0]["lr"],
            grad_norm=grad_norm,
            frames_per_s=frames / epoch_s,
            epoch_s=epoch_s,
            eta_s=epoch_s * (config.epochs - epoch - 1),
            valid_articulation_nll=scores.articulation_nll,
        )
        history.append(info)
        progress["history"] = [asdict(entry) for entry in history]
        progress["epoch"] = epoch + 1
        if context.is_main:
            metrics = {"valid_nll": scores.nll, "valid_accuracy": scores.accuracy, "epoch": epoch}
            # The epoch's files as one step: a Ctrl-C or SIGTERM waits for them (one inside a
            # C extension's import, matplotlib's on the first plot, would surface as an
            # ImportError rather than as the interruption).
            with interrupts_deferred():
                if improved:
                    _save(run_dir / "best", model, None, {**meta_base, "metrics": metrics}, None)
                _write_metrics(run_dir, history)
                _save(last_path, model, optimizer, {**meta_base, "metrics": metrics}, progress)
                _plot(run_dir, history)
            callbacks.on_epoch(info)
    stopped = "early stopping" if progress["bad_epochs"] >= config.patience else "epochs"
    if out_of_time:
        stopped = "time budget"

    result = _finish(
        model, dataset, config, context, device, run_dir, history, progress, parameters, stopped
    )
    if context.is_main:
        callbacks.on_end(result)
    return result


def _run_epoch(
    network, model, optimizer, dataset, config, epoch, context, device, callbacks, started
):
    from tuneforge.cells import detach_state

    rng = np.random.default_rng([config.seed, epoch])
    torch.manual_seed(int(rng.integers(2**62)))  # dropout masks of this epoch
    plan = plan_epoch(split_pieces(dataset, "train"), config, rng, context)
    batches = smoke_batches(plan.batches)
    network.train()
    loss_sum = frames_sum = grad_sum = 0.0
    state = None
    for step, batch in enumerate(batches, start=1):
        frames, mask = plan.frames(batch)
        frames, mask = frames.to(device), mask.to(device)  # (B, W, P) frames; (B, W) mask
        if batch.fresh_state:
            state = None
        # The mean is taken over the real frames of the whole (all-process) batch, so DDP's
        # gradient average equals the single-process gradient of the same batch.
        counts = all_reduce_sum(torch.tensor([float(mask.sum())], dtype=torch.float64), context)
        global_frames = max(float(counts[0]), 1.0)
        with autocast(device, amp=config.amp):
            log_lik, state = network(frames, state)
        loss_total = -((log_lik.play.float() + log_lik.articulation.float()) * mask).sum()
        loss = loss_total * (context.world_size / global_frames)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(
            model.parameters(), config.clip if config.clip > 0 else math.inf
        )
        batch_loss = float(
            all_reduce_sum(loss_total.detach().double().cpu().reshape(1), context)[0]
        )
        batch_loss /= global_frames
        if not (math.isfinite(batch_loss) and math.isfinite(float(norm))):
            raise TrainingError(
                f"the loss became {batch_loss} at epoch {epoch + 1}, step {step}; the last good "
                f"checkpoint is kept; lower --lr (now {config.lr:g}) or clip harder with --clip "
                f"(now {config.clip:g})"
            )
        if batch_loss > DIVERGED_NATS:
            raise TrainingError(
                f"the loss reached {batch_loss:.0f} nats per frame at epoch {epoch + 1}, step "
                f"{step}, ten times a coin flip per pitch ({COIN_FLIP_NATS:.0f}): the run "
                f"diverged; the last good checkpoint is kept; lower --lr (now {config.lr:g})"
            )
        optimizer.step()
        state = detach_state(state) if config.carry_state else None
        loss_sum += batch_loss * global_frames
        frames_sum += global_frames
        grad_sum += float(norm)
        if context.is_main:
            callbacks.on_step(
                StepInfo(
                    epoch,
                    step,
                    len(batches),
                    batch_loss,
                    float(norm),
                    optimizer.param_groups[0]["lr"],
                    frames_sum / max(time.perf_counter() - started, 1e-9),
                    loss_sum / frames_sum,
                )
            )
    return loss_sum / max(frames_sum, 1.0), grad_sum / max(len(batches), 1), frames_sum


def _score(model, dataset, split: str, config, context, device) -> FrameScores:
    pieces = split_pieces(dataset, split)
    mine = shard(smoke_pieces(list(range(len(pieces.rolls)))), context)
    local = score_rolls(
        model,
        [pieces.rolls[i] for i in mine],
        onsets=[pieces.onsets[i] for i in mine],
        bar_positions=[pieces.bar_positions[i] for i in mine],
        device=device,
        batch_size=config.eval_batch_size,
    )
    return FrameScores.from_tensor(all_reduce_sum(local.as_tensor(), context))


def _finish(
    model, dataset, config, context, device, run_dir, history, progress, parameters, stopped
) -> TrainResult:
    test_nll = test_accuracy = None
    test_frames = 0
    barrier(context)  # rank 0 has finished writing `best`
    if dataset.test and (run_dir / "best.json").exists():
        best = load_checkpoint(run_dir / "best", device=device)
        scores = _score(best.model, dataset, "test", config, context, device)
        if scores.frames > 0:  # test pieces all too short to score: no test figure
            test_nll, test_accuracy, test_frames = scores.nll, scores.accuracy, scores.frames
    return TrainResult(
        run_dir=run_dir,
        history=history,
        best_epoch=progress["best_epoch"],
        best_valid_nll=progress["best_valid_nll"],
        test_nll=test_nll,
        test_accuracy=test_accuracy,
        test_frames=test_frames,
        parameters=parameters,
        stopped=stopped,
        seconds_per_epoch=float(np.mean([h.epoch_s for h in history])) if history else 0.0,
    )


def training_meters(dataset) -> dict[str, float]:
    """Share of the training pieces opening in each meter (4/4 for a set without meters):
    what `generate` draws a piece's meter from."""
    from tuneforge.music.meter import time_signature_shares

    meters = getattr(dataset, "time_signatures", None)
    return time_signature_shares(meters["train"] if meters else [])


def _save(path: Path, model, optimizer, meta: dict, progress: dict | None) -> None:
    try:
        save_checkpoint(
            path,
            model,
            meta={**meta, "progress": progress},
            optimizer_state=None if optimizer is None else optimizer.state_dict(),
        )
    except OSError as error:  # the pair is written whole or not at all: the old one is kept
        raise OutputError(os_error_line(error, f"{path}.safetensors")) from None


def _restore(last_path: Path, config, model, optimizer, device, fingerprint: str) -> dict:
    checkpoint = load_checkpoint(last_path, device=device)
    if checkpoint.meta.get("data_fingerprint") not in (None, fingerprint):
        raise ConfigError(
            f"{last_path} was trained on other data ({checkpoint.meta.get('dataset')}); "
            "resume with the same DATA and options, or start a new run"
        )
    saved_model = checkpoint.model.config.to_dict()
    for key, value in model.config.to_dict().items():
        if saved_model.get(key) != value:
            raise ConfigError(
                f"--resume needs the same {key} as the run ({saved_model.get(key)!r}), "
                f"got {value!r}"
            )
    saved = checkpoint.meta.get("train_config", {})
    for key in ("optimizer", "seed", "batch_size", "window_steps"):
        if key in saved and saved[key] != getattr(config, key):
            raise ConfigError(
                f"--resume needs the same {key} as the run ({saved[key]!r}), "
                f"got {getattr(config, key)!r}"
            )
    progress = checkpoint.meta.get("progress")
    if progress is None or checkpoint.optimizer_state is None:
        raise ConfigError(f"{last_path} holds no training progress; start a new run instead")
    model.load_state_dict(checkpoint.model.state_dict())
    optimizer.load_state_dict(checkpoint.optimizer_state)
    for group in optimizer.param_groups:  # the saved state holds the old rate; --lr may change it
        group["lr"] = config.lr
    return progress


def _resume_epoch(run_dir: Path) -> int | None:
    """The epoch (0-based) that `last` resumes at, or None when nothing was saved yet."""
    try:
        document = json.loads((run_dir / "last.json").read_text(encoding="utf-8"))
        return int(document["meta"]["progress"]["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_metrics(run_dir: Path, history: list[EpochInfo]) -> None:
    # Rewritten whole each epoch, so a resumed run never repeats an epoch's line.
    lines = "".join(epoch_to_metrics_line(entry) for entry in history)
    write_text(run_dir / "metrics.jsonl", lines)


def _plot(run_dir: Path, history: list[EpochInfo]) -> None:
    from tuneforge.curves import plot_curves

    with replacing(run_dir / "curves.png") as partial:
        plot_curves(history, partial)
