"""Mogrifier LSTM (Melis et al. 2019): input and state gate each other before each LSTM step.

Rounds ``k = 1..r`` run before every step: odd rounds ``x <- 2 sigmoid(Q_k h) * x``, even rounds
``h <- 2 sigmoid(R_k x) * h``, with low-rank ``Q_k = A_k B_k`` and ``R_k = C_k D_k`` (rank
``rank``); then a standard LSTM step (torch's gate order ``i, f, g, o``, one bias per gate,
forget bias ``forget_bias``) reads the mogrified ``x`` and ``h``. With ``rounds = 0`` it is
exactly an LSTM.

Speed: the low-rank factors are multiplied into full matrices once per window (one matmul per
round and step instead of two), and the whole window runs in a hand-written autograd function:
the forward loop keeps the gate values backward needs, the backward loop computes only data
gradients per step, and every weight gradient is one large matmul over all steps afterwards.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from tuneforge.cells.base import LayerState, RecurrentLayer
from tuneforge.errors import ConfigError


class _MogrifierRecurrence(torch.autograd.Function):
    """Mogrifier LSTM over a window, time-major; returns (h (T, B, n), c_T (B, n))."""

    @staticmethod
    def forward(ctx, xs, h0, c0, weight_ih, weight_hh, bias, *mats):
        steps, batch, _ = xs.shape
        n = h0.shape[1]
        rounds = len(mats)
        # Per round: the gated vector before the round and 2 sigmoid(.) (the gate), per step.
        befores, gates2 = [], []
        for k in range(rounds):
            size = xs.shape[2] if k % 2 == 0 else n
            befores.append(xs.new_empty(steps, batch, size))
            gates2.append(xs.new_empty(steps, batch, size))
        x_mog = xs.new_empty(xs.shape)
        h_mog = xs.new_empty(steps, batch, n)
        acts = xs.new_empty(steps, batch, 4 * n)  # i, f, g, o after their nonlinearities
        cs = xs.new_empty(steps, batch, n)
        tanh_cs = xs.new_empty(steps, batch, n)
        hs = xs.new_empty(steps, batch, n)
        mats_t = [m.t() for m in mats]
        ih_t, hh_t = weight_ih.t(), weight_hh.t()
        h, c = h0, c0
        for t in range(steps):
            x = xs[t]
            for k in range(rounds):
                # Odd rounds (k even here) gate x by h, even rounds gate h by x.
                if k % 2 == 0:
                    befores[k][t] = x
                    g2 = torch.mm(h, mats_t[k], out=gates2[k][t]).sigmoid_().mul_(2.0)
                    x = x * g2
                else:
                    befores[k][t] = h
                    g2 = torch.mm(x, mats_t[k], out=gates2[k][t]).sigmoid_().mul_(2.0)
                    h = h * g2
            x_mog[t] = x
            h_mog[t] = h
            a = torch.addmm(bias, x, ih_t, out=acts[t]).addmm_(h, hh_t)
            a[:, : 2 * n].sigmoid_()
            a[:, 2 * n : 3 * n].tanh_()
            a[:, 3 * n :].sigmoid_()
            i, f, g, o = a.chunk(4, 1)
            c = torch.addcmul(f * c, i, g, out=cs[t])
            h = torch.mul(o, torch.tanh(c, out=tanh_cs[t]), out=hs[t])
        ctx.rounds = rounds
        ctx.save_for_backward(
            h0, c0, weight_ih, weight_hh, x_mog, h_mog, acts, cs, tanh_cs, *mats, *befores, *gates2
        )
        return hs, cs[-1]

    @staticmethod
    def backward(ctx, grad_hs, grad_c_last):
        h0, c0, weight_ih, weight_hh, x_mog, h_mog, acts, cs, tanh_cs, *rest = ctx.saved_tensors
        rounds = ctx.rounds
        mats, befores, gates2 = rest[:rounds], rest[rounds : 2 * rounds], rest[2 * rounds :]
        steps, batch, n = grad_hs.shape
        grad_xs = torch.empty_like(x_mog)
        grad_acts = torch.empty_like(acts)  # gradients of the gate pre-activations
        grad_pre = [torch.empty_like(g) for g in gates2]  # of each round's gate pre-activation
        grad_h = torch.zeros_like(h0)
        grad_c = grad_c_last.clone()
        for t in range(steps - 1, -1, -1):
            grad_h = grad_h + grad_hs[t]
            i, f, g, o = acts[t].chunk(4, 1)
            tc = tanh_cs[t]
            c_prev = cs[t - 1] if t > 0 else c0
            grad_c = grad_c.addcmul_(grad_h * o, 1.0 - tc * tc)
            gi, gf, gg, go = grad_acts[t].chunk(4, 1)
            torch.mul(grad_c, g, out=gi).mul_(i * (1.0 - i))
            torch.mul(grad_c, c_prev, out=gf).mul_(f * (1.0 - f))
            torch.mul(grad_c, i, out=gg).mul_(1.0 - g * g)
            torch.mul(grad_h, tc, out=go).mul_(o * (1.0 - o))
            grad_c = grad_c * f
            grad_x = grad_acts[t] @ weight_ih
            grad_h = grad_acts[t] @ weight_hh
            for k in range(rounds - 1, -1, -1):
                g2, before = gates2[k][t], befores[k][t]
                # d(2 sigmoid(z))/dz = g2 (1 - g2 / 2); the round's output is before * g2.
                if k % 2 == 0:
                    gz = torch.mul(grad_x, before).mul_(g2 * (1.0 - 0.5 * g2))
                    grad_x = grad_x * g2
                    grad_h = grad_h.addmm_(gz, mats[k])
                else:
                    gz = torch.mul(grad_h, before).mul_(g2 * (1.0 - 0.5 * g2))
                    grad_h = grad_h * g2
                    grad_x = grad_x.addmm_(gz, mats[k])
                grad_pre[k][t] = gz
            grad_xs[t] = grad_x
        flat_acts = grad_acts.reshape(steps * batch, -1)
        grad_ih = flat_acts.t() @ x_mog.reshape(steps * batch, -1)
        grad_hh = flat_acts.t() @ h_mog.reshape(steps * batch, -1)
        grad_mats = []
        for k in range(rounds):
            # The gate of round k reads the other vector: h (k even) or x (k odd) at that round.
            source = _round_source(k, befores, x_mog, h_mog)
            flat_pre = grad_pre[k].reshape(steps * batch, -1)
            grad_mats.append(flat_pre.t() @ source.reshape(steps * batch, -1))
        return (grad_xs, grad_h, grad_c, grad_ih, grad_hh, flat_acts.sum(0), *grad_mats)


def _round_source(k: int, befores: list[Tensor], x_mog: Tensor, h_mog: Tensor) -> Tensor:
    """The vector that round ``k``'s gate reads, at every step (T, B, size)."""
    # Round k leaves the vector it reads unchanged; round k + 1 changes it and saved it before.
    if k + 1 < len(befores):
        return befores[k + 1]
    return x_mog if k % 2 == 1 else h_mog


