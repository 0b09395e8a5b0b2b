"""Hashed dropout masks (tuneforge.cells.dropout_mask): one mask on every path, as drawn."""

from __future__ import annotations

import pytest
import torch

from tuneforge.cells import jit
from tuneforge.cells.dropout_mask import dropout_mask, hash_bits, keep_threshold


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


def test_the_compiled_kernel_is_the_one_that_ran(monkeypatch):
    kern = jit.kernels("kernels")
    calls = []
    original = kern.dropout_mask

    def spy(*args):
        calls.append(args[0].shape)
        return original(*args)

    monkeypatch.setattr(kern, "dropout_mask", spy)
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


def test_masks_follow_torch_seed_and_differ_between_draws():
    like = torch.empty(50, 40)
    torch.manual_seed(5)
    first, second = dropout_mask(like, 0.5), dropout_mask(like, 0.5)
    torch.manual_seed(5)
    assert torch.equal(dropout_mask(like, 0.5), first)
    assert (first != second).double().mean().item() > 0.4  # independent masks differ on about half


def test_neighbouring_elements_are_uncorrelated():
    bits = (hash_bits(1 << 20, 99) >> 8).double()
    a, b = bits[:-1] - bits.mean(), bits[1:] - bits.mean()
    corr = (a * b).mean() / (a.square().mean() * b.square().mean()).sqrt()
    assert abs(corr.item()) < 0.01
    assert abs(bits.mean().item() / (1 << 24) - 0.5) < 0.002
