"""Views of a training run: a live rich dashboard, plain log lines, and the final summary.

All three are :class:`~tuneforge.train.TrainCallbacks`; the training loop knows nothing of them.
"""

from __future__ import annotations

import math
import time

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tuneforge.train_events import EpochInfo, RunInfo, StepInfo, TrainCallbacks, TrainResult

_BARS = "▁▂▃▄▅▆▇█"
_CHART_WIDTH = 40  # epochs shown in a sparkline; older ones scroll off


def sparkline(values: list[float], width: int = _CHART_WIDTH) -> str:
    """A one-line chart of ``values`` (the last ``width``), lowest as ▁ and highest as █."""
    shown = [v for v in values[-width:] if math.isfinite(v)]
    if not shown:
        return ""
    low, high = min(shown), max(shown)
    span = high - low or 1.0
    return "".join(_BARS[round((v - low) / span * (len(_BARS) - 1))] for v in shown)


def format_duration(seconds: float) -> str:
    """``seconds`` as ``1h02m``, ``3m05s`` or ``4.2s``."""
    if not math.isfinite(seconds):
        return "-"
    if seconds >= 3600:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    if seconds >= 60:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{seconds:.1f}s"


class Dashboard(TrainCallbacks):
    """A live panel: progress over epochs and steps, losses now/best with charts, speed, ETA.

    "now" is the current epoch's running mean (training) or the last validation; "best" is the
    lowest epoch value so far.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.info: RunInfo | None = None
        self.last_step: StepInfo | None = None
        self.history: list[EpochInfo] = []
        self._progress = Progress(
            TextColumn("{task.description:>6}"),
            BarColumn(bar_width=None),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            expand=True,
        )
        self._epoch_task = self._progress.add_task("epoch", total=1)
        self._step_task = self._progress.add_task("step", total=1)
        self._live: Live | None = None
        self._started = time.perf_counter()

    def on_start(self, info: RunInfo) -> None:
        """Show the run's header and start the live display."""
        self.info = info
        self._progress.update(self._epoch_task, total=info.epochs, completed=info.start_epoch)
        self._progress.update(self._step_task, total=info.steps_per_epoch, completed=0)
        self._live = Live(
            get_renderable=self.render, console=self.console, refresh_per_second=4, transient=False
        )
        self._live.start()

    def on_step(self, info: StepInfo) -> None:
        """Advance the step bar and remember the latest loss, lr and gradient norm."""
        self.last_step = info
        self._progress.update(self._step_task, total=info.steps, completed=info.step)
        self._progress.update(self._epoch_task, completed=info.epoch)

    def on_epoch(self, info: EpochInfo) -> None:
        """Record the epoch and advance the epoch bar."""
        self.history.append(info)
        self._progress.update(self._epoch_task, completed=info.epoch + 1)

    def on_end(self, result: TrainResult) -> None:
        """Stop the live display (the summary is printed by :func:`summary_table`)."""
        self.stop()

    def stop(self) -> None:
        """Leave the last frame on screen and stop refreshing."""
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None

    def render(self) -> Panel:
        """The dashboard as one rich renderable."""
        info = self.info
        step = self.last_step
        last = self.history[-1] if self.history else None
        metrics = Table.grid(padding=(0, 2))
        metrics.add_column(style="bold")
        metrics.add_column(justify="right")
        metrics.add_column(justify="right")
        metrics.add_column()
        metrics.add_row("", "[dim]now[/dim]", "[dim]best[/dim]", "[dim]history[/dim]")
        train_history = [entry.train_loss for entry in self.history]
        metrics.add_row(
            "train loss",
            _number(step.epoch_loss if step else math.nan),
            _number(min(train_history) if train_history else math.nan),
            f"[cyan]{sparkline(train_history)}[/cyan]",
        )
        valid_history = [entry.valid_nll for entry in self.history]
        best_note = f" (epoch {last.best_epoch + 1})" if last and last.best_epoch >= 0 else ""
        metrics.add_row(
            "valid NLL",
            _number(last.valid_nll if last else math.nan),
            _number(last.best_valid_nll if last else math.nan) + best_note,
            f"[magenta]{sparkline(valid_history)}[/magenta]",
        )
        speed = Table.grid(padding=(0, 2))
        for _ in range(4):
            speed.add_column()
        speed.add_row(
            "[bold]frames/s[/bold]",
            f"{step.frames_per_s:,.0f}" if step else "-",
            "[bold]epoch time[/bold]",
            format_duration(last.epoch_s) if last else "-",
        )
        speed.add_row(
            "[bold]lr[/bold]",
            f"{step.lr:.3g}" if step else "-",
            "[bold]ETA[/bold]",
            format_duration(last.eta_s) if last else "-",
        )
        speed.add_row(
            "[bold]grad norm[/bold]",
            f"{step.grad_norm:.3g}" if step else "-",
            "[bold]elapsed[/bold]",
            format_duration(time.perf_counter() - self._started),
        )
        title = "tuneforge train"
        subtitle = ""
        if info is not None:
            title = (
                f"tuneforge train · {info.model} · {info.dataset} · {info.parameters:,} parameters"
            )
            processes = f" × {info.world_size} processes" if info.world_size > 1 else ""
            subtitle = f"device {info.device}{processes} · {info.run_dir}"
        return Panel(
            Group(self._progress, metrics, speed), title=title, subtitle=subtitle, expand=True
        )


