"""How every command's help reads: the panels its options are grouped in, and the command and
group classes that draw it.

A command's help lists its options in panels (model, optimisation, data, run, device, ...),
each option as all its names, the value it takes (none for a flag) and its help; names fold
onto a second line rather than being cut, so the help reads at 80 columns. Each command
registers with ``cls=Command`` (see each command module's ``register``);
``tests/test_cli_surface.py`` checks every command of the app at 80 columns.
"""

from __future__ import annotations

import inspect

import typer.core

# Panel titles, in the order a reader looks for them.
ARGUMENTS = "Arguments"
MODEL = "Model"
OPTIMISATION = "Optimisation"
DATA = "Data"
SAMPLING = "Sampling"
SESSION = "Session"
OUTPUT = "Output"
PLAYBACK = "Playback"
RUN = "Run"
DEVICE = "Device"
OTHER = "Options"  # options without a panel (--help)
ORDER = (ARGUMENTS, MODEL, OPTIMISATION, DATA, SESSION, SAMPLING, OUTPUT, PLAYBACK, RUN, DEVICE)


def _mark_flags(params: list) -> list:
    """Show a flag without a ``<bool>`` value (it takes none) and an argument as ``DATA``."""
    for param in params:
        if getattr(param, "is_flag", False) and not getattr(param, "count", False):
            param.metavar = ""
        elif isinstance(param, typer.core.TyperArgument) and param.metavar is None:
            param.metavar = (param.name or "").upper()
    return params


class Group(typer.core.TyperGroup):
    """A Typer group whose own options show flags as flags."""

    def get_params(self, ctx):
        return _mark_flags(super().get_params(ctx))


class Command(typer.core.TyperCommand):
    """A Typer command whose help groups its options in panels, shows flags as flags and
    folds long option names instead of cutting them."""

    def get_params(self, ctx):
        return _mark_flags(super().get_params(ctx))

    def format_help(self, ctx, formatter) -> None:
        from rich.console import Console
        from rich.padding import Padding
        from rich.text import Text

        console = Console(highlight=False)
        console.print(Padding(Text(self.get_usage(ctx), style="bold"), (1, 1)))
        if self.help:
            text = inspect.cleandoc(self.help).split("\f")[0]
            paragraphs = [" ".join(p.split()) for p in text.split("\n\n")]
            console.print(Padding(Text("\n\n".join(paragraphs)), (0, 1, 1, 1)))
        panels = self._panels(ctx)
        longest = max((len(name) for rows in panels.values() for name, _ in rows), default=0)
        # Names take what they need up to a third of the line; longer ones fold onto a next
        # line (never cut), at the same width in every panel.
        names_width = min(longest, max(16, console.width // 3))
        for title, rows in panels.items():
            console.print(_panel(title, rows, names_width))

    def _panels(self, ctx) -> dict[str, list[tuple[str, str]]]:
        panels: dict[str, list[tuple[str, str]]] = {ARGUMENTS: []}
        for param in self.get_params(ctx):
            record = None if getattr(param, "hidden", False) else param.get_help_record(ctx)
            if record is None:
                continue
            is_argument = isinstance(param, typer.core.TyperArgument)
            title = getattr(param, "rich_help_panel", None) or (ARGUMENTS if is_argument else OTHER)
            panels.setdefault(title, []).append(record)
        rank = {title: i for i, title in enumerate((*ORDER, OTHER))}
        ordered = sorted(panels.items(), key=lambda item: rank.get(item[0], len(ORDER)))
        return {title: rows for title, rows in ordered if rows}


def _panel(title: str, rows: list[tuple[str, str]], names_width: int):
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    table = Table.grid(padding=(0, 2), expand=True)
    table.add_column(width=names_width, overflow="fold")
    table.add_column(ratio=1, overflow="fold")
    for name, help_text in rows:
        if len(name) > names_width:
            name = name.replace("|", "| ")  # a long list of choices wraps between choices
        table.add_row(Text(name, style="bold"), Text(help_text))
    return Panel(table, title=title, title_align="left", border_style="dim")
