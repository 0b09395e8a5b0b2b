"""Residual Recurrent Unit (Zakovskis et al. 2021, "Gates are not what you need in RNNs").

With ``u = [x; h]``::

    a = ReLU(N(J u + b_J)),  N(v) = v / sqrt(mean(v^2) + 1e-6)    (RMS norm, no gain)
    a = ReLU(K_k a + b_k)    for each extra layer k
    d = dropout(a)
    c = W_c d + b_c          (size n)       o = W_o d + b_o   (the output, size p)
    h' = sigmoid(S) * h + Z * c

Initialisation as the paper: ``Z = 0`` (ReZero, so at first ``h' = sigmoid(S) * h``),
``sigmoid(S) ~ Uniform(0.01, 0.99)`` stored as ``s = logit(U) / 10`` and used as
``sigmoid(10 s)``, and ``h0`` zero except its first unit, ``0.25 sqrt(n)`` (a zero state would
be blown up by the normalisation). Middle width ``round(q (m + n))``.

Speed: ``J_x x`` runs for the whole window at once, and ``o`` after the loop, since neither is
recurrent; the per-step products run on oneDNN (:mod:`tuneforge.cells.step_matmul`). The
recurrence is a hand-written autograd function: the forward loop keeps what backward needs, the
backward loop computes only data gradients per step, and every weight gradient is one large
matmul over all steps afterwards. Where numba runs (:mod:`tuneforge.cells.jit`) and there are no
extra layers, the element-wise work around each step's two products (the RMS norm, ReLU,
dropout and state update forward; the norm's backward) is one compiled call each instead of
several torch ops; the torch loop stays as the exact fallback.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tuneforge.cells import jit
from tuneforge.cells.base import LayerState, RecurrentLayer
from tuneforge.cells.dropout_mask import dropout_mask
from tuneforge.cells.step_matmul import (
    linear,
    linear_forward,
    matmul_nt,
    step_linear,
    window_matmul_tn,
)
from tuneforge.errors import ConfigError

_EPS = 1e-6  # inside the RMS norm's square root
_S_SCALE = 10.0  # sigmoid(10 s): a larger effective learning rate for S, as the authors do


class _RRURecurrence(torch.autograd.Function):
    """The RRU over a window, from its input rows to its middle layer; returns
    (d (T, B, M), h (T, B, n)). ``x_tm`` (T B, m) holds the input time-major."""

    @staticmethod
    def forward(
        ctx, kern, steps, x_tm, weight_in, bias_in, h0, weight_c, bias_c, decay, rezero, mask,
        *extra,
    ):  # fmt: skip
        # kern: the compiled kernels module (only without extra layers), or None.
        batch, width = h0.shape
        m = x_tm.shape[1]
        weight_jx, weight_jh = weight_in[:, :m], weight_in[:, m:]
        # J_x x for the whole window; the loop adds J_h h and normalises in place.
        nrm = linear_forward(x_tm, weight_jx, bias_in).view(steps, batch, -1)
        middle = nrm.shape[2]
        num_extra = len(extra) // 2
        rms = nrm.new_empty(steps, batch, 1)
        cs = nrm.new_empty(steps, batch, width)
        hs = nrm.new_empty(steps, batch, width)
        step_jh = step_linear(weight_jh, None, batch)
        step_c = step_linear(weight_c, bias_c, batch)
        if kern is not None:
            acts = []  # backward reads ReLU's derivative off nrm
            ds = nrm.new_empty(steps, batch, middle)
            tensors = (nrm, h0.contiguous(), decay, rezero, mask, rms, ds, cs, hs)
            _compiled_forward_loop(kern, step_jh, step_c, *tensors)
        else:
            acts = [nrm.new_empty(steps, batch, middle) for _ in range(num_extra + 1)]
            ds = nrm.new_empty(steps, batch, middle) if mask is not None else acts[-1]
            tensors = (h0, decay, rezero, mask, nrm, rms, acts, ds, cs, hs)
            _torch_forward_loop(step_jh, step_c, extra, *tensors)
        ctx.kern = kern
        ctx.num_extra = num_extra
        ctx.has_mask = mask is not None
        ctx.save_for_backward(
            x_tm, h0, weight_in, weight_c, decay, rezero, mask, nrm, rms, ds, cs, hs, *acts,
            *extra,
        )  # fmt: skip
        return ds, hs

    @staticmethod
    def backward(ctx, grad_ds, grad_hs):
        x_tm, h0, weight_in, weight_c, decay, rezero, mask, nrm, rms, ds, cs, hs, *rest = (
            ctx.saved_tensors
        )
        steps, batch, middle = nrm.shape
        width = h0.shape[1]
        m = x_tm.shape[1]
        rows = steps * batch
        weight_jx, weight_jh = weight_in[:, :m], weight_in[:, m:]
        # Z folded into W_c, so that dL/dd = dL/dd_out + dL/dh' (Z W_c) is one matmul per step.
        weight_cz = weight_c * rezero[:, None]
        grad_h_all = torch.empty_like(hs)
        grad_pre = torch.empty_like(nrm)
        step_cz = step_linear(weight_cz.t(), None, batch)
        step_jh = step_linear(weight_jh.t(), None, batch)
        if ctx.kern is not None:
            grad_h = _compiled_backward_loop(
                ctx.kern, step_cz, step_jh, grad_ds, grad_hs, h0, decay, mask, nrm, rms,
                grad_h_all, grad_pre,
            )  # fmt: skip
            grads_extra = []
        else:
            grad_h, grads_extra = _torch_backward_loop(
                ctx, step_cz, step_jh, grad_ds, grad_hs, h0, decay, mask, nrm, rms, rest,
                grad_h_all, grad_pre,
            )  # fmt: skip
        h_prev = torch.cat([h0.unsqueeze(0), hs[:-1]]).view(rows, width)
        flat_pre = grad_pre.view(rows, middle)
        flat_grad_h = grad_h_all.view(rows, width)
        grad_c = flat_grad_h * rezero
        grad_x = None
        if ctx.needs_input_grad[2]:
            grad_x = matmul_nt(flat_pre, weight_jx.t().contiguous())
        return (
            None,
            None,
            grad_x,
            window_matmul_tn(flat_pre, torch.cat([x_tm, h_prev], 1)),  # J's, over [x; h]
            flat_pre.sum(0),
            grad_h,
            window_matmul_tn(grad_c, ds.view(rows, middle)),
            grad_c.sum(0),
            (flat_grad_h * h_prev).sum(0),
            (flat_grad_h * cs.view(rows, width)).sum(0),
            None,
            *grads_extra,
        )


def _torch_forward_loop(
    step_jh, step_c, extra, h0, decay, rezero, mask, nrm, rms, acts, ds, cs, hs
) -> None:
    """The forward loop in torch ops; ``nrm`` holds J_x x on entry and N on exit."""
    extra_t = [w.t() for w in extra[0::2]]
    h = h0
    for t in range(nrm.shape[0]):
        pre = nrm[t].add_(step_jh(h))
        r = torch.mean(pre.square(), 1, keepdim=True, out=rms[t]).add_(_EPS).rsqrt_()
        a = torch.clamp_min(pre.mul_(r), 0.0, out=acts[0][t])
        for k in range(len(extra_t)):
            a = torch.addmm(extra[2 * k + 1], a, extra_t[k], out=acts[k + 1][t]).relu_()
        d = torch.mul(a, mask[t], out=ds[t]) if mask is not None else a
        c = cs[t]
        c.copy_(step_c(d))
        h = torch.addcmul(h * decay, rezero, c, out=hs[t])


def _torch_backward_loop(
    ctx, step_cz, step_jh, grad_ds, grad_hs, h0, decay, mask, nrm, rms, rest, grad_h_all, grad_pre
):
    """The backward loop in torch ops; returns dL/dh0 and the extra layers' gradients."""
    num_extra = ctx.num_extra
    acts, extra = rest[: num_extra + 1], rest[num_extra + 1 :]
    steps, _, middle = nrm.shape
    # ReLU's derivative of each middle layer (the last one times the dropout mask).
    relu = [(a > 0).to(nrm.dtype) for a in acts]
    if mask is not None:
        relu[-1].mul_(mask)
    grad_z = [torch.empty_like(nrm) for _ in range(num_extra)]
    grad_h = torch.zeros_like(h0)
    for t in range(steps - 1, -1, -1):
        grad_h = torch.add(grad_h, grad_hs[t], out=grad_h_all[t])
        g = step_cz(grad_h).add_(grad_ds[t]).mul_(relu[-1][t])  # pre-ReLU
        for k in range(num_extra - 1, -1, -1):
            grad_z[k][t] = g
            g = (g @ extra[2 * k]).mul_(relu[k][t])
        n = nrm[t]
        # RMS norm backward: r * (g - N * mean(g * N)).
        proj = torch.mean(g * n, 1, keepdim=True)
        g = torch.addcmul(g, n, proj, value=-1.0, out=grad_pre[t]).mul_(rms[t])
        grad_h = step_jh(g).addcmul_(grad_h, decay)
    grads_extra = []
    for k in range(num_extra):
        flat_z = grad_z[k].reshape(-1, middle)
        grads_extra += [window_matmul_tn(flat_z, acts[k].reshape(-1, middle)), flat_z.sum(0)]
    return grad_h, grads_extra


