"""Views of a training run: a live rich dashboard, plain log lines, and the final summary.

All three are :class:`~tuneforge.train.TrainCallbacks`; the training loop knows nothing of them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from tuneforge.train_events import (
    EpochInfo,
    RunInfo,
    StepInfo,
    TrainCallbacks,
    TrainResult,
    mean_epoch_s,
)

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


def train_loss_figures(
    history: Sequence[EpochInfo], step: StepInfo | None
) -> tuple[float, float, float]:
    """(last finished epoch's, best finished epoch's, the epoch under way's running mean)
    training loss; NaN where there is none.

    The first two are whole-epoch means and so compare like with like (the best is never above
    the last); the running mean of a part of an epoch is shown apart and is never a "best".
    """
    finished = [entry.train_loss for entry in history if math.isfinite(entry.train_loss)]
    last = history[-1].train_loss if history else math.nan
    best = min(finished) if finished else math.nan
    under_way = step is not None and (not history or step.epoch > history[-1].epoch)
    return last, best, step.epoch_loss if under_way else math.nan


def epoch_time_text(history: Sequence[EpochInfo]) -> str:
    """An epoch's duration as the dashboard and the summary both show it: ``1.7s mean, 1.0s
    last`` (just ``1.0s`` after one epoch, ``-`` before any)."""
    if not history:
        return "-"
    last = format_duration(history[-1].epoch_s)
    if len(history) == 1:
        return last
    return f"{format_duration(mean_epoch_s(history))} mean, {last} last"


@dataclass(frozen=True)
class EtaBound:
    """What is left of a run after an epoch (at most), and the soonest early stopping ends it."""

    epochs_done: int
    epochs_left: int  # at most, by --epochs
    seconds_left: float  # epochs_left at the mean epoch time
    early_stop_epoch: int | None  # the last epoch (from 1) if no better valid NLL comes first
    early_stop_s: float  # seconds until then (when early_stop_epoch is not None)


def eta_bound(last: EpochInfo, *, epochs: int, patience: int, seconds_per_epoch: float) -> EtaBound:
    """The ETA after epoch ``last``: ``--epochs`` bounds the epochs left, and ``--patience``
    ends the run after ``patience`` epochs in a row without a better validation NLL.

    ``early_stop_epoch`` is None when early stopping cannot come before the epoch limit.
    """
    done = last.epoch + 1
    left = max(0, epochs - done)
    since_best = last.epoch - last.best_epoch if last.best_epoch >= 0 else done
    patience_left = max(0, patience - since_best)
    if patience_left < left:
        stop_epoch = done + patience_left
        return EtaBound(
            done, left, left * seconds_per_epoch, stop_epoch, patience_left * seconds_per_epoch
        )
    return EtaBound(done, left, left * seconds_per_epoch, None, math.nan)


def eta_text(bound: EtaBound) -> str:
    """``bound`` in words, e.g. ``at most 1m40s (10 epochs), or 20.0s if early stopping ends it
    after epoch 12``."""
    if bound.early_stop_epoch is not None and bound.early_stop_epoch == bound.epochs_done:
        return f"0.0s (early stopping ends the run after epoch {bound.early_stop_epoch})"
    if bound.epochs_left == 0:
        return "0.0s (last epoch)"
    plural = "s" if bound.epochs_left > 1 else ""
    text = f"at most {format_duration(bound.seconds_left)} ({bound.epochs_left} epoch{plural})"
    if bound.early_stop_epoch is not None:
        text += (
            f", or {format_duration(bound.early_stop_s)} if early stopping ends it after "
            f"epoch {bound.early_stop_epoch}"
        )
    return text


def _run_eta(info: RunInfo | None, history: Sequence[EpochInfo]) -> EtaBound | None:
    if info is None or not history:
        return None
    patience = getattr(info.config, "patience", info.epochs)
    return eta_bound(
        history[-1], epochs=info.epochs, patience=patience, seconds_per_epoch=mean_epoch_s(history)
    )


class Dashboard(TrainCallbacks):
    """A live panel: progress over epochs and steps, losses last/best with charts, speed, ETA.

    "last" is the last finished epoch's figure and "best" the lowest over finished epochs; the
    training loss of the epoch under way is shown apart, as a running mean.
    """

    def __init__(self, console: Console, *, auto_refresh: bool = True) -> None:
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
        self._auto_refresh = auto_refresh
        self._live: Live | None = None
        self._started = time.perf_counter()

    def on_start(self, info: RunInfo) -> None:
        """Show the run's header and start the live display."""
        self.info = info
        self._progress.update(self._epoch_task, total=info.epochs, completed=info.start_epoch)
        self._progress.update(self._step_task, total=info.steps_per_epoch, completed=0)
        self._live = Live(
            get_renderable=self._frame,
            console=self.console,
            auto_refresh=self._auto_refresh,
            refresh_per_second=4,
            transient=False,
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
        """Draw the last frame once, leave it on screen and stop refreshing (safe to repeat)."""
        live, self._live = self._live, None
        if live is not None:
            live.stop()  # its own final refresh draws the last frame

    def _frame(self) -> Group:
        # The blank line under the panel keeps the cursor off the panel's last row: a "^C" the
        # terminal echoes on Ctrl-C then lands on that line instead of wrapping past the
        # full-width border, which would shift the final redraw down and leave a second border.
        return Group(self.render(), Text(""))

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
        metrics.add_row("", "[dim]last epoch[/dim]", "[dim]best[/dim]", "[dim]history[/dim]")
        last_loss, best_loss, running_loss = train_loss_figures(self.history, step)
        train_history = [entry.train_loss for entry in self.history]
        metrics.add_row(
            "train loss",
            _number(last_loss),
            _number(best_loss),
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
        if math.isfinite(running_loss):
            metrics.add_row(
                "[dim]this epoch[/dim]",
                _number(running_loss),
                "",
                f"[dim]running mean, step {step.step}/{step.steps}[/dim]",
            )
        speed = Table.grid(padding=(0, 2))
        for _ in range(4):
            speed.add_column()
        speed.add_row(
            "[bold]frames/s[/bold]",
            f"{step.frames_per_s:,.0f}" if step else "-",
            "[bold]epoch time[/bold]",
            epoch_time_text(self.history),
        )
        speed.add_row(
            "[bold]lr[/bold]",
            f"{step.lr:.3g}" if step else "-",
            "[bold]elapsed[/bold]",
            format_duration(time.perf_counter() - self._started),
        )
        speed.add_row("[bold]grad norm[/bold]", f"{step.grad_norm:.3g}" if step else "-", "", "")
        bound = _run_eta(info, self.history)
        eta = Text.assemble(("ETA", "bold"), "  ", eta_text(bound) if bound else "-")
        title = "tuneforge train"
        subtitle = ""
        if info is not None:
            title = (
                f"tuneforge train · {info.model} · {info.dataset} · {info.parameters:,} parameters"
            )
            processes = f" × {info.world_size} processes" if info.world_size > 1 else ""
            subtitle = f"device {info.device}{processes} · {info.run_dir}"
        return Panel(
            Group(self._progress, metrics, speed, eta), title=title, subtitle=subtitle, expand=True
        )


class PlainLog(TrainCallbacks):
    """One line per epoch, for logs and pipes (stdout is not a terminal)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.info: RunInfo | None = None
        self.history: list[EpochInfo] = []

    def on_start(self, info: RunInfo) -> None:
        """Describe the run in one line."""
        self.info = info
        self.console.print(
            f"train {info.model} on {info.dataset}: {info.parameters:,} parameters, "
            f"device {info.device}, {info.steps_per_epoch} steps per epoch, "
            f"{info.train_frames:,} frames, run folder {info.run_dir}",
            highlight=False,
            soft_wrap=True,  # one log line per event, whatever the width
        )

    def on_epoch(self, info: EpochInfo) -> None:
        """Log the epoch's losses, speed and the bound on what is left."""
        self.history.append(info)
        epochs = self.info.epochs if self.info else info.epoch + 1
        bound = _run_eta(self.info, self.history)
        eta = f"eta_max={format_duration(bound.seconds_left)}" if bound else "eta_max=-"
        if bound and bound.early_stop_epoch is not None:
            eta += f" early_stop_after={bound.early_stop_epoch}"
        self.console.print(
            f"epoch {info.epoch + 1}/{epochs} train_loss={info.train_loss:.4f} "
            f"valid_nll={info.valid_nll:.4f} best={info.best_valid_nll:.4f}"
            f"@{info.best_epoch + 1} lr={info.lr:.3g} grad_norm={info.grad_norm:.3g} "
            f"frames/s={info.frames_per_s:,.0f} epoch={format_duration(info.epoch_s)} {eta}",
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
    table.add_row("epoch time", epoch_time_text(result.history))
    table.add_row("run folder", str(result.run_dir))
    return table


def _number(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else "-"
