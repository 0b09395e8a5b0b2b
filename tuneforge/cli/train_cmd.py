"""`tuneforge train` and `tuneforge evaluate`: thin fronts over tuneforge.train and .evaluate."""

from __future__ import annotations

import json
import shlex
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tuneforge.cli.data_options import (
    DataDirOption,
    FoldOctavesOption,
    KeepPercussionOption,
    StepsPerBeatOption,
)
from tuneforge.errors import ConfigError

DATA_HELP = (
    "A MIDI folder, a benchmark file (.mat or .pickle) or a benchmark name "
    "(jsb, nottingham, musedata, piano-midi; found via --data-dir or $TUNEFORGE_DATA_DIR)."
)


class OptimizerChoice(str, Enum):
    """Optimizers the seed papers used."""

    adam = "adam"
    rmsprop = "rmsprop"
    radam = "radam"
    adagrad = "adagrad"
    sgd = "sgd"


class DeviceChoice(str, Enum):
    """Where to train."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class SplitChoice(str, Enum):
    """A split of a data set."""

    train = "train"
    valid = "valid"
    test = "test"


# CLI option name -> TrainConfig field, for options that --resume lets the user change or check.
_OPTION_FIELDS = {
    "cell": "cell",
    "layers": "num_layers",
    "hidden_size": "hidden_size",
    "dropout": "dropout",
    "optimizer": "optimizer",
    "lr": "lr",
    "batch_size": "batch_size",
    "window": "window_steps",
    "epochs": "epochs",
    "patience": "patience",
    "clip": "clip",
    "transpose": "transpose_semitones",
    "carry_state": "carry_state",
    "seed": "seed",
    "device": "device",
    "amp": "amp",
    "threads": "threads",
}


def register(app: typer.Typer) -> None:
    """Add `train` and `evaluate` to ``app``."""
    app.command("train")(train_command)
    app.command("evaluate")(evaluate_command)


def parse_cell_options(cell: str, pairs: list[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> ``{"key": value}``, typed and checked by the cell registry."""
    from tuneforge.cells.registry import cell_options

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--cell-option wants KEY=VALUE, got {pair!r}")
        options[key.strip().replace("-", "_")] = value.strip()
    typed = cell_options(cell, options)
    return {key: typed[key] for key in options}


