"""Hashed dropout masks (tuneforge.cells.dropout_mask): one mask on every path, as drawn."""

from __future__ import annotations

import pytest
import torch

from tuneforge.cells import jit
from tuneforge.cells.dropout_mask import (
    Dropout,
    dropout,
    dropout_mask,
    hash_bits,
    keep_threshold,
    memory_order,
)


def _both_paths(like, keep, monkeypatch, seed=7):
    torch.manual_seed(seed)
    compiled = dropout_mask(like, keep)
    monkeypatch.setenv(jit.DISABLE_ENV, "1")
    torch.manual_seed(seed)
    fallback = dropout_mask(like, keep)
    monkeypatch.delenv(jit.DISABLE_ENV)
    return compiled, fallback


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(200, 16, 688), (3, 5, 7), (1,)])
def test_compiled_and_torch_masks_are_equal(dtype, shape, monkeypatch):
    compiled, fallback = _both_paths(torch.empty(shape, dtype=dtype), 0.6, monkeypatch)
    assert compiled.dtype == fallback.dtype == dtype
    assert compiled.shape == fallback.shape == shape
    assert torch.equal(compiled, fallback)


def _spy_on_kernel(monkeypatch, name: str) -> list:
    """The shapes of the first argument of every call of kernel ``name`` from now on."""
    kern = jit.kernels("kernels")
    calls = []
    original = getattr(kern, name)

    def spy(*args):
        calls.append(args[0].shape)
        return original(*args)

    monkeypatch.setattr(kern, name, spy)
    return calls


def test_the_compiled_kernel_is_the_one_that_ran(monkeypatch):
    calls = _spy_on_kernel(monkeypatch, "dropout_mask")
    dropout_mask(torch.empty(4, 3, 5), 0.5)
    assert calls == [(60,)]
    monkeypatch.setenv(jit.DISABLE_ENV, "1")
    dropout_mask(torch.empty(4, 3, 5), 0.5)
    assert len(calls) == 1


def test_hash_matches_lowbias32_known_values():
    # lowbias32(i * 0x9E3779B1 ^ 12345) for i = 0..3, computed independently in uint32.
    assert hash_bits(4, 12345).tolist() == [2435775735, 478296883, 127120873, 3049768002]


@pytest.mark.parametrize("keep", [0.5, 0.6, 0.9])
def test_kept_share_and_scale(keep):
    torch.manual_seed(0)
    mask = dropout_mask(torch.empty(200, 16, 688), keep)
    kept = mask > 0
    assert abs(kept.double().mean().item() - keep) < 0.003  # 2.2M draws: sd about 3e-4
    assert torch.all(mask[kept] == torch.tensor(1.0).div_(keep))
    assert abs(mask.double().mean().item() - 1.0) < 0.005
    assert keep_threshold(keep) == round(keep * 2**24)


@pytest.mark.parametrize(
    "draw",
    [lambda: dropout_mask(torch.empty(50, 40), 0.5), lambda: dropout(torch.ones(50, 40), 0.5)],
    ids=["dropout_mask", "dropout"],
)
def test_masks_follow_torch_seed_and_differ_between_draws(draw):
    torch.manual_seed(5)
    first, second = draw(), draw()
    torch.manual_seed(5)
    assert torch.equal(draw(), first)
    assert (first != second).double().mean().item() > 0.4  # independent masks differ on about half


def test_neighbouring_elements_are_uncorrelated():
    bits = (hash_bits(1 << 20, 99) >> 8).double()
    a, b = bits[:-1] - bits.mean(), bits[1:] - bits.mean()
    corr = (a * b).mean() / (a.square().mean() * b.square().mean()).sqrt()
    assert abs(corr.item()) < 0.01
    assert abs(bits.mean().item() / (1 << 24) - 0.5) < 0.002


