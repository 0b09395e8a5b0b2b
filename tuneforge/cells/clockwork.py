"""Clockwork RNN (Koutnik et al. 2014): modules that tick at periods 1, 2, 4, ...

The hidden units are split into ``num_modules`` modules of (nearly) equal size; module ``i``
(from 0) has period ``2**i``. At step ``t`` (counted from the start of the sequence, carried in
the state across windows) module ``i`` updates, ``h_i' = tanh(W_i x + U_i h + b_i)``, only if
``t mod 2**i == 0``; otherwise it keeps its value. ``U`` is block upper-triangular: a module
reads only itself and slower modules, and only those blocks are parameters.

Speed: the input projection runs for the whole window in one matmul; the recurrence runs in a
hand-written autograd function whose forward is a plain loop (matmul, tanh, select per step)
and whose backward loops back once for the data gradient, then forms the recurrent-weight
gradient in one large matmul over all steps.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from tuneforge.cells.base import LayerState, RecurrentLayer
from tuneforge.cells.step_matmul import linear, window_matmul_tn
from tuneforge.errors import ConfigError


class _ClockworkRecurrence(torch.autograd.Function):
    """h_t = where(active_t, tanh(xproj_t + h_{t-1} U^T), h_{t-1}) over a window, time-major."""

    @staticmethod
    def forward(ctx, xproj: Tensor, h0: Tensor, weight_hh: Tensor, active: Tensor) -> Tensor:
        # xproj (T, B, H) input projection with bias; active (T, B, H) bool; returns (T, B, H).
        steps = xproj.shape[0]
        hs = xproj.new_empty(steps, *h0.shape)
        cands = xproj.new_empty(steps, *h0.shape)
        weight_t = weight_hh.t()
        h = h0
        for t in range(steps):
            cand = torch.addmm(xproj[t], h, weight_t, out=cands[t]).tanh_()
            h = torch.where(active[t], cand, h, out=hs[t])
        ctx.save_for_backward(h0, weight_hh, active, hs, cands)
        return hs

    @staticmethod
    def backward(ctx, grad_hs: Tensor):
        h0, weight_hh, active, hs, cands = ctx.saved_tensors
        steps = hs.shape[0]
        grad_pre = torch.empty_like(hs)
        grad_h = torch.zeros_like(h0)
        for t in range(steps - 1, -1, -1):
            grad_h = grad_h + grad_hs[t]
            # Through the candidate where the module ticked, straight through where it held.
            g = torch.where(active[t], grad_h, 0.0).mul_(1.0 - cands[t].square())
            grad_pre[t] = g
            grad_h = torch.where(active[t], 0.0, grad_h).addmm_(g, weight_hh)
        h_prev = torch.cat([h0.unsqueeze(0), hs[:-1]])  # (T, B, H)
        width = h0.shape[1]
        grad_weight = window_matmul_tn(grad_pre.reshape(-1, width), h_prev.reshape(-1, width))
        return grad_pre, grad_h, grad_weight, None


class ClockworkLayer(RecurrentLayer):
    """Clockwork RNN layer.

    Args:
        input_size: features per input frame.
        hidden_size: units, split into ``num_modules`` modules.
        num_modules: modules; module ``i`` has period ``2**i``.

    Shape:
        x: (B, T, input_size) -> (B, T, hidden_size); state: (h (B, H), step (B,) int64),
        ``step`` being the index of the next step (it decides which modules tick).
    """

    def __init__(self, input_size: int, hidden_size: int, num_modules: int = 8) -> None:
        super().__init__()
        if not 1 <= num_modules <= hidden_size:
            raise ConfigError(
                f"clockwork num_modules must be between 1 and hidden_size ({hidden_size}), "
                f"got {num_modules}"
            )
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.output_size = hidden_size
        self.num_modules = num_modules
        base, extra = divmod(hidden_size, num_modules)
        sizes = [base + (1 if i < extra else 0) for i in range(num_modules)]
        # Built on the CPU even under a meta-device context (count_parameters), where the
        # comparison below would be slow; buffers follow the module in .to(device) as usual.
        module_of_unit = torch.tensor(
            [i for i, size in enumerate(sizes) for _ in range(size)], device="cpu"
        )
        # Unit r reads unit s iff module(s) >= module(r): block upper-triangular.
        recurrent_mask = module_of_unit[None, :] >= module_of_unit[:, None]
        # Counted in Python so that the layer can be built on the meta device.
        num_free = sum(size * sum(sizes[i:]) for i, size in enumerate(sizes))
        self.register_buffer("period", 2**module_of_unit, persistent=False)  # (H,)
        self.register_buffer("recurrent_mask", recurrent_mask, persistent=False)  # (H, H)
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.bias = nn.Parameter(torch.empty(hidden_size))
        self.weight_hh_blocks = nn.Parameter(torch.empty(num_free))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform in +-1/sqrt(hidden) for all parameters, as torch's RNN."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            nn.init.uniform_(param, -bound, bound)

    def weight_hh(self) -> Tensor:
        """The dense (H, H) recurrent matrix, zero outside the free upper blocks."""
        dense = self.weight_hh_blocks.new_zeros(self.hidden_size, self.hidden_size)
        return dense.masked_scatter(self.recurrent_mask, self.weight_hh_blocks)

    def initial_state(self, batch_size: int, like: Tensor) -> LayerState:
        """Zero hidden state at step 0."""
        h = like.new_zeros(batch_size, self.hidden_size)
        step = torch.zeros(batch_size, dtype=torch.long, device=like.device)
        return (h, step)

    def forward(self, x: Tensor, state: LayerState | None = None) -> tuple[Tensor, LayerState]:
        """Run over ``x`` (B, T, input) from ``state`` (h, step)."""
        batch, steps, _ = x.shape
        h0, step0 = self.initial_state(batch, x) if state is None else state
        x_tm = x.transpose(0, 1).reshape(-1, self.input_size)  # time-major rows
        xproj = linear(x_tm, self.weight_ih, self.bias).view(steps, batch, -1)  # (T, B, H)
        t = step0[None, :] + torch.arange(steps, device=x.device)[:, None]  # (T, B)
        active = (t[:, :, None] % self.period) == 0  # (T, B, H)
        hs = _ClockworkRecurrence.apply(xproj, h0, self.weight_hh(), active)
        return hs.transpose(0, 1), (hs[-1], step0 + steps)
