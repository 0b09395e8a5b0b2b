"""`tuneforge cells`: every recurrent cell with its description, paper and parameter count."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from tuneforge.cli import panels


def register(app: typer.Typer) -> None:
    """Add the `cells` command to ``app``."""
    app.command("cells", cls=panels.Command)(cells)


def cells(
    input_size: Annotated[
        int, typer.Option(min=1, help="Features per input frame (88 for a piano roll).")
    ] = 88,
    hidden_size: Annotated[int, typer.Option(min=1, help="Units per recurrent layer.")] = 256,
    num_layers: Annotated[int, typer.Option(min=1, help="Recurrent layers stacked.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    compile_kernels: Annotated[
        bool,
        typer.Option(
            "--compile",
            help="Compile every cell's CPU kernels and the note-axis scan now, into numba's "
            "on-disk cache, so that no later run waits for the compiler (set-up does this).",
        ),
    ] = False,
) -> None:
    """List every recurrent cell: name, kernel, parameters, description, paper and options."""
    if compile_kernels:
        _compile(as_json)
        return
    # Imported here so that `tuneforge --help` does not load torch.
    from tuneforge.cells import ALIASES, CELLS, count_parameters

    aliases: dict[str, list[str]] = {}
    for alias, canonical in ALIASES.items():
        aliases.setdefault(canonical, []).append(alias)
    rows = []
    for name, info in CELLS.items():
        rows.append(
            {
                "name": name,
                "aliases": aliases.get(name, []),
                "kernel": "fused" if info.fused else "loop",
                "parameters": count_parameters(
                    name, input_size=input_size, hidden_size=hidden_size, num_layers=num_layers
                ),
                "description": info.description,
                "paper": info.paper,
                "options": dict(info.options),
            }
        )
    if as_json:
        settings = {"input_size": input_size, "hidden_size": hidden_size, "num_layers": num_layers}
        typer.echo(json.dumps({"settings": settings, "cells": rows}, indent=2))
        return
    _print_table(rows, input_size, hidden_size, num_layers)


def _compile(as_json: bool) -> None:
    """Run :func:`tuneforge.warm_up.warm_up` and report what ran, and how long it took."""
    from tuneforge.warm_up import warm_up

    warmed = warm_up()
    if as_json:
        rows = [{"name": w.name, "path": w.path, "seconds": w.seconds} for w in warmed]
        typer.echo(json.dumps({"compiled": rows}, indent=2))
        return
    for w in warmed:
        typer.echo(f"{w.name:<34} {w.path:<6} {w.seconds:6.2f} s")
    total = sum(w.seconds for w in warmed)
    typer.echo(f"compiled paths ready in {total:.1f} s")


def _print_table(rows: list[dict], input_size: int, hidden_size: int, num_layers: int) -> None:
    """One row per cell; every column wraps or folds (nothing is cut), so the table reads at 80
    columns: the paper under the description, each option on its own line."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        title=f"cells (input {input_size}, hidden {hidden_size}, {num_layers} layer(s))",
        show_lines=True,
    )
    table.add_column("cell", style="bold", overflow="fold")
    table.add_column("parameters", justify="right", no_wrap=True)
    table.add_column("description, paper", ratio=3, overflow="fold")
    table.add_column("options (defaults)", ratio=1, overflow="fold")
    for row in rows:
        name = "\n".join([row["name"], *(f"({alias})" for alias in row["aliases"])])
        options = "\n".join(f"{key}={value}" for key, value in row["options"].items())
        table.add_row(
            f"{escape(name)}\n[dim]{row['kernel']}[/dim]",
            f"{row['parameters']:,}",
            f"{escape(row['description'])}\n[dim]{escape(row['paper'])}[/dim]",
            escape(options) or "-",
        )
    Console().print(table)
