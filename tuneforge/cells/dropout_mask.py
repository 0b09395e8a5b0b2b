"""Dropout masks from a counter-based hash: the same mask on the compiled and the torch path.

A window's mask is a function of one 32-bit seed and of each element's flat index ``i``: the
element is kept when the top 24 bits of ``lowbias32(i * 0x9E3779B1 ^ seed)`` fall below
``keep * 2**24``, and a kept element is scaled by ``1 / keep``. The seed is drawn from torch's
global generator, so ``torch.manual_seed`` and a resumed run's restored generator give the same
masks. lowbias32 is a 32-bit integer hash (two multiply-xorshift rounds; constants from Chris
Wellons's hash-prospector search, 2018).

The compiled kernel (:func:`tuneforge.cells.kernels.dropout_mask`) fills a 200 x 16 x 688 window
in 0.3 ms where ``torch.rand`` and a comparison took 7 ms (one thread, measured). The torch
version computes the same hash exactly in int64 arithmetic, each product of two 32-bit values
split in 16-bit halves so that nothing overflows; it runs on any device, at about 27 ms for that
window on the CPU.

:class:`Dropout` is the models' dropout layer on these masks. Its compiled path keeps nothing
for the backward pass but the seed: the backward draws the same mask again, in the same pass
that applies it (:func:`tuneforge.cells.kernels.dropout_apply`), where ``nn.Dropout`` draws its
mask with ``torch.bernoulli_`` and keeps it for the backward: forward and backward of a
28.2M-element Biaxial output in 0.16 s against 0.48 s (``benchmarks/dropout.py``). Elsewhere
(a GPU, bf16, no numba) the layer is torch's own dropout, whose masks are other draws of the
same distribution; the torch version of the hash stays the reference the kernel is tested
against (it is about 6x slower than torch's dropout).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tuneforge.cells import jit

_BITS = 24  # of the hash compared against keep * 2**24
_MASK32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B1
_LOWBIAS = (0x7FEB352D, 0x846CA68B)


def keep_threshold(keep: float) -> int:
    """``keep`` (0 < keep <= 1) as the bound on the hash's top 24 bits."""
    return min(1 << _BITS, round(keep * (1 << _BITS)))


def dropout_mask(like: Tensor, keep: float) -> Tensor:
    """A mask shaped as ``like``: ``1 / keep`` on kept elements (share ``keep``), else 0."""
    seed = int(torch.randint(0, 1 << 32, (1,)).item())
    threshold = keep_threshold(keep)
    scale = torch.ones((), dtype=like.dtype, device=like.device).div_(keep)
    kern = jit.kernels("kernels") if jit.usable(like) else None
    if kern is not None:
        out = torch.empty_like(like, memory_format=torch.contiguous_format)
        kern.dropout_mask(jit.view(out).reshape(-1), seed, threshold, jit.view(scale)[()])
        return out
    bits = hash_bits(like.numel(), seed, like.device) >> (32 - _BITS)
    return torch.where(bits < threshold, scale, 0.0).to(like.dtype).view(like.shape)


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """``x`` with each element zeroed with probability ``p`` and the rest scaled by
    ``1 / (1 - p)``; ``x`` itself when not training or ``p == 0``.

    CPU float tensors take the compiled hashed masks; others (a GPU, bf16, no numba) take
    ``torch.nn.functional.dropout``, torch's own masks: the same distribution, other draws.
    """
    if not training or p == 0.0:
        return x
    return _drop(x, p, _compiled(x))


def _drop(x: Tensor, p: float, kern) -> Tensor:
    """Dropout in training: the compiled kernel ``kern``, or torch's dropout without one."""
    if kern is None:
        return F.dropout(x, p, training=True)
    keep = 1.0 - p
    seed = int(torch.randint(0, 1 << 32, (1,)).item())
    return _HashedDropout.apply(x, kern, seed, keep_threshold(keep), keep)


