"""fast_nst.core.temporal: warping, the temporal loss, the flicker metric and the stability loss."""

from __future__ import annotations

import pytest
import torch

from fast_nst.core.temporal import (
    StabilityConfig,
    Window,
    occlusion_mask,
    stability_loss,
    synthetic_clip,
    temporal_error,
    temporal_loss,
    warp_previous,
    warp_with_flow,
)


def _photo() -> torch.Tensor:
    """A smooth photo-like image (smooth so bilinear resampling is nearly exact)."""
    ys, xs = torch.meshgrid(torch.linspace(0, 6, 120), torch.linspace(0, 8, 160), indexing="ij")
    return torch.stack([0.5 + 0.4 * torch.sin(xs), 0.5 + 0.4 * torch.cos(ys),
                        0.5 + 0.4 * torch.sin(xs + ys)]).unsqueeze(0)


def test_static_clip_has_zero_temporal_error_and_loss() -> None:
    frames, windows = synthetic_clip(_photo(), (32, 48), 5, pan=0.0, zoom=0.0)
    assert len(frames) == 5 and frames[0].shape == (1, 3, 32, 48)
    assert temporal_error(frames, windows) == pytest.approx(0.0, abs=1e-6)
    warped, mask = warp_previous(frames[0], windows[0], windows[1])
    assert temporal_loss(frames[1], warped, mask).item() == pytest.approx(0.0, abs=1e-10)


def test_known_motion_compensates_pan_and_zoom() -> None:
    frames, windows = synthetic_clip(_photo(), (32, 48), 6, pan=2.0, zoom=0.01)
    raw = sum((a - b).abs().mean().item() for a, b in zip(frames[:-1], frames[1:], strict=True)) / 5
    compensated = temporal_error(frames, windows)
    assert compensated < 0.1 * raw  # warping explains almost all the change


def test_flicker_grows_with_injected_noise() -> None:
    frames, windows = synthetic_clip(_photo(), (32, 48), 6, pan=1.0, zoom=0.005)
    errors = []
    for amount in (0.0, 0.05, 0.2):
        noisy = [f + amount * torch.randn_like(f) for f in frames]
        errors.append(temporal_error(noisy, windows))
    assert errors[0] < errors[1] < errors[2]
    loss = [temporal_loss(frames[1] + a * torch.randn_like(frames[1]), frames[1]).item()
            for a in (0.0, 0.1)]
    assert loss[0] == 0.0 and loss[1] > 0.005


def test_visibility_mask_excludes_pixels_entering_the_frame() -> None:
    prev, cur = Window(1.0, 0.0, 0.0), Window(1.0, 4.0, 0.0)  # camera moves 4 px right
    _, mask = warp_previous(torch.rand(1, 3, 8, 16), prev, cur)
    assert mask[..., :, :12].min() == 1 and mask[..., :, 13:].max() == 0


def test_flow_warp_and_occlusion_mask() -> None:
    image = torch.rand(1, 3, 8, 8)
    zero = torch.zeros(1, 2, 8, 8)
    torch.testing.assert_close(warp_with_flow(image, zero), image)
    shift = torch.zeros(1, 2, 8, 8)
    shift[:, 0] = 1.0  # each pixel of frame t came from one pixel to the right in t-1
    assert torch.allclose(warp_with_flow(image, shift)[..., :, :6], image[..., :, 1:7])
    assert occlusion_mask(-shift, shift).min() == 1.0
    wrong = torch.zeros(1, 2, 8, 8)
    wrong[:, 0] = 3.0
    assert occlusion_mask(wrong, shift).max() == 0.0


def test_needs_two_frames() -> None:
    frames, windows = synthetic_clip(_photo(), (16, 16), 1)
    with pytest.raises(ValueError, match="two frames"):
        temporal_error(frames, windows)


class Identity(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Constant(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, 0.5)


def test_stability_loss_values() -> None:
    x = torch.rand(2, 3, 16, 16)
    noise = StabilityConfig(weight=1, mode="noise", noise=0.05)
    shift = StabilityConfig(weight=1, mode="shift", max_shift=3)
    assert stability_loss(Constant(), x, Constant()(x), noise).item() == 0.0
    assert stability_loss(Identity(), x, x, shift).item() == 0.0  # identity is shift-equivariant
    assert 0.5 * 0.05**2 < stability_loss(Identity(), x, x, noise).item() < 1.5 * 0.05**2
    with pytest.raises(ValueError, match="noise or shift"):
        stability_loss(Identity(), x, x, StabilityConfig(mode="blur"))
