"""`tuneforge compare`: the matched-parameter bake-off, a thin front over tuneforge.compare."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tuneforge.cli import panels
from tuneforge.cli.data_options import DataDirOption, SplitSeedOption, StepsPerBeatOption
from tuneforge.cli.device_options import DEFAULT_DEVICE, DeviceOption, ThreadsOption
from tuneforge.cli.train_cmd import (
    DATA_HELP,
    OptimizerChoice,
    ProtocolChoice,
    ProtocolOption,
)
from tuneforge.compare import TRAIN_OVERRIDES, CompareCallbacks, Entry, EntryResult
from tuneforge.errors import ConfigError
from tuneforge.train_events import EpochInfo, RunInfo, StepInfo, TrainCallbacks


def register(app: typer.Typer) -> None:
    """Add `compare` to ``app``."""
    app.command("compare", cls=panels.Command)(compare_command)


def compare_command(
    data: Annotated[str, typer.Argument(help=DATA_HELP)],
    cells: Annotated[
        str,
        typer.Option(
            help="Cells to compare, comma-separated (see `tuneforge cells`).",
            rich_help_panel=panels.MODEL,
        ),
    ] = "lstm,gru,rru",
    models: Annotated[
        str,
        typer.Option(
            help="Model kinds, comma-separated: sequence, biaxial.", rich_help_panel=panels.MODEL
        ),
    ] = "sequence",
    head: Annotated[
        str | None,
        typer.Option(
            help="Sequence model output: bernoulli or note-axis.", rich_help_panel=panels.MODEL
        ),
    ] = None,
    params: Annotated[
        int, typer.Option(help="Parameter budget of every entry.", rich_help_panel=panels.MODEL)
    ] = 1_000_000,
    dropout: Annotated[
        float | None,
        typer.Option(
            help="Dropout of every entry (sequence 0.4, biaxial 0.5).",
            rich_help_panel=panels.MODEL,
        ),
    ] = None,
    override: Annotated[
        list[str] | None,
        typer.Option(
            help="Per-entry settings TARGET:KEY=VALUE[,KEY=VALUE...]; TARGET is a cell or "
            "kind/cell, KEY a model option, a cell option or lr, e.g. "
            "rru:dropout=0.5,rru_dropout=0.6 (repeatable; shown in the table).",
            rich_help_panel=panels.MODEL,
        ),
    ] = None,
    protocol: ProtocolOption = ProtocolChoice.tcn,
    epochs: Annotated[
        int, typer.Option(help="Most epochs per entry.", rich_help_panel=panels.OPTIMISATION)
    ] = 20,
    time_budget_s: Annotated[
        float,
        typer.Option(
            help="Stop an entry at the first epoch boundary past this many seconds.",
            rich_help_panel=panels.OPTIMISATION,
        ),
    ] = 0.0,
    patience: Annotated[
        int,
        typer.Option(
            help="Stop an entry after this many epochs without a better valid NLL.",
            rich_help_panel=panels.OPTIMISATION,
        ),
    ] = 10,
    optimizer: Annotated[
        OptimizerChoice, typer.Option(help="Optimizer.", rich_help_panel=panels.OPTIMISATION)
    ] = OptimizerChoice.adam,
    lr: Annotated[
        float, typer.Option(help="Learning rate.", rich_help_panel=panels.OPTIMISATION)
    ] = 3e-3,
    batch_size: Annotated[
        int, typer.Option(help="Windows per step.", rich_help_panel=panels.OPTIMISATION)
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
    seed: Annotated[
        int, typer.Option(help="Seed of every entry.", rich_help_panel=panels.OPTIMISATION)
    ] = 0,
    sample_beats: Annotated[
        float,
        typer.Option(help="Length of each entry's sample.", rich_help_panel=panels.SAMPLING),
    ] = 32.0,
    temp: Annotated[
        float,
        typer.Option(
            "--temperature",
            "--temp",
            help="Temperature of the samples.",
            rich_help_panel=panels.SAMPLING,
        ),
    ] = 0.8,
    render: Annotated[
        bool,
        typer.Option(
            "--render", help="Render each sample to WAV.", rich_help_panel=panels.SAMPLING
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Compare folder (default runs/compare-DATA).", rich_help_panel=panels.RUN
        ),
    ] = None,
    data_dir: DataDirOption = None,
    steps_per_beat: StepsPerBeatOption = 4,
    split_seed: SplitSeedOption = 0,
    device: DeviceOption = DEFAULT_DEVICE,
    threads: ThreadsOption = 0,
) -> None:
    """Train every model kind x cell at one parameter budget on DATA, in turn, and rank them.

    Run the same command again to continue a compare stopped by Ctrl-C or a crash.
    """
    from tuneforge.cli.model_options import fit_to_data
    from tuneforge.cli.progress import parsing_progress
    from tuneforge.compare import CompareSettings, check_folder, parse_overrides, run_compare
    from tuneforge.data.dataset import load_dataset
    from tuneforge.train import TrainConfig, TrainingInterrupted

    kinds = _names(models, "--models")
    cell_names = _names(cells, "--cells")
    overrides = parse_overrides(override or [])
    shared = {"head": head, "dropout": dropout}
    # Every entry is built (kinds, cells, options checked) before any data are read.
    entries = build_entries(kinds, cell_names, params, shared, overrides)
    train_config = TrainConfig(
        optimizer=optimizer.value,
        lr=lr,
        batch_size=batch_size,
        window_steps=window,
        epochs=epochs,
        patience=patience,
        seed=seed,
        device=device.value,
        threads=threads,
        time_budget_s=time_budget_s,
    )
    train_config.check()
    if not sample_beats > 0:
        raise ConfigError(f"--sample-beats must be > 0, got {sample_beats}")
    out_dir = out or Path("runs") / f"compare-{Path(data).name.lower()}"
    settings = CompareSettings(
        data=data,
        models=tuple(kinds),
        cells=tuple(cell_names),
        params=params,
        protocol=protocol.value,
        train=train_config,
        model_options={k: v for k, v in shared.items() if v is not None},
        overrides=overrides,
        split_seed=split_seed,
        steps_per_beat=steps_per_beat,
        sample_steps=1,  # set below, once the data's grid is known
        temperature=temp,
    )
    err = Console(stderr=True, highlight=False)
    with parsing_progress() as on_progress:
        dataset = load_dataset(
            data,
            data_dir=data_dir,
            steps_per_beat=steps_per_beat,
            split_seed=split_seed,
            on_progress=on_progress,
        )
    settings = _with(settings, sample_steps=max(1, round(sample_beats * dataset.steps_per_beat)))
    check_folder(out_dir, settings)
    entries = [
        Entry(
            e.kind,
            e.cell,
            fit_to_data(
                e.model_config,
                steps_per_beat=dataset.steps_per_beat,
                onsets_known=dataset.onsets is not None,
                articulation=None,
            ),
            e.overrides,
        )
        for e in entries
    ]
    console = Console(highlight=False)
    if not console.is_terminal:  # a log or a pipe: the leaderboard's ten columns uncut
        console = Console(highlight=False, width=max(console.width, 150))
    view = ProgressView(console) if console.is_terminal else PlainView(console)
    from tuneforge.stop_signals import terminate_as_interrupt

    try:
        with terminate_as_interrupt() as signalled:
            report = run_compare(settings, entries, dataset, out_dir, callbacks=view)
    except TrainingInterrupted:
        view.stop()
        err.print(
            f"[yellow]interrupted[/yellow]; {escape(str(out_dir))} keeps every finished entry "
            "and the interrupted one's last epoch; run the same command again to continue",
            soft_wrap=True,
        )
        raise typer.Exit(signalled.exit_status) from None
    finally:
        view.stop()
    console.print(leaderboard_table(report))
    if render:
        _render(report, out_dir, console)
    console.print(
        f"report: {escape(str(out_dir / 'report.md'))}, {escape(str(out_dir / 'report.json'))}",
        soft_wrap=True,
    )


def build_entries(
    kinds: list[str],
    cells: list[str],
    params: int,
    shared: dict[str, Any],
    overrides: dict[str, dict[str, str]],
) -> list[Entry]:
    """One entry per kind x cell at ``params``, its overrides applied; any unknown kind, cell,
    option or override target raises ConfigError naming what is valid."""
    from tuneforge.cells import resolve_cell
    from tuneforge.cells.registry import CELLS
    from tuneforge.cli.model_options import model_config_from_options
    from tuneforge.compare import overrides_for
    from tuneforge.models.registry import model_info

    for kind in kinds:
        model_info(kind)
    for cell in cells:
        resolve_cell(cell)
    targets = set(cells) | {f"{kind}/{cell}" for kind in kinds for cell in cells}
    for target in overrides:
        if target not in targets:
            raise ConfigError(
                f"--override {target}: no such entry; targets are the cells "
                f"({', '.join(cells)}) or kind/cell (e.g. {kinds[0]}/{cells[0]})"
            )
    entries = []
    for kind in kinds:
        info = model_info(kind)
        for cell in cells:
            chosen = overrides_for(overrides, kind, cell)
            options: dict[str, Any] = {**shared, "cell": cell}
            cell_pairs = []
            for key, value in chosen.items():
                if key in TRAIN_OVERRIDES:
                    continue
                if key in info.options and key not in ("cell", "cell_option", "hidden_size"):
                    options[key] = _typed(value)
                elif key in CELLS[resolve_cell(cell)].options:
                    cell_pairs.append(f"{key}={value}")
                else:
                    model_keys = [k for k in info.options if k not in ("cell", "cell_option")]
                    raise ConfigError(
                        f"--override {cell}: {key} is not an option of the {kind} model "
                        f"({', '.join(model_keys)}), of the {cell} cell "
                        f"({', '.join(CELLS[resolve_cell(cell)].options) or 'none'}) nor "
                        f"{', '.join(TRAIN_OVERRIDES)}"
                    )
            options["cell_option"] = cell_pairs or None
            config = model_config_from_options(kind, options, params)
            entries.append(Entry(kind, cell, config, chosen))
    return entries


def leaderboard_table(report) -> Table:
    """The leaderboard as a rich table, best validation NLL first, with its protocol."""
    from tuneforge.compare_report import leaderboard_rows

    settings = report.settings
    table = Table(
        title=f"compare {escape(str(settings.data))}: {settings.params:,} parameters, protocol "
        f"{settings.protocol}, ranked by valid NLL",
        title_justify="left",
    )
    rows = leaderboard_rows(report)
    for column in rows[0] if rows else ("entry",):
        table.add_column(column, justify="left" if column in ("entry", "overrides") else "right")
    for row in rows:
        table.add_row(*(escape(str(value)) for value in row.values()))
    return table


class ProgressView(CompareCallbacks, TrainCallbacks):
    """A live view of the whole bake-off: entries done of all, and the current entry's epoch
    and step."""

    def __init__(self, console: Console) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            console=console,
        )
        self.progress.start()
        self.overall = self.progress.add_task("entries", total=1, note="")
        self.epoch_task = self.progress.add_task("epoch", total=1, note="")
        self.step_task = self.progress.add_task("steps", total=1, note="")

    def on_entry_start(self, index: int, total: int, entry: Entry, resumed: bool) -> None:
        """Show which entry trains."""
        note = f"training {entry.label}" + (" (resumed)" if resumed else "")
        self.progress.update(self.overall, total=total, completed=index, note=note)

    def on_entry_skipped(self, index: int, total: int, result: EntryResult) -> None:
        """Say that an entry was done before."""
        self.progress.update(self.overall, total=total, completed=index + 1)
        self.progress.console.print(
            f"{result.label}: done before, valid NLL {result.valid_nll:.4f}"
        )

    def on_entry_end(self, index: int, total: int, result: EntryResult) -> None:
        """Count the entry and log its figures."""
        self.progress.update(self.overall, completed=index + 1)
        self.progress.console.print(_entry_line(result), soft_wrap=True)

    def train_callbacks(self, entry: Entry) -> TrainCallbacks:
        """This view also receives the training progress."""
        return self

    def on_start(self, info: RunInfo) -> None:
        """A new entry's epochs and steps."""
        self.progress.update(
            self.epoch_task, total=info.epochs, completed=info.start_epoch, note=info.model
        )
        self.progress.update(self.step_task, total=info.steps_per_epoch, completed=0, note="")

    def on_step(self, info: StepInfo) -> None:
        """Advance the step bar."""
        self.progress.update(
            self.step_task,
            total=info.steps,
            completed=info.step,
            note=f"loss {info.epoch_loss:.3f}, {info.frames_per_s:,.0f} frames/s",
        )

    def on_epoch(self, info: EpochInfo) -> None:
        """Advance the epoch bar."""
        self.progress.update(
            self.epoch_task,
            completed=info.epoch + 1,
            note=f"valid NLL {info.valid_nll:.4f} (best {info.best_valid_nll:.4f})",
        )

    def stop(self) -> None:
        """End the live view."""
        self.progress.stop()


