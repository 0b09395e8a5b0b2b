"""The one registry of model kinds: names, configs, options, and how a config becomes a model.

Like the cell registry, importing it loads no torch: the model classes are imported on first use.
A model config is stored in every checkpoint as a dict with its ``kind``; a dict without one is
a checkpoint of tuneforge 0.1, whose only model was today's sequence model with a Bernoulli head.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, fields, replace
from typing import Any

from tuneforge.errors import ConfigError

DEFAULT_KIND = "sequence"


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one kind of model."""

    name: str
    module: str  # where its config and model classes live
    config_class: str
    model_class: str
    description: str
    paper: str
    # Options a user sets on the command line, by their name there -> the config field.
    options: dict[str, str]
    width_field: str  # the field that --hidden-size and --params set
    layers_field: str  # the field that --layers sets

    def config_type(self) -> type:
        """The config dataclass (imports its module)."""
        return getattr(importlib.import_module(self.module), self.config_class)

    def model_type(self) -> type:
        """The model class (imports torch)."""
        return getattr(importlib.import_module(self.module), self.model_class)


_COMMON = {
    "cell": "cell",
    "hidden_size": "",  # set from width_field
    "layers": "",  # set from layers_field
    "dropout": "dropout",
    "cell_option": "cell_options",
    "note_cell": "note_cell",
    "note_hidden_size": "note_hidden_size",
    "note_layers": "note_layers",
    "note_cell_option": "note_cell_options",
    "meter": "meter",
    "articulation": "articulation",
}


def _options(width: str, layers: str, **extra: str) -> dict[str, str]:
    options = {**_COMMON, "hidden_size": width, "layers": layers}
    options.update(extra)
    return options


MODELS: dict[str, ModelInfo] = {
    "sequence": ModelInfo(
        name="sequence",
        module="tuneforge.models.sequence",
        config_class="ModelConfig",
        model_class="SequenceModel",
        description="cell stack along time; independent pitches (bernoulli head) or a "
        "low-to-high scan of the pitches (note-axis head)",
        paper="Boulanger-Lewandowski et al. 2012 (RNN-NADE family, for the note-axis head)",
        options=_options("hidden_size", "num_layers", head="head"),
        width_field="hidden_size",
        layers_field="num_layers",
    ),
    "biaxial": ModelInfo(
        name="biaxial",
        module="tuneforge.models.biaxial",
        config_class="BiaxialConfig",
        model_class="BiaxialModel",
        description="time axis tied across pitches, then a note axis across each step's "
        "pitches; transposition-equivariant time axis",
        paper="Johnson 2017, Generating polyphonic music using tied parallel networks",
        options=_options(
            "time_hidden_size",
            "time_layers",
            window_semitones="window_semitones",
            pitch_feature="pitch_feature",
        ),
        width_field="time_hidden_size",
        layers_field="time_layers",
    ),
}


def model_names() -> list[str]:
    """Every registered kind, in registry order."""
    return list(MODELS)


def model_info(kind: str) -> ModelInfo:
    """The entry of ``kind``; an unknown kind raises ConfigError listing the valid ones."""
    if kind not in MODELS:
        raise ConfigError(f"unknown model {kind!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[kind]


def make_config(kind: str, options: dict[str, Any]) -> Any:
    """The config of a ``kind`` model from command-line options ``{option name: value}``.

    Options left at None are not set (the config's default stays). An option the kind does not
    take raises ConfigError naming the ones it does.
    """
    info = model_info(kind)
    values: dict[str, Any] = {}
    for name, value in options.items():
        if value is None:
            continue
        if name not in info.options:
            valid = ", ".join("--" + key.replace("_", "-") for key in info.options)
            raise ConfigError(
                f"the {kind} model takes no --{name.replace('_', '-')}; its options: {valid}"
            )
        values[info.options[name]] = value
    try:
        return info.config_type()(**values)
    except TypeError as error:
        raise ConfigError(f"cannot build a {kind} model: {error}") from None


def with_width(config: Any, width: int) -> Any:
    """``config`` with its main width set (a Biaxial note axis follows at half the width)."""
    info = model_info(config.kind)
    changes: dict[str, Any] = {info.width_field: width}
    if config.kind == "biaxial":
        changes["note_hidden_size"] = max(1, width // 2)
    return replace(config, **changes)


def config_from_dict(data: dict[str, Any]) -> Any:
    """A config from its saved dict (``kind`` absent: a sequence model of tuneforge 0.1)."""
    if not isinstance(data, dict):
        raise ConfigError(f"a model config must be a JSON object, got {type(data).__name__}")
    kind = data.get("kind", DEFAULT_KIND)
    if kind not in MODELS:
        raise ConfigError(
            f"the model kind {kind!r} is unknown to this tuneforge; known kinds: "
            f"{', '.join(MODELS)} (upgrade tuneforge or retrain)"
        )
    config_type = model_info(kind).config_type()
    known = {f.name for f in fields(config_type)}
    return config_type(**{k: v for k, v in data.items() if k in known})


def build_model(config: Any, *, seed: int | None = None):
    """The model ``config`` describes (a config dataclass or its saved dict), freshly built;
    with ``seed``, its initial weights come from that seed."""
    if isinstance(config, dict):
        config = config_from_dict(config)
    model_type = model_info(config.kind).model_type()
    if seed is not None:
        import torch

        torch.manual_seed(seed)
    return model_type(config)


def describe_model(config: Any) -> str:
    """A model in a few words: kind, cell, head or note cell (for dashboards and cards)."""
    if config.kind == "biaxial":
        return f"biaxial {config.cell}/{config.note_cell}"
    if getattr(config, "head", "bernoulli") == "note-axis":
        return f"sequence {config.cell} + note-axis {config.note_cell}"
    return f"sequence {config.cell}"
