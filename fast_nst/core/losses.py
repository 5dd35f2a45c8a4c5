"""Perceptual losses: content (feature MSE), Gram style, total variation, and their sum.

Shared by the optimizer and the trainer. Gram matrices are normalised by C*H*W and always
computed in float32, so bf16 autocast changes the speed of training, not the style statistics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fast_nst.core.vgg import VGGEncoder

LayerWeights = Mapping[str, float]


# The one table of default loss weights, per VGG input convention and per user of the loss: the
# optimizer (one image, Gatys et al.'s layers: the content weight is relative, TV smooths) and
# the feed-forward network (Johnson et al.'s layers; conf/loss/gatys.yaml overrides its style
# weight for Gatys's layers). Caffe features are ~255x torchvision's: content MSE scales by
# 255^2, Gram MSE by 255^4, so the style/content ratio differs by 255^2 = 65,025 between the two;
# TV (pixel space) scales with the content term. The caffe values were tuned by eye on the
# ../shared photos and paintings at 256 px; the torchvision ones are derived by that factor.
# The optimizer's rows also hold its plain-SGD learning rate and temporal (video) weight, which
# scale the same way (docs/optimizer.md, docs/training.md).
CONVENTION_DEFAULTS: dict[str, dict[str, dict[str, float]]] = {
    "caffe": {"optimizer": {"content": 1.0, "style": 5.0, "tv": 1e4, "sgd_lr": 3e-7,
                            "temporal": 1e8},
              "network": {"content": 1.0, "style": 0.2, "tv": 0.0}},
    "torchvision": {"optimizer": {"content": 1.0, "style": 3.25e5, "tv": 0.15, "sgd_lr": 2e-2,
                                  "temporal": 1.5e3},
                    "network": {"content": 1.0, "style": 1.3e4, "tv": 0.0}},
}


def as_layer_weights(layers: Sequence[str] | Mapping[str, float]) -> dict[str, float]:
    """Accept `[relu1_1, relu2_1]` (weight 1 each) or `{relu1_1: 0.5, ...}`."""
    if isinstance(layers, Mapping):
        return {str(k): float(v) for k, v in layers.items()}
    return {str(name): 1.0 for name in layers}


def resize_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """Downsample a (B|1, 1, H, W) region mask to a feature map's size (area average)."""
    return F.interpolate(mask.float(), size=size, mode="area")


class _SymmetricGram(torch.autograd.Function):
    """(B, C, N) -> F F^T with one matmul in the backward pass instead of autograd's two.

    G is symmetric, so dL/dF = (dG + dG^T) F. Each backward matmul writes a (B, C, H*W) array,
    the costliest part of the style loss; one instead of two took 1-9% off a training step.
    """

    @staticmethod
    def forward(ctx, f: Tensor) -> Tensor:
        ctx.save_for_backward(f)
        return torch.bmm(f, f.transpose(1, 2))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> Tensor:
        (f,) = ctx.saved_tensors
        return torch.bmm(grad + grad.transpose(1, 2), f)


def gram_matrix(features: Tensor, mask: Tensor | None = None) -> Tensor:
    """(B, C, H, W) -> (B, C, C) Gram matrix / (C*H*W), in float32.

    With a mask (values 0..1, any resolution), features are weighted by the mask resized to
    H x W and the Gram is normalised by C * sum(mask), i.e. the statistics of that region.
    """
    with torch.autocast(device_type=features.device.type, enabled=False):
        f = features.float()
        b, c, h, w = f.shape
        norm = float(c * h * w)
        if mask is not None:
            m = resize_mask(mask, (h, w))
            f = f * m
            norm = c * m.sum(dim=(1, 2, 3)).clamp_min(1e-8).view(-1, 1, 1)
        f = f.reshape(b, c, h * w)
        return _SymmetricGram.apply(f) / norm


def content_loss(features: Mapping[str, Tensor], targets: Mapping[str, Tensor],
                 weights: LayerWeights) -> Tensor:
    """Weighted MSE between feature maps, summed over layers."""
    terms = [w * F.mse_loss(features[k].float(), targets[k].float()) for k, w in weights.items()]
    return torch.stack(terms).sum()


