"""One builder for the perceptual loss: a VGG19 encoder cut at the deepest layer in use, wrapped
in `PerceptualLoss`. Training, the optimizer and the flicker study all build it here, so the
`vgg` settings (weights, convention, pooling) mean the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from fast_nst.core.losses import LayerWeights, LossWeights, PerceptualLoss
from fast_nst.core.vgg import VGGConfig, VGGEncoder


def build_perceptual_loss(
    vgg: VGGConfig,
    content_layers: LayerWeights,
    style_layers: LayerWeights,
    weights: LossWeights | Callable[[str], LossWeights],
    device: torch.device | str | None = None,
) -> PerceptualLoss:
    """The encoder for the union of the layers, and the loss over it (on `device` if given).

    `weights` may be a function of the resolved convention name (`caffe` or `torchvision`),
    because the sensible loss weights differ by ~255^2 between the two input scales.
    """
    encoder = VGGEncoder([*content_layers, *style_layers], weights=str(vgg.weights),
                         convention=vgg.convention, pooling=vgg.pooling)
    if callable(weights):
        weights = weights(encoder.convention.name)
    loss = PerceptualLoss(encoder, content_layers, style_layers, weights)
    return loss if device is None else loss.to(device)
