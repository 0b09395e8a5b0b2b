"""The command line's shared behaviour: version, help, and how errors reach the user."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from tuneforge import __version__
from tuneforge.cli.app import app

runner = CliRunner()


def test_version_and_help():
    assert runner.invoke(app, ["--version"]).output.strip() == f"tuneforge {__version__}"
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "evaluate", "generate", "play", "render", "show", "score", "cells"):
        assert command in result.output


def test_a_long_error_is_one_red_line_without_traceback():
    name = "no-such-cell-" + "x" * 120  # longer than any terminal line
    result = runner.invoke(app, ["train", "jsb", "--cell", name])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown cell") and name in lines[0]
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback_instead():
    result = subprocess.run(
        [sys.executable, "-m", "tuneforge", "--debug", "train", "jsb", "--cell", "nope"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ConfigError" in result.stderr


def test_a_usage_error_exits_2():
    assert runner.invoke(app, ["cells", "--hidden-size", "many"]).exit_code == 2
