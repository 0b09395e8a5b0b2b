"""Properties every cell must have: step-by-step = whole sequence, learning, determinism."""

from __future__ import annotations

import pytest
import torch

from tuneforge.cells import build_stack, cell_names, detach_state, select_state
from tuneforge.errors import ConfigError

M, N, B, T = 6, 8, 3, 7
# Small options so that each test stays well under a second.
SMALL = {"clockwork": {"num_modules": 4}, "mogrifier": {"rank": 3}, "rru": {"output_size": 5}}


pytestmark = pytest.mark.usefixtures("one_thread")


def _stack(cell: str, num_layers: int = 2, dropout: float = 0.0, **extra):
    return build_stack(
        cell,
        input_size=M,
        hidden_size=N,
        num_layers=num_layers,
        dropout=dropout,
        **{**SMALL.get(cell, {}), **extra},
    )


@pytest.mark.parametrize("cell", cell_names())
def test_shapes_and_state(cell: str):
    torch.manual_seed(0)
    stack = _stack(cell).eval()  # RRU's own dropout would make two calls differ
    x = torch.randn(B, T, M)
    y, state = stack(x)
    assert y.shape == (B, T, stack.output_size)
    assert len(state) == 2
    for layer_state in state:
        assert all(t.shape[0] == B for t in layer_state)
    # None is the cell's own initial state (RRU's special h0 included).
    y_explicit, _ = stack(x, stack.initial_state(B, x))
    torch.testing.assert_close(y, y_explicit, atol=0, rtol=0)


@pytest.mark.parametrize("cell", cell_names())
def test_step_by_step_equals_whole_sequence(cell: str):
    torch.manual_seed(1)
    stack = _stack(cell, dropout=0.3).eval()
    x = torch.randn(B, T, M)
    with torch.no_grad():
        y_whole, state_whole = stack(x)
        state, outputs = None, []
        for t in range(T):
            y_t, state = stack(x[:, t : t + 1], state)
            outputs.append(y_t)
    torch.testing.assert_close(torch.cat(outputs, 1), y_whole, atol=1e-6, rtol=0)
    for ours, theirs in zip(state, state_whole, strict=True):
        for a, b in zip(ours, theirs, strict=True):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


@pytest.mark.parametrize("cell", cell_names())
def test_windows_with_carried_state_equal_one_long_window(cell: str):
    """Truncated BPTT: two windows with detached carried state give the long window's outputs."""
    torch.manual_seed(2)
    stack = _stack(cell).eval()
    x = torch.randn(B, 2 * T, M)
    y_long, _ = stack(x)
    y_first, state = stack(x[:, :T])
    state = detach_state(state)
    assert all(not t.requires_grad for layer in state for t in layer)
    y_second, _ = stack(x[:, T:], state)
    y_second.sum().backward()  # the graph starts at the window boundary
    torch.testing.assert_close(torch.cat([y_first, y_second], 1), y_long, atol=1e-6, rtol=0)


@pytest.mark.parametrize("cell", cell_names())
def test_select_state_keeps_batch_rows(cell: str):
    torch.manual_seed(3)
    stack = _stack(cell).eval()
    x = torch.randn(B, T, M)
    _, state = stack(x)
    rows = [2, 0]
    y_all, _ = stack(x, state)
    y_rows, _ = stack(x[rows], select_state(state, torch.tensor(rows)))
    torch.testing.assert_close(y_rows, y_all[rows], atol=1e-6, rtol=0)


@pytest.mark.parametrize("cell", cell_names())
def test_loss_falls_on_a_small_batch(cell: str):
    torch.manual_seed(4)
    stack = _stack(cell, num_layers=1)
    head = torch.nn.Linear(stack.output_size, M)
    params = [*stack.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(params, lr=0.02)
    x = (torch.rand(B, T + 1, M) < 0.3).float()  # the shapes of the other tests: no new JIT

    def loss_now() -> torch.Tensor:
        logits = head(stack(x[:, :-1])[0])
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, x[:, 1:])

    first = loss_now().item()
    for _ in range(40):
        optimizer.zero_grad()
        loss = loss_now()
        loss.backward()
        optimizer.step()
    assert all(p.grad is not None for p in stack.parameters())
    assert loss_now().item() < 0.9 * first


@pytest.mark.parametrize("cell", cell_names())
def test_same_seed_same_result(cell: str):
    def train_once() -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(5)
        stack = _stack(cell, dropout=0.2)
        optimizer = torch.optim.Adam(stack.parameters(), lr=0.01)
        x = torch.randn(B, T, M)
        for _ in range(3):
            optimizer.zero_grad()
            y, _ = stack(x)
            y.square().mean().backward()
            optimizer.step()
        return y.detach(), torch.cat([p.detach().flatten() for p in stack.parameters()])

    y1, p1 = train_once()
    y2, p2 = train_once()
    assert torch.equal(y1, y2)
    assert torch.equal(p1, p2)


def test_dropout_sits_between_layers_only():
    torch.manual_seed(6)
    single = build_stack("lstm", input_size=M, hidden_size=N, dropout=0.5)
    x = torch.randn(B, T, M)
    # One layer: no dropout anywhere, so training and eval modes agree.
    torch.testing.assert_close(single.train()(x)[0], single.eval()(x)[0])
    double = build_stack("lstm", input_size=M, hidden_size=N, num_layers=2, dropout=0.5)
    assert not torch.allclose(double.train()(x)[0], double.eval()(x)[0])


def test_bad_input_and_state_raise_config_errors():
    stack = build_stack("gru", input_size=M, hidden_size=N, num_layers=2)
    with pytest.raises(ConfigError, match="time >= 1, 6"):
        stack(torch.randn(B, M))
    with pytest.raises(ConfigError, match="got \\(3, 0, 6\\)"):
        stack(torch.randn(B, 0, M))
    with pytest.raises(ConfigError, match="state has 1 layers"):
        stack(torch.randn(B, T, M), (stack.layers[0].initial_state(B, torch.zeros(1)),))
    with pytest.raises(ConfigError, match="dropout"):
        build_stack("gru", input_size=M, hidden_size=N, dropout=1.0)
