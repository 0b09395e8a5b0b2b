"""What C libraries (ALSA, JACK, FluidSynth) print on stderr while they are probed.

They report a missing server or device in several lines of their own; tuneforge says it in
one, so their output is captured and, at most, its last error line is quoted.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class CapturedText:
    """The text written to file descriptor 2 inside :func:`native_stderr_captured`."""

    text: str = ""

    def last_line(self, prefix: str = "") -> str:
        """The last non-empty line that starts with ``prefix`` (prefix removed), or ''."""
        lines = [line.strip() for line in self.text.splitlines() if line.strip()]
        matching = [line[len(prefix) :].strip() for line in lines if line.startswith(prefix)]
        return matching[-1] if matching else ""


@contextmanager
def native_stderr_captured() -> Iterator[CapturedText]:
    """Redirect file descriptor 2 (where C code writes) to a temporary file for the block."""
    captured = CapturedText()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 2)
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", "replace")
