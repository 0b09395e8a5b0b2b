"""Fine-tuning: a new run that starts from another model's weights and configuration.

A folder of a few dozen pieces is too small to train a model from scratch; starting from a
model trained on much more music (a shipped one, or any checkpoint) and training on the small
folder is the way to a model of it. The architecture is the parent's: a change that would
give weights of other shapes or meanings is refused, naming the difference; what only changes
how the model trains (dropout) is applied. The run records its parent (name and checkpoint
hash) in its config and every checkpoint, so a model card can name it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tuneforge.errors import ConfigError

# Model config fields a fine-tuning run may change: they shape no weight.
TUNABLE_FIELDS = frozenset({"dropout"})


def _tunable_cell_option(key: str) -> bool:
    """Cell options that only regularise (``rru_dropout``) shape no weight either."""
    return key.endswith("dropout")


@dataclass(frozen=True)
class Parent:
    """The model a run started from."""

    name: str  # the shipped name or the checkpoint path, as given
    checkpoint: str  # the tensor file that was read
    sha256: str  # of that tensor file
    model: str  # the model in a few words (describe_model)

    def to_dict(self) -> dict[str, str]:
        """JSON-ready, for config.json, checkpoints and model cards."""
        return {
            "name": self.name,
            "checkpoint": self.checkpoint,
            "sha256": self.sha256,
            "model": self.model,
        }


@dataclass(frozen=True)
class StartingPoint:
    """A parent model read back: its config, weights and data settings, and its record."""

    config: Any  # the parent's model config
    state_dict: dict[str, Any]
    meta: dict[str, Any]
    parent: Parent


def load_parent(spec: str) -> StartingPoint:
    """The model ``spec`` names: a shipped name (``default``) or a checkpoint path (file,
    ``NAME`` prefix or run folder), as ``generate --model`` takes it.

    Raises:
        CheckpointError: no such model, or a checkpoint that cannot be read.
    """
    from tuneforge.checkpoint import checkpoint_hash, load_checkpoint
    from tuneforge.models.registry import describe_model
    from tuneforge.shipped import resolve_model

    loaded = load_checkpoint(resolve_model(spec))
    parent = Parent(
        name=spec,
        checkpoint=str(loaded.path),
        sha256=checkpoint_hash(loaded.path),
        model=describe_model(loaded.config),
    )
    return StartingPoint(loaded.config, loaded.model.state_dict(), dict(loaded.meta), parent)


def fine_tune_config(start: StartingPoint, changes: dict[str, Any]) -> Any:
    """The parent's config with ``changes`` (config field -> value) applied.

    Raises:
        ConfigError: a change that would alter the architecture; the message names each
            field with the parent's value and the one asked for.
    """
    current = start.config.to_dict()
    applied: dict[str, Any] = {}
    refused: list[str] = []
    for name, value in changes.items():
        if name not in current:
            refused.append(f"{name} (a {current.get('kind')} model has none)")
            continue
        if name.endswith("cell_options"):
            merged = {**current[name], **value}
            for key in sorted(merged):
                if merged[key] != current[name].get(key) and not _tunable_cell_option(key):
                    refused.append(f"{name}.{key} {current[name].get(key)!r} -> {merged[key]!r}")
            value = merged
        elif value == current[name]:
            continue
        elif name not in TUNABLE_FIELDS:
            refused.append(f"{name} {current[name]!r} -> {value!r}")
            continue
        applied[name] = value
    if refused:
        raise ConfigError(
            f"--init {start.parent.name} keeps its architecture, and this would change it: "
            f"{'; '.join(refused)}; drop those options or train from scratch without --init"
        )
    return replace(start.config, **applied)


def initial_model(start: StartingPoint, config: Any, *, seed: int):
    """A model of ``config`` (the parent's, as :func:`fine_tune_config` gave it) holding the
    parent's weights."""
    from tuneforge.models.registry import build_model

    model = build_model(config, seed=seed)
    model.load_state_dict(start.state_dict)
    return model


def run_label(spec: str) -> str:
    """A short name for the parent in a default run folder: ``default``, or the checkpoint's
    folder or file name."""
    path = Path(spec)
    name = path.name if path.suffix not in (".safetensors", ".json") else path.stem
    return name if name not in ("best", "last") else path.parent.name or name
