"""Choose the width that meets a parameter budget, so models compare at equal size."""

from __future__ import annotations

from typing import Any

import torch

from tuneforge.errors import ConfigError, TuneforgeError
from tuneforge.models.registry import build_model, make_config, with_width
from tuneforge.models.sequence import ModelConfig

# Above this width a recurrent layer is far past any budget this tool trains on.
_MAX_HIDDEN_SIZE = 8192


def count_model_parameters(config: Any) -> int:
    """Trainable parameters of the model ``config`` describes (built on the meta device)."""
    with torch.device("meta"):
        return build_model(config).num_parameters()


def width_for_budget(config: Any, budget_params: int) -> Any:
    """``config`` at the largest width (see :func:`~tuneforge.models.registry.with_width`)
    whose model has at most ``budget_params`` trainable parameters.

    Parameter count grows with the width, so a bisection finds the boundary; widths a cell
    rejects (a clockwork cell wants a multiple of its module count) are skipped.
    Raises :class:`ConfigError` when even width 1 is over the budget.
    """
    if budget_params <= 0:
        raise ConfigError(f"--params must be positive, got {budget_params}")

    counts: dict[int, int | None] = {}

    def params_at(width: int) -> int | None:
        if width not in counts:
            try:
                counts[width] = count_model_parameters(with_width(config, width))
            except (TuneforgeError, ValueError):
                counts[width] = None
        return counts[width]

    low, high = 0, _MAX_HIDDEN_SIZE  # invariant: params(low) <= budget (or low == 0) < params(high)
    while high - low > 1:
        middle = (low + high) // 2
        probe = middle  # the first buildable width at or above the middle
        while probe < high and params_at(probe) is None:
            probe += 1
        if probe == high:
            high = middle
        elif params_at(probe) <= budget_params:
            low = probe
        else:
            high = probe
    for width in range(low, 0, -1):
        count = params_at(width)
        if count is not None and count <= budget_params:
            return with_width(config, width)
    raise ConfigError(
        f"a {config.kind} {config.cell} model needs more than {budget_params} parameters even "
        "at width 1; raise --params or use fewer --layers"
    )


def hidden_size_for_budget(
    cell: str,
    budget_params: int,
    *,
    num_layers: int = 1,
    dropout: float = 0.0,
    cell_options: dict[str, Any] | None = None,
) -> int:
    """The largest hidden size of a sequence model of ``cell`` within ``budget_params``."""
    config = ModelConfig(
        cell=cell, num_layers=num_layers, dropout=dropout, cell_options=dict(cell_options or {})
    )
    return width_for_budget(config, budget_params).hidden_size


__all__ = ["count_model_parameters", "hidden_size_for_budget", "make_config", "width_for_budget"]
