"""One checkpoint format and one loader.

A checkpoint is a pair of files: ``NAME.safetensors`` holds every tensor (model weights, the
optimizer's tensors, RNG states) and ``NAME.json`` holds everything else (model config, data
settings, metrics, the optimizer's plain values, versions). Loading parses JSON and safetensors
only, so it never executes code. Both files are written to a temporary name and moved into place
with :func:`os.replace`, and the JSON records the SHA-256 of its tensor file, so a half-written or
mismatched pair is reported instead of loaded.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tuneforge import __version__
from tuneforge.errors import CheckpointError, TuneforgeError
from tuneforge.models.base import MusicModel
from tuneforge.models.registry import build_model, config_from_dict
from tuneforge.schema import (
    ListOf,
    MapOf,
    Obj,
    OneOf,
    Range,
    SchemaError,
    dataclass_schema,
    load_json_text,
    validate,
)
from tuneforge.stop_signals import interrupts_deferred

FORMAT_VERSION = 1
TENSOR_SUFFIX = ".safetensors"
CONFIG_SUFFIX = ".json"
# The checkpoint a run directory resolves to when none is named.
DEFAULT_NAME = "best"

_MODEL_PREFIX = "model."
_OPTIMIZER_PREFIX = "optimizer."
_EXTRA_PREFIX = "extra."
MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit on its JSON header

# What readers of a checkpoint's meta rely on; other keys are free-form.
META_SCHEMA = Obj(
    optional={
        "steps_per_beat": Range(int, 1, 273),
        "lowest_pitch": Range(int, 0, 127),
        "data_fingerprint": OneOf((str, None)),
        "data_spec": OneOf((str, None)),
        "dataset": OneOf((str, None)),
        "split_seed": int,
        "keep_percussion": bool,
        "fold_octaves": bool,
        "time_signatures": MapOf(Range(float, 0.0, 1.0), max_items=1000),
        "metrics": OneOf((dict, None)),
        "train_config": OneOf((dict, None)),
        "progress": OneOf((Obj(optional={"epoch": Range(int, 0)}), None)),
    }
)
SIDECAR_SCHEMA = Obj(
    required={
        "format_version": int,
        "model_config": Obj(optional={"kind": str}),
        "tensor_sha256": str,
    },
    optional={
        "tuneforge_version": str,
        "tensor_file": str,
        "meta": OneOf((META_SCHEMA, None)),
        "optimizer": OneOf((None, Obj(required={"param_groups": ListOf(dict), "plain": dict}))),
    },
)
_DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
    "U8": 1, "U16": 2, "U32": 4, "U64": 8, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1,
}  # fmt: skip


@dataclass
class LoadedCheckpoint:
    """A checkpoint read back: the rebuilt model (eval mode) and everything saved beside it."""

    model: MusicModel
    config: Any  # the model's config dataclass (see tuneforge.models.registry)
    meta: dict[str, Any]
    path: Path  # the .safetensors file that was read
    optimizer_state: dict[str, Any] | None = None  # a torch optimizer state_dict, or None
    extra_tensors: dict[str, torch.Tensor] = field(default_factory=dict)  # RNG states etc.


def checkpoint_stem(path: Path | str) -> Path:
    """The ``NAME`` prefix of a checkpoint from its tensor file, JSON file, prefix or run folder."""
    path = Path(path)
    if path.is_dir():
        return path / DEFAULT_NAME
    if path.suffix in (TENSOR_SUFFIX, CONFIG_SUFFIX):
        return path.with_suffix("")
    return path


def checkpoint_hash(path: Path | str) -> str:
    """SHA-256 (hex) of a checkpoint's tensor file; generation records it as provenance."""
    tensor_path = checkpoint_stem(path).with_name(checkpoint_stem(path).name + TENSOR_SUFFIX)
    if not tensor_path.is_file():
        raise CheckpointError(f"no checkpoint at {tensor_path}; train one with `tuneforge train`")
    return _sha256(tensor_path)


