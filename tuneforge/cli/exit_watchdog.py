"""A bound on how long tuneforge takes to exit once its work is done.

Closing a MIDI client asks the sound server (JACK, ALSA) to let go of it, and a server that has
stalled (a busy machine, another client wedged in its cycle) can keep that answer waiting for
as long as it likes: the command has finished, its files are written and its notes are off, but
the process does not end. Once a command has nothing left to lose, :func:`arm` gives the rest
of the exit (closing ports, the interpreter's own clean-up) ``grace_s`` seconds; after that the
process says so on stderr and ends with the exit status it was going to have.

Two watchmen: a Python timer thread, which needs the interpreter lock, and, as a backstop for a
C call that holds that lock, faulthandler's watchdog, a C thread that needs nothing (it ends
the process with status 1). Only the console entry point enables them (:func:`enable`): a
command run in-process (a test's runner, a user's script) is never ended; the library never
ends a process.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import threading

EXIT_GRACE_S = 10.0  # once armed; a healthy exit takes well under a second
BACKSTOP_EXTRA_S = 5.0  # faulthandler's, after the timer's

_lock = threading.Lock()
_enabled = False
_timer: threading.Timer | None = None
_backstop_sink = None  # faulthandler writes its dump here (not to the user's terminal)


def _end(exit_code: int, grace_s: float) -> None:
    try:
        sys.stderr.write(
            f"tuneforge: the sound server did not let go of its ports within {grace_s:g} s;"
            " exiting anyway\n"
        )
        sys.stderr.flush()
        sys.stdout.flush()
    finally:
        os._exit(exit_code)


def enable() -> None:
    """Let :func:`arm` act: called by the console entry point, which owns the process."""
    global _enabled
    _enabled = True


def arm(exit_code: int, grace_s: float = EXIT_GRACE_S) -> None:
    """End the process with ``exit_code`` if it is still alive ``grace_s`` seconds from now
    (only once :func:`enable` was called). Arming again replaces the earlier timer.
    """
    global _timer, _backstop_sink
    with _lock:
        if not _enabled:
            return
        if _timer is not None:
            _timer.cancel()
        _timer = threading.Timer(grace_s, _end, args=(int(exit_code), grace_s))
        _timer.daemon = True
        _timer.start()
        if _backstop_sink is None:
            _backstop_sink = open(os.devnull, "w")  # noqa: SIM115 - kept for the process
        faulthandler.dump_traceback_later(
            grace_s + BACKSTOP_EXTRA_S, exit=True, file=_backstop_sink
        )


def exit_status(error: BaseException | None) -> int:
    """The status a process ends with for ``error`` (None: success), as Python would give it."""
    if error is None:
        return 0
    if isinstance(error, SystemExit):
        code = error.code
        if code is None:
            return 0
        return code if isinstance(code, int) else 1
    if isinstance(error, KeyboardInterrupt):
        return 130
    return 1
