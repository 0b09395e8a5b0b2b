"""The diagonal cells at their own cost: one input product, then an element-wise recurrence.

With every recurrent matrix diagonal (``U h -> u * h``) the recurrence has no matrix product:
the input's gate pre-activations ``a = W x + b`` come from one matrix product over the whole
window (left to torch, whose autograd gives the gradients of ``x``, ``W`` and ``b``), and the
recurrence is an autograd function whose forward and backward are numba loops over time
(:mod:`.kernels`), a few passes over (batch, hidden) memory per step. Gate orders and
equations are those of the fused kernels (:mod:`.fused`), which stay the exact fallback (see
:mod:`.jit` for when it is taken).
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch import Tensor

from tuneforge.cells import jit
from tuneforge.cells.step_matmul import linear

_GATES = {"rnn": 1, "lstm": 4, "gru": 3}


class _DiagRNN(torch.autograd.Function):
    """a (B, T, H), u (1, H), h0 (B, H) -> hs (B, T, H)."""

    @staticmethod
    def forward(ctx, kern: ModuleType, a: Tensor, u: Tensor, h0: Tensor) -> Tensor:
        a, u, h0 = a.contiguous(), u.contiguous(), h0.contiguous()
        hs = torch.empty_like(a)
        jit.launch(kern.rnn_forward, _views(a, hs, h0), _views(u))
        ctx.kern = kern
        ctx.save_for_backward(hs, h0, u)
        return hs

    @staticmethod
    def backward(ctx, grad_hs: Tensor):
        hs, h0, u = ctx.saved_tensors
        grad_a = torch.empty_like(hs)
        grad_u = hs.new_zeros(h0.shape[0], 1, h0.shape[1])  # per row, summed below
        grad_h0 = torch.zeros_like(h0)
        rows = _views(hs, h0, grad_hs.contiguous(), grad_a, grad_u, grad_h0)
        jit.launch(ctx.kern.rnn_backward, rows, [jit.view(u), jit.one(hs)])
        return None, grad_a, grad_u.sum(0), grad_h0


class _DiagLSTM(torch.autograd.Function):
    """a (B, T, 4H), u (4, H), h0, c0 (B, H) -> hs (B, T, H), c_T (B, H)."""

    @staticmethod
    def forward(ctx, kern: ModuleType, a: Tensor, u: Tensor, h0: Tensor, c0: Tensor):
        a, u, h0, c0 = a.contiguous(), u.contiguous(), h0.contiguous(), c0.contiguous()
        batch, steps, width = a.shape
        acts = torch.empty_like(a)  # i, f, g, o after their nonlinearities
        cs, tcs, hs = (a.new_empty(batch, steps, width // 4) for _ in range(3))  # c, tanh c, h
        jit.launch(kern.lstm_forward, _views(a, acts, cs, tcs, hs, h0, c0), _views(u))
        ctx.kern = kern
        ctx.save_for_backward(acts, cs, tcs, hs, h0, c0, u)
        return hs, cs[:, -1].clone()

    @staticmethod
    def backward(ctx, grad_hs: Tensor, grad_c_last: Tensor):
        acts, cs, tcs, hs, h0, c0, u = ctx.saved_tensors
        grad_a = torch.empty_like(acts)
        grad_u = hs.new_zeros(h0.shape[0], 4, h0.shape[1])
        grad_h0 = torch.zeros_like(h0)
        grad_c0 = grad_c_last.clone(memory_format=torch.contiguous_format)
        rows = _views(acts, cs, tcs, hs, h0, c0, grad_hs.contiguous(), grad_a, grad_u, grad_h0)
        rows.append(jit.view(grad_c0))
        jit.launch(ctx.kern.lstm_backward, rows, [jit.view(u), jit.one(hs)])
        return None, grad_a, grad_u.sum(0), grad_h0, grad_c0


class _DiagGRU(torch.autograd.Function):
    """a (B, T, 3H), u (3, H), h0 (B, H) -> hs (B, T, H)."""

    @staticmethod
    def forward(ctx, kern: ModuleType, a: Tensor, u: Tensor, h0: Tensor) -> Tensor:
        a, u, h0 = a.contiguous(), u.contiguous(), h0.contiguous()
        batch, steps, width = a.shape
        acts = torch.empty_like(a)  # r, z, n after their nonlinearities
        hs = a.new_empty(batch, steps, width // 3)
        jit.launch(kern.gru_forward, _views(a, acts, hs, h0), _views(u))
        ctx.kern = kern
        ctx.save_for_backward(acts, hs, h0, u)
        return hs

    @staticmethod
    def backward(ctx, grad_hs: Tensor):
        acts, hs, h0, u = ctx.saved_tensors
        grad_a = torch.empty_like(acts)
        grad_u = hs.new_zeros(h0.shape[0], 3, h0.shape[1])
        grad_h0 = torch.zeros_like(h0)
        rows = _views(acts, hs, h0, grad_hs.contiguous(), grad_a, grad_u, grad_h0)
        jit.launch(ctx.kern.gru_backward, rows, [jit.view(u), jit.one(hs)])
        return None, grad_a, grad_u.sum(0), grad_h0


def _views(*tensors: Tensor) -> list:
    return [jit.view(t) for t in tensors]


def diagonal_sequence(
    mode: str,
    x: Tensor,
    state: tuple[Tensor, ...],
    weight_ih: Tensor,
    diag_hh: Tensor,
    bias_ih: Tensor,
) -> tuple[Tensor, tuple[Tensor, ...]] | None:
    """Run a diagonal ``mode`` cell (rnn, lstm, gru) over ``x`` (B, T, m) from ``state``.

    Returns (B, T, H) and the new state, or None when the compiled path cannot run (the caller
    then runs the fused kernel).
    """
    kern = jit.kernels("kernels")
    if kern is None or not jit.usable(x, weight_ih, diag_hh, bias_ih, *state):
        return None
    batch, steps, width = x.shape
    a = linear(x.reshape(batch * steps, width), weight_ih, bias_ih)
    a = a.view(batch, steps, _GATES[mode] * diag_hh.shape[1])  # (B, T, G H)
    if mode == "lstm":
        hs, c = _DiagLSTM.apply(kern, a, diag_hh, state[0], state[1])
        return hs, (hs[:, -1].contiguous(), c)
    function = _DiagRNN if mode == "rnn" else _DiagGRU
    hs = function.apply(kern, a, diag_hh, state[0])
    return hs, (hs[:, -1].contiguous(),)