def save_checkpoint(
    path: Path | str,
    model: MusicModel,
    *,
    meta: dict[str, Any],
    optimizer_state: dict[str, Any] | None = None,
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``model`` (and optionally an optimizer state and extra tensors) as a checkpoint.

    Args:
        path: ``NAME`` or ``NAME.safetensors``; ``NAME.json`` is written beside it.
        model: the model whose weights and config (with its ``kind``) are saved.
        meta: JSON-ready metadata (steps_per_beat, data fingerprint, metrics, train config...).
        optimizer_state: ``optimizer.state_dict()``; its tensors go to the tensor file, the rest
            to the JSON file.
        extra_tensors: further tensors to keep (RNG states for ``--resume``).

    Returns:
        The path of the tensor file.
    """
    from safetensors.torch import save_file

    stem = checkpoint_stem(path) if Path(path).suffix else Path(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    tensor_path = stem.with_name(stem.name + TENSOR_SUFFIX)
    config_path = stem.with_name(stem.name + CONFIG_SUFFIX)

    tensors = {_MODEL_PREFIX + k: v for k, v in model.state_dict().items()}
    optimizer_json = None
    if optimizer_state is not None:
        optimizer_tensors, optimizer_json = _split_optimizer_state(optimizer_state)
        tensors.update({_OPTIMIZER_PREFIX + k: v for k, v in optimizer_tensors.items()})
    for name, tensor in (extra_tensors or {}).items():
        tensors[_EXTRA_PREFIX + name] = tensor
    # safetensors wants contiguous CPU tensors that share no memory.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}

    document = {
        "format_version": FORMAT_VERSION,
        "tuneforge_version": __version__,
        "tensor_file": tensor_path.name,
        "model_config": model.config.to_dict(),
        "meta": meta,
        "optimizer": optimizer_json,
    }
    tmp_tensor = _temp_path(tensor_path)
    tmp_config = _temp_path(config_path)
    try:
        save_file(tensors, str(tmp_tensor))
        document["tensor_sha256"] = _sha256(tmp_tensor)
        tmp_config.write_text(json.dumps(document, indent=2, sort_keys=True), encoding="utf-8")
        # Both files move into place together: a Ctrl-C between the two renames would leave
        # new weights beside an old config, so it waits until both are done.
        # Temporary files are private (0600); a checkpoint gets the usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        for tmp in (tmp_tensor, tmp_config):
            os.chmod(tmp, 0o666 & ~umask)
        with interrupts_deferred():
            os.replace(tmp_tensor, tensor_path)
            os.replace(tmp_config, config_path)
    finally:
        tmp_tensor.unlink(missing_ok=True)
        tmp_config.unlink(missing_ok=True)
    return tensor_path


def load_checkpoint(path: Path | str, *, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Read a checkpoint and rebuild its model in eval mode on ``device``.

    ``path`` may be the ``.safetensors`` file, the ``.json`` file, the ``NAME`` prefix, or a run
    folder (then its ``best`` checkpoint). Raises :class:`CheckpointError` when the files are
    missing, corrupt, mismatched, or of another format version.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    stem = checkpoint_stem(path)
    tensor_path = stem.with_name(stem.name + TENSOR_SUFFIX)
    config_path = stem.with_name(stem.name + CONFIG_SUFFIX)
    for needed in (tensor_path, config_path):
        if not needed.is_file():
            raise CheckpointError(
                f"no checkpoint file {needed}; pass a run folder or a NAME.safetensors "
                "written by `tuneforge train`"
            )
    document = _read_sidecar(config_path)
    config = _config_of(document, config_path)
    # Before any tensor is read or any weight allocated: the tensor file's header must describe
    # exactly the tensors the config implies, so a config (or header) that asks for gigabytes
    # is refused while it is still a few numbers.
    header = _read_header(tensor_path)
    _check_shapes(config, header, tensor_path, config_path)
    if document.get("tensor_sha256") != _sha256(tensor_path):
        raise CheckpointError(
            f"{tensor_path} does not match {config_path.name} (corrupt or from another save); "
            "restore both files together or retrain"
        )
    try:
        tensors = load_file(str(tensor_path), device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{tensor_path} is corrupt ({error}); retrain or restore it"
        ) from None

    try:
        model = build_model(config)
    except TuneforgeError as error:
        raise CheckpointError(
            f"{config_path} names a model this tuneforge cannot build: {error}"
        ) from None
    weights = _take_prefixed(tensors, _MODEL_PREFIX)
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[0]
        raise CheckpointError(f"{tensor_path} does not fit its config: {first_line}") from None
    model.to(device).eval()

    optimizer_state = None
    if document.get("optimizer") is not None:
        try:
            optimizer_state = _join_optimizer_state(
                _take_prefixed(tensors, _OPTIMIZER_PREFIX), document["optimizer"]
            )
        except (ValueError, TypeError, AttributeError) as error:
            raise CheckpointError(
                f"{config_path} has an unusable optimizer state ({error}); start a new run"
            ) from None
    return LoadedCheckpoint(
        model=model,
        config=config,
        meta=document.get("meta") or {},
        path=tensor_path,
        optimizer_state=optimizer_state,
        extra_tensors=_take_prefixed(tensors, _EXTRA_PREFIX),
    )


def _read_sidecar(config_path: Path) -> dict[str, Any]:
    """The checkpoint's JSON, checked against :data:`SIDECAR_SCHEMA`."""
    try:
        document = load_json_text(config_path)
    except OSError as error:
        raise CheckpointError(f"cannot read {config_path}: {error.strerror or error}") from None
    except ValueError as error:
        raise CheckpointError(
            f"{config_path} is not valid JSON ({error}); retrain or restore it"
        ) from None
    if not isinstance(document, dict) or "format_version" not in document:
        raise CheckpointError(f"{config_path} is not a tuneforge checkpoint (no format_version)")
    version = document["format_version"]
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{config_path} has checkpoint format {version}, this tuneforge reads format "
            f"{FORMAT_VERSION}; use the tuneforge version that wrote it "
            f"({document.get('tuneforge_version', 'unknown')}) or retrain"
        )
    try:
        validate(document, SIDECAR_SCHEMA)
    except SchemaError as error:
        raise CheckpointError(f"{config_path}: {error}; retrain or restore it") from None
    return document