def total_variation(images: Tensor) -> Tensor:
    """Mean squared difference between neighbouring pixels (zero on a constant image)."""
    dh = images[..., 1:, :] - images[..., :-1, :]
    dw = images[..., :, 1:] - images[..., :, :-1]
    return dh.float().pow(2).mean() + dw.float().pow(2).mean()


@dataclass
class StyleTarget:
    """Gram targets per layer for one style, optionally applied only inside a region mask."""

    grams: dict[str, Tensor]
    mask: Tensor | None = None  # (1, 1, H, W) in output-image space, 0..1
    weight: float = 1.0


class StyleLoss(nn.Module):
    """Sum over targets and layers of w_l * MSE(Gram(output), Gram(style)).

    Targets are (1, C, C) and broadcast over the batch. Several masked targets give spatial
    control (Gatys et al. 2017): each style applies only inside its region.
    """

    def __init__(self, weights: LayerWeights) -> None:
        super().__init__()
        self.weights = dict(weights)
        self.targets: list[StyleTarget] = []

    def set_targets(self, targets: Sequence[StyleTarget]) -> None:
        self.targets = list(targets)

    def forward(self, features: Mapping[str, Tensor]) -> Tensor:
        if not self.targets:
            raise RuntimeError("StyleLoss has no target: call set_targets first")
        total = features[next(iter(self.weights))].new_zeros((), dtype=torch.float32)
        for target in self.targets:
            for layer, w in self.weights.items():
                gram = gram_matrix(features[layer], target.mask)
                goal = target.grams[layer].to(gram.device).expand_as(gram)
                total = total + target.weight * w * F.mse_loss(gram, goal)
        return total


@dataclass
class LossWeights:
    content: float = 1.0
    style: float = 1.0
    tv: float = 0.0


class PerceptualLoss(nn.Module):
    """Content + style + TV loss over one VGG19 pass.

    `forward(images, content_features)` returns a dict with `content`, `style`, `tv` (each
    already multiplied by its weight) and `total`. `content_features` come from
    `content_targets(content_images)`; the style targets from `set_style(style_images)`.
    """

    def __init__(self, encoder: VGGEncoder, content_layers: LayerWeights,
                 style_layers: LayerWeights, weights: LossWeights) -> None:
        super().__init__()
        missing = set(content_layers) | set(style_layers)
        missing -= set(encoder.layers)
        if missing:
            raise ValueError(f"encoder lacks layers {sorted(missing)}")
        self.encoder = encoder
        self.content_layers = dict(content_layers)
        self.style = StyleLoss(style_layers)
        self.weights = weights

    @torch.no_grad()
    def style_target(self, style_image: Tensor, mask: Tensor | None = None,
                     weight: float = 1.0) -> StyleTarget:
        """Gram targets of one style image (1, 3, H, W); `mask` selects where it applies."""
        feats = self.encoder(style_image)
        grams = {k: gram_matrix(feats[k]).mean(0, keepdim=True) for k in self.style.weights}
        return StyleTarget(grams=grams, mask=mask, weight=weight)

    def set_style(self, style_image: Tensor) -> None:
        """One style everywhere: the feed-forward and plain Gatys case."""
        self.style.set_targets([self.style_target(style_image)])

    @torch.no_grad()
    def content_targets(self, content_images: Tensor) -> dict[str, Tensor]:
        feats = self.encoder(content_images, upto=self.content_layers)
        return {k: feats[k].detach() for k in self.content_layers}

    def forward(self, images: Tensor,
                content_features: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        w = self.weights
        feats = self.encoder(images)
        zero = images.new_zeros((), dtype=torch.float32)
        terms = {"content": zero, "style": zero, "tv": zero}
        if w.content and self.content_layers and content_features is not None:
            terms["content"] = w.content * content_loss(feats, content_features,
                                                        self.content_layers)
        if w.style and self.style.weights and self.style.targets:
            terms["style"] = w.style * self.style(feats)
        if w.tv:
            terms["tv"] = w.tv * total_variation(images)
        terms["total"] = terms["content"] + terms["style"] + terms["tv"]
        return terms
