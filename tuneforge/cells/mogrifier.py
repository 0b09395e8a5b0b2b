"""Mogrifier LSTM (Melis et al. 2019): input and state gate each other before each LSTM step.

Rounds ``k = 1..r`` run before every step: odd rounds ``x <- 2 sigmoid(Q_k h) * x``, even rounds
``h <- 2 sigmoid(R_k x) * h``, with low-rank ``Q_k = A_k B_k`` and ``R_k = C_k D_k`` (rank
``rank``); then a standard LSTM step (torch's gate order ``i, f, g, o``, one bias per gate,
forget bias ``forget_bias``) reads the mogrified ``x`` and ``h``. With ``rounds = 0`` it is
exactly an LSTM.

Speed: on the torch path the low-rank factors are multiplied into full matrices once per
window (one matmul per round and step instead of two); the LSTM step's product runs on oneDNN
(:mod:`tuneforge.cells.step_matmul`), and the whole window runs in a hand-written autograd
function: the forward loop keeps the gate values backward needs, the backward loop computes
only data gradients per step, and every weight gradient is one large matmul over all steps.
Where numba runs (:mod:`tuneforge.cells.jit`), each step is two compiled calls around the LSTM
step's product, forward and backward: all the rounds in one (each round's low-rank matrix
applied as its two thin factors, ``rank (m + n)`` multiply-adds per row instead of ``m n``,
through numpy's BLAS on one thread; then its gate and gating), the LSTM step's element-wise
work in the other, instead of about thirty torch ops. The kernels keep each round's thin
(T, B, rank) products, so that the factors' gradients are two thin window products each, half
the multiply-adds of the full matrix's. The torch code, which applies the full products, stays
as the exact fallback.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from tuneforge.cells import jit
from tuneforge.cells.base import LayerState, RecurrentLayer
from tuneforge.cells.step_matmul import step_linear, window_matmul_tn
from tuneforge.errors import ConfigError


class _MogrifierRecurrence(torch.autograd.Function):
    """Mogrifier LSTM over a window, time-major; returns (h (T, B, n), c_T (B, n)).

    ``weight`` is ``[W_ih, W_hh]`` (4n, m + n): the LSTM step is one matmul on ``[x; h]``.
    """

    @staticmethod
    def forward(ctx, kern, xs, h0, c0, weight, bias, *factors):
        # kern: the compiled kernels module, or None for torch ops only; factors: the rounds'
        # factors, up_1, down_1, up_2, down_2, ...
        ctx.kern = kern
        steps, batch, m = xs.shape
        n = h0.shape[1]
        ups, downs = factors[0::2], factors[1::2]
        rounds = len(ups)
        # The torch path applies each round's full matrix; the kernels its two factors, keeping
        # each step's thin product (T, B, rank) for the factors' gradients.
        mats = [up @ down for up, down in zip(ups, downs, strict=True)] if kern is None else []
        thin = [xs.new_empty(steps, batch, up.shape[1]) for up in ups] if kern is not None else []
        xh = xs.new_empty(steps, batch, m + n)  # the mogrified [x; h] each LSTM step reads
        last_x = max((k for k in range(rounds) if k % 2 == 0), default=None)
        last_h = max((k for k in range(rounds) if k % 2 == 1), default=None)
        # Each round writes its output in place: the last round of each kind straight into xh.
        outs, gates2 = [], []
        for k in range(rounds):
            size = m if k % 2 == 0 else n
            if kern is not None:
                outs.append(xs.new_empty(steps, batch, size))  # the kernel copies into xh
            elif k == last_x:
                outs.append(xh[:, :, :m])
            elif k == last_h:
                outs.append(xh[:, :, m:])
            else:
                outs.append(xs.new_empty(steps, batch, size))
            gates2.append(xs.new_empty(steps, batch, size))  # 2 sigmoid(.) of round k
        acts = xs.new_empty(steps, batch, 4 * n)  # i, f, g, o after their nonlinearities
        cs = xs.new_empty(steps, batch, n)
        tanh_cs = xs.new_empty(steps, batch, n)
        hs = xs.new_empty(steps, batch, n)
        mats_t = [mat.t() for mat in mats]
        step_lstm = step_linear(weight, bias, batch)
        h, c = h0, c0
        if kern is not None:
            acts_np, cs_np, tcs_np, hs_np = (jit.view(t) for t in (acts, cs, tanh_cs, hs))
            c_np = jit.view(c0.contiguous())
            if rounds:
                gates2_np, outs_np = _views(gates2), _views(outs)
                xs_np, xh_np, h_np = jit.view(xs), jit.view(xh), jit.view(h0.contiguous())
                ups_t = _views(up.t().contiguous() for up in ups)
                downs_t = _views(down.t().contiguous() for down in downs)
                thin_np = _views(thin)
                one = jit.one(xs)
        for t in range(steps):
            if kern is not None:
                # The rounds, then the LSTM step: two compiled calls around one product.
                if rounds:
                    kern.mogrify_step(
                        t, xs_np, h_np, downs_t, ups_t, thin_np, gates2_np, outs_np, xh_np, one
                    )
                else:
                    xh[t, :, :m], xh[t, :, m:] = xs[t], h
                pre = step_lstm(xh[t])  # (B, 4n)
                kern.lstm_cell_step(jit.view(pre), acts_np[t], c_np, cs_np[t], tcs_np[t], hs_np[t])
                h, c_np, h_np = hs[t], cs_np[t], hs_np[t]
                continue
            x = xs[t]
            for k in range(rounds):
                # Odd rounds (k even here) gate x by h, even rounds gate h by x.
                if k % 2 == 0:
                    g2 = torch.mm(h, mats_t[k], out=gates2[k][t]).sigmoid_().mul_(2.0)
                    x = torch.mul(x, g2, out=outs[k][t])
                else:
                    g2 = torch.mm(x, mats_t[k], out=gates2[k][t]).sigmoid_().mul_(2.0)
                    h = torch.mul(h, g2, out=outs[k][t])
            if last_x is None:
                xh[t, :, :m] = x
            if last_h is None:
                xh[t, :, m:] = h
            a = acts[t]
            a.copy_(step_lstm(xh[t]))
            a[:, : 2 * n].sigmoid_()
            a[:, 2 * n : 3 * n].tanh_()
            a[:, 3 * n :].sigmoid_()
            i, f, g, o = a.chunk(4, 1)
            c = torch.addcmul(f * c, i, g, out=cs[t])
            h = torch.mul(o, torch.tanh(c, out=tanh_cs[t]), out=hs[t])
        ctx.rounds = rounds
        ctx.save_for_backward(
            xs, h0, c0, weight, xh, acts, cs, tanh_cs, hs, *factors, *outs, *gates2, *mats, *thin
        )
        return hs, cs[-1]

    @staticmethod
    def backward(ctx, grad_hs, grad_c_last):
        xs, h0, c0, weight, xh, acts, cs, tanh_cs, hs, *rest = ctx.saved_tensors
        rounds = ctx.rounds
        factors, rest = rest[: 2 * rounds], rest[2 * rounds :]
        ups, downs = factors[0::2], factors[1::2]
        outs, gates2, rest = rest[:rounds], rest[rounds : 2 * rounds], rest[2 * rounds :]
        mats, thin = (rest, []) if ctx.kern is None else ([], rest)
        steps, batch, m = xs.shape
        n = h0.shape[1]
        h_prev = torch.cat([h0.unsqueeze(0), hs[:-1]])
        c_prev = torch.cat([c0.unsqueeze(0), cs[:-1]])
        # Factors free of the incoming gradient, formed for the whole window at once.
        i, f, g, o = acts.chunk(4, 2)
        if ctx.kern is None:
            factor_c = o * (1.0 - tanh_cs * tanh_cs)  # dh'/dc'
            factor_ifg = torch.cat(
                [g * i * (1.0 - i), c_prev * f * (1.0 - f), i * (1.0 - g * g)], 2
            ).view(steps, batch, 3, n)
            factor_o = tanh_cs * o * (1.0 - o)
        factor_rounds = []
        for k in range(rounds if ctx.kern is None else 0):  # the kernel forms them per step
            before = outs[k - 2] if k >= 2 else (xs if k == 0 else h_prev)
            # Round output = before * 2 sigmoid(z); d(2 sigmoid(z))/dz = g2 (1 - g2 / 2).
            factor_rounds.append(before * gates2[k] * (1.0 - 0.5 * gates2[k]))
        grad_xs = torch.empty_like(xs)
        grad_acts = torch.empty_like(acts)  # gradients of the gate pre-activations
        grad_pre = [torch.empty_like(g2) for g2 in gates2]  # of each round's gate input
        grad_h = torch.zeros_like(h0)
        grad_c = grad_c_last.clone()
        step_back = step_linear(weight.t(), None, batch)
        if ctx.kern is not None:
            grad_c = grad_c.contiguous()
            views = [jit.view(t) for t in (acts, tanh_cs, c_prev, grad_acts)]
            grad_c_np, one = jit.view(grad_c), jit.one(hs)
            grad_h_np = jit.view(grad_h)
            gates2_np, outs_np, grad_pre_np = _views(gates2), _views(outs), _views(grad_pre)
            ups_np = _views(up.contiguous() for up in ups)
            downs_np = _views(down.contiguous() for down in downs)
            grad_thin = [torch.empty_like(r) for r in thin]  # dL/d(thin product), per round
            grad_thin_np = _views(grad_thin)
            xs_np, grad_xs_np, h_prev_np = jit.view(xs), jit.view(grad_xs), jit.view(h_prev)
            tmp_x, tmp_h = xs.new_empty(batch, m), h0.new_empty(batch, n)
            tmp_np = (jit.view(tmp_x), jit.view(tmp_h))
        for t in range(steps - 1, -1, -1):
            if ctx.kern is not None and rounds:
                # grad_h (dL/dh of the step's output, then of its input state) and grad_c are
                # updated in place.
                grad_h.add_(grad_hs[t])
                acts_t, tcs_t, c_prev_t, grad_acts_t = (v[t] for v in views)
                ctx.kern.lstm_cell_step_back(
                    acts_t, tcs_t, c_prev_t, grad_h_np, grad_c_np, grad_acts_t, one
                )
                grad_xh = step_back(grad_acts[t])  # (B, m + n)
                ctx.kern.mogrify_step_back(
                    t, jit.view(grad_xh), grad_xs_np, grad_h_np, xs_np, h_prev_np[t], ups_np,
                    downs_np, gates2_np, outs_np, grad_pre_np, grad_thin_np, *tmp_np, one,
                )  # fmt: skip
                continue
            grad_h = grad_h + grad_hs[t]
            if ctx.kern is not None:
                # grad_c is updated in place to dL/dc of the previous step.
                acts_t, tcs_t, c_prev_t, grad_acts_t = (v[t] for v in views)
                ctx.kern.lstm_cell_step_back(
                    acts_t, tcs_t, c_prev_t, jit.view(grad_h), grad_c_np, grad_acts_t, one
                )
            else:
                grad_c = grad_c.addcmul_(grad_h, factor_c[t])
                ifg = grad_acts[t, :, : 3 * n].view(batch, 3, n)
                torch.mul(grad_c.unsqueeze(1), factor_ifg[t], out=ifg)
                torch.mul(grad_h, factor_o[t], out=grad_acts[t, :, 3 * n :])
                grad_c = grad_c * f[t]
            grad_xh = step_back(grad_acts[t])  # (B, m + n)
            grad_x, grad_h = grad_xh[:, :m], grad_xh[:, m:]
            for k in range(rounds - 1, -1, -1):
                if k % 2 == 0:
                    gz = torch.mul(grad_x, factor_rounds[k][t], out=grad_pre[k][t])
                    grad_x = grad_x * gates2[k][t]
                    grad_h = grad_h.addmm_(gz, mats[k])
                else:
                    gz = torch.mul(grad_h, factor_rounds[k][t], out=grad_pre[k][t])
                    grad_h = grad_h * gates2[k][t]
                    grad_x = grad_x.addmm_(gz, mats[k])
            grad_xs[t] = grad_x
        if ctx.kern is not None and rounds:
            grad_h = grad_h.clone()  # the buffer the kernel wrote into is returned as a gradient
        rows = steps * batch
        flat_acts = grad_acts.view(rows, 4 * n)
        grad_weight = window_matmul_tn(flat_acts, xh.view(rows, m + n))
        grad_factors = []
        for k in range(rounds):
            # Round k's gate reads the other vector as the previous round left it:
            # z = source Q^T with Q = up down.
            source = (outs[k - 1] if k >= 1 else h_prev).reshape(rows, -1)
            grad_z = grad_pre[k].view(rows, -1)
            if ctx.kern is None:
                grad_mat = window_matmul_tn(grad_z, source)  # (size, other)
                grad_factors += [grad_mat @ downs[k].t(), ups[k].t() @ grad_mat]
            else:
                # From the thin products both loops kept: source down^T forward, grad_z up
                # backward; half the multiply-adds of the full matrix's gradient.
                rank = ups[k].shape[1]
                grad_factors += [
                    window_matmul_tn(grad_z, thin[k].view(rows, rank)),
                    window_matmul_tn(grad_thin[k].view(rows, rank), source),
                ]
        return (None, grad_xs, grad_h, grad_c, grad_weight, flat_acts.sum(0), *grad_factors)


def _views(tensors) -> tuple:
    """numpy views of contiguous tensors, as the kernels take a round's arrays: a tuple."""
    return tuple(jit.view(t) for t in tensors)


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
        self.last_path = ""  # "numba" or "torch": which loop the last forward ran
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
        xs = x.transpose(0, 1).contiguous()  # (T, B, m)
        weight = torch.cat([self.weight_ih, self.weight_hh], 1)  # (4n, m + n)
        kern = jit.kernels("kernels")
        if kern is not None and not jit.usable(xs, h0, c0, weight, self.bias):
            kern = None
        self.last_path = "torch" if kern is None else "numba"
        factors = [p for pair in zip(self.mog_up, self.mog_down, strict=True) for p in pair]
        hs, c_last = _MogrifierRecurrence.apply(kern, xs, h0, c0, weight, self.bias, *factors)
        return hs.transpose(0, 1), (hs[-1], c_last)