class PlainView(CompareCallbacks, TrainCallbacks):
    """One line per entry and per epoch, for logs and pipes."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._where = ""
        self._epochs = 0

    def on_entry_start(self, index: int, total: int, entry: Entry, resumed: bool) -> None:
        """Name the entry that starts."""
        self._where = f"[{index + 1}/{total}] {escape(entry.label)}"
        how = "resumed from its last checkpoint" if resumed else "training"
        self.console.print(f"{self._where}: {how}", soft_wrap=True)

    def on_entry_skipped(self, index: int, total: int, result: EntryResult) -> None:
        """Say that an entry was done before."""
        self.console.print(
            f"[{index + 1}/{total}] {escape(result.label)}: done before, not retrained",
            soft_wrap=True,
        )

    def on_entry_end(self, index: int, total: int, result: EntryResult) -> None:
        """Log the entry's figures."""
        self.console.print(f"[{index + 1}/{total}] {escape(_entry_line(result))}", soft_wrap=True)

    def train_callbacks(self, entry: Entry) -> TrainCallbacks:
        """This view also receives the training progress."""
        return self

    def on_start(self, info: RunInfo) -> None:
        """Remember the epoch count."""
        self._epochs = info.epochs

    def on_epoch(self, info: EpochInfo) -> None:
        """One line per epoch."""
        self.console.print(
            f"{self._where} epoch {info.epoch + 1}/{self._epochs} valid_nll="
            f"{info.valid_nll:.4f} frames/s={info.frames_per_s:,.0f} epoch_s={info.epoch_s:.1f}",
            soft_wrap=True,
        )

    def stop(self) -> None:
        """Nothing to end."""