def _compiled_forward_loop(kern, step_jh, step_c, nrm, h0, decay, rezero, mask, rms, ds, cs, hs):
    """The forward loop with the work around each step's two products compiled; ``nrm``
    holds J_x x on entry and N on exit."""
    steps, batch, _ = nrm.shape
    eps = jit.one(nrm) * _EPS
    # Without dropout a mask of ones keeps one kernel for both cases.
    masks = jit.view(mask) if mask is not None else [jit.view(torch.ones_like(nrm[0]))] * steps
    nrm_np, rms_np, ds_np, cs_np, hs_np = (jit.view(t) for t in (nrm, rms, ds, cs, hs))
    decay_np, rezero_np = jit.view(decay.contiguous()), jit.view(rezero.contiguous())
    h, h_np = h0, jit.view(h0)
    for t in range(steps):
        jh = step_jh(h)  # (B, M)
        kern.rru_norm_step(nrm_np[t], jit.view(jh), nrm_np[t], rms_np[t], masks[t], ds_np[t], eps)
        c = step_c(ds[t])  # (B, n)
        kern.rru_state_step(h_np, decay_np, rezero_np, jit.view(c), cs_np[t], hs_np[t])
        h, h_np = hs[t], hs_np[t]


def _compiled_backward_loop(
    kern, step_cz, step_jh, grad_ds, grad_hs, h0, decay, mask, nrm, rms, grad_h_all, grad_pre
):
    """The backward loop with the RMS norm's backward compiled; returns dL/dh0."""
    steps, batch, _ = nrm.shape
    grad_ds = grad_ds.contiguous()
    masks = jit.view(mask) if mask is not None else [jit.view(torch.ones_like(nrm[0]))] * steps
    grad_ds_np, nrm_np, rms_np, grad_pre_np = (jit.view(t) for t in (grad_ds, nrm, rms, grad_pre))
    grad_h = torch.zeros_like(h0)
    for t in range(steps - 1, -1, -1):
        grad_h = torch.add(grad_h, grad_hs[t], out=grad_h_all[t])
        m = step_cz(grad_h)
        kern.rru_norm_back(
            jit.view(m), grad_ds_np[t], nrm_np[t], masks[t], rms_np[t], grad_pre_np[t]
        )
        grad_h = step_jh(grad_pre[t]).addcmul_(grad_h, decay)
    return grad_h


