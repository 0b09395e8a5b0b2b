"""The models shipped with tuneforge, and how a ``--model`` argument finds a checkpoint.

Shipped models live in the repository's top-level ``pretrained/`` folder, which installs as the
package ``tuneforge.pretrained``; :func:`importlib.resources.files` finds it the same way from a
clone (editable install) and from a wheel. Each model is ``NAME.safetensors`` + ``NAME.json``
(the checkpoint pair) and ``NAME.card.json`` (the model card, see ``pretrained/README.md``).
``$TUNEFORGE_PRETRAINED_DIR`` points the lookup at another folder.

This module is not called ``tuneforge/pretrained.py``: that name is taken by the data package.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.errors import CheckpointError
from tuneforge.schema import ANY, Obj, OneOf, Range, read_json

_TEXT = OneOf((str, None))
_NUMBER = OneOf((float, None))
# What `tuneforge models` and `generate --list-models` show from a card; other keys are free.
CARD_SCHEMA = Obj(
    optional={
        "description": _TEXT,
        "data": _TEXT,
        "model": _TEXT,
        "kind": _TEXT,
        "cell": _TEXT,
        "hidden_size": OneOf((Range(int, 0), None)),
        "num_layers": OneOf((Range(int, 0), None)),
        "parameters": OneOf((Range(int, 0), None)),
        "valid_nll": _NUMBER,
        "test_nll": _NUMBER,
        "command": _TEXT,
    }
)
_SIDECAR_SCHEMA = Obj(optional={"model_config": Obj(), "meta": ANY})

DEFAULT_MODEL = "default"  # what `tuneforge generate` uses when no --model is given
PRETRAINED_DIR_ENV = "TUNEFORGE_PRETRAINED_DIR"
PRETRAINED_PACKAGE = "tuneforge.pretrained"
TENSOR_SUFFIX = ".safetensors"
CONFIG_SUFFIX = ".json"
CARD_SUFFIX = ".card.json"


@dataclass(frozen=True)
class ShippedModel:
    """A shipped checkpoint and what its card and config say about it."""

    name: str
    path: Path  # the NAME.safetensors file
    card: dict[str, Any] = field(default_factory=dict)  # NAME.card.json, {} when absent
    model_config: dict[str, Any] = field(default_factory=dict)  # from NAME.json

    @property
    def size_bytes(self) -> int:
        """Bytes on disk of the tensor file and its JSON."""
        return self.path.stat().st_size + self.path.with_suffix(CONFIG_SUFFIX).stat().st_size

    def summary(self) -> dict[str, Any]:
        """JSON-ready description for `tuneforge models --json`."""
        return {
            "name": self.name,
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "cell": self.card.get("cell", self.model_config.get("cell")),
            "hidden_size": self.model_config.get("hidden_size"),
            "num_layers": self.model_config.get("num_layers"),
            "card": self.card,
        }


def pretrained_root(environ: Mapping[str, str] | None = None) -> Path:
    """The folder holding the shipped models: ``$TUNEFORGE_PRETRAINED_DIR`` or the package."""
    environ = os.environ if environ is None else environ
    override = environ.get(PRETRAINED_DIR_ENV)
    if override:
        return Path(override).expanduser()
    from importlib.resources import files

    # Installed packages are plain folders (setuptools does not zip them), so this is a Path.
    return Path(str(files(PRETRAINED_PACKAGE)))


def _read_json(path: Path, schema: Any) -> dict[str, Any]:
    return read_json(path, schema, error=CheckpointError, hint="reinstall tuneforge")


def list_models(root: Path | None = None) -> list[ShippedModel]:
    """Every complete model (tensors + JSON) in ``root`` (default: :func:`pretrained_root`)."""
    root = pretrained_root() if root is None else Path(root)
    if not root.is_dir():
        return []
    models = []
    for tensor_path in sorted(root.glob("*" + TENSOR_SUFFIX)):
        name = tensor_path.name[: -len(TENSOR_SUFFIX)]
        config_path = root / (name + CONFIG_SUFFIX)
        if not config_path.is_file():
            continue  # half a pair is not a model; load_checkpoint would refuse it anyway
        card_path = root / (name + CARD_SUFFIX)
        card = _read_json(card_path, CARD_SCHEMA) if card_path.is_file() else {}
        config = _read_json(config_path, _SIDECAR_SCHEMA).get("model_config", {})
        models.append(ShippedModel(name=name, path=tensor_path, card=card, model_config=config))
    return models


def find_model(name: str, root: Path | None = None) -> ShippedModel:
    """The shipped model called ``name``.

    Raises:
        CheckpointError: no such model; the message lists the shipped ones.
    """
    models = list_models(root)
    for model in models:
        if model.name == name:
            return model
    shipped = ", ".join(m.name for m in models) or "none"
    raise CheckpointError(
        f"no shipped model {name!r} (shipped: {shipped}); pass a checkpoint path with --model"
        " or train one with `tuneforge train`"
    )


def resolve_model(spec: str | None, root: Path | None = None) -> Path:
    """The checkpoint a ``--model`` argument means: a path if one exists, else a shipped name.

    ``None`` means :data:`DEFAULT_MODEL`. A path may be the ``.safetensors`` or ``.json`` file,
    the ``NAME`` prefix or a run folder, as :func:`tuneforge.checkpoint.load_checkpoint` takes.
    """
    if spec is None:
        return find_model(DEFAULT_MODEL, root).path
    candidate = Path(spec).expanduser()
    if (
        candidate.exists()
        or candidate.with_name(candidate.name + TENSOR_SUFFIX).is_file()
        or candidate.suffix in (TENSOR_SUFFIX, CONFIG_SUFFIX)
        or len(candidate.parts) > 1
    ):
        # Anything that looks like a path is one; load_checkpoint reports it if it is missing.
        return candidate
    return find_model(spec, root).path
