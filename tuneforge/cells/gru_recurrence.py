"""A GRU recurrence with a hand-written backward, for the CPU.

torch runs the LSTM on oneDNN on the CPU but has no oneDNN GRU: its CPU GRU records a dozen
autograd nodes per step and trains about three times slower than its LSTM. This function computes
exactly torch's GRU (gate order ``r, z, n``; ``n = tanh(gi_n + r * (W_hn h + b_hn))``;
``h' = (1 - z) n + z h``) with the input projection done for the whole window beforehand, a
forward loop of a few in-place ops per step, a backward loop whose per-step work is one matmul
and a few products (every factor that does not depend on the incoming gradient is formed for
the whole window at once), and the recurrent-weight gradient as one matmul over all steps.
On the GPU the layers call cuDNN instead.

Where numba runs (see :mod:`tuneforge.cells.jit`), each step's element-wise work, forward and
backward, is one compiled call (:func:`tuneforge.cells.kernels.gru_step`) instead of half a
dozen torch ops, whose fixed cost per call dominates at these sizes; the products stay on
oneDNN. The torch loop below stays as the exact fallback.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tuneforge.cells import jit
from tuneforge.cells.step_matmul import linear, step_linear, window_matmul_tn


class _GRURecurrence(torch.autograd.Function):
    """GRU over a window, time-major: gi (T, B, 3H) -> h (T, B, H)."""

    @staticmethod
    def forward(ctx, kern, gi: Tensor, h0: Tensor, weight_hh: Tensor, bias_hh: Tensor) -> Tensor:
        # kern: the compiled kernels module, or None for the torch loop.
        ctx.kern = kern
        if kern is not None:
            return _compiled_forward(ctx, gi, h0.contiguous(), weight_hh, bias_hh)
        steps, batch, width = gi.shape
        hidden = h0.shape[1]
        acts = torch.empty_like(gi)  # r, z, n after their nonlinearities
        ghs = torch.empty_like(gi)  # W_hh h + b_hh; backward needs its n part, which r scales
        hs = gi.new_empty(steps, batch, hidden)
        step_hh = step_linear(weight_hh, bias_hh, batch)
        rz_part, n_part = slice(0, 2 * hidden), slice(2 * hidden, width)
        h = h0
        for t in range(steps):
            gh = ghs[t]
            gh.copy_(step_hh(h))  # (B, 3H)
            rz = torch.add(gi[t, :, rz_part], gh[:, rz_part], out=acts[t, :, rz_part]).sigmoid_()
            n = torch.addcmul(
                gi[t, :, n_part], rz[:, :hidden], gh[:, n_part], out=acts[t, :, n_part]
            )
            # h' = (1 - z) n + z h, one lerp from n towards h.
            h = torch.lerp(n.tanh_(), h, rz[:, hidden:], out=hs[t])
        ctx.save_for_backward(h0, weight_hh, acts, ghs[:, :, n_part], hs)
        return hs

    @staticmethod
    def backward(ctx, grad_hs: Tensor):
        if ctx.kern is not None:
            return _compiled_backward(ctx, grad_hs.contiguous())
        h0, weight_hh, acts, gh_n, hs = ctx.saved_tensors
        steps, batch, hidden = hs.shape
        r, z, n = acts.split(hidden, 2)
        h_prev = torch.cat([h0.unsqueeze(0), hs[:-1]])
        # Factors free of the incoming gradient, for the whole window in a few large ops.
        factor_z = (h_prev - n) * z * (1.0 - z)  # dh'/dz times sigmoid'
        factor_n = (1.0 - z) * (1.0 - n * n)  # dh'/dn times tanh'
        factor_r = gh_n * r * (1.0 - r)  # dn_pre/dr times sigmoid'
        grad_gh = torch.empty_like(acts)  # gradient of W_hh h + b_hh, (T, B, 3H)
        grad_gi_n = torch.empty_like(hs)  # of the candidate's input part
        grad_h = torch.zeros_like(h0)
        step_back = step_linear(weight_hh.t(), None, batch)
        for t in range(steps - 1, -1, -1):
            g = grad_h + grad_hs[t]
            g_n = torch.mul(g, factor_n[t], out=grad_gi_n[t])
            torch.mul(g_n, factor_r[t], out=grad_gh[t, :, :hidden])
            torch.mul(g, factor_z[t], out=grad_gh[t, :, hidden : 2 * hidden])
            torch.mul(g_n, r[t], out=grad_gh[t, :, 2 * hidden :])
            grad_h = step_back(grad_gh[t]).addcmul_(g, z[t])
        grad_gi = grad_gh.clone()
        grad_gi[:, :, 2 * hidden :] = grad_gi_n
        flat = grad_gh.reshape(steps * batch, -1)
        grad_weight = window_matmul_tn(flat, h_prev.reshape(steps * batch, hidden))
        return None, grad_gi, grad_h, grad_weight, flat.sum(0)


def _compiled_forward(ctx, gi: Tensor, h0: Tensor, weight_hh: Tensor, bias_hh: Tensor) -> Tensor:
    """The forward loop with each step's gates in one compiled call."""
    steps, batch, width = gi.shape
    hidden = h0.shape[1]
    gi = gi.contiguous()
    acts = torch.empty_like(gi)  # r, z, n after their nonlinearities
    ghs = torch.empty_like(gi)  # W_hh h + b_hh; backward needs its n part, which r scales
    hs = gi.new_empty(steps, batch, hidden)
    step_hh = step_linear(weight_hh, bias_hh, batch)
    gi_np, acts_np, ghs_np, hs_np = (jit.view(t) for t in (gi, acts, ghs, hs))
    h, h_np = h0, jit.view(h0)
    for t in range(steps):
        ghs[t].copy_(step_hh(h))  # (B, 3H)
        ctx.kern.gru_step(gi_np[t], ghs_np[t], h_np, acts_np[t], hs_np[t])
        h, h_np = hs[t], hs_np[t]
    ctx.save_for_backward(h0, weight_hh, acts, ghs[:, :, 2 * hidden :].contiguous(), hs)
    return hs


