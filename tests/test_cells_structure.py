"""What each cell computes, seen from outside: gate structure, exact gradients, product path.

* The LSTM gate variants (``docs/cells.md``: v1 ``sigmoid(U h + b)``, v2 ``sigmoid(U h)``,
  v3 ``sigmoid(b)``) are told apart by what their input, forget and output gates read, measured
  on one step of the layer: the forget gate is the slope of ``c'`` in ``c``, the output gate is
  ``h' / tanh(c')``, and the input gate is ``|c'|`` from ``c = 0`` under an input so large that
  the candidate ``g`` saturates to +-1 (valid only where the gate itself ignores the input,
  which is what is tested).
* Every hand-written backward (the CPU GRU recurrence, the diagonal cells, clockwork, RRU,
  Mogrifier), on the compiled and on the pure-torch path, passes gradcheck with respect to the
  input, the initial state and every parameter.
* The per-step products of the hand-written recurrences run on oneDNN where torch has it, else
  on ``addmm``; the test sees which ops ran. ``TUNEFORGE_TEST_MATMUL=fallback`` (see
  ``conftest.py``) runs the whole suite on the fallback.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from tests.conftest import matmul_mode
from tuneforge.cells import build_stack, jit

pytestmark = pytest.mark.usefixtures("one_thread")
M, N = 3, 5  # input and hidden size
SATURATING = 1e6  # an input this large drives tanh(W_g x + ...) to +-1 in float64

# gate -> (reads x, reads h, has a bias); the candidate g reads everything in every variant.
FULL = {"i": (True, True, True), "f": (True, True, True), "o": (True, True, True)}
V1 = {gate: (False, True, True) for gate in "ifo"}
V2 = {gate: (False, True, False) for gate in "ifo"}
V3 = {gate: (False, False, True) for gate in "ifo"}
LSTM_GATES = {"lstm": FULL, "lstm-v1": V1, "lstm-v2": V2, "lstm-v3": V3}


def _lstm(cell: str):
    torch.manual_seed(3)
    return build_stack(cell, input_size=M, hidden_size=N).layers[0].double().eval()


def _step(layer, x, h, c):
    """One step from (h, c) on input x, each (B, *): returns h', c'."""
    _, (h_new, c_new) = layer(x.unsqueeze(1), (h, c))
    return h_new.detach(), c_new.detach()


def _gates(layer, x, h):
    """The input, forget and output gates of one step at input x and hidden state h.

    The input gate is measured under a saturating input along ``x`` (see the module doc)."""
    zeros, ones = torch.zeros_like(h), torch.ones_like(h)
    _, c_from_zero = _step(layer, x, h, zeros)
    _, c_from_one = _step(layer, x, h, ones)
    forget = c_from_one - c_from_zero  # c' = f c + i g is linear in c
    h_new, c_new = _step(layer, x, h, 2 * ones)
    output = h_new / torch.tanh(c_new)
    _, c_saturated = _step(layer, SATURATING * x, h, zeros)
    return {"i": c_saturated.abs(), "f": forget, "o": output}


def _close(a, b) -> bool:
    return torch.allclose(a, b, atol=1e-9, rtol=0)


@pytest.mark.parametrize("cell", sorted(LSTM_GATES))
def test_each_lstm_gate_reads_what_its_variant_says(cell):
    layer = _lstm(cell)
    torch.manual_seed(4)
    x1, x2 = torch.randn(2, 4, M, dtype=torch.double)
    h = torch.randn(4, N, dtype=torch.double)
    at_x1, at_x2 = _gates(layer, x1, h), _gates(layer, x2, h)
    at_minus_x1 = _gates(layer, -x1, h)
    at_h0 = _gates(layer, x1, torch.zeros_like(h))
    for gate, (reads_x, reads_h, has_bias) in LSTM_GATES[cell].items():
        # A gate that ignores x has one value whatever x is, the sign of a saturating x too.
        same_over_x = _close(at_x1[gate], at_x2[gate]) and _close(at_x1[gate], at_minus_x1[gate])
        assert same_over_x != reads_x, f"{cell}: gate {gate} reads x: {reads_x}"
        if reads_x:
            continue  # the measurements below assume a gate that ignores x
        assert (not _close(at_x1[gate], at_h0[gate])) == reads_h, f"{cell}: {gate} reads h"
        # Ignoring x, at h = 0 a gate is sigmoid(b): exactly 1/2 without a bias.
        half = torch.full_like(at_h0[gate], 0.5)
        assert (not _close(at_h0[gate], half)) == has_bias, f"{cell}: gate {gate} has a bias"
        assert bool(((at_h0[gate] > 0) & (at_h0[gate] < 1)).all()), "a gate is a sigmoid"


def test_the_gate_measurements_recover_a_known_lstm():
    """The probe against torch's own LSTM with the same weights: gates computed by hand."""
    layer = _lstm("lstm")
    reference = torch.nn.LSTM(M, N, batch_first=True).double()
    weight_ih, weight_hh, bias_ih, bias_hh = layer.kernel_weights()
    with torch.no_grad():
        reference.weight_ih_l0.copy_(weight_ih)
        reference.weight_hh_l0.copy_(weight_hh)
        reference.bias_ih_l0.copy_(bias_ih)
        reference.bias_hh_l0.copy_(bias_hh)
    torch.manual_seed(5)
    x, h = torch.randn(4, M, dtype=torch.double), torch.randn(4, N, dtype=torch.double)
    pre = x @ weight_ih.T + h @ weight_hh.T + bias_ih + bias_hh
    i, f, _, o = pre.sigmoid().chunk(4, dim=1)
    measured = _gates(layer, x, h)
    torch.testing.assert_close(measured["f"], f, atol=1e-9, rtol=0)
    torch.testing.assert_close(measured["o"], o, atol=1e-9, rtol=0)
    assert not _close(measured["i"], i)  # the full LSTM's i reads x: the probe sees that


