"""Fixtures and hooks shared by the test modules.

* ``CI`` set (to anything but ``""``, ``0`` or ``false``): a test that skips at run time,
  through ``pytest.skip`` in its body or a fixture (a missing binary, SoundFont or data set),
  fails instead, so a CI machine cannot pass by skipping. Skips declared on a test with
  ``skip``/``skipif`` marks stay skips: those are deliberate.
* ``TUNEFORGE_TEST_MATMUL=fallback`` runs the whole suite with oneDNN switched off
  (``torch.backends.mkldnn``), so the cells' products take torch's plain ``mm``/``addmm`` path;
  unset (or ``auto``) the suite runs on oneDNN where torch has it.
* Ctrl-C is Ctrl-C even when the suite was started with SIGINT ignored (a background job of a
  script, ``nohup``): the tests that press it, in this process or in a command they start
  (children inherit an ignored signal, not a handler), would otherwise see nothing happen.
"""

from __future__ import annotations

import os
import signal

import pytest

signal.signal(signal.SIGINT, signal.default_int_handler)

CI_ENV = "CI"
MATMUL_ENV = "TUNEFORGE_TEST_MATMUL"
MATMUL_CHOICES = ("auto", "fallback")


def running_under_ci() -> bool:
    """True when the ``CI`` environment variable asks for no run-time skips."""
    return os.environ.get(CI_ENV, "").strip().lower() not in ("", "0", "false", "no")


def matmul_mode() -> str:
    """``"auto"`` (oneDNN where available) or ``"fallback"`` (oneDNN off), from the env."""
    mode = os.environ.get(MATMUL_ENV, "").strip().lower() or "auto"
    if mode not in MATMUL_CHOICES:
        raise pytest.UsageError(f"{MATMUL_ENV} must be one of {', '.join(MATMUL_CHOICES)}")
    return mode


def pytest_configure(config: pytest.Config) -> None:
    if matmul_mode() == "fallback":
        import torch

        torch.backends.mkldnn.enabled = False


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [f"matrix products: {matmul_mode()} ({MATMUL_ENV})"]
    if running_under_ci():
        lines.append(f"{CI_ENV} is set: a test that skips at run time fails")
    return lines


def _skipped_by_mark(item: pytest.Item) -> bool:
    try:
        from _pytest.skipping import skipped_by_mark_key
    except ImportError:  # pragma: no cover - a pytest without it: judge by the marks
        return any(item.iter_markers("skip")) or any(item.iter_markers("skipif"))
    return bool(item.stash.get(skipped_by_mark_key, False))


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if not (running_under_ci() and report.skipped) or hasattr(report, "wasxfail"):
        return
    if call.when == "setup" and _skipped_by_mark(item):
        return
    report.outcome = "failed"
    report.longrepr = (
        f"skipped at run time under {CI_ENV}={os.environ[CI_ENV]}: {_skip_reason(report)}"
        " (install what it needs, or unset CI)"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    outcome = yield
    report = outcome.get_result()
    if running_under_ci() and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"module skipped under {CI_ENV}: {_skip_reason(report)}"


@pytest.fixture
def one_thread():
    """Run a test on one torch thread: tiny tensors gain nothing from more, a busy machine loses."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A folder of 'shipped' models holding a tiny default, and the lookup pointed at it."""
    from tests.tiny_models import save_tiny
    from tuneforge.shipped import PRETRAINED_DIR_ENV

    folder = tmp_path / "pretrained"
    save_tiny(folder, "default")
    monkeypatch.setenv(PRETRAINED_DIR_ENV, str(folder))
    return folder
