"""Temporal consistency: warping by known motion or flow, the temporal loss, the flicker metric.

A synthetic clip (a slow pan and zoom over one photo) knows its true motion, so flicker can be
measured without an optical-flow model: warp the previous stylized frame onto the current one
and compare the pixels visible in both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from fast_nst.errors import FastNSTError


@dataclass(frozen=True)
class Window:
    """Where a frame sits in the source photo: photo_xy = scale * frame_xy + offset (pixels)."""

    scale: float
    offset_x: float
    offset_y: float


def pan_zoom_windows(photo_hw: tuple[int, int], frame_hw: tuple[int, int], n_frames: int,
                     pan: float = 1.0, zoom: float = 0.004) -> list[Window]:
    """A slow diagonal pan (`pan` photo pixels per frame) while zooming in (`zoom` per frame).

    The windows stay inside the photo; a one-line ValueError says so when the photo is too small.
    """
    ph, pw = photo_hw
    fh, fw = frame_hw
    start = min(ph / fh, pw / fw) * 0.9
    windows = []
    for t in range(n_frames):
        s = start * (1 - zoom) ** t
        ox = (pw - s * fw) * 0.5 - pan * (n_frames / 2 - t)
        oy = (ph - s * fh) * 0.5 - 0.5 * pan * (n_frames / 2 - t)
        if ox < 0 or oy < 0 or ox + s * fw > pw or oy + s * fh > ph:
            raise ValueError("photo too small for this pan/zoom; lower pan or frames")
        windows.append(Window(s, ox, oy))
    return windows


def _pixel_grid(h: int, w: int, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32) + 0.5,
                            torch.arange(w, device=device, dtype=torch.float32) + 0.5,
                            indexing="ij")
    return xs, ys


def _sample(image: Tensor, xs: Tensor, ys: Tensor) -> Tensor:
    """Bilinear sample (B, C, H, W) at pixel coordinates (h, w) of the source."""
    h, w = image.shape[-2:]
    grid = torch.stack([xs / w * 2 - 1, ys / h * 2 - 1], dim=-1)
    grid = grid.unsqueeze(0).expand(image.shape[0], -1, -1, -1).to(image.dtype)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border",
                         align_corners=False)


def render_window(photo: Tensor, window: Window, frame_hw: tuple[int, int]) -> Tensor:
    """The frame a camera at `window` sees of `photo` (1, 3, H, W)."""
    xs, ys = _pixel_grid(*frame_hw, device=photo.device)
    return _sample(photo, window.scale * xs + window.offset_x, window.scale * ys + window.offset_y)


def synthetic_clip(photo: Tensor, frame_hw: tuple[int, int], n_frames: int, pan: float = 1.0,
                   zoom: float = 0.004) -> tuple[list[Tensor], list[Window]]:
    """Frames of a pan-and-zoom over `photo`, with their windows (the true motion)."""
    windows = pan_zoom_windows(tuple(photo.shape[-2:]), frame_hw, n_frames, pan, zoom)
    return [render_window(photo, win, frame_hw) for win in windows], windows


def warp_previous(previous: Tensor, prev_window: Window, window: Window) -> tuple[Tensor, Tensor]:
    """Bring frame t-1 onto frame t's pixels; returns (warped, mask of pixels seen in both)."""
    h, w = previous.shape[-2:]
    xs, ys = _pixel_grid(h, w, device=previous.device)
    px = (window.scale * xs + window.offset_x - prev_window.offset_x) / prev_window.scale
    py = (window.scale * ys + window.offset_y - prev_window.offset_y) / prev_window.scale
    visible = ((px >= 0.5) & (px <= w - 0.5) & (py >= 0.5) & (py <= h - 0.5)).float()
    return _sample(previous, px, py), visible.view(1, 1, h, w).to(previous.dtype)


def warp_with_flow(previous: Tensor, flow: Tensor) -> Tensor:
    """Backward warp: `flow` (B, 2, H, W) gives, per pixel of frame t, the offset to frame t-1."""
    h, w = previous.shape[-2:]
    xs, ys = _pixel_grid(h, w, device=previous.device)
    grid = torch.stack([(xs + flow[:, 0]) / w * 2 - 1, (ys + flow[:, 1]) / h * 2 - 1], dim=-1)
    return F.grid_sample(previous, grid.to(previous.dtype), mode="bilinear",
                         padding_mode="border", align_corners=False)


def occlusion_mask(forward_flow: Tensor, backward_flow: Tensor, tolerance: float = 0.5) -> Tensor:
    """1 where forward and backward flow agree (the pixel is visible in both frames), else 0.

    The consistency check of Ruder et al.: following the backward flow then the forward flow
    should return to the start, up to a tolerance growing with the motion.
    """
    round_trip = warp_with_flow(forward_flow, backward_flow) + backward_flow
    error = round_trip.pow(2).sum(1, keepdim=True)
    motion = warp_with_flow(forward_flow, backward_flow).pow(2).sum(1, keepdim=True)
    motion = motion + backward_flow.pow(2).sum(1, keepdim=True)
    return (error <= 0.01 * motion + tolerance).to(forward_flow.dtype)