def _compiled_backward(ctx, grad_hs: Tensor):
    """The backward loop: per step one compiled call and the product with W_hh."""
    h0, weight_hh, acts, gh_n, hs = ctx.saved_tensors
    steps, batch, hidden = hs.shape
    h_prev = torch.cat([h0.unsqueeze(0), hs[:-1]])  # (T, B, H)
    grad_gh = torch.empty_like(acts)  # gradient of W_hh h + b_hh, (T, B, 3H)
    grad_gi = torch.empty_like(acts)
    carry = torch.zeros_like(h0)  # dL/dh through the later steps
    z_carry = torch.empty_like(h0)
    step_back = step_linear(weight_hh.t(), None, batch)
    arrays = [jit.view(t) for t in (acts, gh_n, h_prev, grad_hs, grad_gh, grad_gi)]
    acts_np, gh_n_np, h_prev_np, grad_hs_np, grad_gh_np, grad_gi_np = arrays
    z_carry_np, one = jit.view(z_carry), jit.one(hs)
    for t in range(steps - 1, -1, -1):
        ctx.kern.gru_step_back(
            acts_np[t], gh_n_np[t], h_prev_np[t], grad_hs_np[t], jit.view(carry),
            grad_gh_np[t], grad_gi_np[t], z_carry_np, one,
        )  # fmt: skip
        carry = step_back(grad_gh[t]).add_(z_carry)
    flat = grad_gh.reshape(steps * batch, -1)
    grad_weight = window_matmul_tn(flat, h_prev.reshape(steps * batch, hidden))
    return None, grad_gi, carry, grad_weight, flat.sum(0)


def gru_sequence(
    x: Tensor, h0: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor, bias_hh: Tensor
) -> tuple[Tensor, Tensor, str]:
    """torch's GRU over ``x`` (B, T, m) from ``h0`` (B, H).

    Returns (B, T, H), h_T (B, H) and the path that ran: ``"numba"`` or ``"torch"``.
    """
    batch, steps, width = x.shape
    x_tm = x.transpose(0, 1).reshape(steps * batch, width)  # time-major rows
    gi = linear(x_tm, weight_ih, bias_ih).view(steps, batch, -1)  # (T, B, 3H)
    kern = jit.kernels("kernels")
    if kern is not None and not jit.usable(gi, h0, weight_hh, bias_hh):
        kern = None
    hs = _GRURecurrence.apply(kern, gi, h0, weight_hh, bias_hh)
    return hs.transpose(0, 1), hs[-1], "torch" if kern is None else "numba"
