"""The optimizer's objective: the perceptual loss for a task, its style targets, the size check
every image passes before the VGG, and the precision of the VGG passes."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import torch
from torch import Tensor

from fast_nst.core.images import resize
from fast_nst.core.losses import PerceptualLoss, StyleTarget
from fast_nst.core.perceptual import build_perceptual_loss
from fast_nst.core.vgg import check_side, resolve_convention
from fast_nst.errors import FastNSTError
from fast_nst.optimizer.config import GatysConfig, layer_weights, loss_weights
from fast_nst.precision import DTYPES, resolve_precision


def build_loss(cfg: GatysConfig, device: torch.device | str = "cpu") -> PerceptualLoss:
    """One encoder for the union of the layers the task uses, wrapped in PerceptualLoss."""
    convention = resolve_convention(str(cfg.vgg.weights), cfg.vgg.convention).name
    weights = loss_weights(cfg, convention)
    content_layers = (layer_weights(cfg.content_layers, cfg.content_layer_weights, "content")
                      if weights.content else {})
    style_layers = (layer_weights(cfg.style_layers, cfg.style_layer_weights, "style")
                    if weights.style else {})
    if not content_layers and not style_layers:
        raise FastNSTError("no loss to optimize: give content_layers or style_layers")
    return build_perceptual_loss(cfg.vgg, content_layers, style_layers, weights, device)


def check_size(loss: PerceptualLoss, image: Tensor, what: str) -> None:
    """One-line error when an image is too small to reach the deepest layer (every max-pool
    halves it)."""
    h, w = image.shape[-2:]
    check_side(loss.encoder.layers, h, w, what, "raise size")


def style_targets(loss: PerceptualLoss, styles: list[Tensor], mask: Tensor | None,
                  scale: float, device: torch.device) -> list[StyleTarget]:
    """Gram targets (computed once): one style everywhere, or masked ones per region."""
    scaled = [resize(s, scale=scale).to(device) if scale != 1 else s.to(device) for s in styles]
    for image in scaled:
        check_size(loss, image, "style image")
    if mask is None:
        return [loss.style_target(scaled[0])]
    mask = mask.to(device)
    targets = [loss.style_target(scaled[0], mask=mask)]
    if len(scaled) > 1:
        targets.append(loss.style_target(scaled[1], mask=1 - mask))
    return targets


def autocast_dtype(cfg: GatysConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of the VGG passes from `cfg.precision` (the rule of
    `fast_nst.device`); None for float32. Warns once when an explicit choice will be slow."""
    precision = resolve_precision(cfg.precision, device)
    if precision.warning:
        warnings.warn(precision.warning, stacklevel=2)
    return None if precision.short == "fp32" else DTYPES[precision.short]


@torch.no_grad()
def final_losses(loss: PerceptualLoss, image: Tensor,
                 content_features: Mapping[str, Tensor] | None) -> dict[str, float]:
    """The weighted loss terms of the finished image (one forward pass)."""
    return {k: float(v) for k, v in loss(image, content_features).items()}
