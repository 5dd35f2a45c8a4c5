"""Colour preservation (Gatys et al. 2017): luminance-only transfer and colour matching.

Shared by the optimizer (before optimizing) and by `stylize` (after the network).
"""

from __future__ import annotations

import torch
from torch import Tensor

# NTSC YIQ: Y carries luminance, I and Q the chroma.
_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]]
)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def _apply(matrix: Tensor, images: Tensor) -> Tensor:
    return torch.einsum("ij,bjhw->bihw", matrix.to(images), images)


def rgb_to_yiq(images: Tensor) -> Tensor:
    """(B, 3, H, W) RGB -> YIQ."""
    return _apply(_RGB_TO_YIQ, images)


def yiq_to_rgb(images: Tensor) -> Tensor:
    return _apply(_YIQ_TO_RGB, images)


def luminance(images: Tensor) -> Tensor:
    """(B, 1, H, W) luma, as a 3-channel grey image is what VGG expects: see `grey`."""
    return rgb_to_yiq(images)[:, :1]


def grey(images: Tensor) -> Tensor:
    """The luminance repeated into three channels (what the optimizer sees in luminance mode)."""
    return luminance(images).expand(-1, 3, -1, -1)


def match_luminance(style: Tensor, content: Tensor) -> Tensor:
    """Shift and scale the style's luminance to the content's mean and std (Gatys 2017, eq. 1)."""
    ys, yc = luminance(style), luminance(content)
    matched = (ys - ys.mean()) * (yc.std() / ys.std().clamp_min(1e-6)) + yc.mean()
    return matched.expand(-1, 3, -1, -1).clamp(0, 1)


def transfer_luminance(stylized: Tensor, content: Tensor) -> Tensor:
    """The stylized image's luminance with the content's chroma (I, Q), back in RGB."""
    yiq = rgb_to_yiq(content).clone()
    yiq[:, :1] = luminance(stylized)
    return yiq_to_rgb(yiq).clamp(0, 1)


def match_color_histogram(source: Tensor, reference: Tensor, eps: float = 1e-5) -> Tensor:
    """Linearly map `source` colours so their mean and covariance equal `reference`'s.

    The colour-histogram matching of Gatys et al. 2017 (their eq. 2, Cholesky variant):
    recolour the style image to the content's palette before transfer.
    """
    def stats(x: Tensor) -> tuple[Tensor, Tensor]:
        flat = x.permute(1, 0, 2, 3).reshape(3, -1).double()
        mean = flat.mean(1, keepdim=True)
        centred = flat - mean
        eye = torch.eye(3, dtype=flat.dtype, device=flat.device)
        cov = centred @ centred.T / centred.shape[1] + eps * eye
        return mean, cov

    mu_s, cov_s = stats(source)
    mu_r, cov_r = stats(reference)
    transform = torch.linalg.cholesky(cov_r) @ torch.linalg.inv(torch.linalg.cholesky(cov_s))
    flat = source.permute(1, 0, 2, 3).reshape(3, -1).double()
    mapped = transform @ (flat - mu_s) + mu_r
    b, _, h, w = source.shape
    out = mapped.reshape(3, b, h, w).permute(1, 0, 2, 3)
    return out.to(source.dtype).clamp(0, 1)
