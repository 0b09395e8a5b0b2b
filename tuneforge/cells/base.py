"""The recurrent-layer interface, the layer stack, and helpers on recurrent state.

Every layer maps ``x`` (B, T, input_size) to ``y`` (B, T, output_size) and takes and returns its
state: a tuple of tensors whose first dimension is the batch (``None``: the cell's initial
state). A stack's state is a tuple with one such tuple per layer. Keeping the batch first in
every state tensor lets :func:`select_state` and :func:`detach_state` treat all cells alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor, nn

from tuneforge.cells.dropout_mask import Dropout
from tuneforge.cells.registry import CELLS, cell_options, resolve_cell
from tuneforge.errors import ConfigError

LayerState = tuple[Tensor, ...]
StackState = tuple[LayerState, ...]


class RecurrentLayer(nn.Module, ABC):
    """Base of every cell: sizes, the initial state, and the (B, T, F) forward contract.

    Subclasses set ``input_size``, ``hidden_size`` and ``output_size``, and implement
    :meth:`initial_state` and :meth:`forward`.
    """

    input_size: int
    hidden_size: int
    output_size: int

    @abstractmethod
    def initial_state(self, batch_size: int, like: Tensor) -> LayerState:
        """The state before the first step, on the device and dtype of ``like``."""

    @abstractmethod
    def forward(self, x: Tensor, state: LayerState | None = None) -> tuple[Tensor, LayerState]:
        """Run over ``x`` (B, T, input_size) from ``state``; return (B, T, output_size), state."""


class RecurrentStack(nn.Module):
    """Layers of one cell stacked, with dropout between layers (not after the last one).

    Shape:
        x: (B, T, input_size) -> (B, T, output_size); state: one tuple per layer.
    """

    def __init__(self, layers: list[RecurrentLayer], dropout: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.dropout = Dropout(dropout)
        self.input_size = layers[0].input_size
        self.hidden_size = layers[-1].hidden_size
        self.output_size = layers[-1].output_size

    def initial_state(self, batch_size: int, like: Tensor) -> StackState:
        """Each layer's initial state, on the device and dtype of ``like``."""
        return tuple(layer.initial_state(batch_size, like) for layer in self.layers)

    def forward(self, x: Tensor, state: StackState | None = None) -> tuple[Tensor, StackState]:
        """Run every layer over ``x`` (B, T, input_size) from ``state`` (None: initial)."""
        if x.dim() != 3 or x.shape[-1] != self.input_size or x.shape[0] * x.shape[1] == 0:
            raise ConfigError(
                f"recurrent input must be (batch >= 1, time >= 1, {self.input_size}), "
                f"got {tuple(x.shape)}"
            )
        if state is not None and len(state) != len(self.layers):
            raise ConfigError(
                f"state has {len(state)} layers but the stack has {len(self.layers)}; "
                "pass None to start afresh"
            )
        new_state = []
        for index, layer in enumerate(self.layers):
            if index > 0:
                x = self.dropout(x)
            x, layer_state = layer(x, None if state is None else state[index])
            new_state.append(layer_state)
        return x, tuple(new_state)


def build_stack(
    cell: str,
    *,
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    dropout: float = 0.0,
    **options: Any,
) -> RecurrentStack:
    """Build ``num_layers`` layers of ``cell`` (a name or alias from the registry).

    Args:
        cell: cell name, e.g. ``"lstm"``, ``"diag-gru"``, ``"lstm-variant"``.
        input_size: features per input frame.
        hidden_size: units per layer.
        num_layers: layers stacked; each reads the previous layer's output.
        dropout: dropout rate between layers.
        **options: cell options (see ``CELLS[name].options``); unknown ones raise ConfigError.
    """
    name = resolve_cell(cell)
    merged = cell_options(name, options)
    for label, value in (("input_size", input_size), ("hidden_size", hidden_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{label} must be a positive whole number, got {value!r}")
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise ConfigError(f"num_layers must be a positive whole number, got {num_layers!r}")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout!r}")
    layer_class = CELLS[name].layer_class()
    layers = []
    size = input_size
    for _ in range(num_layers):
        layer = layer_class(size, hidden_size, **merged)
        layers.append(layer)
        size = layer.output_size
    return RecurrentStack(layers, dropout)


def count_parameters(
    cell: str, *, input_size: int, hidden_size: int, num_layers: int = 1, **options: Any
) -> int:
    """Number of trainable parameters of a stack, computed without allocating its weights."""
    with torch.device("meta"):
        stack = build_stack(
            cell,
            input_size=input_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            **options,
        )
    return sum(p.numel() for p in stack.parameters() if p.requires_grad)


def detach_state(state: Any) -> Any:
    """The same state cut from the autograd graph (truncated BPTT between windows)."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    return tuple(detach_state(part) for part in state)


def select_state(state: Any, index: Tensor | list[int] | slice) -> Any:
    """Keep the batch rows ``index`` of every tensor in ``state`` (all are batch-first)."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        if isinstance(index, slice):
            return state[index]
        rows = torch.as_tensor(index, dtype=torch.long, device=state.device)
        return state.index_select(0, rows)
    return tuple(select_state(part, index) for part in state)
