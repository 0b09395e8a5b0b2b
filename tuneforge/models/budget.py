"""Choose the hidden size that meets a parameter budget, so cells compare at equal size."""

from __future__ import annotations

from typing import Any

import torch

from tuneforge.errors import ConfigError, TuneforgeError
from tuneforge.models.sequence import ModelConfig, SequenceModel

# Above this width a recurrent layer is far past any budget this tool trains on.
_MAX_HIDDEN_SIZE = 8192


def count_model_parameters(config: ModelConfig) -> int:
    """Trainable parameters of the model ``config`` describes (built on the meta device)."""
    with torch.device("meta"):
        return SequenceModel(config).num_parameters()


def hidden_size_for_budget(
    cell: str,
    budget_params: int,
    *,
    num_layers: int = 1,
    dropout: float = 0.0,
    cell_options: dict[str, Any] | None = None,
) -> int:
    """The largest hidden size whose model has at most ``budget_params`` trainable parameters.

    Parameter count grows with the hidden size, so a bisection finds the boundary; sizes a cell
    rejects (a clockwork cell wants a multiple of its module count) are skipped.
    Raises :class:`ConfigError` when even hidden size 1 is over the budget.
    """
    if budget_params <= 0:
        raise ConfigError(f"--params must be positive, got {budget_params}")

    counts: dict[int, int | None] = {}

    def params_at(hidden_size: int) -> int | None:
        if hidden_size in counts:
            return counts[hidden_size]
        config = ModelConfig(
            cell=cell,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout,
            cell_options=dict(cell_options or {}),
        )
        try:
            counts[hidden_size] = count_model_parameters(config)
        except (TuneforgeError, ValueError):
            counts[hidden_size] = None
        return counts[hidden_size]

    low, high = 0, _MAX_HIDDEN_SIZE  # invariant: params(low) <= budget (or low == 0) < params(high)
    while high - low > 1:
        middle = (low + high) // 2
        probe = middle  # the first buildable size at or above the middle
        while probe < high and params_at(probe) is None:
            probe += 1
        if probe == high:
            high = middle
        elif params_at(probe) <= budget_params:
            low = probe
        else:
            high = probe
    for hidden_size in range(low, 0, -1):
        count = params_at(hidden_size)
        if count is not None and count <= budget_params:
            return hidden_size
    raise ConfigError(
        f"a {cell} model needs more than {budget_params} parameters even at hidden size 1; "
        "raise --params or use fewer --layers"
    )