def _config_of(document: dict[str, Any], config_path: Path) -> Any:
    """The model config of a checked sidecar, each field of the type its dataclass declares."""
    try:
        config = config_from_dict(document["model_config"])
    except TuneforgeError as error:
        raise CheckpointError(
            f"{config_path} names a model this tuneforge cannot build: {error}"
        ) from None
    except (KeyError, TypeError) as error:
        raise CheckpointError(f"{config_path} has an unusable model_config ({error})") from None
    try:
        validate(document["model_config"], dataclass_schema(type(config)), "model_config")
    except SchemaError as error:
        raise CheckpointError(f"{config_path}: {error}; retrain or restore it") from None
    return config


def _read_header(tensor_path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file, after checking that it and the byte ranges it
    names fit inside the file."""
    size = tensor_path.stat().st_size
    try:
        with tensor_path.open("rb") as stream:
            length = int.from_bytes(stream.read(8), "little")
            if size < 8 or length > min(MAX_HEADER_BYTES, size - 8):
                raise ValueError(f"a header of {length:,} bytes in a file of {size:,}")
            header = json.loads(stream.read(length).decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        end = 0
        for name, info in header.items():
            if name == "__metadata__":
                continue
            shape, dtype = info["shape"], info["dtype"]
            begin, stop = info["data_offsets"]
            if not all(isinstance(n, int) and n >= 0 for n in (*shape, begin, stop)):
                raise ValueError(f"tensor {name} has a bad shape or offsets")
            if stop - begin != math.prod(shape) * _DTYPE_BYTES.get(dtype, 0):
                raise ValueError(f"tensor {name}: {shape} of {dtype} in {stop - begin} bytes")
            end = max(end, stop)
        if 8 + length + end > size:
            raise ValueError("the tensors reach past the end of the file")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise CheckpointError(
            f"{tensor_path} is corrupt ({error}); retrain or restore it"
        ) from None
    return header


def _check_shapes(
    config: Any, header: dict[str, Any], tensor_path: Path, config_path: Path
) -> None:
    """Compare the weights ``config`` implies (built on the meta device: no memory) with those
    the tensor file holds."""
    try:
        with torch.device("meta"):
            expected = build_model(config).state_dict()
    except TuneforgeError as error:
        raise CheckpointError(
            f"{config_path} names a model this tuneforge cannot build: {error}"
        ) from None
    except Exception as error:  # noqa: BLE001  torch rejects absurd sizes in many ways
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CheckpointError(
            f"{config_path} has an unusable model_config ({first_line})"
        ) from None
    stored = {
        name[len(_MODEL_PREFIX) :]: info.get("shape")
        for name, info in header.items()
        if name.startswith(_MODEL_PREFIX)
    }
    for name, tensor in expected.items():
        if name not in stored:
            raise CheckpointError(f"{tensor_path} does not fit its config: no weight {name}")
        if list(tensor.shape) != list(stored[name]):
            raise CheckpointError(
                f"{tensor_path} does not fit its config: {name} is {stored[name]} in the file, "
                f"{list(tensor.shape)} in {config_path.name}"
            )
    unexpected = sorted(set(stored) - set(expected))
    if unexpected:
        raise CheckpointError(
            f"{tensor_path} does not fit its config: unexpected weight {unexpected[0]}"
        )


def _split_optimizer_state(
    state_dict: dict[str, Any],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split a torch optimizer state_dict into flat tensors and a JSON-ready rest."""
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for param_id, entries in state_dict["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{param_id}.{key}"] = value
            else:
                plain.setdefault(str(param_id), {})[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "plain": plain}


def _join_optimizer_state(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict:
    """Inverse of :func:`_split_optimizer_state`."""
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        param_id, key = name.split(".", 1)
        state.setdefault(int(param_id), {})[key] = tensor
    for param_id, entries in rest.get("plain", {}).items():
        state.setdefault(int(param_id), {}).update(entries)
    return {"state": state, "param_groups": rest["param_groups"]}


def _take_prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _temp_path(final: Path) -> Path:
    handle, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(handle)
    return Path(name)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
