"""Compiled (numba) recurrences: equal to the pure-torch paths, taken when they should be."""

from __future__ import annotations

import pytest
import torch

from tuneforge.cells import build_stack, jit

M, N, B, T = 5, 11, 3, 9
DIAGONAL = ["diag-rnn", "diag-lstm", "diag-gru"]
# Cells whose CPU path has compiled parts, and the options they are tested with.
COMPILED = [*DIAGONAL, "gru", "gru-v1", "gru-v2", "gru-v3", "rru", "rru-dropout", "mogrifier"]
OPTIONS = {
    "mogrifier": {"rounds": 3, "rank": 2},
    "rru": {"rru_dropout": 0.0, "output_size": 4},
    "rru-dropout": {"rru_dropout": 0.4, "output_size": 4},  # the same mask on both paths
}
TORCH_LOOP = {"gru", "gru-v1", "gru-v2", "gru-v3", "diag-gru", "rru", "rru-dropout", "mogrifier"}


pytestmark = pytest.mark.usefixtures("one_thread")


def _layer(cell: str, dtype: torch.dtype, **options):
    torch.manual_seed(0)
    options = {**OPTIONS.get(cell, {}), **options}
    cell = cell.removesuffix("-dropout")
    layer = build_stack(cell, input_size=M, hidden_size=N, **options).layers[0].to(dtype)
    with torch.no_grad():
        for param in layer.parameters():
            param.normal_(0.0, 0.6)  # away from Xavier's small values: every term matters
    return layer


def _run(layer, x, state, monkeypatch, fallback: bool):
    """Outputs, new state and the gradients of a loss that reads both, on one path."""
    monkeypatch.setenv(jit.DISABLE_ENV, "1" if fallback else "0")
    torch.manual_seed(1)  # the same dropout mask on both paths
    y, new_state = layer(x, state)
    path = layer.last_path
    weights = torch.linspace(-1.0, 1.0, y.numel(), dtype=y.dtype).view_as(y)
    loss = (y * weights).sum() + sum((s * (k + 2)).sum() for k, s in enumerate(new_state))
    inputs = [x, *state, *layer.parameters()]
    return path, [y, *new_state, *torch.autograd.grad(loss, inputs)]


@pytest.mark.parametrize("cell", COMPILED)
@pytest.mark.parametrize(
    ("dtype", "atol", "rtol"), [(torch.float64, 1e-12, 0.0), (torch.float32, 2e-5, 1e-5)]
)
def test_compiled_path_equals_torch_path(cell, dtype, atol, rtol, monkeypatch):
    """Outputs, final state and gradients of every parameter, the input and the initial state."""
    layer = _layer(cell, dtype)
    x = torch.randn(B, T, M, dtype=dtype, requires_grad=True)
    state = tuple(
        t.normal_().requires_grad_() for t in layer.initial_state(B, x)
    )  # a non-zero initial state, so that its gradient is not trivial
    fast_path, fast = _run(layer, x, state, monkeypatch, fallback=False)
    slow_path, slow = _run(layer, x, state, monkeypatch, fallback=True)
    assert fast_path == "numba"
    assert slow_path == ("torch" if cell in TORCH_LOOP else "fused")
    num_params = len(list(layer.parameters()))
    assert len(fast) == len(slow) == 1 + len(state) + 1 + len(state) + num_params
    for ours, reference in zip(fast, slow, strict=True):
        torch.testing.assert_close(ours, reference, atol=atol, rtol=rtol)


@pytest.mark.parametrize("cell", [c for c in COMPILED if c != "rru-dropout"])
def test_compiled_path_gradcheck(cell):
    layer = _layer(cell, torch.float64)
    x = torch.randn(2, 4, M, dtype=torch.double, requires_grad=True)
    state = tuple(t.normal_().requires_grad_() for t in layer.initial_state(2, x))
    params = list(layer.parameters())

    def run(inp, *rest):
        y, new_state = layer(inp, rest[: len(state)])
        return (y, *new_state)

    assert torch.autograd.gradcheck(run, (x, *state, *params))
    assert layer.last_path == "numba"


