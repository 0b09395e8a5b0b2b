"""Device, dtype and seed: chosen here, in one place, and passed down."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

from tuneforge.errors import TrainingError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def choose_device(name: str = "auto", *, local_rank: int = 0) -> torch.device:
    """The torch device for ``name`` (auto, cpu, cuda, mps); ``auto`` prefers CUDA, then MPS.

    Under DDP on CUDA each process takes the GPU of its ``local_rank``. Raises
    :class:`TrainingError` when the requested device is not available here.
    """
    if name not in DEVICE_CHOICES:
        raise TrainingError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif _mps_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError("CUDA is not available on this machine; use --device cpu or auto")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name == "mps" and not _mps_available():
        raise TrainingError("MPS is not available on this machine; use --device cpu or auto")
    return torch.device(name)


def autocast(device: torch.device, *, amp: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when ``amp`` is set; a no-op elsewhere.

    bf16 keeps float32's exponent range, so no gradient scaler is needed.
    """
    if amp and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, numpy and torch (all devices) from ``seed``; return a numpy Generator."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def set_cpu_threads(threads: int) -> None:
    """Use ``threads`` CPU threads for torch ops (0: keep torch's default).

    On a CPU shared with other work, one thread per process is often several times faster than
    one per core, because oversubscribed threads wait on each other.
    """
    if threads > 0:
        torch.set_num_threads(threads)


def describe_device(device: torch.device) -> str:
    """A short human name for ``device`` (the GPU's model name on CUDA)."""
    if device.type == "cuda":
        return f"cuda:{device.index or 0} ({torch.cuda.get_device_name(device)})"
    return str(device)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
