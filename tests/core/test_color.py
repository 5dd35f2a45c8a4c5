from __future__ import annotations

import torch

from fast_nst.core.color import (
    grey,
    luminance,
    match_color_histogram,
    match_luminance,
    rgb_to_yiq,
    transfer_luminance,
    yiq_to_rgb,
)


def test_yiq_round_trip() -> None:
    x = torch.rand(2, 3, 5, 5)
    torch.testing.assert_close(yiq_to_rgb(rgb_to_yiq(x)), x, atol=1e-5, rtol=0)


def test_transfer_luminance_keeps_content_chroma() -> None:
    content = 0.25 + 0.5 * torch.rand(1, 3, 8, 8)
    stylized = 0.25 + 0.5 * torch.rand(1, 3, 8, 8)
    out = transfer_luminance(stylized, content)
    torch.testing.assert_close(rgb_to_yiq(out)[:, 1:], rgb_to_yiq(content)[:, 1:],
                               atol=1e-4, rtol=0)
    torch.testing.assert_close(luminance(out), luminance(stylized), atol=1e-4, rtol=0)


def test_match_luminance_moments() -> None:
    style, content = torch.rand(1, 3, 16, 16) * 0.3, 0.2 + 0.5 * torch.rand(1, 3, 16, 16)
    out = match_luminance(style, content)
    assert out.shape == (1, 3, 16, 16)
    y, yc = luminance(out), luminance(content)
    assert abs(y.mean() - yc.mean()) < 0.02 and abs(y.std() - yc.std()) < 0.02
    assert torch.equal(grey(out)[:, 0], grey(out)[:, 2])


def test_histogram_matching_moves_mean_and_covariance() -> None:
    source = torch.rand(1, 3, 32, 32) * torch.tensor([0.2, 0.5, 0.3]).view(1, 3, 1, 1) + 0.3
    reference = torch.rand(1, 3, 32, 32) * torch.tensor([0.4, 0.1, 0.2]).view(1, 3, 1, 1) + 0.2
    out = match_color_histogram(source, reference)
    ref_mean = reference.mean((0, 2, 3))
    assert torch.allclose(out.mean((0, 2, 3)), ref_mean, atol=0.01)
    assert torch.allclose(out.std((0, 2, 3)), reference.std((0, 2, 3)), atol=0.01)
