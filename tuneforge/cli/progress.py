"""A rich progress bar for parsing a MIDI folder, shared by the commands that load data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console


@contextmanager
def parsing_progress(enabled: bool = True) -> Iterator[Callable[[int, int], None] | None]:
    """Yield an ``on_progress(done, total)`` callback that draws a transient bar on stderr.

    The bar appears only once there is parsing to do, so a cached run draws nothing. With
    ``enabled`` False (``--json``, ``--quiet``, a non-zero DDP rank) the callback is None.
    """
    if not enabled:
        yield None
        return
    from rich.progress import Progress

    progress = Progress(console=Console(stderr=True), transient=True)
    task = None

    def on_progress(done: int, total: int) -> None:
        nonlocal task
        if done >= total and task is None:
            return  # nothing left to parse (a cached run): no bar at all
        if task is None:
            progress.start()
            task = progress.add_task("parsing MIDI files", total=total)
        progress.update(task, completed=done)

    try:
        yield on_progress
    finally:
        progress.stop()


UNUSED_SHOWN = 5  # unused files named one by one; `tuneforge data inspect` lists them all


def print_unused_files(report, data: str, console: Console) -> None:
    """Tell the user which MIDI files of a folder were not used, and why (a few by name)."""
    from tuneforge.data.report import FAILED, SKIPPED

    unused = [f for f in report.files if f.outcome in (SKIPPED, FAILED)]
    if not unused:
        return
    midi_files = sum(1 for f in report.files if f.outcome != "ignored")
    console.print(
        f"[yellow]{len(unused)} of {midi_files} MIDI files not used[/yellow] "
        f"({report.summary_line()})",
        soft_wrap=True,
    )
    for file in unused[:UNUSED_SHOWN]:
        console.print(f"  {file.outcome} {file.path}: {file.detail or file.reason}", soft_wrap=True)
    if len(unused) > UNUSED_SHOWN:
        console.print(f"  ... all of them: tuneforge data inspect {data}", soft_wrap=True)
