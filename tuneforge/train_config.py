"""The configuration of a training run, and the optimizers it can name."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch

from tuneforge.errors import ConfigError
from tuneforge.validate import LIMITS, check_numbers

OPTIMIZERS = ("adam", "rmsprop", "radam", "adagrad", "sgd")


@dataclass
class TrainConfig:
    """Every choice of how to train (the model's own config travels with the model); saved in
    the run folder and in each checkpoint."""

    optimizer: str = "adam"  # one of OPTIMIZERS
    lr: float = 3e-3  # JSB: 3e-3 reaches a lower valid NLL than 1e-3 in a third of the time
    batch_size: int = 8  # windows per step (all processes); JSB has only 229 windows
    window_steps: int = 200  # truncated-BPTT length, as in the RRU benchmark
    epochs: int = 200  # upper bound; early stopping usually ends the run sooner
    patience: int = 10  # epochs without a better validation NLL before stopping
    clip: float = 5.0  # max gradient norm; 0 disables clipping
    transpose_semitones: int = 0  # random shift of each piece per epoch, in +-semitones
    carry_state: bool = False  # carry state across consecutive windows of a piece
    seed: int = 0  # seeds init, window order, transpositions and dropout
    device: str = "auto"  # auto, cpu, cuda or mps
    amp: bool = False  # bf16 autocast on CUDA
    eval_batch_size: int = 32  # whole pieces per validation batch
    threads: int = 0  # CPU threads for torch; 0 keeps torch's default (one per core)
    time_budget_s: float = 0.0  # stop at the first epoch boundary past this much training; 0: none

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """A config from its saved dict; keys of other versions (model fields) are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def check(self) -> None:
        """Raise :class:`ConfigError` on a value no run could use (ranges: tuneforge.validate)."""
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"unknown optimizer {self.optimizer!r}; choose {', '.join(OPTIMIZERS)}"
            )
        check_numbers({f.name: getattr(self, f.name) for f in fields(self) if f.name in LIMITS})


def make_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The optimizer ``config.optimizer`` names, over ``model``'s parameters."""
    params = model.parameters()
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.lr)
    if config.optimizer == "radam":
        return torch.optim.RAdam(params, lr=config.lr)
    if config.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=config.lr)
    return torch.optim.SGD(params, lr=config.lr, momentum=0.9)  # plain SGD crawls on BCE