def _entry_line(result: EntryResult) -> str:
    test = "-" if result.test_nll is None else f"{result.test_nll:.4f}"
    return (
        f"{result.label}: valid NLL {result.valid_nll:.4f}, test NLL {test}, "
        f"{result.parameters:,} parameters, {result.epochs} epochs ({result.stopped}); "
        f"sample {result.sample_midi}: {result.stats_line}"
    )


def _names(text: str, flag: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ConfigError(f"{flag} needs at least one name, comma-separated")
    if len(set(names)) != len(names):
        raise ConfigError(f"{flag} names an entry twice: {text}")
    return names


def _typed(value: str) -> Any:
    """An override's text as the value it spells: bool, int, float, or the text."""
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def _with(settings, **changes):
    from dataclasses import replace

    return replace(settings, **changes)


def _render(report, out_dir: Path, console: Console) -> None:
    from tuneforge.cli.render_cmd import render_file
    from tuneforge.playback.soundfont import find_soundfont

    soundfont_path = find_soundfont(None)
    for result in report.ranked:
        midi_path = out_dir / result.sample_midi
        rendered = render_file(midi_path, midi_path.with_suffix(".wav"), soundfont_path)
        console.print(f"wrote {escape(str(rendered.path))} ({rendered.duration_s:.1f} s)")
