"""The checkpoint format: round trip, path forms, hashes, and clear errors on bad files."""

from __future__ import annotations

import hashlib
import json
import pickle

import pytest
import torch

from tuneforge.checkpoint import (
    FORMAT_VERSION,
    checkpoint_hash,
    load_checkpoint,
    save_checkpoint,
)
from tuneforge.errors import CheckpointError
from tuneforge.models.frames import FrameBatch
from tuneforge.models.sequence import ModelConfig, SequenceModel


def _trained_pair(hidden_size: int = 8) -> tuple[SequenceModel, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(cell="lstm", hidden_size=hidden_size, dropout=0.1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    log_lik, _ = model(FrameBatch.from_frames((torch.rand(2, 6, 88) < 0.1).float()))
    (-log_lik.play.sum()).backward()
    optimizer.step()
    return model, optimizer


def test_round_trip_restores_weights_config_meta_and_optimizer(tmp_path):
    model, optimizer = _trained_pair()
    meta = {"steps_per_beat": 4, "metrics": {"valid_nll": 8.25}, "nested": [1, 2]}
    tensor_path = save_checkpoint(
        tmp_path / "run" / "best",
        model,
        meta=meta,
        optimizer_state=optimizer.state_dict(),
        extra_tensors={"rng": torch.arange(4, dtype=torch.uint8)},
    )
    assert tensor_path == tmp_path / "run" / "best.safetensors"
    loaded = load_checkpoint(tensor_path)
    assert loaded.config == model.config
    assert not loaded.model.training
    assert loaded.meta == meta
    for (name, a), (_, b) in zip(
        model.state_dict().items(), loaded.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert torch.equal(loaded.extra_tensors["rng"], torch.arange(4, dtype=torch.uint8))
    # The optimizer state drives an identical next step.
    twin = torch.optim.Adam(loaded.model.parameters(), lr=1e-3)
    twin.load_state_dict(loaded.optimizer_state)
    assert twin.state_dict()["param_groups"][0]["lr"] == 1e-3
    for key, value in optimizer.state_dict()["state"][0].items():
        assert torch.equal(value, twin.state_dict()["state"][0][key]), key


def test_every_path_form_finds_the_same_checkpoint(tmp_path):
    model, _ = _trained_pair()
    save_checkpoint(tmp_path / "best.safetensors", model, meta={"name": "best"})
    save_checkpoint(tmp_path / "last", model, meta={"name": "last"})
    assert load_checkpoint(tmp_path).meta["name"] == "best"  # a run folder means `best`
    assert load_checkpoint(tmp_path / "best.json").meta["name"] == "best"
    assert load_checkpoint(tmp_path / "last").meta["name"] == "last"
    document = json.loads((tmp_path / "last.json").read_text())
    assert document["format_version"] == FORMAT_VERSION
    assert document["tuneforge_version"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "best.json",
        "best.safetensors",
        "last.json",
        "last.safetensors",
    ]  # no temporary files left behind


def test_checkpoint_hash_is_the_sha256_of_the_tensor_file(tmp_path):
    model, _ = _trained_pair()
    tensor_path = save_checkpoint(tmp_path / "best", model, meta={})
    expected = hashlib.sha256(tensor_path.read_bytes()).hexdigest()
    assert checkpoint_hash(tmp_path) == expected
    assert checkpoint_hash(tmp_path / "best.json") == expected


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nothing")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        checkpoint_hash(tmp_path / "nothing")


def test_corrupt_tensor_file_is_rejected(tmp_path):
    model, _ = _trained_pair()
    tensor_path = save_checkpoint(tmp_path / "best", model, meta={})
    data = bytearray(tensor_path.read_bytes())
    data[-10:] = b"\xff" * 10
    tensor_path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(tmp_path)
    # Even with a matching hash, a garbled file is reported, not loaded.
    tensor_path.write_bytes(b"garbage" * 10)
    document = json.loads((tmp_path / "best.json").read_text())
    document["tensor_sha256"] = hashlib.sha256(tensor_path.read_bytes()).hexdigest()
    (tmp_path / "best.json").write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path)


def test_corrupt_json_and_other_format_versions_are_rejected(tmp_path):
    model, _ = _trained_pair()
    save_checkpoint(tmp_path / "best", model, meta={})
    config_path = tmp_path / "best.json"
    document = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**document, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(CheckpointError, match=f"format {FORMAT_VERSION + 1}"):
        load_checkpoint(tmp_path)
    config_path.write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(tmp_path)


def test_weights_that_do_not_fit_the_config_are_rejected(tmp_path):
    model, _ = _trained_pair(hidden_size=8)
    save_checkpoint(tmp_path / "best", model, meta={})
    config_path = tmp_path / "best.json"
    document = json.loads(config_path.read_text())
    document["model_config"]["hidden_size"] = 9
    config_path.write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match="does not fit its config"):
        load_checkpoint(tmp_path)


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_loading_never_executes_code(tmp_path):
    marker = tmp_path / "executed"
    (tmp_path / "best.safetensors").write_bytes(pickle.dumps(_Payload(str(marker))))
    digest = hashlib.sha256((tmp_path / "best.safetensors").read_bytes()).hexdigest()
    (tmp_path / "best.json").write_text(
        json.dumps(
            {
                "format_version": FORMAT_VERSION,
                "tensor_sha256": digest,
                "model_config": ModelConfig().to_dict(),
            }
        )
    )
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path)
    assert not marker.exists()


def test_ctrl_c_while_the_files_move_into_place_waits_for_both(tmp_path, monkeypatch):
    import os
    import signal

    import tuneforge.checkpoint as checkpoint

    first, _ = _trained_pair()
    save_checkpoint(tmp_path / "last", first, meta={"epoch": 1})
    second, _ = _trained_pair(hidden_size=12)
    real_replace = os.replace
    calls = []

    def replace_then_interrupt(src, dst):
        calls.append(dst)
        if len(calls) == 1:  # Ctrl-C lands between the tensor file and its config
            os.kill(os.getpid(), signal.SIGINT)
        real_replace(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "last", second, meta={"epoch": 2})
    assert len(calls) == 2  # both files moved before the interrupt was delivered
    loaded = load_checkpoint(tmp_path / "last")  # a consistent pair: the new one
    assert loaded.meta["epoch"] == 2 and loaded.config.hidden_size == 12
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_checkpoint_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    model, _ = _trained_pair()
    tensor_path = save_checkpoint(tmp_path / "best", model, meta={})
    umask = os.umask(0)
    os.umask(umask)
    for path in (tensor_path, tensor_path.with_suffix(".json")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
