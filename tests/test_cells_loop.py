"""Loop cells: Clockwork ticks, RRU at initialisation, Mogrifier = LSTM, hand-written backward."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tuneforge.cells import build_stack
from tuneforge.cells.dropout_mask import hash_bits

M, N, B = 5, 8, 3


pytestmark = pytest.mark.usefixtures("one_thread")


def test_clockwork_module_changes_only_on_its_ticks():
    torch.manual_seed(0)
    modules, steps = 4, 21
    layer = build_stack("clockwork", input_size=M, hidden_size=N, num_modules=modules).layers[0]
    x = torch.randn(B, steps, M)
    with torch.no_grad():
        # Two windows, the second starting at step 9: the clock carries over in the state.
        y1, state = layer(x[:, :9])
        y2, state = layer(x[:, 9:], state)
        h0 = torch.zeros(B, 1, N)
        hs = torch.cat([h0, y1, y2], 1)  # hs[:, t + 1] is h after step t
    assert torch.equal(state[1], torch.full((B,), steps))
    size = N // modules
    for i in range(modules):
        unit = slice(i * size, (i + 1) * size)
        for t in range(steps):
            changed = not torch.equal(hs[:, t + 1, unit], hs[:, t, unit])
            assert changed == (t % 2**i == 0), (i, t)


def test_clockwork_reads_only_itself_and_slower_modules():
    torch.manual_seed(1)
    layer = build_stack("clockwork", input_size=M, hidden_size=N, num_modules=4).layers[0]
    dense = layer.weight_hh().detach()
    for row in range(N):
        for col in range(N):
            assert (dense[row, col] != 0) == (col // 2 >= row // 2)


def _rru(**options):
    return build_stack("rru", input_size=M, hidden_size=N, **options).layers[0]


def test_rru_at_initialisation_only_decays_the_state():
    torch.manual_seed(2)
    layer = _rru(extra_layers=1).eval()
    decay = torch.sigmoid(10 * layer.s)
    assert torch.all(layer.z == 0)
    assert 0.01 <= decay.min() and decay.max() <= 0.99
    h = torch.randn(B, N)
    with torch.no_grad():
        _, (h_new,) = layer(torch.randn(B, 1, M), (h,))
    assert torch.equal(h_new, decay * h)
    # The initial state is zero but for its first unit, 0.25 sqrt(n).
    (h0,) = layer.initial_state(B, h)
    expected = torch.zeros(B, N)
    expected[:, 0] = 0.25 * N**0.5
    assert torch.equal(h0, expected)


def test_rru_middle_width_and_output_size():
    layer = _rru(middle_multiplier=1.5, output_size=3)
    assert layer.middle_size == round(1.5 * (M + N))
    y, _ = layer(torch.randn(B, 4, M))
    assert y.shape == (B, 4, 3)


def test_mogrifier_with_zero_rounds_equals_an_lstm():
    torch.manual_seed(3)
    reference = nn.LSTM(M, N, batch_first=True)
    layer = build_stack("mogrifier", input_size=M, hidden_size=N, rounds=0).layers[0]
    with torch.no_grad():
        layer.weight_ih.copy_(reference.weight_ih_l0)
        layer.weight_hh.copy_(reference.weight_hh_l0)
        layer.bias.copy_(reference.bias_ih_l0 + reference.bias_hh_l0)
    x = torch.randn(B, 6, M, requires_grad=True)
    h0, c0 = torch.randn(B, N), torch.randn(B, N)
    y, (h, c) = layer(x, (h0, c0))
    y_ref, (h_ref, c_ref) = reference(x, (h0[None], c0[None]))
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(c, c_ref[0], atol=1e-5, rtol=0)
    g = torch.randn_like(y)
    ours = torch.autograd.grad((y * g).sum(), [x, layer.weight_ih, layer.weight_hh, layer.bias])
    theirs = torch.autograd.grad((y_ref * g).sum(), [x, *reference.parameters()][:4])
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_mogrifier_rounds_gate_x_and_h():
    """With rounds, the first step differs from a plain LSTM on the same weights."""
    torch.manual_seed(4)
    plain = build_stack("mogrifier", input_size=M, hidden_size=N, rounds=0).layers[0]
    mog = build_stack("mogrifier", input_size=M, hidden_size=N, rounds=2, rank=2).layers[0]
    mog.load_state_dict(plain.state_dict(), strict=False)
    x, h = torch.randn(B, 1, M), torch.randn(B, N)
    with torch.no_grad():
        y_plain = plain(x, (h, torch.zeros(B, N)))[0]
        y_mog = mog(x, (h, torch.zeros(B, N)))[0]
        for p in mog.mog_up:
            p.zero_()  # 2 sigmoid(0) = 1: the rounds become the identity
        y_identity = mog(x, (h, torch.zeros(B, N)))[0]
    assert not torch.allclose(y_plain, y_mog)
    torch.testing.assert_close(y_identity, y_plain, atol=1e-6, rtol=0)


# Reference step functions, written straight from docs/cells.md with plain autograd: the fast
# layers (hand-written backward) must agree with them in value and gradient.
def _clockwork_reference(layer, x, h):
    weight_hh, outs = layer.weight_hh(), []
    for t in range(x.shape[1]):
        candidate = torch.tanh(x[:, t] @ layer.weight_ih.T + layer.bias + h @ weight_hh.T)
        h = torch.where(t % layer.period == 0, candidate, h)
        outs.append(h)
    return torch.stack(outs, 1)


def _rru_reference(layer, x, h, masks):
    outs = []
    for t in range(x.shape[1]):
        v = torch.cat([x[:, t], h], 1) @ layer.weight_in.T + layer.bias_in
        a = torch.relu(v / torch.sqrt(v.square().mean(1, keepdim=True) + 1e-6))
        for extra in layer.extra:
            a = torch.relu(extra(a))
        d = a * masks[t]
        h = torch.sigmoid(10 * layer.s) * h + layer.z * (d @ layer.weight_c.T + layer.bias_c)
        outs.append(d @ layer.weight_o.T + layer.bias_o)
    return torch.stack(outs, 1), h


def _mogrifier_reference(layer, x, h, c):
    outs = []
    for t in range(x.shape[1]):
        xt = x[:, t]
        for k, (up, down) in enumerate(zip(layer.mog_up, layer.mog_down, strict=True)):
            if k % 2 == 0:
                xt = 2 * torch.sigmoid(h @ (up @ down).T) * xt
            else:
                h = 2 * torch.sigmoid(xt @ (up @ down).T) * h
        i, f, g, o = (xt @ layer.weight_ih.T + h @ layer.weight_hh.T + layer.bias).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs, 1)


@pytest.mark.parametrize(
    ("cell", "options"),
    [
        ("clockwork", {"num_modules": 3}),
        ("rru", {"extra_layers": 0, "rru_dropout": 0.4, "output_size": 4}),
        ("rru", {"extra_layers": 2, "rru_dropout": 0.0, "output_size": 4}),
        ("mogrifier", {"rounds": 1, "rank": 2}),
        ("mogrifier", {"rounds": 4, "rank": 3}),
        ("mogrifier", {"rounds": 5, "rank": 2}),
    ],
)
def test_hand_written_backward_matches_autograd_reference(cell: str, options: dict):
    torch.manual_seed(5)
    layer = build_stack(cell, input_size=M, hidden_size=N, **options).layers[0].double()
    with torch.no_grad():
        for name, param in layer.named_parameters():
            if name in {"z", "bias_in"}:
                param.normal_()  # leave the ReZero start so that every path carries gradient
    steps = 7
    x = torch.randn(B, steps, M, dtype=torch.double, requires_grad=True)
    state = tuple(
        t.detach().clone().normal_().requires_grad_() if t.is_floating_point() else t
        for t in layer.initial_state(B, x)
    )
    torch.manual_seed(6)
    y, new_state = layer(x, state)
    if cell == "clockwork":
        y_ref = _clockwork_reference(layer, x, state[0])
        h_ref = y_ref[:, -1]
    elif cell == "rru":
        torch.manual_seed(6)  # the same dropout masks: the documented hash of the same seed
        keep = 1.0 - options["rru_dropout"]
        seed = int(torch.randint(0, 2**32, (1,)).item())
        shape = (steps, B, layer.middle_size)
        bits = hash_bits(steps * B * layer.middle_size, seed) >> 8
        masks = (bits < round(keep * 2**24)).double().view(shape) / keep
        y_ref, h_ref = _rru_reference(layer, x, state[0], masks)
    else:
        y_ref = _mogrifier_reference(layer, x, *state)
        h_ref = y_ref[:, -1]
    torch.testing.assert_close(y, y_ref, atol=1e-12, rtol=0)
    weights = torch.randn_like(y)
    inputs = [x, *[t for t in state if t.requires_grad], *layer.parameters()]
    # The loss also reads the final state, so its gradient path is checked too.
    loss = (y * weights).sum() + new_state[0].sum()
    loss_ref = (y_ref * weights).sum() + h_ref.sum()
    grads = torch.autograd.grad(loss, inputs, allow_unused=True)
    grads_ref = torch.autograd.grad(loss_ref, inputs, allow_unused=True)
    for grad, grad_ref in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(grad, grad_ref, atol=1e-10, rtol=0)


@pytest.mark.parametrize("cell", ["clockwork", "rru", "mogrifier"])
def test_gradcheck_of_the_recurrence(cell: str):
    torch.manual_seed(7)
    options = {
        "clockwork": {"num_modules": 2},
        "rru": {"rru_dropout": 0.0, "output_size": 3},
        "mogrifier": {"rounds": 3, "rank": 2},
    }
    layer = build_stack(cell, input_size=3, hidden_size=4, **options.get(cell, {}))
    layer = layer.layers[0].double()
    if cell == "rru":
        with torch.no_grad():
            layer.z.normal_()
    x = torch.randn(2, 4, 3, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda inp: layer(inp)[0], (x,))


@pytest.mark.parametrize(
    ("cell", "hidden", "options"),
    [
        ("gru", 192, {}),  # the CPU GRU recurrence: W_hh is 576 x 192
        ("rru", 224, {"rru_dropout": 0.0, "output_size": 4}),  # J_h is 464 x 224
        ("mogrifier", 160, {"rounds": 2, "rank": 2}),  # [W_ih, W_hh] is 640 x 168
    ],
)
def test_float32_products_on_onednn_match_float64(cell: str, hidden: int, options: dict):
    """Weights this large take the oneDNN per-step products in float32 (float64 keeps addmm)."""
    torch.manual_seed(8)
    layer = build_stack(cell, input_size=8, hidden_size=hidden, **options).layers[0]
    if cell == "rru":
        with torch.no_grad():
            layer.z.normal_()
    wide = build_stack(cell, input_size=8, hidden_size=hidden, **options).layers[0].double()
    wide.load_state_dict(layer.state_dict())
    x = torch.randn(2, 5, 8)
    x64 = x.double().requires_grad_()
    x.requires_grad_()
    y, _ = layer(x)
    y64, _ = wide(x64)
    torch.testing.assert_close(y.double(), y64, atol=1e-5, rtol=1e-4)
    weights = torch.randn_like(y64)
    grads = torch.autograd.grad((y * weights.float()).sum(), [x, *layer.parameters()])
    grads64 = torch.autograd.grad((y64 * weights).sum(), [x64, *wide.parameters()])
    for grad, grad64 in zip(grads, grads64, strict=True):
        torch.testing.assert_close(grad.double(), grad64, atol=1e-4, rtol=1e-4)
