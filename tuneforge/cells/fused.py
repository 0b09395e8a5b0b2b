"""rnn, lstm, gru and their diagonal and gate variants, all on torch's fused recurrent kernels.

Each cell is the full cell's kernel (``torch._VF.rnn_tanh``, ``lstm``, ``gru``: oneDNN on CPU,
cuDNN on GPU; on the CPU, where torch has no oneDNN GRU, the GRU family runs the hand-written
recurrence of :mod:`tuneforge.cells.gru_recurrence` instead) with weights assembled at every
call from the cell's free parameters. A variant is a structure imposed on those weights, block
by block (one block per gate):

- ``f`` full: a free parameter;
- ``d`` diagonal: a free vector ``u`` placed on the block's diagonal (``U h -> u * h``);
- ``z`` zero: a constant zero, not a parameter.

Since only the free blocks are parameters, the structure holds by construction under any
optimizer, and parameter counts, gradients and checkpoints are those of the variant. The
kernels' redundant second bias (``b_hh``) is not a parameter either, except the GRU's candidate
bias ``b_hn``, which torch multiplies by the reset gate and which is therefore free.

Gate orders are torch's: LSTM ``i, f, g, o``; GRU ``r, z, n``. The GRU uses the torch/cuDNN
ordering ``n = tanh(W_n x + b_n + r * (U_n h + b_hn))`` and update ``h' = (1 - z) n + z h``
(``z`` plays the role of ``1 - z`` in ``docs/cells.md``: a relabelling, same family). The
diagonal GRU has no ``b_hn``, so ``r * (u_n * h) = u_n * (r * h)``: both orderings coincide.

The diagonal cells have no matrix product in their recurrence, so on the CPU they skip the
kernels and run :mod:`tuneforge.cells.diagonal` (one input product, then a compiled element-wise
recurrence), with the fused kernel as the exact fallback; ``last_path`` says which one ran.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from tuneforge.cells.base import LayerState, RecurrentLayer
from tuneforge.cells.diagonal import diagonal_sequence
from tuneforge.cells.gru_recurrence import gru_sequence

_KERNELS: dict[str, Callable] = {
    "rnn": torch._VF.rnn_tanh,
    "lstm": torch._VF.lstm,
    "gru": torch._VF.gru,
}
_GATES = {"rnn": "h", "lstm": "ifgo", "gru": "rzn"}
# The kernel's four weights, in the order it takes them.
_MATRICES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


class FusedLayer(RecurrentLayer):
    """One layer run by a fused torch kernel with weights assembled from free blocks.

    Subclasses set ``mode`` (``"rnn"``, ``"lstm"`` or ``"gru"``), ``structure`` (one letter
    per gate for each of ``weight_ih, weight_hh, bias_ih, bias_hh``), and ``init``
    (``"torch"``: uniform in +-1/sqrt(hidden) as nn.LSTM; ``"xavier"``: Xavier-uniform weights
    and zero biases, as the diagonal-RNN paper).

    Shape:
        x: (B, T, input_size) -> (B, T, hidden_size); state: (h,) or (h, c), each (B, hidden).
    """

    mode: str = "rnn"
    structure: tuple[str, str, str, str] = ("f", "f", "f", "z")
    init: str = "torch"
    # "diagonal": the cell has the compiled element-wise recurrence of :mod:`.diagonal`.
    fast_path: str | None = None

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 1.0) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.output_size = hidden_size
        self.forget_bias = forget_bias
        # Which implementation the last forward ran: "numba" (compiled), "fused" (torch's
        # kernel) or "torch" (the GRU's hand-written torch loop on the CPU).
        self.last_path = ""
        gates = _GATES[self.mode]
        # Per matrix: runs of equal letters, (kind, first gate, end gate, parameter name).
        self._runs: dict[str, list[tuple[str, int, int, str]]] = {}
        for matrix, letters in zip(_MATRICES, self.structure, strict=True):
            runs = []
            start = 0
            for end in range(1, len(letters) + 1):
                if end == len(letters) or letters[end] != letters[start]:
                    kind = letters[start]
                    name = self._param_name(matrix, kind, gates[start:end], len(letters))
                    runs.append((kind, start, end, name))
                    if kind != "z":
                        self.register_parameter(
                            name,
                            nn.Parameter(torch.empty(self._run_shape(matrix, kind, end - start))),
                        )
                    start = end
            self._runs[matrix] = runs
        self.reset_parameters()

    @staticmethod
    def _param_name(matrix: str, kind: str, gates: str, num_gates: int) -> str:
        stem = matrix.replace("weight_hh", "diag_hh") if kind == "d" else matrix
        return stem if len(gates) == num_gates else f"{stem}_{gates}"

    def _run_shape(self, matrix: str, kind: str, num_gates: int) -> tuple[int, ...]:
        if kind == "d":
            return (num_gates, self.hidden_size)
        rows = num_gates * self.hidden_size
        if matrix == "weight_ih":
            return (rows, self.input_size)
        if matrix == "weight_hh":
            return (rows, self.hidden_size)
        return (rows,)

    def reset_parameters(self) -> None:
        """Initialise the free blocks (torch's or Xavier's scheme, forget-gate bias)."""
        hidden = self.hidden_size
        for matrix, runs in self._runs.items():
            for kind, start, end, name in runs:
                if kind == "z":
                    continue
                param = getattr(self, name)
                if self.init == "torch":
                    bound = 1.0 / math.sqrt(hidden)
                elif matrix.startswith("bias"):
                    bound = 0.0
                else:
                    # Xavier for one gate's (hidden, fan_in) block; a diagonal is a (n, n) matrix.
                    fan_in = self.input_size if matrix == "weight_ih" else hidden
                    bound = math.sqrt(6.0 / (fan_in + hidden))
                with torch.no_grad():
                    param.uniform_(-bound, bound)
                    if self.mode == "lstm" and matrix == "bias_ih" and start <= 1 < end:
                        # The forget gate (index 1) starts open so memories survive early training.
                        param[(1 - start) * hidden : (2 - start) * hidden] = self.forget_bias

    def _assemble(self, matrix: str, like: Tensor) -> Tensor:
        """The kernel's dense ``matrix`` built from this layer's blocks."""
        hidden = self.hidden_size
        pieces = []
        for kind, start, end, name in self._runs[matrix]:
            if kind == "f":
                pieces.append(getattr(self, name))
            elif kind == "d":
                pieces.append(torch.diag_embed(getattr(self, name)).reshape(-1, hidden))
            else:
                shape = self._run_shape(matrix, "f", end - start)
                pieces.append(like.new_zeros(shape))
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces)

    def kernel_weights(self) -> list[Tensor]:
        """``[weight_ih, weight_hh, bias_ih, bias_hh]`` as the torch kernel expects them."""
        like = next(iter(self.parameters()))
        weights = [self._assemble(matrix, like) for matrix in _MATRICES]
        if like.is_cuda:
            # cuDNN wants all weights in one contiguous buffer; otherwise it copies and warns.
            flat = torch.cat([w.reshape(-1) for w in weights])
            chunks = flat.split([w.numel() for w in weights])
            weights = [c.view_as(w) for c, w in zip(chunks, weights, strict=True)]
        return weights

    def initial_state(self, batch_size: int, like: Tensor) -> LayerState:
        """Zeros: (h,) or, for the LSTM kernel, (h, c); each (B, hidden)."""
        zeros = like.new_zeros(batch_size, self.hidden_size)
        return (zeros, zeros.clone()) if self.mode == "lstm" else (zeros,)

    def forward(self, x: Tensor, state: LayerState | None = None) -> tuple[Tensor, LayerState]:
        """Run the fused kernel over ``x`` (B, T, input) from ``state``."""
        if state is None:
            state = self.initial_state(x.shape[0], x)
        if self.fast_path == "diagonal":
            result = diagonal_sequence(
                self.mode, x, state, self.weight_ih, self.diag_hh, self.bias_ih
            )
            if result is not None:
                self.last_path = "numba"
                return result
        weights = self.kernel_weights()
        kernel = _KERNELS[self.mode]
        if self.mode == "lstm":
            self.last_path = "fused"
            hx = (state[0].unsqueeze(0), state[1].unsqueeze(0))  # (1, B, H) each
            y, h, c = kernel(x, hx, weights, True, 1, 0.0, self.training, False, True)
            return y, (h.squeeze(0), c.squeeze(0))
        if self.mode == "gru" and x.device.type == "cpu":
            # torch has no oneDNN GRU; this hand-written recurrence is much faster on the CPU.
            y, h, path = gru_sequence(x, state[0], *weights)
            self.last_path = path
            return y, (h,)
        self.last_path = "fused"
        y, h = kernel(x, state[0].unsqueeze(0), weights, True, 1, 0.0, self.training, False, True)
        return y, (h.squeeze(0),)


class RNNLayer(FusedLayer):
    """Elman RNN: ``h' = tanh(W x + U h + b)``."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)


