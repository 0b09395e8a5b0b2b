"""The `tuneforge` command: a thin Typer front over the library.

Each command lives in its own module under `tuneforge.cli` and registers itself here. Errors of
the :class:`~tuneforge.errors.TuneforgeError` family are printed once, in red, on stderr, and
exit with status 1 (usage errors exit 2, as click does); so does an OSError that names a file.
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import importlib
from typing import Annotated

import typer
import typer.core
from rich.console import Console
from rich.markup import escape

from tuneforge import __version__
from tuneforge.cli.panels import Group
from tuneforge.errors import TuneforgeError
from tuneforge.files import os_error_line

# Command modules, each with a `register(app)` function. Imported when the app is built so that
# each keeps its heavy imports (torch, rtmidi, fluidsynth) inside its command bodies.
COMMAND_MODULES: list[str] = [
    "tuneforge.cli.train_cmd",
    "tuneforge.cli.data_cmd",
    "tuneforge.cli.generate_cmd",
    "tuneforge.cli.play_cmd",
    "tuneforge.cli.jam_cmd",
    "tuneforge.cli.render_cmd",
    "tuneforge.cli.show_cmd",
    "tuneforge.cli.cells_cmd",
    "tuneforge.cli.stats_cmd",
    "tuneforge.cli.compare_cmd",
]

err_console = Console(stderr=True, highlight=False)


class _ErrorReportingGroup(Group):
    """Turns a TuneforgeError raised by any command into one red line and exit status 1."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except TuneforgeError as error:
            if ctx.meta.get("tuneforge.debug"):
                raise
            _print_error(str(error))
            ctx.exit(1)
        except OSError as error:
            # A file the library opened without a friendlier message: still one line.
            if ctx.meta.get("tuneforge.debug") or error.filename is None:
                raise
            _print_error(os_error_line(error, error.filename, "use"))
            ctx.exit(1)


def _print_error(line: str) -> None:
    err_console.print(f"[red]error:[/red] {escape(line)}", soft_wrap=True)


app = typer.Typer(
    cls=_ErrorReportingGroup,
    name="tuneforge",
    help="Train recurrent models of polyphonic music, then generate, play and render music.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"tuneforge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors.")
    ] = False,
) -> None:
    ctx.meta["tuneforge.debug"] = debug


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    """Console-script entry point. Once the command is done, the rest of the exit is bounded
    (:mod:`tuneforge.cli.exit_watchdog`): a stalled sound server cannot keep it alive."""
    from tuneforge.cli import exit_watchdog

    exit_watchdog.enable()
    try:
        app()
    except BaseException as error:
        exit_watchdog.arm(exit_watchdog.exit_status(error))
        raise
    exit_watchdog.arm(0)