class Dropout(nn.Module):
    """Dropout on hashed masks, a drop-in for ``nn.Dropout`` (the same ``p``, the same role of
    ``train()`` and ``eval()``, no parameters or buffers).

    ``last_path`` says which path the last training call took: ``"numba"`` (the compiled
    kernel, forward and backward) or ``"torch"`` (``torch.nn.functional.dropout``).
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p!r}")
        self.p = p
        self.last_path: str | None = None

    def forward(self, x: Tensor) -> Tensor:
        """(any shape) -> the same shape."""
        if not self.training or self.p == 0.0:
            return x
        kern = _compiled(x)
        self.last_path = "numba" if kern is not None else "torch"
        return _drop(x, self.p, kern)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _compiled(x: Tensor):
    return jit.kernels("kernels") if jit.usable(x) else None


class _HashedDropout(torch.autograd.Function):
    """x -> x * mask(seed) in the compiled kernel; the backward redraws the same mask.

    Element ``i`` of the mask is element ``i`` of ``x`` in memory order (``x``'s dimensions
    sorted by stride), so a transposed input is masked where it lies, with no copy; the output
    and the gradient keep ``x``'s layout.
    """

    @staticmethod
    def forward(ctx, x, kern, seed, threshold, keep):
        scale = torch.ones((), dtype=x.dtype).div_(keep)
        order = memory_order(x)
        ctx.kern, ctx.order, ctx.seed, ctx.threshold, ctx.scale = (
            kern,
            order,
            seed,
            threshold,
            scale,
        )
        out = _apply_compiled(kern, _in_order(x, order), seed, threshold, scale)
        return _out_of_order(out, order)

    @staticmethod
    def backward(ctx, grad):
        flat = _in_order(grad, ctx.order)
        out = _apply_compiled(ctx.kern, flat, ctx.seed, ctx.threshold, ctx.scale)
        return _out_of_order(out, ctx.order), None, None, None, None


def memory_order(x: Tensor) -> tuple[int, ...]:
    """The permutation of ``x``'s dimensions that makes it contiguous (outermost first), or
    the identity when no permutation does (an expanded or sliced view)."""
    order = tuple(sorted(range(x.dim()), key=lambda d: -x.stride(d)))
    if x.permute(order).is_contiguous():
        return order
    return tuple(range(x.dim()))


def _in_order(x: Tensor, order: tuple[int, ...]) -> Tensor:
    """``x`` permuted to ``order``, contiguous (a copy only when ``x`` is laid out otherwise)."""
    return x.permute(order).contiguous()


def _out_of_order(x: Tensor, order: tuple[int, ...]) -> Tensor:
    """Undo :func:`_in_order`'s permutation: the caller's dimensions, in ``x``'s layout."""
    inverse = sorted(range(len(order)), key=order.__getitem__)
    return x.permute(inverse)


def _apply_compiled(kern, flat: Tensor, seed: int, threshold: int, scale: Tensor) -> Tensor:
    """The compiled mask applied to a contiguous tensor, in its memory order."""
    out = torch.empty_like(flat)
    kern.dropout_apply(
        jit.view(flat).reshape(-1),
        jit.view(out).reshape(-1),
        seed,
        threshold,
        jit.view(scale)[()],
    )
    return out


def hash_bits(count: int, seed: int, device: torch.device | str = "cpu") -> Tensor:
    """``lowbias32(i * 0x9E3779B1 ^ seed)`` for ``i`` in ``0..count-1``, as int64 in [0, 2**32)."""
    x = _mul32(torch.arange(count, dtype=torch.int64, device=device) & _MASK32, _GOLDEN) ^ seed
    x ^= x >> 16
    x = _mul32(x, _LOWBIAS[0])
    x ^= x >> 15
    x = _mul32(x, _LOWBIAS[1])
    return x ^ (x >> 16)


def _mul32(x: Tensor, constant: int) -> Tensor:
    """``x * constant mod 2**32`` for ``x`` in [0, 2**32), without int64 overflow."""
    low, high = constant & 0xFFFF, constant >> 16
    return (x * low + (((x * high) & 0xFFFF) << 16)) & _MASK32
