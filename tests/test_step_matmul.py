"""The window and step products of the hand-written recurrences (tuneforge.cells.step_matmul)."""

from __future__ import annotations

import pytest
import torch

from tuneforge.cells import step_matmul
from tuneforge.cells.step_matmul import linear, matmul_nt, step_linear, window_matmul_tn

ONEDNN = step_matmul._ONEDNN


def _data(rows: int, k: int, n: int, dtype=torch.float32):
    gen = torch.Generator().manual_seed(rows + k + n)
    x = torch.randn(rows, k, generator=gen, dtype=dtype)
    weight = torch.randn(n, k, generator=gen, dtype=dtype) / k**0.5
    bias = torch.randn(n, generator=gen, dtype=dtype)
    return x, weight, bias


@pytest.mark.parametrize("shape", [(3200, 88, 688), (40, 7, 5), (33, 300, 90)])
def test_linear_equals_f_linear_forward_and_every_gradient(shape):
    x, weight, bias = _data(*shape)
    leaves = [t.clone().requires_grad_() for t in (x, weight, bias)]
    reference = [t.clone().requires_grad_() for t in (x, weight, bias)]
    out = linear(*leaves)
    expected = torch.nn.functional.linear(*reference)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-4)
    grad = torch.randn_like(out)
    out.backward(grad)
    expected.backward(grad)
    for got, want in zip(leaves, reference, strict=True):
        torch.testing.assert_close(got.grad, want.grad, rtol=1e-4, atol=1e-3)


def test_float32_cpu_linear_runs_on_onednn_and_float64_on_f_linear(monkeypatch):
    assert ONEDNN, "the pinned torch build has oneDNN's linear"
    x, weight, bias = _data(64, 20, 30)
    out = linear(x.requires_grad_(), weight.requires_grad_(), bias)
    assert type(out.grad_fn).__name__ == "_LinearBackward"
    x64, w64, b64 = (t.detach().double().requires_grad_() for t in (x, weight, bias))
    out64 = linear(x64, w64, b64)
    assert type(out64.grad_fn).__name__ == "AddmmBackward0"
    monkeypatch.setattr(step_matmul, "_ONEDNN", False)  # a torch build without it
    assert type(linear(x, weight, bias).grad_fn).__name__ == "AddmmBackward0"


def test_linear_passes_gradcheck_in_double_precision():
    x, weight, bias = (t.double().requires_grad_() for t in _data(6, 4, 3))
    assert torch.autograd.gradcheck(linear, (x, weight, bias))


def test_linear_takes_a_sliced_weight_and_no_bias():
    x, weight, _ = _data(50, 30, 40)
    part = weight[:, 5:25]  # not contiguous
    torch.testing.assert_close(linear(x[:, :20], part), x[:, :20] @ part.t(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("columns", [(688, 256), (88, 256), (64, 688), (3, 5)])
def test_window_matmul_tn_equals_the_transposed_product(columns):
    gen = torch.Generator().manual_seed(sum(columns))
    a = torch.randn(500, columns[0], generator=gen)
    b = torch.randn(500, columns[1], generator=gen)
    torch.testing.assert_close(window_matmul_tn(a, b), a.t() @ b, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(matmul_nt(a.t(), b.t()), a.t() @ b, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("bias", [True, False])
def test_step_linear_equals_the_product(bias):
    x, weight, b = _data(16, 344, 1024)
    step = step_linear(weight, b if bias else None, 16)
    want = x @ weight.t() + (b if bias else 0.0)
    torch.testing.assert_close(step(x), want, rtol=1e-5, atol=1e-4)
