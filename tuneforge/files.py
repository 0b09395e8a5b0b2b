"""Writing output files safely: whole or not at all, never through a planted link.

Every file tuneforge writes (run metrics and configs, MIDI, WAV, sidecars, reports) goes
through :func:`replacing`: the writer fills a fresh temporary file in the target's folder, then
:func:`os.replace` moves it over the target. A reader never sees half a file, an interrupted
write leaves the old file, and a symbolic link planted at the target's name is replaced rather
than followed, so nothing outside the output folder is written. An :class:`OSError` (read-only
folder, missing parent, full disk) becomes an :class:`OutputError` naming the path.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tuneforge.errors import OutputError


def os_error_line(error: OSError, path: Path | str, doing: str = "write") -> str:
    """One line for an OSError met while ``doing`` ``path``, with what to do about it."""
    reason = error.strerror or str(error)
    return f"cannot {doing} {path}: {reason}; check the folder exists, is writable and has room"


@contextmanager
def replacing(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without an error, move it
    over ``path`` (the file the block wrote there gets the usual permissions)."""
    path = Path(path)
    try:
        handle, name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=f".partial{path.suffix}", dir=path.parent
        )
    except OSError as error:
        raise OutputError(os_error_line(error, path)) from None
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp made it private (0600)
        os.replace(temporary, path)
    except OSError as error:
        raise OutputError(os_error_line(error, path)) from None
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path: Path | str, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`replacing`; return ``path``."""
    return write_bytes(path, text.encode("utf-8"))


def write_bytes(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` through :func:`replacing`; return ``path``."""
    path = Path(path)
    with replacing(path) as temporary:
        with open(temporary, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
    return path


def make_folder(path: Path | str) -> Path:
    """Create ``path`` and its parents where missing; an OSError becomes an OutputError."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{path} is a file, not a folder; pick another output folder") from None
    except OSError as error:
        raise OutputError(os_error_line(error, path, "create the folder")) from None
    return path
