"""The bound on tuneforge's exit: a process stuck after its work is done still ends."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from tuneforge.cli import exit_watchdog


def _run(body: str) -> tuple[subprocess.CompletedProcess, float]:
    script = textwrap.dedent(
        """
        from tuneforge.cli import exit_watchdog
        exit_watchdog.BACKSTOP_EXTRA_S = 0.5
        exit_watchdog.enable()
        """
    ) + textwrap.dedent(body)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    return done, time.monotonic() - started


def test_a_process_stuck_after_its_work_ends_with_its_own_status():
    done, elapsed_s = _run(
        """
        import time
        print("work done", flush=True)
        exit_watchdog.arm(130, grace_s=0.5)
        time.sleep(300)  # a close that never returns, the interpreter lock released
        """
    )
    assert done.returncode == 130
    assert done.stdout == "work done\n"
    assert "did not let go of its ports within 0.5 s" in done.stderr
    assert elapsed_s < 60  # not the 300 s it would have waited


def test_a_c_call_that_holds_the_interpreter_lock_is_ended_by_the_backstop():
    done, elapsed_s = _run(
        """
        import ctypes
        exit_watchdog.arm(0, grace_s=0.5)
        ctypes.PyDLL(None).sleep(300)  # libc sleep, called with the lock held
        """
    )
    assert done.returncode == 1  # faulthandler's exit status
    assert elapsed_s < 60


def test_arming_again_replaces_the_earlier_timer():
    done, _ = _run(
        """
        import time
        exit_watchdog.arm(3, grace_s=0.3)
        exit_watchdog.arm(7, grace_s=1.0)
        time.sleep(300)
        """
    )
    assert done.returncode == 7


def test_a_process_that_exits_on_time_keeps_its_status_and_prints_nothing_extra():
    done, _ = _run(
        """
        exit_watchdog.arm(0, grace_s=30)
        print("bye")
        """
    )
    assert done.returncode == 0 and done.stdout == "bye\n" and done.stderr == ""


def test_in_process_commands_are_never_ended(monkeypatch):
    monkeypatch.setattr(exit_watchdog, "_enabled", False)
    exit_watchdog.arm(1, grace_s=0.01)
    assert exit_watchdog._timer is None
    time.sleep(0.05)  # still alive: nothing was armed


@pytest.mark.parametrize(
    "error, status",
    [
        (None, 0),
        (SystemExit(0), 0),
        (SystemExit(None), 0),
        (SystemExit(130), 130),
        (SystemExit("message"), 1),
        (KeyboardInterrupt(), 130),
        (RuntimeError("x"), 1),
    ],
)
def test_exit_status_is_python_s(error, status):
    assert exit_watchdog.exit_status(error) == status


def test_the_console_entry_point_ends_normally_with_the_command_s_status(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tuneforge", "render", str(tmp_path / "missing.mid")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "did not let go" not in done.stderr  # a usage error