class RRULayer(RecurrentLayer):
    """Residual Recurrent Unit layer.

    Args:
        input_size: m, features per input frame.
        hidden_size: n, units of the recurrent state.
        middle_multiplier: q; the middle layer has ``round(q (m + n))`` units.
        extra_layers: extra ReLU layers after the first middle layer.
        rru_dropout: dropout rate on the middle layer (training only).
        output_size: p, width of the output ``o``.

    Shape:
        x: (B, T, m) -> (B, T, p); state: (h,) with h (B, n).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        middle_multiplier: float = 2.0,
        extra_layers: int = 0,
        rru_dropout: float = 0.5,
        output_size: int = 64,
    ) -> None:
        super().__init__()
        middle = round(middle_multiplier * (input_size + hidden_size))
        if middle < 1 or extra_layers < 0 or output_size < 1 or not 0.0 <= rru_dropout < 1.0:
            raise ConfigError(
                "rru needs middle_multiplier > 0, extra_layers >= 0, output_size >= 1 and "
                f"0 <= rru_dropout < 1; got {middle_multiplier}, {extra_layers}, "
                f"{output_size}, {rru_dropout}"
            )
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.output_size = output_size
        self.middle_size = middle
        self.rru_dropout = rru_dropout
        self.last_path = ""  # "numba" or "torch": which loop the last forward ran
        self.weight_in = nn.Parameter(torch.empty(middle, input_size + hidden_size))  # J
        self.bias_in = nn.Parameter(torch.empty(middle))
        self.extra = nn.ModuleList(nn.Linear(middle, middle) for _ in range(extra_layers))
        self.weight_c = nn.Parameter(torch.empty(hidden_size, middle))
        self.bias_c = nn.Parameter(torch.empty(hidden_size))
        self.weight_o = nn.Parameter(torch.empty(output_size, middle))
        self.bias_o = nn.Parameter(torch.empty(output_size))
        self.s = nn.Parameter(torch.empty(hidden_size))  # sigmoid(10 s) is the decay sigma(S)
        self.z = nn.Parameter(torch.empty(hidden_size))  # ReZero scale of the candidate
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier weights, zero biases, ``Z = 0``, ``sigmoid(S) ~ Uniform(0.01, 0.99)``."""
        weights = [self.weight_in, self.weight_c, self.weight_o]
        weights += [layer.weight for layer in self.extra]
        for weight in weights:
            nn.init.xavier_uniform_(weight)
        biases = [self.bias_in, self.bias_c, self.bias_o, self.z]
        biases += [layer.bias for layer in self.extra]
        for bias in biases:
            nn.init.zeros_(bias)
        with torch.no_grad():
            if self.s.is_meta:
                return  # count_parameters: no values, and meta arithmetic is slow to set up
            self.s.uniform_(0.01, 0.99).logit_().div_(_S_SCALE)

    def decay(self) -> Tensor:
        """sigma(S), the per-unit share of the state kept at each step, (n,)."""
        return torch.sigmoid(_S_SCALE * self.s)

    def initial_state(self, batch_size: int, like: Tensor) -> LayerState:
        """Zeros except the first unit, ``0.25 sqrt(n)``."""
        h = like.new_zeros(batch_size, self.hidden_size)
        h[:, 0] = 0.25 * self.hidden_size**0.5
        return (h,)

    def forward(self, x: Tensor, state: LayerState | None = None) -> tuple[Tensor, LayerState]:
        """Run over ``x`` (B, T, m) from ``state`` (h,)."""
        batch, steps, _ = x.shape
        (h0,) = self.initial_state(batch, x) if state is None else state
        m = self.input_size
        x_tm = x.transpose(0, 1).reshape(-1, m)  # (T B, m), time-major
        mask = None
        if self.training and self.rru_dropout > 0:
            window = x.new_empty(steps, batch, self.middle_size)  # its shape, never its values
            mask = dropout_mask(window, 1.0 - self.rru_dropout)  # (T, B, M)
        extra = [p for layer in self.extra for p in (layer.weight, layer.bias)]
        weights = (self.weight_in, self.bias_in, self.weight_c, self.bias_c, self.s, self.z)
        kern = jit.kernels("kernels") if not extra else None
        if kern is not None and not jit.usable(x_tm, h0, *weights):
            kern = None
        self.last_path = "torch" if kern is None else "numba"
        ds, hs = _RRURecurrence.apply(
            kern, steps, x_tm, self.weight_in, self.bias_in, h0, self.weight_c, self.bias_c,
            self.decay(), self.z, mask, *extra,
        )  # fmt: skip
        out = linear(ds.reshape(-1, self.middle_size), self.weight_o, self.bias_o)
        return out.view(steps, batch, -1).transpose(0, 1), (hs[-1],)