def _reference_dropout(x, p, seed):
    """The hashed mask, from torch operations, applied to ``x`` in its memory order: what the
    compiled path must give for the seed torch's generator yields after ``manual_seed(seed)``."""
    torch.manual_seed(seed)
    key = int(torch.randint(0, 1 << 32, (1,)).item())
    order = memory_order(x)
    in_order = x.permute(order)
    bits = hash_bits(x.numel(), key) >> 8
    kept = (bits < keep_threshold(1 - p)).view(in_order.shape)
    inverse = sorted(range(x.dim()), key=order.__getitem__)
    scale = torch.tensor(1.0, dtype=x.dtype).div_(1 - p)
    return kept.permute(inverse), scale


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "sliced"])
def test_compiled_dropout_matches_the_torch_reference(dtype, layout):
    base = torch.randn(6, 40, 9, dtype=dtype, requires_grad=True)
    views = {"contiguous": base * 1, "transposed": base.transpose(0, 1), "sliced": base[:, ::2]}
    x = views[layout]
    x.retain_grad()
    torch.manual_seed(11)
    out = dropout(x, 0.3)
    weights = torch.arange(1, out.numel() + 1, dtype=dtype).view(out.shape)
    (out * weights).sum().backward()
    kept, scale = _reference_dropout(x.detach(), 0.3, 11)
    assert torch.equal(out, torch.where(kept, x.detach() * scale, 0.0).to(dtype))
    assert torch.equal(x.grad, torch.where(kept, weights * scale, 0.0).to(dtype))
    assert 0.55 < kept.double().mean().item() < 0.85  # keep 0.7 of 1,080 or 2,160 elements
    if layout == "transposed":
        assert out.stride() == x.stride()  # masked where it lies, no copy
        assert memory_order(x) == (1, 0, 2)


def test_torch_path_is_torchs_dropout(monkeypatch):
    monkeypatch.setenv(jit.DISABLE_ENV, "1")
    x = torch.randn(64, 80, requires_grad=True)
    torch.manual_seed(3)
    out = dropout(x, 0.25)
    torch.manual_seed(3)
    assert torch.equal(out, torch.nn.functional.dropout(x, 0.25))
    out.sum().backward()
    assert torch.equal(x.grad != 0, out != 0)


@pytest.mark.parametrize("disabled", [False, True])
def test_dropout_gradcheck_in_double(disabled, monkeypatch):
    if disabled:
        monkeypatch.setenv(jit.DISABLE_ENV, "1")
    x = torch.randn(4, 5, 3, dtype=torch.float64).transpose(0, 2).requires_grad_()

    def seeded(t):
        torch.manual_seed(2)
        return dropout(t, 0.4)

    assert torch.autograd.gradcheck(seeded, (x,))


def test_dropout_layer_runs_the_compiled_kernel_and_says_so(monkeypatch):
    calls = _spy_on_kernel(monkeypatch, "dropout_apply")
    layer = Dropout(0.5)
    x = torch.randn(3, 4, requires_grad=True)
    layer(x).sum().backward()
    assert calls == [(12,), (12,)]  # forward, and backward from the same seed
    assert layer.last_path == "numba"
    monkeypatch.setenv(jit.DISABLE_ENV, "1")
    layer(x).sum().backward()
    assert len(calls) == 2 and layer.last_path == "torch"


def test_dropout_layer_is_the_identity_when_evaluating_or_at_zero():
    x = torch.randn(5, 6)
    layer = Dropout(0.5).eval()
    assert layer(x) is x
    assert Dropout(0.0)(x) is x
    with pytest.raises(ValueError, match="in \\[0, 1\\)"):
        Dropout(1.0)


def test_models_drop_out_with_the_hashed_layer():
    from tuneforge.cli.model_options import model_config_from_options
    from tuneforge.models import build_model
    from tuneforge.models.frames import FrameBatch

    config = model_config_from_options("biaxial", {"hidden_size": 8, "note_hidden_size": 6}, None)
    model = build_model(config, seed=0).train()
    layers = [m for m in model.modules() if isinstance(m, Dropout)]
    assert len(layers) == 4  # time stack, before the note axis, note stack, before its output
    assert not any(isinstance(m, torch.nn.Dropout) for m in model.modules())
    frames = (torch.rand(2, 9, 88) < 0.1).float()
    log_lik, _ = model(FrameBatch.from_frames(frames))
    log_lik.play.sum().backward()
    assert all(m.last_path == "numba" for m in layers)
