"""The note axis: a recurrent layer that scans the pitches of a step from low to high.

At pitch ``p`` it reads a context (what the time part of the model knows about this step, the
same for every pitch or one per pitch), a learned embedding of the pitch (optional: a model that
must stay transposition-equivariant leaves it out) and whether pitch ``p - 1`` sounds
(teacher-forced in training, drawn in sampling). It outputs ``P(pitch p sounds | pitches below,
the past)`` and, with articulation, ``P(p is struck again | it sounds and sounded before, the
pitches up to p, the past)``. The product of the play conditionals is the exact probability of
the frame's play bits (the family of RNN-NADE and LSTM-NADE, Boulanger-Lewandowski et al. 2012;
Johnson 2017's note axis); articulation bits are never fed back, so the play term stays the
exact marginal that the per-frame NLL protocol scores, and the articulation term is a separate,
exact conditional on top of it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tuneforge.cells import build_stack
from tuneforge.cells.dropout_mask import Dropout
from tuneforge.models.base import Drawer
from tuneforge.models.frames import FrameLogLik


class NoteAxis(nn.Module):
    """Scan of the pitches of each step; exact autoregressive likelihood of a frame.

    Shape:
        context: (N, C) shared by all pitches or (N, P, C) one per pitch;
        targets, held: (N, P) float 0/1; returns logits (N, P) each.
    """

    def __init__(
        self,
        *,
        context_size: int,
        num_pitches: int,
        cell: str,
        hidden_size: int,
        num_layers: int,
        dropout: float,
        cell_options: dict[str, Any],
        articulation: bool,
        pitch_embedding_size: int,
        context_projection: int = 0,
    ) -> None:
        super().__init__()
        self.num_pitches = num_pitches
        # A context shared by all pitches is projected once to a few features: the scan then
        # reads a short input at every pitch instead of the whole stack output 88 times.
        self.project = nn.Linear(context_size, context_projection) if context_projection else None
        if context_projection:
            context_size = context_projection
        self.articulation = articulation
        self.values = 2 if articulation else 1  # logits per pitch: play (and articulation)
        self.pitch_embedding = (
            nn.Parameter(torch.randn(num_pitches, pitch_embedding_size) * 0.1)
            if pitch_embedding_size
            else None
        )
        input_size = context_size + pitch_embedding_size + 1  # + whether the pitch below sounds
        self.rnn = build_stack(
            cell,
            input_size=input_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout,
            **cell_options,
        )
        self.dropout = Dropout(dropout)
        self.out = nn.Linear(self.rnn.output_size, self.values)

    def _base(self, context: Tensor) -> Tensor:
        """(N, P, C + E): the part of every pitch's input that the scan does not choose."""
        if self.project is not None:
            context = self.project(context)
        if context.dim() == 2:
            context = context[:, None].expand(-1, self.num_pitches, -1)
        if self.pitch_embedding is None:
            return context
        embedding = self.pitch_embedding[None].expand(context.shape[0], -1, -1)
        return torch.cat([context, embedding.to(context.dtype)], dim=-1)

    def logits(self, context: Tensor, targets: Tensor) -> tuple[Tensor, Tensor | None]:
        """Teacher-forced logits of every pitch: ``(play, articulation or None)``, (N, P)."""
        below = F.pad(targets, (1, 0))[:, :-1, None]  # (N, P, 1): whether pitch p - 1 sounds
        x = torch.cat([self._base(context), below.to(context.dtype)], dim=-1)
        hidden, _ = self.rnn(x)  # (N, P, H)
        out = self.out(self.dropout(hidden)).float()  # (N, P, V)
        return out[..., 0], (out[..., 1] if self.articulation else None)

    def scan(
        self,
        context: Tensor,
        previous: Tensor,
        drawer: Drawer,
        direct: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Draw a frame pitch by pitch: ``(play, onsets)``, (N, P) bool.

        ``previous`` (N, P) bool is the frame before; ``direct`` (N, P) is added to the play
        logits (a head that also reads the context directly). LSTM-family note axes on the CPU
        run the compiled scan of :mod:`tuneforge.models.scan_kernel`; others (and
        ``TUNEFORGE_NO_NUMBA=1``) this loop over the pitches, which draws the same.
        """
        base = self._base(context)  # (N, P, C + E)
        previous = previous.cpu()
        if _compiled_scan_applies(self, base, drawer):
            return self._compiled_scan(base, previous, drawer, direct)
        self.last_scan = "torch"
        num_rows = base.shape[0]
        play = torch.zeros(num_rows, self.num_pitches, dtype=torch.bool)
        onsets = torch.zeros_like(play)
        value = base.new_zeros(num_rows, 1, 1)
        state = None
        for pitch in range(self.num_pitches):
            x = torch.cat([base[:, pitch : pitch + 1], value], dim=-1)  # (N, 1, in)
            hidden, state = self.rnn(x, state)
            out = self.out(hidden[:, 0]).float()  # (N, V)
            play_logit = out[:, 0] if direct is None else out[:, 0] + direct[:, pitch].float()
            sounds = drawer.draw_pitch(pitch, play_logit.cpu())  # (N,) bool
            struck = sounds & ~previous[:, pitch]
            if self.articulation:
                held = sounds & previous[:, pitch]
                struck = struck | drawer.draw_articulation(pitch, out[:, 1].cpu(), held)
            play[:, pitch], onsets[:, pitch] = sounds, struck
            value = sounds.to(base.device, base.dtype)[:, None, None]
        return play, onsets

    def _compiled_scan(self, base, previous, drawer, direct) -> tuple[Tensor, Tensor]:
        from tuneforge.cells.jit import launch, view

        self.last_scan = "compiled"
        plan = drawer.scan_plan()
        layers = [layer.kernel_weights() for layer in self.rnn.layers]
        weight_ih, weight_hh, bias_ih, bias_hh = layers[0]
        base_gates = torch.addmm(
            bias_ih + bias_hh, base.reshape(-1, base.shape[-1]), weight_ih[:, :-1].t()
        ).reshape(base.shape[0], base.shape[1], -1)
        width = weight_hh.shape[1]
        rest = layers[1:]
        rest_ih = torch.stack([w[0] for w in rest]) if rest else base.new_zeros(0, 4 * width, width)
        rest_hh = torch.stack([w[1] for w in rest]) if rest else base.new_zeros(0, 4 * width, width)
        rest_bias = (
            torch.stack([w[2] + w[3] for w in rest]) if rest else base.new_zeros(0, 4 * width)
        )
        rows, pitches = base.shape[0], self.num_pitches
        direct = base.new_zeros(rows, pitches) if direct is None else direct.float()
        out = {
            name: torch.zeros(rows, pitches, dtype=dtype)
            for name, dtype in (
                ("play_logits", torch.float32),
                ("play", torch.bool),
                ("probs", torch.float32),
                ("articulation_logits", torch.float32),
                ("held", torch.bool),
                ("struck", torch.bool),
                ("onsets", torch.bool),
            )
        }
        row_arrays = [
            base_gates.contiguous(),
            direct.contiguous(),
            plan.uniform,
            plan.articulation_uniform,
            plan.fixed,
            plan.fixed_value,
            previous.contiguous(),
        ]
        outputs = list(out.values())
        shared_weights = [
            weight_ih[:, -1].contiguous(),
            weight_hh.contiguous(),
            rest_ih.contiguous(),
            rest_hh.contiguous(),
            rest_bias.contiguous(),
            self.out.weight.contiguous(),
            self.out.bias.contiguous(),
        ]
        kernel = _kernel_module().scan_lstm
        arrays = [view(t) for t in row_arrays + outputs]
        weights = [view(t) for t in shared_weights]

        def run(gates, direct_, uniform, art_uniform, fixed, fixed_value, prev, *outs):
            kernel(
                gates,
                weights[0],
                weights[1],
                weights[2],
                weights[3],
                weights[4],
                weights[5],
                weights[6],
                direct_,
                uniform,
                art_uniform,
                view(plan.allowed),
                plan.inverse_temperature,
                plan.max_polyphony,
                fixed,
                fixed_value,
                prev,
                self.articulation,
                *outs,
            )

        with torch.no_grad():
            launch(run, arrays)
        drawer.record_scan(
            out["play_logits"],
            out["play"],
            out["probs"],
            out["articulation_logits"],
            out["held"],
            out["struck"],
        )
        return out["play"], out["onsets"]


_KERNEL: list = []


def _kernel_module():
    """tuneforge.models.scan_kernel (numba), or None when it cannot be had."""
    if not _KERNEL:
        try:
            from tuneforge.models import scan_kernel
        except ImportError:
            scan_kernel = None
        _KERNEL.append(scan_kernel)
    return _KERNEL[0]


def _compiled_scan_applies(axis: NoteAxis, base: Tensor, drawer: Drawer) -> bool:
    from tuneforge.cells.fused import FusedLayer
    from tuneforge.cells.jit import disabled_by_env

    return (
        not disabled_by_env()
        and not axis.training
        and base.device.type == "cpu"
        and base.dtype == torch.float32
        and hasattr(drawer, "scan_plan")
        and all(isinstance(layer, FusedLayer) and layer.mode == "lstm" for layer in axis.rnn.layers)
        and _kernel_module() is not None
    )


def bernoulli_log_likelihood(logits: Tensor, values: Tensor, weights: Tensor | None = None):
    """Sum over the last axis of log Bernoulli(values | sigmoid(logits)), optionally weighted.

    Shape:
        logits, values, weights: (..., P) -> (...).
    """
    terms = -F.binary_cross_entropy_with_logits(logits.float(), values.float(), reduction="none")
    if weights is not None:
        terms = terms * weights
    return terms.sum(-1)


def scan_log_likelihood(play_logits: Tensor, art_logits: Tensor | None, batch) -> FrameLogLik:
    """The two terms of a scanned frame's log-likelihood from its teacher-forced logits
    (B, T, P) each (``art_logits`` None: a model without articulation)."""
    play = bernoulli_log_likelihood(play_logits, batch.targets)
    if art_logits is None:
        return FrameLogLik(play, torch.zeros_like(play))
    weights = articulation_weights(batch.inputs, batch.targets, batch.onsets_known)
    return FrameLogLik(play, bernoulli_log_likelihood(art_logits, batch.target_onsets, weights))


def articulation_weights(inputs: Tensor, targets: Tensor, onsets_known: Tensor) -> Tensor:
    """Where the articulation bit is uncertain: a note sounding in both frames, in a row whose
    onsets are known. Shape: (B, T, P) float."""
    return inputs * targets * onsets_known.to(targets.dtype)[:, None, None]


def mode_drawer(num_pitches: int):
    """A drawer that takes the likelier value of every choice (greedy decoding).

    Frame accuracy of a model that scans the pitches uses it: each pitch is predicted on when
    it is likelier than not given the predictions below it.
    """
    from tuneforge.drawer import StepDrawer

    return StepDrawer(allowed=torch.ones(num_pitches, dtype=torch.bool), mode=True)
