"""Finding shipped models: the package folder, an override folder, names versus paths."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import pytest

from tests.tiny_models import save_tiny
from tuneforge.errors import CheckpointError
from tuneforge.shipped import (
    DEFAULT_MODEL,
    PRETRAINED_DIR_ENV,
    find_model,
    list_models,
    pretrained_root,
    resolve_model,
)

REPO = Path(__file__).resolve().parents[1]


def test_the_package_folder_is_the_repository_pretrained_folder():
    root = pretrained_root(environ={})
    assert (root / "README.md").is_file()
    assert root.resolve() == Path(str(files("tuneforge.pretrained"))).resolve()
    if (REPO / "pretrained").is_dir():  # a clone (editable install), not a wheel
        assert root.resolve() == (REPO / "pretrained").resolve()


def test_models_are_listed_with_their_cards(tmp_path):
    save_tiny(tmp_path, "default")
    save_tiny(tmp_path, "other", hidden_size=8)
    card = {"description": "tiny", "cell": "lstm", "parameters": 123, "valid_nll": 9.5}
    (tmp_path / "other.card.json").write_text(json.dumps(card))
    (tmp_path / "orphan.safetensors").write_bytes(b"")  # no JSON: not a model
    models = list_models(tmp_path)
    assert [m.name for m in models] == ["default", "other"]
    other = models[1]
    assert other.card == card and other.model_config["hidden_size"] == 8
    assert other.summary()["cell"] == "lstm" and other.size_bytes > 1000
    assert models[0].card == {}


def test_the_environment_points_the_lookup_elsewhere(tmp_path, monkeypatch):
    save_tiny(tmp_path, DEFAULT_MODEL)
    monkeypatch.setenv(PRETRAINED_DIR_ENV, str(tmp_path))
    assert pretrained_root() == tmp_path
    assert resolve_model(None) == tmp_path / "default.safetensors"


def test_names_and_paths_resolve(tmp_path):
    path = save_tiny(tmp_path, "folk")
    assert resolve_model("folk", tmp_path) == path
    assert resolve_model(str(path), tmp_path) == path
    assert resolve_model(str(tmp_path / "folk"), tmp_path) == tmp_path / "folk"
    with pytest.raises(CheckpointError, match="shipped: folk"):
        resolve_model("jazz", tmp_path)
    with pytest.raises(CheckpointError, match="no shipped model 'default'"):
        find_model(DEFAULT_MODEL, tmp_path / "missing")
