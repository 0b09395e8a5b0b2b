"""The per-step products of the hand-written recurrences, on oneDNN where it is faster.

A recurrence multiplies a small (batch, k) block by the same weight at every step. On the CPU,
torch's ``mm`` goes to MKL, which on some CPUs (AMD EPYC here) reaches half the speed of oneDNN
for these shapes; oneDNN with the weight packed once per window is about twice as fast for the
large products (measured: 16x344 @ 344x1024 in 79 us against 169 us, one thread). Small weights
and other dtypes or devices keep ``addmm``. The oneDNN entry point is torch's internal
``mkldnn._linear_pointwise``; when a torch build lacks it, everything falls back to ``addmm``.
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


def window_matmul_tn(a: Tensor, b: Tensor) -> Tensor:
    """``a.T @ b`` for (rows, p) and (rows, q) blocks: a weight gradient summed over a window.

    Large float32 products on the CPU go to oneDNN (measured: 3200 rows, 1024 x 344, in 30 ms
    against MKL's 41 ms, transposes included).
    """
    use_onednn = (
        _ONEDNN
        and torch.backends.mkldnn.enabled
        and a.device.type == "cpu"
        and a.dtype == torch.float32
        and b.dtype == torch.float32
        and a.shape[1] * b.shape[1] >= _MIN_WEIGHT_ELEMENTS
    )
    if not use_onednn:
        return a.t() @ b
    packed = torch.ops.mkldnn._reorder_linear_weight(b.t().contiguous(), a.shape[1])
    return torch.ops.mkldnn._linear_pointwise(a.t().contiguous(), packed, None, "none", [], "")
