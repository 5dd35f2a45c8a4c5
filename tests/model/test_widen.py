"""Widening a half-width network to full width keeps its output and lets the copies grow apart."""

from __future__ import annotations

import pytest
import torch

from fast_nst import FastNSTError
from fast_nst.model.network import NetConfig, TransformerNet
from fast_nst.model.widen import can_widen, widen
from tests.tolerance import FLOAT64_ATOL, float64


def trained_half(**config) -> TransformerNet:
    """A half-width net whose weights are not a fresh init (norm affines and batch-norm
    running statistics included, so a buffer left at its default would show)."""
    torch.manual_seed(5)
    net = TransformerNet(NetConfig(width="half", n_residual=2, **config))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        for name, b in net.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn_like(b) * 0.3)
            elif name.endswith("running_var"):
                b.copy_(torch.rand_like(b) + 0.5)
    return net


@pytest.mark.parametrize("norm", ["instance", "batch"])
@pytest.mark.parametrize("upsample", ["nearest", "deconv"])
def test_widened_network_computes_the_same_images(norm, upsample) -> None:
    narrow = float64(trained_half(norm=norm, upsample=upsample)).eval()
    wide = widen(narrow).eval()  # in float64: the same function up to rounding on any CPU
    assert wide.config == NetConfig(width="full", n_residual=2, norm=norm, upsample=upsample)
    assert wide.conv3.conv2d.weight.shape == (128, 64, 3, 3)
    images = torch.rand(2, 3, 40, 52, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(wide(images), narrow(images), atol=FLOAT64_ATOL, rtol=0)
    # Channel j + 16 copies channel j; the layer reading them splits its weights unevenly.
    assert torch.equal(wide.conv1.conv2d.weight[16], wide.conv1.conv2d.weight[0])
    split = wide.conv2.conv2d.weight
    assert not torch.allclose(split[:, :16], split[:, 16:])
    torch.testing.assert_close(split[:32, :16] + split[:32, 16:], narrow.conv2.conv2d.weight)


def copies_after_training(spread: float) -> float:
    """Largest difference between conv1's channel copies after a few training steps."""
    wide = widen(trained_half(), spread=spread)
    optimizer = torch.optim.Adam(wide.parameters(), lr=1e-2)
    target = torch.rand(2, 3, 32, 32)
    for _ in range(3):
        loss = (wide(torch.rand(2, 3, 32, 32)) - target).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    weight = wide.conv1.conv2d.weight
    return (weight[16:] - weight[:16]).abs().max().item()


def test_uneven_split_lets_the_copies_grow_apart() -> None:
    assert copies_after_training(spread=0.0) < 1e-7  # even halves: copies for ever
    assert copies_after_training(spread=0.2) > 1e-3


def test_only_widening_by_whole_multiples() -> None:
    assert can_widen("half", "full")
    assert not can_widen("full", "half") and not can_widen("half", "half")
    with pytest.raises(FastNSTError, match="cannot widen a full-width network to half") as err:
        widen(TransformerNet(NetConfig(width="full")), "half")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("spread", [-0.1, 1.0, 2.5])
def test_a_spread_outside_0_1_is_refused(spread) -> None:
    with pytest.raises(FastNSTError, match=r"spread must be in \[0, 1\)"):
        widen(trained_half(), spread=spread)