# Cells with a hand-written backward on the CPU, with small options, and the paths they have:
# "numba" (compiled) and "torch" (TUNEFORGE_NO_NUMBA=1, the pure-torch loop).
HAND_WRITTEN = {
    "gru": ({}, ("numba", "torch")),
    "gru-v1": ({}, ("numba", "torch")),
    "gru-v2": ({}, ("numba", "torch")),
    "gru-v3": ({}, ("numba", "torch")),
    "diag-rnn": ({}, ("numba",)),  # without numba these run torch's own kernel
    "diag-lstm": ({}, ("numba",)),
    "diag-gru": ({}, ("numba",)),
    "clockwork": ({"num_modules": 2}, (None,)),
    "rru": ({"rru_dropout": 0.0, "output_size": 3}, ("numba", "torch")),
    "rru-extra": ({"rru_dropout": 0.0, "output_size": 3, "extra_layers": 1}, ("torch",)),
    "mogrifier": ({"rounds": 3, "rank": 2}, ("numba", "torch")),
}
CASES = [(cell, path) for cell, (_, paths) in HAND_WRITTEN.items() for path in paths]


@pytest.mark.parametrize(("cell", "path"), CASES, ids=[f"{c}-{p or 'loop'}" for c, p in CASES])
def test_gradcheck_covers_the_input_the_initial_state_and_every_weight(cell, path, monkeypatch):
    monkeypatch.setenv(jit.DISABLE_ENV, "1" if path == "torch" else "0")
    options = HAND_WRITTEN[cell][0]
    torch.manual_seed(11)
    layer = build_stack(cell.removesuffix("-extra"), input_size=M, hidden_size=4, **options)
    layer = layer.layers[0].double()
    with torch.no_grad():
        for param in layer.parameters():
            param.normal_(0.0, 0.5)  # no zero blocks (RRU's Z starts at 0): every term counts
    x = torch.randn(2, 4, M, dtype=torch.double, requires_grad=True)
    # A non-zero initial state, so that its gradient is not trivial (clockwork also carries
    # an integer step count, which has none).
    state = [t.normal_().requires_grad_() if t.is_floating_point() else t
             for t in layer.initial_state(2, x)]  # fmt: skip
    floating = [k for k, t in enumerate(state) if t.is_floating_point()]
    params = list(layer.parameters())
    assert floating and params and all(p.requires_grad for p in params)

    def run(inp, *rest):
        full = list(state)
        for k, tensor in zip(floating, rest, strict=False):
            full[k] = tensor
        y, new_state = layer(inp, tuple(full))
        # The final state too, so its gradient path is checked.
        return (y, *(t for t in new_state if t.is_floating_point()))

    inputs = (x, *(state[k] for k in floating), *params)
    assert torch.autograd.gradcheck(run, inputs, atol=1e-6)
    if path is not None:
        assert layer.last_path == path


class _OpsSeen(TorchDispatchMode):
    """The names of the tensor ops that ran inside the ``with`` block."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


def _onednn_ops(enabled: bool) -> tuple[set[str], list[torch.Tensor]]:
    """Run a GRU large enough for oneDNN (W_hh 576 x 192), forward and backward."""
    torch.manual_seed(12)
    layer = build_stack("gru", input_size=8, hidden_size=192).layers[0]
    x = torch.randn(3, 5, 8, requires_grad=True)
    saved = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = enabled
    try:
        with _OpsSeen() as seen:
            y, (h,) = layer(x)
            grads = torch.autograd.grad(y.square().sum() + h.sum(), [x, *layer.parameters()])
    finally:
        torch.backends.mkldnn.enabled = saved
    return {n for n in seen.names if "mkldnn" in n or n in ("aten.mm", "aten.addmm")}, [
        y.detach(),
        *grads,
    ]


def _onednn_usable() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def test_the_per_step_products_take_the_path_the_suite_asked_for():
    """Under TUNEFORGE_TEST_MATMUL=fallback oneDNN is off for the whole run; otherwise on."""
    ops, _ = _onednn_ops(torch.backends.mkldnn.enabled)
    if matmul_mode() == "fallback":
        assert not torch.backends.mkldnn.enabled
        assert "mkldnn._linear_pointwise" not in ops and "aten.mm" in ops
    elif _onednn_usable():
        assert "mkldnn._linear_pointwise" in ops
    else:  # a torch build without oneDNN: the fallback is the only path
        assert "mkldnn._linear_pointwise" not in ops


@pytest.mark.skipif(not _onednn_usable(), reason="this torch build has no oneDNN")
def test_onednn_and_the_fallback_both_run_and_agree():
    on_ops, on = _onednn_ops(True)
    off_ops, off = _onednn_ops(False)
    assert "mkldnn._linear_pointwise" in on_ops and "mkldnn._reorder_linear_weight" in on_ops
    assert not any("mkldnn" in n for n in off_ops) and {"aten.mm", "aten.addmm"} <= off_ops
    for a, b in zip(on, off, strict=True):
        torch.testing.assert_close(a, b, atol=2e-4, rtol=1e-4)