class PlainLog(TrainCallbacks):
    """One line per epoch, for logs and pipes (stdout is not a terminal)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._epochs = 0

    def on_start(self, info: RunInfo) -> None:
        """Describe the run in one line."""
        self._epochs = info.epochs
        self.console.print(
            f"train {info.model} on {info.dataset}: {info.parameters:,} parameters, "
            f"device {info.device}, {info.steps_per_epoch} steps per epoch, "
            f"{info.train_frames:,} frames, run folder {info.run_dir}",
            highlight=False,
            soft_wrap=True,  # one log line per event, whatever the width
        )

    def on_epoch(self, info: EpochInfo) -> None:
        """Log the epoch's losses, speed and ETA."""
        self.console.print(
            f"epoch {info.epoch + 1}/{self._epochs} train_loss={info.train_loss:.4f} "
            f"valid_nll={info.valid_nll:.4f} best={info.best_valid_nll:.4f}"
            f"@{info.best_epoch + 1} lr={info.lr:.3g} grad_norm={info.grad_norm:.3g} "
            f"frames/s={info.frames_per_s:,.0f} epoch={format_duration(info.epoch_s)} "
            f"eta={format_duration(info.eta_s)}",
            highlight=False,
            soft_wrap=True,  # one log line per event, whatever the width
        )


def summary_table(result: TrainResult) -> Table:
    """The end-of-run table: best epoch, NLLs, test scores, size and speed."""
    table = Table(title="training summary", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    last = result.history[-1] if result.history else None
    table.add_row("epochs run", str(len(result.history)) + f" (stopped by {result.stopped})")
    table.add_row("best epoch", str(result.best_epoch + 1) if result.best_epoch >= 0 else "-")
    table.add_row("best valid NLL", _number(result.best_valid_nll))
    table.add_row("last train loss", _number(last.train_loss if last else math.nan))
    if result.test_nll is not None:
        table.add_row("test NLL (best)", _number(result.test_nll))
        table.add_row("test frame accuracy", f"{result.test_accuracy:.4f}")
        table.add_row("test frames", f"{result.test_frames:,}")
    table.add_row("parameters", f"{result.parameters:,}")
    table.add_row("seconds per epoch", f"{result.seconds_per_epoch:.1f}")
    table.add_row("run folder", str(result.run_dir))
    return table


def _number(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else "-"
