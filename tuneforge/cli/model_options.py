"""The options that choose and size a model, shared by the commands that build models."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

import typer

from tuneforge.cli.panels import MODEL as PANEL
from tuneforge.errors import ConfigError
from tuneforge.validate import check_model_config

ModelOption = Annotated[
    str,
    typer.Option(
        "--kind",
        "--model",
        help="Model kind: sequence or biaxial (see docs/models.md).",
        rich_help_panel=PANEL,
    ),
]
CellOption = Annotated[
    str,
    typer.Option(
        help="Cell name or alias (see `tuneforge cells`); the time axis of biaxial.",
        rich_help_panel=PANEL,
    ),
]
LayersOption = Annotated[
    int | None,
    typer.Option(
        "--num-layers",
        "--layers",
        help="Recurrent layers along time (sequence 1, biaxial 2).",
        rich_help_panel=PANEL,
    ),
]
HiddenSizeOption = Annotated[
    int | None,
    typer.Option(
        help="Units per layer along time (sequence 256, biaxial 200; or from --params).",
        rich_help_panel=PANEL,
    ),
]
ParamsOption = Annotated[
    int | None,
    typer.Option(
        help="Parameter budget: choose the largest width that fits it.", rich_help_panel=PANEL
    ),
]
DropoutOption = Annotated[
    float | None,
    typer.Option(
        help="Dropout between layers and before outputs (sequence 0.4, biaxial 0.5).",
        rich_help_panel=PANEL,
    ),
]
CellOptionOption = Annotated[
    list[str] | None,
    typer.Option(
        "--cell-option", "-O", help="A cell option KEY=VALUE (repeatable).", rich_help_panel=PANEL
    ),
]
HeadOption = Annotated[
    str | None,
    typer.Option(
        help="Sequence model output: bernoulli (independent pitches) or note-axis "
        "(a chord's pitches drawn jointly).",
        rich_help_panel=PANEL,
    ),
]
NoteCellOption = Annotated[
    str | None,
    typer.Option(
        help="Cell of the note axis (note-axis head, biaxial); default lstm.", rich_help_panel=PANEL
    ),
]
NoteHiddenSizeOption = Annotated[
    int | None,
    typer.Option(
        help="Units per note-axis layer (note-axis head 48, biaxial 100).", rich_help_panel=PANEL
    ),
]
NoteLayersOption = Annotated[
    int | None,
    typer.Option(help="Note-axis layers (note-axis head 1, biaxial 2).", rich_help_panel=PANEL),
]
NoteCellOptionOption = Annotated[
    list[str] | None,
    typer.Option(
        "--note-cell-option",
        help="A note-axis cell option KEY=VALUE (repeatable).",
        rich_help_panel=PANEL,
    ),
]
MeterOption = Annotated[
    bool | None,
    typer.Option(
        "--meter/--no-meter",
        help="Read each step's position in beat and bar (biaxial: on; sequence: off).",
        show_default=False,
        rich_help_panel=PANEL,
    ),
]
ArticulationOption = Annotated[
    bool | None,
    typer.Option(
        "--articulation/--no-articulation",
        help="Predict which held notes are struck "
        "again (default: on for note-axis and biaxial models when the data has onsets).",
        show_default=False,
        rich_help_panel=PANEL,
    ),
]
WindowSemitonesOption = Annotated[
    int | None,
    typer.Option(
        help="Biaxial: each pitch sees the previous step within +-N semitones (12).",
        rich_help_panel=PANEL,
    ),
]
PitchFeatureOption = Annotated[
    bool | None,
    typer.Option(
        "--pitch-feature/--no-pitch-feature",
        help="Biaxial: read each pitch's MIDI "
        "number (off: an exactly transposition-equivariant time axis).",
        show_default=False,
        rich_help_panel=PANEL,
    ),
]

# The defaults the command line gives where a model config's own default differs.
_CLI_DEFAULTS = {"sequence": {"dropout": 0.4}}


def parse_cell_options(cell: str, pairs: list[str], flag: str = "--cell-option") -> dict[str, Any]:
    """``["key=value", ...]`` -> ``{"key": value}``, typed and checked by the cell registry."""
    from tuneforge.cells.registry import cell_options

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} wants KEY=VALUE, got {pair!r}")
        options[key.strip().replace("-", "_")] = value.strip()
    typed = cell_options(cell, options)
    return {key: typed[key] for key in options}


def model_config_from_options(kind: str, options: dict[str, Any], params: int | None) -> Any:
    """The config of a ``kind`` model from the command line's model options (None: unset).

    Checks everything a model can check before data are read: the kind, which options it takes,
    the cells and their options. ``params`` sizes the model to a budget.
    """
    from tuneforge.cells import resolve_cell
    from tuneforge.models.registry import make_config, model_info

    info = model_info(kind)
    values = dict(options)
    resolve_cell(values.get("cell") or "lstm")
    if values.get("note_cell") is not None:
        resolve_cell(values["note_cell"])
    values["cell_option"] = (
        parse_cell_options(values.get("cell") or "lstm", values.get("cell_option") or []) or None
    )
    note_pairs = values.get("note_cell_option") or []
    values["note_cell_option"] = (
        parse_cell_options(values.get("note_cell") or "lstm", note_pairs, "--note-cell-option")
        or None
    )
    if params is not None and values.get("hidden_size") is not None:
        raise ConfigError("give --hidden-size or --params, not both")
    for name, value in _CLI_DEFAULTS.get(kind, {}).items():
        if values.get(name) is None:
            values[name] = value
    config = make_config(info.name, values)
    if params is not None:
        from tuneforge.models.budget import width_for_budget

        config = width_for_budget(config, params)
    check_model_config(config)
    return config


def fit_to_data(config: Any, *, steps_per_beat: int, onsets_known: bool, articulation: bool | None):
    """``config`` with the data's grid, and articulation on where the data has onsets (unless
    the user said otherwise; a model without a scan of the pitches has none)."""
    changes: dict[str, Any] = {"steps_per_beat": int(steps_per_beat)}
    scans = config.kind == "biaxial" or getattr(config, "head", "") == "note-axis"
    if articulation is None:
        changes["articulation"] = scans and onsets_known
    return replace(config, **changes)


def model_changes(config: Any, given: dict[str, Any], params: int | None) -> dict[str, Any]:
    """The config fields that the model options typed on the command line (``given``, by
    option name; ``kind`` for --kind) would set on ``config``, as ``{field: value}``;
    ``params`` as the width it would choose. For ``--init``, which keeps a parent's config."""
    from tuneforge.models.registry import model_info

    info = model_info(config.kind)
    changes: dict[str, Any] = {}
    for name, value in given.items():
        if name == "kind":
            changes["kind"] = value
            continue
        if name not in info.options:
            raise ConfigError(f"the {config.kind} model takes no --{name.replace('_', '-')}")
        if name == "cell_option":
            value = parse_cell_options(given.get("cell") or config.cell, value)
        elif name == "note_cell_option":
            cell = given.get("note_cell") or config.note_cell
            value = parse_cell_options(cell, value, "--note-cell-option")
        changes[info.options[name]] = value
    if params is not None:
        from tuneforge.models.budget import width_for_budget

        sized = width_for_budget(config, params).to_dict()
        changes.update({k: v for k, v in sized.items() if v != config.to_dict()[k]})
    return changes
