"""Fused cells: equal to torch's own RNN/LSTM/GRU, structure kept under training, gates."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tuneforge.cells import build_stack

M, N, B, T = 5, 7, 3, 6


pytestmark = pytest.mark.usefixtures("one_thread")


def _copy_from_torch(cell: str, reference: nn.Module) -> nn.Module:
    """Our layer with the weights of a torch module; torch's two biases summed where redundant."""
    stack = build_stack(cell, input_size=M, hidden_size=N)
    layer = stack.layers[0]
    b_ih, b_hh = reference.bias_ih_l0, reference.bias_hh_l0
    with torch.no_grad():
        layer.weight_ih.copy_(reference.weight_ih_l0)
        layer.weight_hh.copy_(reference.weight_hh_l0)
        if cell == "gru":
            # Only r and z may fold their two biases; the candidate's b_hn sits inside r * (.).
            layer.bias_ih.copy_(b_ih + torch.cat([b_hh[: 2 * N], torch.zeros(N)]))
            layer.bias_hh_n.copy_(b_hh[2 * N :])
        else:
            layer.bias_ih.copy_(b_ih + b_hh)
    return stack


@pytest.mark.parametrize(
    ("cell", "torch_class"), [("rnn", nn.RNN), ("lstm", nn.LSTM), ("gru", nn.GRU)]
)
def test_equals_torch_module_outputs_and_gradients(cell: str, torch_class: type):
    torch.manual_seed(1)
    reference = torch_class(M, N, batch_first=True)
    ours = _copy_from_torch(cell, reference)
    x = torch.randn(B, T, M, requires_grad=True)
    h0 = torch.randn(B, N)
    c0 = torch.randn(B, N)
    if cell == "lstm":
        y_ref, (h_ref, c_ref) = reference(x, (h0[None], c0[None]))
        y, ((h, c),) = ours(x, ((h0, c0),))
        torch.testing.assert_close(c, c_ref[0], atol=1e-5, rtol=0)
    else:
        y_ref, h_ref = reference(x, h0[None])
        y, ((h,),) = ours(x, ((h0,),))
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(h, h_ref[0], atol=1e-5, rtol=0)

    weights = torch.randn_like(y)
    grads_ref = torch.autograd.grad((y_ref * weights).sum(), [x, *reference.parameters()])
    layer = ours.layers[0]
    grads = torch.autograd.grad((y * weights).sum(), [x, *layer.parameters()])
    named = dict(zip([name for name, _ in layer.named_parameters()], grads[1:], strict=True))
    torch.testing.assert_close(grads[0], grads_ref[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(named["weight_ih"], grads_ref[1], atol=1e-5, rtol=0)
    torch.testing.assert_close(named["weight_hh"], grads_ref[2], atol=1e-5, rtol=0)
    # Our single bias gets the gradient torch gives each of its two biases.
    torch.testing.assert_close(named["bias_ih"], grads_ref[3], atol=1e-5, rtol=0)
    if cell == "gru":
        torch.testing.assert_close(named["bias_hh_n"], grads_ref[4][2 * N :], atol=1e-5, rtol=0)


@pytest.mark.parametrize(("cell", "gates"), [("diag-rnn", 1), ("diag-lstm", 4), ("diag-gru", 3)])
def test_diagonal_stays_diagonal_under_training(cell: str, gates: int):
    torch.manual_seed(2)
    stack = build_stack(cell, input_size=M, hidden_size=N)
    layer = stack.layers[0]
    optimizer = torch.optim.Adam(stack.parameters(), lr=0.05)
    x = torch.randn(B, T, M)
    target = torch.rand(B, T, N)
    for _ in range(60):
        optimizer.zero_grad()
        loss = (stack(x)[0] - target).square().mean()
        loss.backward()
        optimizer.step()
    weight_hh = layer.kernel_weights()[1].detach()  # (gates N, N), as the kernel sees it
    blocks = weight_hh.view(gates, N, N)
    off_diagonal = blocks * (1 - torch.eye(N))
    assert torch.count_nonzero(off_diagonal) == 0
    assert torch.count_nonzero(torch.diagonal(blocks, dim1=1, dim2=2)) == gates * N
    # Recurrent parameters are O(n): one vector per gate.
    assert layer.diag_hh.shape == (gates, N)
    recurrent = [p for name, p in layer.named_parameters() if "hh" in name]
    assert sum(p.numel() for p in recurrent) == gates * N


def test_diagonal_family_is_xavier_initialised():
    torch.manual_seed(3)
    layer = build_stack("diag-lstm", input_size=88, hidden_size=256).layers[0]
    bound = (6.0 / (88 + 256)) ** 0.5
    assert layer.weight_ih.abs().max() <= bound
    assert layer.weight_ih.abs().max() > 0.9 * bound  # spread over the whole Xavier range
    n = 256
    assert torch.all(layer.bias_ih[n : 2 * n] == 1.0)  # forget bias
    assert torch.all(layer.bias_ih[:n] == 0.0)


@pytest.mark.parametrize("cell", ["lstm", "lstm-v1", "lstm-v3", "diag-lstm", "mogrifier"])
def test_lstm_family_has_positive_forget_bias(cell: str):
    stack = build_stack(cell, input_size=M, hidden_size=N, forget_bias=2.5)
    bias = stack.layers[0].bias_ih if cell != "mogrifier" else stack.layers[0].bias
    assert torch.all(bias[N : 2 * N] == 2.5)
    assert torch.all(
        build_stack(cell, input_size=M, hidden_size=N)
        .layers[0]
        .state_dict()["bias_ih" if cell != "mogrifier" else "bias"][N : 2 * N]
        == 1.0
    )


def _lstm_gates(stack: nn.Module, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Forget and output gates of one LSTM step, recovered from outputs alone.

    With the same x and h and two cell states c1, c2: c1' - c2' = f * (c1 - c2); and
    h' = o * tanh(c').
    """
    c1, c2 = torch.zeros_like(h), torch.ones_like(h)
    y1, ((_, c1_new),) = stack(x[:, None], ((h, c1),))
    _, ((_, c2_new),) = stack(x[:, None], ((h, c2),))
    forget = (c1_new - c2_new) / (c1 - c2)
    output = y1[:, 0] / torch.tanh(c1_new)
    return forget, output


@pytest.mark.parametrize(
    ("cell", "reads_x", "reads_h"),
    [("lstm", True, True), ("lstm-v1", False, True), ("lstm-v2", False, True),
     ("lstm-v3", False, False)],
)  # fmt: skip
def test_lstm_gate_variants_by_perturbing_inputs(cell: str, reads_x: bool, reads_h: bool):
    torch.manual_seed(4)
    stack = build_stack(cell, input_size=M, hidden_size=N).double()
    x, h = torch.randn(B, M, dtype=torch.double), torch.randn(B, N, dtype=torch.double)
    with torch.no_grad():
        base = _lstm_gates(stack, x, h)
        moved_x = _lstm_gates(stack, x + torch.randn_like(x), h)
        moved_h = _lstm_gates(stack, x, h + torch.randn_like(h))
    for gate, gate_x, gate_h in zip(base, moved_x, moved_h, strict=True):
        assert torch.allclose(gate, gate_x, atol=1e-9) != reads_x
        assert torch.allclose(gate, gate_h, atol=1e-9) != reads_h
    # The candidate still reads x: the output moves when x does.
    with torch.no_grad():
        y0 = stack(x[:, None])[0]
        y1 = stack((x + 1.0)[:, None])[0]
    assert not torch.allclose(y0, y1)


def _gru_gates(stack: nn.Module, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """The update and reset gate pre-activations the kernel computes, (B, 2N), from its weights."""
    w_ih, w_hh, b_ih, b_hh = stack.layers[0].kernel_weights()
    return (x @ w_ih.T + b_ih + h @ w_hh.T + b_hh)[:, : 2 * N]


@pytest.mark.parametrize(
    ("cell", "reads_x", "reads_h"),
    [("gru", True, True), ("gru-v1", False, True), ("gru-v2", False, True),
     ("gru-v3", False, False)],
)  # fmt: skip
def test_gru_gate_variants_by_perturbing_inputs(cell: str, reads_x: bool, reads_h: bool):
    torch.manual_seed(5)
    stack = build_stack(cell, input_size=M, hidden_size=N)
    optimizer = torch.optim.SGD(stack.parameters(), lr=0.5)
    for _ in range(5):  # the zero blocks must survive training, not only initialisation
        optimizer.zero_grad()
        stack(torch.randn(B, T, M))[0].square().sum().backward()
        optimizer.step()
    x, h = torch.randn(B, M), torch.randn(B, N)
    with torch.no_grad():
        base = _gru_gates(stack, x, h)
        assert torch.equal(base, _gru_gates(stack, x + torch.randn_like(x), h)) != reads_x
        assert torch.equal(base, _gru_gates(stack, x, h + torch.randn_like(h))) != reads_h
    # The kernel's step is exactly the GRU built from those gates (torch's conventions).
    with torch.no_grad():
        w_ih, w_hh, b_ih, b_hh = stack.layers[0].kernel_weights()
        gi, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
        r = torch.sigmoid(gi[:, :N] + gh[:, :N])
        z = torch.sigmoid(gi[:, N : 2 * N] + gh[:, N : 2 * N])
        n = torch.tanh(gi[:, 2 * N :] + r * gh[:, 2 * N :])
        expected = (1 - z) * n + z * h  # torch's convention: z keeps the old state
        y = stack(x[:, None], ((h,),))[0][:, 0]
    torch.testing.assert_close(y, expected, atol=1e-6, rtol=0)