class MogrifierLayer(RecurrentLayer):
    """Mogrifier LSTM layer.

    Args:
        input_size: m, features per input frame.
        hidden_size: n, LSTM units.
        rounds: rounds of mutual gating (0: a plain LSTM).
        rank: rank of each gating matrix.
        forget_bias: initial forget-gate bias.

    Shape:
        x: (B, T, m) -> (B, T, n); state: (h, c), each (B, n).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        rounds: int = 5,
        rank: int = 32,
        forget_bias: float = 1.0,
    ) -> None:
        super().__init__()
        if rounds < 0 or rank < 1:
            raise ConfigError(f"mogrifier needs rounds >= 0 and rank >= 1; got {rounds}, {rank}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.output_size = hidden_size
        self.forget_bias = forget_bias
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(4 * hidden_size))
        self.mog_up = nn.ParameterList()  # (out, rank): A_k or C_k
        self.mog_down = nn.ParameterList()  # (rank, in): B_k or D_k
        for k in range(rounds):
            gated, reader = (input_size, hidden_size) if k % 2 == 0 else (hidden_size, input_size)
            self.mog_up.append(nn.Parameter(torch.empty(gated, rank)))
            self.mog_down.append(nn.Parameter(torch.empty(rank, reader)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """LSTM weights uniform in +-1/sqrt(n), forget bias set; gating factors Xavier."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for param in (self.weight_ih, self.weight_hh, self.bias):
            nn.init.uniform_(param, -bound, bound)
        with torch.no_grad():
            n = self.hidden_size
            self.bias[n : 2 * n] = self.forget_bias
        for param in [*self.mog_up, *self.mog_down]:
            nn.init.xavier_uniform_(param)

    def initial_state(self, batch_size: int, like: Tensor) -> LayerState:
        """Zeros (h, c), each (B, n)."""
        h = like.new_zeros(batch_size, self.hidden_size)
        return (h, h.clone())

    def forward(self, x: Tensor, state: LayerState | None = None) -> tuple[Tensor, LayerState]:
        """Run over ``x`` (B, T, m) from ``state`` (h, c)."""
        batch = x.shape[0]
        h0, c0 = self.initial_state(batch, x) if state is None else state
        mats = [up @ down for up, down in zip(self.mog_up, self.mog_down, strict=True)]
        xs = x.transpose(0, 1).contiguous()  # (T, B, m)
        hs, c_last = _MogrifierRecurrence.apply(
            xs, h0, c0, self.weight_ih, self.weight_hh, self.bias, *mats
        )
        return hs.transpose(0, 1), (hs[-1], c_last)
