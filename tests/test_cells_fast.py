"""The diagonal cells' compiled O(n) recurrence against independent references.

Three references: the cells' equations written out step by step in plain torch here (float64,
to rounding), the old path, i.e. torch's full recurrent kernel run on the dense weights with
the off-diagonal entries held at zero (float32), and numerical gradients (float64 gradcheck).
Every gradient is compared: the input, the initial state and each weight.
"""

from __future__ import annotations

import pytest
import torch

from tuneforge.cells import build_stack, jit

M, N, B, T = 4, 6, 3, 7
DIAGONAL = ["diag-rnn", "diag-lstm", "diag-gru"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _compiled_paths_on(monkeypatch):
    monkeypatch.delenv(jit.DISABLE_ENV, raising=False)


def _layer(cell: str, dtype: torch.dtype = torch.float32):
    torch.manual_seed(0)
    layer = build_stack(cell, input_size=M, hidden_size=N).layers[0].to(dtype)
    with torch.no_grad():
        for param in layer.parameters():
            param.normal_(0.0, 0.7)  # well away from zero: every term of the equations matters
    return layer


def _inputs(layer, dtype: torch.dtype = torch.float32, batch: int = B, steps: int = T):
    torch.manual_seed(1)
    x = torch.randn(batch, steps, M, dtype=dtype, requires_grad=True)
    state = tuple(t.normal_().requires_grad_() for t in layer.initial_state(batch, x))
    return x, state


def _equations(layer, x, state):
    """The diagonal cells step by step, in torch's gate orders (LSTM i f g o, GRU r z n)."""
    a = x @ layer.weight_ih.t() + layer.bias_ih  # (B, T, G N)
    u = layer.diag_hh  # (G, N)
    h = state[0]
    c = state[1] if layer.mode == "lstm" else None
    outputs = []
    for t in range(x.shape[1]):
        gates = a[:, t].view(x.shape[0], -1, N)  # (B, G, N)
        if layer.mode == "rnn":
            h = torch.tanh(gates[:, 0] + u[0] * h)
        elif layer.mode == "lstm":
            i, f, o = (torch.sigmoid(gates[:, k] + u[k] * h) for k in (0, 1, 3))
            g = torch.tanh(gates[:, 2] + u[2] * h)
            c = f * c + i * g
            h = o * torch.tanh(c)
        else:
            r = torch.sigmoid(gates[:, 0] + u[0] * h)
            z = torch.sigmoid(gates[:, 1] + u[1] * h)
            n = torch.tanh(gates[:, 2] + r * (u[2] * h))
            h = (1 - z) * n + z * h
        outputs.append(h)
    final = (h, c) if layer.mode == "lstm" else (h,)
    return torch.stack(outputs, dim=1), final


def _old_path(layer, x, state):
    """torch's full kernel (rnn_tanh, lstm, gru) on the dense weights, zeros off the diagonal."""
    weights = layer.kernel_weights()
    assert torch.count_nonzero(weights[1]) <= weights[1].shape[0]  # only diagonal entries
    kernel = {"rnn": torch._VF.rnn_tanh, "lstm": torch._VF.lstm, "gru": torch._VF.gru}[layer.mode]
    hx = tuple(s.unsqueeze(0) for s in state)
    hx = hx if layer.mode == "lstm" else hx[0]
    y, *final = kernel(x, hx, weights, True, 1, 0.0, False, False, True)
    return y, tuple(s.squeeze(0) for s in final)


def _results(run, layer, x, state):
    """Outputs, final state and the gradients of a loss reading both, of x, state and weights."""
    y, final = run(layer, x, state)
    weights = torch.linspace(-1.0, 1.0, y.numel(), dtype=y.dtype).view_as(y)
    loss = (y * weights).sum() + sum((s * (k + 2)).sum() for k, s in enumerate(final))
    grads = torch.autograd.grad(loss, [x, *state, *layer.parameters()])
    return [y, *final, *grads]


@pytest.mark.parametrize("cell", DIAGONAL)
def test_compiled_path_equals_the_equations_in_float64(cell):
    layer = _layer(cell, torch.float64)
    x, state = _inputs(layer, torch.float64)
    fast = _results(lambda lay, xs, st: lay(xs, st), layer, x, state)
    assert layer.last_path == "numba"
    reference = _results(_equations, layer, x, state)
    assert len(fast) == len(reference) == 1 + 2 * len(state) + 1 + 3
    for ours, expected in zip(fast, reference, strict=True):
        torch.testing.assert_close(ours, expected, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("cell", DIAGONAL)
def test_compiled_path_equals_the_old_full_kernel_in_float32(cell):
    layer = _layer(cell)
    x, state = _inputs(layer)
    fast = _results(lambda lay, xs, st: lay(xs, st), layer, x, state)
    assert layer.last_path == "numba"
    old = _results(_old_path, layer, x, state)
    for ours, expected in zip(fast, old, strict=True):
        torch.testing.assert_close(ours, expected, atol=3e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", DIAGONAL)
def test_compiled_path_passes_gradcheck(cell):
    layer = _layer(cell, torch.float64)
    x, state = _inputs(layer, torch.float64, batch=2, steps=4)
    params = list(layer.parameters())

    def run(inp, *rest):
        y, final = layer(inp, rest[: len(state)])
        return (y, *final)

    assert torch.autograd.gradcheck(run, (x, *state, *params))
    assert layer.last_path == "numba"


@pytest.mark.parametrize("cell", DIAGONAL)
def test_without_numba_the_fused_kernel_runs_and_agrees(cell, monkeypatch):
    """The compiled module failing to import selects the torch fallback, explicitly reported."""
    layer = _layer(cell)
    x, state = _inputs(layer)
    fast = _results(lambda lay, xs, st: lay(xs, st), layer, x, state)
    monkeypatch.setitem(jit._modules, "kernels", None)  # what an ImportError of numba leaves
    slow = _results(lambda lay, xs, st: lay(xs, st), layer, x, state)
    # The diagonal GRU falls back to the GRU family's torch loop, the others to torch's kernel.
    assert layer.last_path == ("torch" if cell == "diag-gru" else "fused")
    for ours, expected in zip(fast, slow, strict=True):
        torch.testing.assert_close(ours, expected, atol=3e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", DIAGONAL)
def test_state_carried_across_windows_equals_one_long_window(cell):
    stack = build_stack(cell, input_size=M, hidden_size=N, num_layers=2)
    x = torch.randn(B, 2 * T, M)
    whole, whole_state = stack(x)
    first, state = stack(x[:, :T])
    second, split_state = stack(x[:, T:], state)
    assert all(layer.last_path == "numba" for layer in stack.layers)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, atol=1e-6, rtol=0)
    for a, b in zip(split_state, whole_state, strict=True):
        for s, w in zip(a, b, strict=True):
            torch.testing.assert_close(s, w, atol=1e-6, rtol=0)


@pytest.mark.parametrize("cell", DIAGONAL)
def test_an_optimizer_step_keeps_the_recurrence_diagonal(cell):
    """Training changes the diagonal parameters; the kernel's dense matrix stays diagonal."""
    layer = _layer(cell)
    before = layer.diag_hh.detach().clone()
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    x, _ = _inputs(layer)
    y, _ = layer(x.detach())
    y.square().mean().backward()
    optimizer.step()
    assert layer.last_path == "numba"
    assert not torch.equal(layer.diag_hh, before)
    dense = layer.kernel_weights()[1].view(-1, N, N)  # (G, N, N)
    off_diagonal = dense * (1 - torch.eye(N))
    assert torch.count_nonzero(off_diagonal) == 0