@pytest.mark.parametrize("cell", DIAGONAL)
def test_threads_split_the_batch_without_changing_results(cell):
    """Rows run in parallel slices, each its own recurrence: the same results up to rounding.

    (Bitwise equality is not expected: torch's input product may block differently per thread
    count.)
    """
    layer = _layer(cell, torch.float32)
    x = torch.randn(5, T, M, requires_grad=True)
    results = []
    for threads in (1, 2, 4):
        torch.set_num_threads(threads)
        y, state = layer(x)
        grads = torch.autograd.grad((y.sin().sum() + state[-1].sum()), [x, *layer.parameters()])
        results.append([y, *state, *grads])
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_odd_shapes_and_layouts(monkeypatch):
    """One row, one step, an input that is a transposed view: same as the fused kernel."""
    layer = _layer("diag-lstm", torch.float32)
    for x in (torch.randn(1, 1, M), torch.randn(T, B, M).transpose(0, 1)):
        state = tuple(t.requires_grad_() for t in layer.initial_state(x.shape[0], x))
        _, fast = _run(layer, x.requires_grad_(), state, monkeypatch, fallback=False)
        _, slow = _run(layer, x, state, monkeypatch, fallback=True)
        for ours, reference in zip(fast, slow, strict=True):
            torch.testing.assert_close(ours, reference, atol=2e-5, rtol=0)


@pytest.mark.parametrize("value", ["1", "yes"])
def test_environment_variable_forces_the_fallback(value, monkeypatch):
    layer = _layer("diag-gru", torch.float32)
    monkeypatch.setenv(jit.DISABLE_ENV, value)
    layer(torch.randn(B, T, M))
    assert layer.last_path == "torch"  # the GRU family's torch loop on the CPU
    monkeypatch.delenv(jit.DISABLE_ENV)
    layer(torch.randn(B, T, M))
    assert layer.last_path == "numba"


def test_rru_with_extra_layers_keeps_the_torch_loop():
    layer = _layer("rru", torch.float32, extra_layers=1)
    layer(torch.randn(B, T, M))
    assert layer.last_path == "torch"


def test_other_dtypes_take_the_fallback():
    layer = _layer("diag-rnn", torch.float32).to(torch.bfloat16)
    layer(torch.randn(B, T, M, dtype=torch.bfloat16))
    assert layer.last_path == "fused"


def test_float32_tanh_and_sigmoid_are_close_to_torch():
    """The compiled float32 tanh is a rational approximation; its error bound is documented."""
    kernels = jit.kernels("kernels")
    x = torch.linspace(-30.0, 30.0, 200_001)
    a = x.view(1, 1, -1).contiguous()
    hs = torch.empty_like(a)
    zero = torch.zeros(1, a.shape[2])
    kernels.rnn_forward(a.numpy(), hs.numpy(), zero.numpy(), zero.numpy())  # tanh(a + 0 h)
    exact = torch.tanh(x.double())
    assert (hs.view(-1).double() - exact).abs().max() < 4e-7


@pytest.mark.parametrize("rounds", [0, 1, 2, 5, 6])
@pytest.mark.parametrize(
    ("dtype", "atol", "rtol"), [(torch.float64, 1e-12, 0.0), (torch.float32, 2e-5, 1e-5)]
)
def test_every_count_of_mogrifier_rounds_compiles_exactly(rounds, dtype, atol, rtol, monkeypatch):
    """The compiled rounds (one call per step) against torch's, even and odd counts, none."""
    layer = _layer("mogrifier", dtype, rounds=rounds, rank=3)
    x = torch.randn(B, T, M, dtype=dtype, requires_grad=True)
    state = tuple(t.normal_().requires_grad_() for t in layer.initial_state(B, x))
    fast_path, fast = _run(layer, x, state, monkeypatch, fallback=False)
    slow_path, slow = _run(layer, x, state, monkeypatch, fallback=True)
    assert (fast_path, slow_path) == ("numba", "torch")
    for ours, reference in zip(fast, slow, strict=True):
        torch.testing.assert_close(ours, reference, atol=atol, rtol=rtol)


def test_the_blas_inside_the_kernels_runs_on_one_thread():
    """numba's np.dot calls scipy's bundled OpenBLAS; its own threads would only wait."""
    import ctypes
    import glob
    import os

    import scipy

    assert jit.kernels("kernels") is not None  # loading the kernels sets it
    path = jit.single_threaded_blas()
    bundled = glob.glob(
        os.path.join(os.path.dirname(os.path.dirname(scipy.__file__)), "scipy.libs", "*openblas*")
    )
    if path is None:
        assert not bundled  # another BLAS: nothing of ours to set
        return
    library = ctypes.CDLL(path)
    getter = (
        getattr(library, "scipy_openblas_get_num_threads", None) or library.openblas_get_num_threads
    )
    assert getter() == 1
