"""A training's run folder: which folders may become one, and the lock a training holds on it.

A run folder holds ``config.json`` once a training has started there. A folder that exists,
holds files and has no ``config.json`` belongs to something else, so a training refuses it
rather than write its files among another program's. While a training writes, the folder holds
``train.lock`` with the process id of the writer; a second training of the same folder stops
with that id, and a lock whose process is gone (a killed run) is taken over.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tuneforge.errors import ConfigError, OutputError
from tuneforge.files import make_folder, os_error_line

CONFIG_FILE = "config.json"
LOCK_FILE = "train.lock"


def check_run_folder(run_dir: Path | str, *, resume: bool) -> None:
    """Raise unless ``run_dir`` can take a training: missing, empty, or a tuneforge run
    (which only ``resume`` may continue; see :func:`tuneforge.train.train`)."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        if resume:
            raise ConfigError(f"no run to resume in {run_dir}; check --out or drop --resume")
        return
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is a file, not a run folder; pick another --out")
    if (run_dir / CONFIG_FILE).is_file():
        return
    if resume:
        raise ConfigError(f"no run to resume in {run_dir}; check --out or drop --resume")
    if any(entry.name != LOCK_FILE for entry in run_dir.iterdir()):
        raise ConfigError(
            f"{run_dir} holds files but no {CONFIG_FILE}, so it is not a tuneforge run; "
            "pick another --out or empty that folder"
        )


def lock_holder(run_dir: Path | str) -> int | None:
    """The process id of the live training that holds ``run_dir``, or None."""
    pid = _read_pid(Path(run_dir) / LOCK_FILE)
    return pid if pid is not None and _alive(pid) else None


@contextmanager
def locked(run_dir: Path | str) -> Iterator[Path]:
    """Hold ``run_dir``'s lock for the block (creating the folder where missing).

    Re-entrant within one process: an inner ``locked`` of a folder this process holds leaves
    the lock to the outer one. Raises :class:`ConfigError` naming the holder when another live
    process holds it; a lock left by a dead process is taken over.
    """
    run_dir = make_folder(run_dir)
    path = run_dir / LOCK_FILE
    me = os.getpid()
    for _ in range(3):
        try:
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            holder = _read_pid(path)
            if holder == me:
                yield run_dir
                return
            if holder is not None and _alive(holder):
                raise ConfigError(
                    f"{run_dir} is in use by a training (pid {holder}); wait for it to end, "
                    f"stop it, or pick another --out"
                ) from None
            path.unlink(missing_ok=True)  # a stale lock: its training is gone
            continue
        except OSError as error:
            raise OutputError(os_error_line(error, path)) from None
        with os.fdopen(handle, "w", encoding="ascii") as stream:
            stream.write(f"{me}\n")
        break
    else:
        raise ConfigError(f"cannot take the lock {path}; remove it if no training runs there")
    try:
        yield run_dir
    finally:
        if _read_pid(path) == me:
            path.unlink(missing_ok=True)


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except FileNotFoundError:
        return None
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user
    except OSError as error:
        return error.errno != errno.ESRCH
    return True