def temporal_loss(current: Tensor, warped_previous: Tensor, mask: Tensor | None = None) -> Tensor:
    """Masked MSE between the current output and the previous output warped onto it."""
    diff = (current.float() - warped_previous.float()).pow(2)
    if mask is None:
        return diff.mean()
    mask = mask.float().expand_as(diff)
    return (diff * mask).sum() / mask.sum().clamp_min(1.0)


def temporal_error(frames: Iterable[Tensor], windows: Iterable[Window]) -> float:
    """Flicker: mean absolute difference (0..1 scale) between each frame and the motion-
    compensated previous one, over pixels visible in both, averaged over frame pairs."""
    errors = [err for err in _pair_errors(frames, windows)]
    if not errors:
        raise ValueError("temporal error needs at least two frames")
    return float(sum(errors) / len(errors))


def _pair_errors(frames: Iterable[Tensor], windows: Iterable[Window]) -> Iterator[float]:
    previous: tuple[Tensor, Window] | None = None
    for frame, window in zip(frames, windows, strict=True):
        if previous is not None:
            warped, visible = warp_previous(previous[0], previous[1], window)
            diff = (frame.float() - warped.float()).abs() * visible
            yield (diff.sum() / (visible.sum() * frame.shape[1]).clamp_min(1.0)).item()
        previous = (frame, window)


@dataclass
class StabilityConfig:
    """Teach a feed-forward network temporal stability without video (Gupta et al. 2017).

    `noise`: a copy of each training image with Gaussian noise of std `noise` must give the same
    output; `shift`: a copy shifted by up to `max_shift` pixels must give the shifted output.
    Both stand in for what changes between two video frames of a still scene.
    """

    weight: float = 0.0
    mode: str = "noise"
    noise: float = 0.03
    max_shift: int = 4


def stability_loss(net: torch.nn.Module, content: Tensor, output: Tensor,
                   cfg: StabilityConfig) -> Tensor:
    """MSE between the output for a perturbed copy of `content` and the matching output."""
    if cfg.mode == "noise":
        perturbed = (content + cfg.noise * torch.randn_like(content)).clamp(0, 1)
        return F.mse_loss(net(perturbed).float(), output.float())
    if cfg.mode == "shift":
        dy, dx = (int(v) for v in torch.randint(1, cfg.max_shift + 1, (2,)))
        shifted = net(content[..., dy:, dx:])
        return F.mse_loss(shifted.float(), output[..., dy:, dx:].float())
    raise ValueError(f"unknown stability mode {cfg.mode!r}; use noise or shift")


Alignment = Callable[[Tensor, int], tuple[Tensor, Tensor]]
"""(previous output, index of the current frame) -> (previous warped onto it, visible mask)."""


class KnownMotion:
    """Aligns the previous output to frame `index` by the windows of a synthetic clip."""

    def __init__(self, windows: list[Window]) -> None:
        self.windows = windows

    def __call__(self, previous: Tensor, index: int) -> tuple[Tensor, Tensor]:
        return warp_previous(previous, self.windows[index - 1], self.windows[index])


def static_alignment(previous: Tensor, index: int) -> tuple[Tensor, Tensor]:
    """No motion compensation (a still camera): the previous output as it is, every pixel."""
    return previous, torch.ones_like(previous[:, :1])


class FlowAlignment:
    """Aligns by optical flow between the content frames (torchvision's RAFT), with the
    forward-backward occlusion mask; `weights="default"` downloads RAFT's weights once."""

    def __init__(self, weights: str | None = "default") -> None:
        from torchvision.models.optical_flow import Raft_Small_Weights, raft_small

        try:
            chosen = Raft_Small_Weights.DEFAULT if weights == "default" else None
            self.model = raft_small(weights=chosen, progress=False).eval()
        except OSError as err:

            raise FastNSTError(f"could not download RAFT's weights ({type(err).__name__}); "
                               "use flow=none or known motion offline") from None
        self.previous_content: Tensor | None = None
        self.content: Tensor | None = None

    def observe(self, content: Tensor) -> None:
        """Record the next content frame (call before aligning to it)."""
        self.previous_content, self.content = self.content, content

    @torch.no_grad()
    def _flow(self, a: Tensor, b: Tensor) -> Tensor:
        h, w = a.shape[-2:]
        ph, pw = (-h) % 8, (-w) % 8
        pad = (0, pw, 0, ph)
        a8, b8 = (F.pad(x * 2 - 1, pad, mode="replicate") for x in (a, b))
        self.model.to(a.device)  # frames arrive on the optimizer's device (a no-op once there)
        return self.model(a8, b8, num_flow_updates=6)[-1][..., :h, :w]

    def __call__(self, previous: Tensor, index: int) -> tuple[Tensor, Tensor]:
        if self.previous_content is None or self.content is None:
            return static_alignment(previous, index)
        backward = self._flow(self.content, self.previous_content)  # t -> t-1
        forward = self._flow(self.previous_content, self.content)
        return warp_with_flow(previous, backward), occlusion_mask(forward, backward)
