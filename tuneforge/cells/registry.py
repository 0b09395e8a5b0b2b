"""The one registry of recurrent cells: names, aliases, options, descriptions and papers.

This module imports no torch, so command lines and configs can list and check cell names
cheaply; each entry names the class that builds it (``"module:Class"``), imported on first use.
Option defaults double as the type of each option: a front end converts ``key=value`` text to
the type of the default.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from tuneforge.errors import ConfigError


@dataclass(frozen=True)
class CellInfo:
    """What the registry knows about one cell."""

    name: str  # canonical name, as written in configs and checkpoints
    description: str  # one line, for `tuneforge cells`
    paper: str  # where the equations come from
    options: Mapping[str, Any]  # option name -> default (its type is the option's type)
    fused: bool  # True: runs on torch's fused recurrent kernels; False: a loop over time
    factory: str  # "module:Class" of the RecurrentLayer that implements it
    option_help: Mapping[str, str] = field(default_factory=dict)  # option name -> meaning

    def layer_class(self) -> type:
        """Import and return the RecurrentLayer class that implements this cell."""
        module_name, class_name = self.factory.split(":")
        return getattr(importlib.import_module(module_name), class_name)


_FORGET = {"forget_bias": 1.0}
_FORGET_HELP = {"forget_bias": "initial bias of the forget gate (positive keeps memory early)"}
_FUSED = "tuneforge.cells.fused:"
_JOZEFOWICZ = "Hochreiter & Schmidhuber 1997; forget bias: Jozefowicz et al. 2015"
_CHO = "Cho et al. 2014 (torch/cuDNN ordering: r applied after the recurrent product)"
_SUBAKAN = "Subakan & Smaragdis 2017, Diagonal RNNs in symbolic music modeling"
_LU_SALEM = "Lu & Salem 2017; Dowdall & Salem, Gate-variant of LSTM for music generation"
_DEY_SALEM = "Dey & Salem 2017, Gate-variants of GRU neural networks"


def _info(name: str, description: str, paper: str, factory: str, fused: bool, **options):
    helps = {key: text for key, (_, text) in options.items()}
    defaults = {key: value for key, (value, _) in options.items()}
    return CellInfo(
        name=name,
        description=description,
        paper=paper,
        options=MappingProxyType(defaults),
        fused=fused,
        factory=factory,
        option_help=MappingProxyType(helps),
    )


def _forget_option() -> dict[str, tuple[float, str]]:
    return {key: (value, _FORGET_HELP[key]) for key, value in _FORGET.items()}


_ENTRIES = [
    _info("rnn", "Elman RNN: h' = tanh(W x + U h + b)", "Elman 1990", _FUSED + "RNNLayer", True),
    _info(
        "lstm",
        "LSTM with input, forget and output gates",
        _JOZEFOWICZ,
        _FUSED + "LSTMLayer",
        True,
        **_forget_option(),
    ),
    _info("gru", "GRU with update and reset gates", _CHO, _FUSED + "GRULayer", True),
    _info(
        "diag-rnn",
        "Elman RNN with a diagonal recurrent matrix (O(n) recurrent weights), Xavier init",
        _SUBAKAN,
        _FUSED + "DiagRNNLayer",
        True,
    ),
    _info(
        "diag-lstm",
        "LSTM whose recurrent matrices (all gates) are diagonal, Xavier init",
        _SUBAKAN,
        _FUSED + "DiagLSTMLayer",
        True,
        **_forget_option(),
    ),
    _info(
        "diag-gru",
        "GRU whose recurrent matrices (all gates) are diagonal, Xavier init",
        _SUBAKAN,
        _FUSED + "DiagGRULayer",
        True,
    ),
    _info(
        "lstm-v1",
        "LSTM whose gates read only the previous hidden state: sigmoid(U h + b)",
        _LU_SALEM,
        _FUSED + "LSTMV1Layer",
        True,
        **_forget_option(),
    ),
    _info(
        "lstm-v2",
        "LSTM whose gates read only the previous hidden state, no gate bias: sigmoid(U h)",
        _LU_SALEM,
        _FUSED + "LSTMV2Layer",
        True,
    ),
    _info(
        "lstm-v3",
        "LSTM whose gates are learned constants: sigmoid(b)",
        _LU_SALEM,
        _FUSED + "LSTMV3Layer",
        True,
        **_forget_option(),
    ),
    _info(
        "gru-v1",
        "GRU whose gates read only the previous hidden state: sigmoid(U h + b)",
        _DEY_SALEM,
        _FUSED + "GRUV1Layer",
        True,
    ),
    _info(
        "gru-v2",
        "GRU whose gates read only the previous hidden state, no gate bias: sigmoid(U h)",
        _DEY_SALEM,
        _FUSED + "GRUV2Layer",
        True,
    ),
    _info(
        "gru-v3",
        "GRU whose gates are learned constants: sigmoid(b)",
        _DEY_SALEM,
        _FUSED + "GRUV3Layer",
        True,
    ),
    _info(
        "clockwork",
        "Clockwork RNN: modules with periods 1, 2, 4, ... update only on their clock ticks",
        "Koutnik et al. 2014, A Clockwork RNN (arXiv 1402.3511)",
        "tuneforge.cells.clockwork:ClockworkLayer",
        False,
        num_modules=(8, "number of modules; module i (from 0) has period 2**i"),
    ),
    _info(
        "rru",
        "Residual Recurrent Unit: no gates, h' = sigmoid(S) h + Z c, RMS-normalised middle layer",
        "Zakovskis et al. 2021, Gates are not what you need in RNNs",
        "tuneforge.cells.rru:RRULayer",
        False,
        middle_multiplier=(2.0, "middle width = round(q * (input + hidden))"),
        extra_layers=(0, "extra ReLU layers after the first middle layer"),
        rru_dropout=(0.5, "dropout rate on the middle layer (paper: 0.5-0.7 works best)"),
        output_size=(64, "size p of the cell's output o (the paper uses 64 for music)"),
    ),
    _info(
        "mogrifier",
        "Mogrifier LSTM: input and state gate each other for some rounds before an LSTM step",
        "Melis et al. 2019, Mogrifier LSTM",
        "tuneforge.cells.mogrifier:MogrifierLayer",
        False,
        rounds=(5, "rounds of mutual gating (0 gives a plain LSTM)"),
        rank=(32, "rank of the low-rank gating matrices Q and R"),
        **_forget_option(),
    ),
]

_REGISTERED: dict[str, CellInfo] = {info.name: info for info in _ENTRIES}
CELLS: Mapping[str, CellInfo] = MappingProxyType(_REGISTERED)  # a live, read-only view

ALIASES: Mapping[str, str] = MappingProxyType({"lstm-variant": "lstm-v1"})


def register_cell(info: CellInfo) -> CellInfo:
    """Add a cell of one's own, so that models, training and ``tuneforge cells`` can name it.

    ``info.factory`` names its :class:`tuneforge.cells.RecurrentLayer` subclass as
    ``"module:Class"``, built as ``Class(input_size, hidden_size, **options)``; a checkpoint
    of it loads in any process that has registered it again. ``examples/custom_cell.py`` shows
    one. Raises ConfigError when the name is taken by a cell or an alias.
    """
    name = info.name.strip().lower()
    if name != info.name or not name or name in _REGISTERED or name in ALIASES:
        raise ConfigError(f"cannot register cell {info.name!r}: pick a new lower-case name")
    if ":" not in info.factory:
        raise ConfigError(f"cell {name!r}: factory must be 'module:Class', got {info.factory!r}")
    _REGISTERED[name] = info
    return info


def cell_names() -> list[str]:
    """Canonical cell names in registry order."""
    return list(CELLS)


def resolve_cell(name: str) -> str:
    """Return the canonical name of ``name`` (aliases resolved, case and spaces ignored).

    Raises:
        ConfigError: the name is neither a cell nor an alias; the message lists the valid names.
    """
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in CELLS:
        valid = ", ".join(cell_names() + [f"{a} (= {c})" for a, c in ALIASES.items()])
        raise ConfigError(f"unknown cell {name!r}; choose one of: {valid}")
    return key


def cell_options(cell: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The cell's option defaults updated by ``options``, checked by name and converted by type.

    Raises:
        ConfigError: an option the cell does not have, or a value of the wrong type.
    """
    info = CELLS[resolve_cell(cell)]
    unknown = sorted(set(options) - set(info.options))
    if unknown:
        valid = ", ".join(info.options) or "none"
        raise ConfigError(
            f"cell {info.name!r} has no option {', '.join(unknown)}; valid options: {valid}"
        )
    merged = dict(info.options)
    for key, value in options.items():
        merged[key] = _convert(info.name, key, value, type(info.options[key]))
    return merged


def _convert(cell: str, key: str, value: Any, kind: type) -> Any:
    # bool is an int subclass; refuse it for numeric options so `True` does not become 1.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"option {key} of cell {cell!r} needs a {kind.__name__}, got {value!r}")
    try:
        converted = kind(value)
    except ValueError:
        raise ConfigError(
            f"option {key} of cell {cell!r} needs a {kind.__name__}, got {value!r}"
        ) from None
    if kind is int and isinstance(value, float) and value != converted:
        raise ConfigError(f"option {key} of cell {cell!r} needs a whole number, got {value!r}")
    return converted
