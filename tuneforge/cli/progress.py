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
