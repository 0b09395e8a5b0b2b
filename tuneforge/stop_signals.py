"""SIGTERM handled as Ctrl-C, so that `kill`, a job scheduler or a closing terminal stop a
training the way Ctrl-C does: at a safe point, with its checkpoint pair whole.

The handler turns SIGTERM into SIGINT, whose handler is whatever is in force at that moment:
Python's (a KeyboardInterrupt) during training, or the checkpoint writer's, which holds the
interruption back until both files of a checkpoint are in place.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass
class StopSignal:
    """Which signal stopped the block, if any (``signum`` None: Ctrl-C or none)."""

    signum: int | None = None

    @property
    def exit_status(self) -> int:
        """The shell's status for a process ended by the signal: 128 + its number."""
        return 128 + (self.signum or signal.SIGINT)


@contextmanager
def terminate_as_interrupt() -> Iterator[StopSignal]:
    """Within the block, SIGTERM raises KeyboardInterrupt as Ctrl-C would (main thread only)."""
    stop = StopSignal()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def on_terminate(signum, frame) -> None:
        stop.signum = signum
        if callable(signal.getsignal(signal.SIGINT)):
            signal.raise_signal(signal.SIGINT)  # handled as Ctrl-C, deferred where Ctrl-C is
        else:
            raise KeyboardInterrupt  # SIGINT is ignored (a background job): stop anyway

    previous = signal.signal(signal.SIGTERM, on_terminate)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold SIGINT back for the duration of the block, then deliver it if one came (main
    thread only): a Ctrl-C waits for work that must not be cut halfway."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals
        return
    received: list[tuple[int, Any]] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append((signum, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received and callable(previous):
            previous(*received[0])
