"""`tuneforge train` and `tuneforge evaluate`: thin fronts over tuneforge.train and .evaluate."""

from __future__ import annotations

import json
import shlex
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tuneforge.cli import panels
from tuneforge.cli.data_options import (
    DataDirOption,
    FoldOctavesOption,
    KeepPercussionOption,
    SplitSeedOption,
    StepsPerBeatOption,
)
from tuneforge.cli.device_options import (
    DEFAULT_DEVICE,
    DeviceOption,
    ThreadsOption,
)
from tuneforge.cli.model_options import (
    ArticulationOption,
    CellOption,
    CellOptionOption,
    DropoutOption,
    HeadOption,
    HiddenSizeOption,
    LayersOption,
    MeterOption,
    ModelOption,
    NoteCellOption,
    NoteCellOptionOption,
    NoteHiddenSizeOption,
    NoteLayersOption,
    ParamsOption,
    PitchFeatureOption,
    WindowSemitonesOption,
    fit_to_data,
    model_changes,
    model_config_from_options,
    parse_cell_options,  # noqa: F401  re-exported for older callers
)
from tuneforge.errors import ConfigError, DataError

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


class ProtocolChoice(str, Enum):
    """How NLL is scored (docs/protocols.md)."""

    tcn = "tcn"
    rru = "rru"


ProtocolOption = Annotated[
    ProtocolChoice,
    typer.Option(
        help="Scoring protocol: tcn (whole pieces, frames 2..T, frame-weighted) or rru "
        "(silent frames dropped, windows of 200, window-weighted); see docs/protocols.md.",
        rich_help_panel=panels.RUN,
    ),
]


class SplitChoice(str, Enum):
    """A split of a data set."""

    train = "train"
    valid = "valid"
    test = "test"