def train_command(
    ctx: typer.Context,
    data: Annotated[str, typer.Argument(help=DATA_HELP)],
    cell: Annotated[str, typer.Option(help="Cell name or alias (see `tuneforge cells`).")] = "lstm",
    layers: Annotated[int, typer.Option(help="Recurrent layers stacked.")] = 1,
    hidden_size: Annotated[
        int | None, typer.Option(help="Units per layer (default 256, or from --params).")
    ] = None,
    params: Annotated[
        int | None,
        typer.Option(help="Parameter budget: choose the largest hidden size that fits it."),
    ] = None,
    dropout: Annotated[
        float, typer.Option(help="Dropout between layers and before the head.")
    ] = 0.4,
    optimizer: Annotated[OptimizerChoice, typer.Option(help="Optimizer.")] = OptimizerChoice.adam,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 3e-3,
    batch_size: Annotated[int, typer.Option(help="Windows per step (all processes).")] = 8,
    window: Annotated[int, typer.Option(help="Window length in steps (truncated BPTT).")] = 200,
    epochs: Annotated[int, typer.Option(help="Most epochs to train.")] = 200,
    patience: Annotated[
        int, typer.Option(help="Stop after this many epochs without a better valid NLL.")
    ] = 10,
    clip: Annotated[float, typer.Option(help="Max gradient norm (0: no clipping).")] = 5.0,
    transpose: Annotated[
        int, typer.Option(help="Shift each training piece by up to +-N semitones per epoch.")
    ] = 0,
    carry_state: Annotated[
        bool, typer.Option(help="Carry the state across consecutive windows of a piece.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: Annotated[DeviceChoice, typer.Option(help="Device.")] = DeviceChoice.auto,
    amp: Annotated[bool, typer.Option(help="bf16 autocast on CUDA.")] = False,
    threads: Annotated[
        int, typer.Option(help="CPU threads for torch (0: one per core; 1 helps on busy CPUs).")
    ] = 0,
    out: Annotated[Path | None, typer.Option(help="Run folder (default runs/DATA-CELL).")] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue the run in --out from its `last` checkpoint.")
    ] = False,
    cell_option: Annotated[
        list[str] | None,
        typer.Option("--cell-option", "-O", help="A cell option KEY=VALUE (repeatable)."),
    ] = None,
    data_dir: DataDirOption = None,
    steps_per_beat: StepsPerBeatOption = 4,
    split_seed: Annotated[int, typer.Option(help="Seed of the train/valid/test split.")] = 0,
    keep_percussion: KeepPercussionOption = False,
    fold_octaves: FoldOctavesOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Train a model on DATA and write checkpoints, metrics and curves to a run folder."""
    from tuneforge.cells import resolve_cell
    from tuneforge.cli.dashboard import Dashboard, PlainLog, summary_table
    from tuneforge.cli.progress import parsing_progress, print_unused_files
    from tuneforge.data.dataset import load_dataset
    from tuneforge.distributed import context_from_env
    from tuneforge.models.budget import hidden_size_for_budget
    from tuneforge.train import TrainCallbacks, TrainConfig, TrainingInterrupted, train

    resolve_cell(cell)  # an unknown name fails before any data is read
    run_dir = out or Path("runs") / f"{Path(data).name.lower()}-{cell}"
    given = {
        name: value
        for name, value in locals().items()
        if name in _OPTION_FIELDS and _from_command_line(ctx, name)
    }
    if resume:
        config, saved = _resumed_config(run_dir, given)
        # Read the data as the run did, unless told otherwise.
        if not _from_command_line(ctx, "steps_per_beat"):
            steps_per_beat = int(saved.get("steps_per_beat", steps_per_beat))
        if not _from_command_line(ctx, "split_seed"):
            split_seed = int(saved.get("split_seed", split_seed))
        keep_percussion = keep_percussion or bool(saved.get("keep_percussion", False))
        fold_octaves = fold_octaves or bool(saved.get("fold_octaves", False))
    else:
        if hidden_size is not None and params is not None:
            raise ConfigError("give --hidden-size or --params, not both")
        options = parse_cell_options(cell, cell_option or [])
        if params is not None:
            hidden_size = hidden_size_for_budget(
                cell, params, num_layers=layers, dropout=dropout, cell_options=options
            )
        config = TrainConfig(
            cell=cell,
            hidden_size=hidden_size or 256,
            num_layers=layers,
            dropout=dropout,
            cell_options=options,
            optimizer=optimizer.value,
            lr=lr,
            batch_size=batch_size,
            window_steps=window,
            epochs=epochs,
            patience=patience,
            clip=clip,
            transpose_semitones=transpose,
            carry_state=carry_state,
            seed=seed,
            device=device.value,
            amp=amp,
            threads=threads,
        )
        config.check()
    is_main = context_from_env().is_main
    with parsing_progress(enabled=is_main and not quiet) as on_progress:
        dataset = load_dataset(
            data,
            data_dir=data_dir,
            steps_per_beat=steps_per_beat,
            split_seed=split_seed,
            keep_percussion=keep_percussion,
            fold_octaves=fold_octaves,
            on_progress=on_progress,
        )
    console = Console(highlight=False)
    if dataset.report is not None and is_main and not quiet:
        print_unused_files(dataset.report, data, Console(stderr=True, highlight=False))
    if quiet or not is_main:
        view: Any = TrainCallbacks()
    elif console.is_terminal:
        view = Dashboard(console)
    else:
        view = PlainLog(console)
    data_meta = {
        "data_spec": data,
        "split_seed": split_seed,
        "keep_percussion": keep_percussion,
        "fold_octaves": fold_octaves,
    }
    try:
        result = train(
            config, dataset, run_dir=run_dir, callbacks=view, resume=resume, data_meta=data_meta
        )
    except TrainingInterrupted as stop:
        _stop(view)
        if is_main:
            err = Console(stderr=True, highlight=False)
            if stop.epoch is None:
                err.print("[yellow]interrupted[/yellow] before anything was saved; start again")
            else:
                command = _resume_command(data, run_dir, data_dir)
                err.print(
                    f"[yellow]interrupted[/yellow]; {run_dir / 'last'} holds the run at the "
                    f"start of epoch {stop.epoch + 1}; resume with: {command}",
                    soft_wrap=True,
                )
        raise typer.Exit(130) from None
    finally:
        _stop(view)
    if is_main:
        if quiet:
            console.print(
                f"best valid NLL {result.best_valid_nll:.4f}; run folder {run_dir}", soft_wrap=True
            )
        else:
            console.print(summary_table(result))


def evaluate_command(
    checkpoint: Annotated[
        Path, typer.Argument(help="A run folder (its best checkpoint) or a checkpoint file.")
    ],
    data: Annotated[str, typer.Argument(help=DATA_HELP)],
    split: Annotated[SplitChoice, typer.Option(help="Which split to score.")] = SplitChoice.test,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
    data_dir: DataDirOption = None,
    device: Annotated[DeviceChoice, typer.Option(help="Device.")] = DeviceChoice.auto,
    batch_size: Annotated[int, typer.Option(help="Whole pieces per batch.")] = 32,
) -> None:
    """Score a checkpoint on DATA: per-frame NLL (nats), frame accuracy and frame count."""
    from tuneforge.evaluate import evaluate_checkpoint

    report = evaluate_checkpoint(
        checkpoint,
        data,
        split=split.value,
        data_dir=data_dir,
        device=device.value,
        batch_size=batch_size,
    )
    console = Console(highlight=False)
    if json_output:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    table = Table(
        title=f"evaluate {report.dataset} ({report.split})", show_header=False, title_justify="left"
    )
    table.add_column(style="bold")
    table.add_column()
    table.add_row("NLL (nats per frame)", f"{report.nll:.4f}")
    table.add_row("frame accuracy", f"{report.frame_accuracy:.4f}")
    table.add_row("frames scored", f"{report.frames:,} in {report.pieces:,} pieces")
    table.add_row("which frames", report.scored_frames)
    table.add_row("checkpoint", report.checkpoint)
    if report.fingerprint_matches is False:
        table.add_row("[yellow]note[/yellow]", "these data differ from the training data")
    console.print(table)


def _from_command_line(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def _resumed_config(run_dir: Path, given: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The run's saved TrainConfig, with the options typed on this command line applied, and
    the run's saved config.json."""
    from tuneforge.train import TrainConfig

    saved_path = run_dir / "config.json"
    if not saved_path.is_file():
        raise ConfigError(f"no run to resume in {run_dir}; check --out or drop --resume")
    document = json.loads(saved_path.read_text(encoding="utf-8"))
    fields = dict(document["train_config"])
    for name, value in given.items():
        fields[_OPTION_FIELDS[name]] = value.value if isinstance(value, Enum) else value
    return TrainConfig(**fields), document


def _resume_command(data: str, run_dir: Path, data_dir: Path | None) -> str:
    words = ["tuneforge", "train", data, "--out", str(run_dir), "--resume"]
    if data_dir is not None:
        words += ["--data-dir", str(data_dir)]
    return shlex.join(words)


def _stop(view: Any) -> None:
    stop = getattr(view, "stop", None)
    if stop is not None:
        stop()