class LSTMLayer(FusedLayer):
    """LSTM (torch's equations) with one bias per gate, forget bias ``forget_bias``."""

    mode = "lstm"
    structure = ("ffff", "ffff", "ffff", "zzzz")


class GRULayer(FusedLayer):
    """GRU, torch/cuDNN ordering: ``n = tanh(W_n x + b_n + r * (U_n h + b_hn))``."""

    mode = "gru"
    structure = ("fff", "fff", "fff", "zzf")

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)


class DiagRNNLayer(RNNLayer):
    """Elman RNN with a diagonal recurrent matrix: ``h' = tanh(W x + u * h + b)``."""

    structure = ("f", "d", "f", "z")
    init = "xavier"
    fast_path = "diagonal"


class DiagLSTMLayer(LSTMLayer):
    """LSTM whose four recurrent matrices are diagonal: ``U_k h -> u_k * h``."""

    structure = ("ffff", "dddd", "ffff", "zzzz")
    init = "xavier"
    fast_path = "diagonal"


class DiagGRULayer(GRULayer):
    """GRU whose three recurrent matrices are diagonal; no ``b_hn`` (see the module doc)."""

    structure = ("fff", "ddd", "fff", "zzz")
    init = "xavier"
    fast_path = "diagonal"


class LSTMV1Layer(LSTMLayer):
    """LSTM whose gates read only h: ``i, f, o = sigmoid(U h + b)``; ``g`` as in the LSTM."""

    structure = ("zzfz", "ffff", "ffff", "zzzz")


class LSTMV2Layer(LSTMLayer):
    """LSTM whose gates read only h and have no bias: ``i, f, o = sigmoid(U h)``."""

    structure = ("zzfz", "ffff", "zzfz", "zzzz")

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)


class LSTMV3Layer(LSTMLayer):
    """LSTM whose gates are learned constants: ``i, f, o = sigmoid(b)``."""

    structure = ("zzfz", "zzfz", "ffff", "zzzz")


class GRUV1Layer(GRULayer):
    """GRU whose gates read only h: ``r, z = sigmoid(U h + b)``; the candidate as in the GRU."""

    structure = ("zzf", "fff", "fff", "zzf")


class GRUV2Layer(GRULayer):
    """GRU whose gates read only h and have no bias: ``r, z = sigmoid(U h)``."""

    structure = ("zzf", "fff", "zzf", "zzf")


class GRUV3Layer(GRULayer):
    """GRU whose gates are learned constants: ``r, z = sigmoid(b)``."""

    structure = ("zzf", "zzf", "fff", "zzf")
