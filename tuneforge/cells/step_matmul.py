"""The per-step products of the hand-written recurrences, on oneDNN where it is faster.

A recurrence multiplies a small (batch, k) block by the same weight at every step. On the CPU,
torch's ``mm`` goes to MKL, which on some CPUs (AMD EPYC here) reaches half the speed of oneDNN
for these shapes; oneDNN with the weight packed once per window is about twice as fast for the
large products (measured: 16x344 @ 344x1024 in 79 us against 169 us, one thread). Small weights
and other dtypes or devices keep ``addmm``. The oneDNN entry point is torch's internal
``mkldnn._linear_pointwise``; when a torch build lacks it, everything falls back to ``addmm``.

The same holds for the products over a whole window (a layer's input projection, its output
projection, their gradients and the recurrent weights' gradients): oneDNN on the weight as it is
does them in about half the time of MKL (measured, one thread: 3200x88 @ 88x688 in 1.9 ms
against 4.2 ms; a 688x256 weight gradient over 3200 rows in 5.8 ms against 12.4 ms).
:func:`linear` is ``F.linear`` with both passes on oneDNN.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

# Below this many weight elements MKL's small-matrix path is as fast (measured: 256x88).
_MIN_WEIGHT_ELEMENTS = 100_000


def _onednn_available() -> bool:
    try:
        return torch.backends.mkldnn.is_available() and bool(
            torch.ops.mkldnn._linear_pointwise and torch.ops.mkldnn._reorder_linear_weight
        )
    except (AttributeError, RuntimeError):
        return False


_ONEDNN = _onednn_available()


def step_linear(weight: Tensor, bias: Tensor | None, batch_size: int) -> Callable[[Tensor], Tensor]:
    """A function ``x -> x @ weight.T (+ bias)`` for contiguous (batch_size, k) blocks ``x``.

    The weight is packed once here, so call this once per window, outside the step loop.
    """
    use_onednn = (
        _ONEDNN
        and torch.backends.mkldnn.enabled
        and weight.device.type == "cpu"
        and weight.dtype == torch.float32
        and weight.numel() >= _MIN_WEIGHT_ELEMENTS
    )
    if use_onednn:
        packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), batch_size)
        linear = torch.ops.mkldnn._linear_pointwise
        return lambda x: linear(x, packed, bias, "none", [], "")
    weight_t = weight.t()
    if bias is None:
        return lambda x: torch.mm(x, weight_t)
    return lambda x: torch.addmm(bias, x, weight_t)


def _onednn_window(*tensors: Tensor) -> bool:
    """True when a window product of these tensors runs on oneDNN: float32 on the CPU."""
    return (
        _ONEDNN
        and torch.backends.mkldnn.enabled
        and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
    )


def matmul_nt(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b.T`` for (p, k) and (q, k) blocks, each with its rows contiguous."""
    if not _onednn_window(a, b):
        return a @ b.t()
    return torch.ops.mkldnn._linear_pointwise(
        a.contiguous(), b.contiguous(), None, "none", [], ""
    )  # fmt: skip


# Below this many columns on either side, MKL on the transposed views beats oneDNN after the
# two transposing copies (measured: 64 x 688 and 32 x 88 weights over 3200 rows).
_MIN_TN_COLUMNS = 80


def window_matmul_tn(a: Tensor, b: Tensor) -> Tensor:
    """``a.T @ b`` for (rows, p) and (rows, q) blocks: a weight gradient summed over a window.

    Float32 products on the CPU with p and q of at least 80 go to oneDNN (measured: 3200 rows,
    1024 x 344, in 15 ms against MKL's 25 ms, transposes included).
    """
    if min(a.shape[1], b.shape[1]) < _MIN_TN_COLUMNS or not _onednn_window(a, b):
        return a.t() @ b
    return matmul_nt(a.t().contiguous(), b.t().contiguous())


def linear_forward(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight.T + bias`` for (rows, k) ``x``, outside autograd: on oneDNN where
    :func:`linear` would be."""
    parts = (x, weight) if bias is None else (x, weight, bias)
    if not _onednn_window(*parts):
        return torch.nn.functional.linear(x, weight, bias)
    linear = torch.ops.mkldnn._linear_pointwise
    return linear(x.contiguous(), weight.contiguous(), bias, "none", [], "")


class _Linear(torch.autograd.Function):
    """``x @ weight.T + bias`` for (rows, k) ``x``, with both passes on oneDNN."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return linear_forward(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = matmul_nt(grad, weight.t().contiguous())
        if ctx.needs_input_grad[1]:
            grad_weight = window_matmul_tn(grad, x)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum(0)
        return grad_x, grad_weight, grad_bias


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear`` for 2-D ``x`` (rows, k): on oneDNN for float32 CPU tensors, forward and
    backward; otherwise (other dtypes, devices, a torch without oneDNN) ``F.linear`` itself.
    """
    parts = (x, weight) if bias is None else (x, weight, bias)
    if not _onednn_window(*parts):
        return torch.nn.functional.linear(x, weight, bias)
    return _Linear.apply(x.contiguous(), weight.contiguous(), bias)