# CLI option name -> TrainConfig field, for options that --resume lets the user change or check.
_OPTION_FIELDS = {
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
    app.command("train", cls=panels.Command)(train_command)
    app.command("evaluate", cls=panels.Command)(evaluate_command)


# The model options of the command line (names as the model registry knows them).
_MODEL_OPTIONS = (
    "cell",
    "layers",
    "hidden_size",
    "dropout",
    "cell_option",
    "head",
    "note_cell",
    "note_hidden_size",
    "note_layers",
    "note_cell_option",
    "meter",
    "articulation",
    "window_semitones",
    "pitch_feature",
)


def train_command(
    ctx: typer.Context,
    data: Annotated[str, typer.Argument(help=DATA_HELP)],
    model: ModelOption = "sequence",
    cell: CellOption = "lstm",
    layers: LayersOption = None,
    hidden_size: HiddenSizeOption = None,
    params: ParamsOption = None,
    dropout: DropoutOption = None,
    cell_option: CellOptionOption = None,
    head: HeadOption = None,
    note_cell: NoteCellOption = None,
    note_hidden_size: NoteHiddenSizeOption = None,
    note_layers: NoteLayersOption = None,
    note_cell_option: NoteCellOptionOption = None,
    meter: MeterOption = None,
    articulation: ArticulationOption = None,
    window_semitones: WindowSemitonesOption = None,
    pitch_feature: PitchFeatureOption = None,
    init: Annotated[
        str | None,
        typer.Option(
            metavar="MODEL",
            help="Fine-tune: start from this model's weights and configuration (a shipped name "
            "such as default, or a checkpoint path); options that would change its "
            "architecture are refused.",
            rich_help_panel=panels.MODEL,
        ),
    ] = None,
    optimizer: Annotated[
        OptimizerChoice, typer.Option(help="Optimizer.", rich_help_panel=panels.OPTIMISATION)
    ] = OptimizerChoice.adam,
    lr: Annotated[
        float, typer.Option(help="Learning rate.", rich_help_panel=panels.OPTIMISATION)
    ] = 3e-3,
    batch_size: Annotated[
        int,
        typer.Option(help="Windows per step (all processes).", rich_help_panel=panels.OPTIMISATION),
    ] = 8,
    window: Annotated[
        int,
        typer.Option(
            "--window-steps",
            "--window",
            help="Window length in steps (truncated BPTT).",
            rich_help_panel=panels.OPTIMISATION,
        ),
    ] = 200,
    epochs: Annotated[
        int, typer.Option(help="Most epochs to train.", rich_help_panel=panels.OPTIMISATION)
    ] = 200,
    patience: Annotated[
        int,
        typer.Option(
            help="Stop after this many epochs without a better valid NLL.",
            rich_help_panel=panels.OPTIMISATION,
        ),
    ] = 10,
    clip: Annotated[
        float,
        typer.Option(
            help="Max gradient norm (0: no clipping).", rich_help_panel=panels.OPTIMISATION
        ),
    ] = 5.0,
    transpose: Annotated[
        int,
        typer.Option(
            "--transpose-semitones",
            "--transpose",
            help="Shift each training piece by up to +-N semitones per epoch.",
            rich_help_panel=panels.OPTIMISATION,
        ),
    ] = 0,
    carry_state: Annotated[
        bool,
        typer.Option(
            "--carry-state",
            help="Carry the state across consecutive windows of a piece.",
            rich_help_panel=panels.OPTIMISATION,
        ),
    ] = False,
    seed: Annotated[
        int,
        typer.Option(
            help="Random seed (initial weights, window order, dropout).",
            rich_help_panel=panels.OPTIMISATION,
        ),
    ] = 0,
    device: DeviceOption = DEFAULT_DEVICE,
    amp: Annotated[
        bool, typer.Option("--amp", help="bf16 autocast on CUDA.", rich_help_panel=panels.DEVICE)
    ] = False,
    threads: ThreadsOption = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Run folder (default runs/DATA-CELL, or runs/DATA-from-MODEL with --init).",
            rich_help_panel=panels.RUN,
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the run in --out from its `last` checkpoint.",
            rich_help_panel=panels.RUN,
        ),
    ] = False,
    data_dir: DataDirOption = None,
    steps_per_beat: StepsPerBeatOption = 4,
    split_seed: SplitSeedOption = 0,
    keep_percussion: KeepPercussionOption = False,
    fold_octaves: FoldOctavesOption = False,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="No progress output.", rich_help_panel=panels.RUN),
    ] = False,
) -> None:
    """Train a model on DATA and write checkpoints, metrics and curves to a run folder."""
    from tuneforge.cli.dashboard import Dashboard, PlainLog, summary_table
    from tuneforge.cli.progress import parsing_progress, print_unused_files
    from tuneforge.data.dataset import load_dataset
    from tuneforge.distributed import context_from_env
    from tuneforge.finetune import initial_model, run_label
    from tuneforge.models.registry import build_model, config_from_dict
    from tuneforge.run_folder import check_run_folder, lock_holder
    from tuneforge.stop_signals import terminate_as_interrupt
    from tuneforge.train import TrainCallbacks, TrainConfig, TrainingInterrupted, train
    from tuneforge.validate import check_model_config, check_numbers

    arguments = locals()
    # Every number and model choice is checked before any data are read.
    check_numbers({"steps_per_beat": steps_per_beat, "split_seed": split_seed, "params": params})
    start = None
    if init is not None:
        if resume:
            raise ConfigError("--init starts a new run and --resume continues one; give one")
        start, model_config = _fine_tune_start(ctx, init, arguments, params)
        steps_per_beat = model_config.steps_per_beat
        label = f"from-{run_label(init)}"
    else:
        _check_kind(model)
        model_options = {name: arguments[name] for name in _MODEL_OPTIONS}
        model_config = model_config_from_options(model, model_options, params)
        label = _run_label(model, cell)
    check_model_config(model_config)
    parent = None if start is None else start.parent.to_dict()
    run_dir = out or Path("runs") / f"{Path(data).name.lower()}-{label}"
    given = {
        name: value
        for name, value in arguments.items()
        if name in _OPTION_FIELDS and _from_command_line(ctx, name)
    }
    check_run_folder(run_dir, resume=resume)
    holder = lock_holder(run_dir)
    if holder is not None:
        raise ConfigError(
            f"{run_dir} is in use by a training (pid {holder}); wait for it to end, stop it, "
            "or pick another --out"
        )
    if resume:
        config, saved = _resumed_config(run_dir, given)
        config.check()
        model_config = config_from_dict(saved["model_config"])
        _refuse_model_changes(ctx, arguments, model_config, params)
        parent = saved.get("parent")
        # Read the data as the run did, unless told otherwise.
        if not _from_command_line(ctx, "steps_per_beat"):
            steps_per_beat = int(saved.get("steps_per_beat", steps_per_beat))
        if not _from_command_line(ctx, "split_seed"):
            split_seed = int(saved.get("split_seed", split_seed))
        keep_percussion = keep_percussion or bool(saved.get("keep_percussion", False))
        fold_octaves = fold_octaves or bool(saved.get("fold_octaves", False))
    else:
        config = TrainConfig(
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
    if start is not None and dataset.steps_per_beat != model_config.steps_per_beat:
        raise ConfigError(
            f"{data} has {dataset.steps_per_beat} steps per beat and --init {init} reads "
            f"{model_config.steps_per_beat}; fine-tune on a MIDI folder"
        )
    if not resume and start is None:
        model_config = fit_to_data(
            model_config,
            steps_per_beat=dataset.steps_per_beat,
            onsets_known=dataset.onsets is not None,
            articulation=articulation,
        )
    if start is None:
        network = build_model(model_config, seed=config.seed)
    else:
        network = initial_model(start, model_config, seed=config.seed)
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
    # SIGTERM (kill, a scheduler's time limit) stops the run as Ctrl-C does.
    with terminate_as_interrupt() as signalled:
        try:
            result = train(
                config,
                dataset,
                model=network,
                run_dir=run_dir,
                callbacks=view,
                resume=resume,
                data_meta=data_meta,
                parent=parent,
            )
        except TrainingInterrupted as stop:
            _stop(view)
            if is_main:
                _report_interruption(stop, signalled.signum, data, run_dir, data_dir)
            raise typer.Exit(signalled.exit_status) from None
        finally:
            _stop(view)
    if is_main:
        if quiet:
            console.print(
                f"best valid NLL {result.best_valid_nll:.4f}; run folder {escape(str(run_dir))}",
                soft_wrap=True,
            )
        else:
            console.print(summary_table(result))


def evaluate_command(
    checkpoint: Annotated[
        Path, typer.Argument(help="A run folder (its best checkpoint) or a checkpoint file.")
    ],
    data: Annotated[
        str | None,
        typer.Argument(help=DATA_HELP + " Default: the data the run was trained on."),
    ] = None,
    split: Annotated[SplitChoice, typer.Option(help="Which split to score.")] = SplitChoice.test,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
    data_dir: DataDirOption = None,
    device: DeviceOption = DEFAULT_DEVICE,
    batch_size: Annotated[int, typer.Option(help="Whole pieces per batch.")] = 32,
    protocol: ProtocolOption = ProtocolChoice.tcn,
) -> None:
    """Score a checkpoint on DATA (default: the data it was trained on): per-frame NLL (nats),
    frame accuracy and frame count."""
    from tuneforge.evaluate import evaluate_checkpoint
    from tuneforge.validate import check_number

    check_number("eval_batch_size", batch_size)
    report = evaluate_checkpoint(
        checkpoint,
        data,
        split=split.value,
        data_dir=data_dir,
        device=device.value,
        batch_size=batch_size,
        protocol=protocol.value,
    )
    if report.frames == 0:
        raise DataError(
            f"no piece of the {report.split} split is long enough to score (2 steps or more); "
            "score another split or longer pieces"
        )
    console = Console(highlight=False)
    if json_output:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    table = Table(
        title=f"evaluate {escape(str(report.dataset))} ({report.split}, "
        f"protocol {report.protocol})",
        show_header=False,
        title_justify="left",
    )
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("protocol", report.protocol)
    table.add_row("NLL (nats per frame)", f"{report.nll:.4f}")
    table.add_row("frame accuracy", f"{report.frame_accuracy:.4f}")
    if report.articulation_nll:
        table.add_row("articulation NLL (apart)", f"{report.articulation_nll:.4f}")
    scored = f"{report.frames:,} in {report.pieces:,} pieces"
    if report.windows is not None:
        scored += f" ({report.windows:,} windows)"
    table.add_row("frames scored", scored)
    table.add_row("which frames", escape(report.scored_frames))
    table.add_row("checkpoint", escape(str(report.checkpoint)))
    if report.fingerprint_matches is False:
        table.add_row("[yellow]note[/yellow]", "these data differ from the training data")
    console.print(table)


def _check_kind(kind: str) -> None:
    """--kind (--model) names a kind of model; a trained model given there meant --init."""
    from tuneforge.models.registry import model_names
    from tuneforge.shipped import list_models

    if kind not in model_names() and (
        Path(kind).exists() or kind in {m.name for m in list_models()}
    ):
        raise ConfigError(
            f"--kind (--model) names a kind of model ({', '.join(model_names())}); to start "
            f"from the trained model {kind!r}, use --init {kind}"
        )


def _fine_tune_start(ctx: typer.Context, init: str, arguments: dict[str, Any], params):
    """The parent model --init names, and the config of the run: the parent's, with the model
    options typed on this command line applied where they keep its architecture."""
    from tuneforge.finetune import fine_tune_config, load_parent

    start = load_parent(init)
    typed = {name: arguments[name] for name in _MODEL_OPTIONS if _from_command_line(ctx, name)}
    if _from_command_line(ctx, "model"):
        typed["kind"] = arguments["model"]
    changes = model_changes(start.config, typed, params)
    if _from_command_line(ctx, "steps_per_beat"):
        changes["steps_per_beat"] = arguments["steps_per_beat"]
    return start, fine_tune_config(start, changes)


def _refuse_model_changes(ctx: typer.Context, arguments: dict[str, Any], config, params) -> None:
    """--resume keeps the run's model: a model option typed on the command line that would
    change it (a size, a cell option, --params) is refused, naming what differs."""
    typed = {name: arguments[name] for name in _MODEL_OPTIONS if _from_command_line(ctx, name)}
    if _from_command_line(ctx, "model"):
        typed["kind"] = arguments["model"]
    budget = params if _from_command_line(ctx, "params") else None
    current = config.to_dict()
    try:
        changes = model_changes(config, typed, budget)
    except ConfigError as error:
        raise ConfigError(f"--resume keeps the run's model, and {error}") from None
    differences = []
    for field, value in changes.items():
        had = current.get(field)
        if isinstance(had, dict) and isinstance(value, dict):
            value = {**had, **value}
        if value != had:
            differences.append(f"{field} {had!r} (asked: {value!r})")
    if differences:
        raise ConfigError(
            f"--resume keeps the run's model, which has {'; '.join(differences)}; drop those "
            "options or start a new run with another --out"
        )


def _report_interruption(stop, signum: int | None, data: str, run_dir: Path, data_dir) -> None:
    """Say where the interrupted run stands and how to resume it, on stderr."""
    err = Console(stderr=True, highlight=False)
    what = "interrupted" if signum is None else "terminated (SIGTERM)"
    if stop.epoch is None:
        err.print(f"[yellow]{what}[/yellow] before anything was saved; start again")
        return
    command = _resume_command(data, run_dir, data_dir)
    err.print(
        f"[yellow]{what}[/yellow]; {escape(str(run_dir / 'last'))} holds the run at the start "
        f"of epoch {stop.epoch + 1}; resume with: {escape(command)}",
        soft_wrap=True,
    )


def _from_command_line(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def _resumed_config(run_dir: Path, given: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The run's saved TrainConfig, with the options typed on this command line applied, and
    the run's saved config.json."""
    from tuneforge.schema import Obj, dataclass_schema, read_json
    from tuneforge.train import TrainConfig

    saved_path = run_dir / "config.json"
    if not saved_path.is_file():
        raise ConfigError(f"no run to resume in {run_dir}; check --out or drop --resume")
    schema = Obj(required={"train_config": dataclass_schema(TrainConfig)})
    hint = "start a new run with another --out"
    document = read_json(saved_path, schema, error=ConfigError, hint=hint)
    fields = dict(document["train_config"])
    for name, value in given.items():
        fields[_OPTION_FIELDS[name]] = value.value if isinstance(value, Enum) else value
    return TrainConfig.from_dict(fields), document


def _run_label(kind: str, cell: str) -> str:
    """The default run folder's suffix: the cell, after the model kind unless sequence."""
    return cell if kind == "sequence" else f"{kind}-{cell}"


def _resume_command(data: str, run_dir: Path, data_dir: Path | None) -> str:
    words = ["tuneforge", "train", data, "--out", str(run_dir), "--resume"]
    if data_dir is not None:
        words += ["--data-dir", str(data_dir)]
    return shlex.join(words)


def _stop(view: Any) -> None:
    stop = getattr(view, "stop", None)
    if stop is not None:
        stop()
