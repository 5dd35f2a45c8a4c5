"""The image transformation network (Johnson et al. 2016) and its architecture settings.

`NetConfig()` is Johnson's network; module names follow pytorch/examples `fast_neural_style`
(conv1, in1, res1 ... deconv3), so their `.pth` state dicts load into the full-width,
instance-norm, upsample configuration. The other settings make cheaper networks for the CPU:
a third downsampling stage, inverted-residual blocks, separable upsampling, small end kernels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fast_nst.errors import FastNSTError

WIDTHS = {"full": (32, 64, 128), "half": (16, 32, 64), "quarter": (8, 16, 32)}
OUTPUTS = ("sigmoid", "tanh", "clamp")
CHOICES = {"width": tuple(WIDTHS), "norm": ("instance", "batch"),
           "upsample": ("nearest", "deconv", "separable"), "output": OUTPUTS,
           "block": ("residual", "inverted"), "downsample": (2, 3), "end_kernel": (3, 5, 9)}
INVERTED_EXPANSION = 2  # an inverted-residual block's hidden channels per channel


# The NetConfig fields that decide the weights' shapes: a resumed checkpoint and a warm start
# must match them (a warm start may widen; the output mapping comes from the model file).
SHAPE_FIELDS = ("width", "n_residual", "norm", "upsample", "downsample", "block", "end_kernel")


@dataclass
class NetConfig:
    """Architecture choices; stored in every exported model so it rebuilds itself."""

    width: str = "full"  # channels: full 32/64/128, half 16/32/64, quarter 8/16/32
    n_residual: int = 5
    norm: str = "instance"  # instance (affine) or batch
    # nearest + conv (no checkerboard), deconv (transposed conv), or separable (nearest, then
    # a depthwise 3x3 and a 1x1 conv: a fifth of the work)
    upsample: str = "nearest"
    output: str = "sigmoid"  # sigmoid, tanh ((tanh+1)/2) or clamp (linear, clamped in eval)
    pixel_scale: float = 1.0  # 255 for pytorch/examples nets, which work in 0..255
    downsample: int = 2  # stride-2 stages; 3 runs the residual blocks at 1/8 resolution
    block: str = "residual"  # residual (two 3x3 convs) or inverted (1x1, depthwise 3x3, 1x1)
    end_kernel: int = 9  # the first and last convolutions' kernel

    def validate(self) -> NetConfig:
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise FastNSTError(f"unknown model.{name} {getattr(self, name)!r}; "
                                   f"use one of {', '.join(map(str, allowed))}")
        if self.n_residual < 0:
            raise FastNSTError(f"model.n_residual must be >= 0, got {self.n_residual}")
        return self

    @property
    def multiple(self) -> int:
        """Input sides are padded to a multiple of this (one halving per stride-2 stage)."""
        return 2 ** self.downsample


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.InstanceNorm2d(channels, affine=True)


class ConvLayer(nn.Module):
    """Reflection padding then convolution (no zero-padding borders)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1,
                 groups: int = 1) -> None:
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel // 2)
        self.conv2d = nn.Conv2d(cin, cout, kernel, stride, groups=groups)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2d(self.reflection_pad(x))


class UpsampleConvLayer(ConvLayer):
    """Nearest-neighbour upsampling then a convolution: avoids checkerboard artefacts."""

    def __init__(self, cin: int, cout: int, kernel: int, upsample: int = 2) -> None:
        super().__init__(cin, cout, kernel)
        self.upsample = upsample

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=float(self.upsample), mode="nearest")
        return self.conv2d(self.reflection_pad(x))


class SeparableUpsampleLayer(nn.Module):
    """Nearest-neighbour 2x upsampling, a depthwise 3x3 then a 1x1 convolution."""

    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__()
        self.depthwise = ConvLayer(cin, cin, kernel, groups=cin)
        self.pointwise = nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(F.interpolate(x, scale_factor=2.0, mode="nearest")))


class DeconvLayer(nn.Module):
    """Transposed convolution, stride 2 (Johnson's original upsampling)."""

    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__()
        self.conv2d = nn.ConvTranspose2d(cin, cout, kernel, stride=2, padding=kernel // 2,
                                         output_padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2d(x)


UPSAMPLERS = {"nearest": UpsampleConvLayer, "deconv": DeconvLayer,
              "separable": SeparableUpsampleLayer}


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3)
        self.in1 = _norm(norm, channels)
        self.conv2 = ConvLayer(channels, channels, 3)
        self.in2 = _norm(norm, channels)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.in2(self.conv2(F.relu(self.in1(self.conv1(x)))))


class InvertedResidualBlock(nn.Module):
    """MobileNetV2's block: 1x1 expansion, depthwise 3x3, 1x1 projection (a third of the
    multiply-adds of two full 3x3 convolutions at twice the hidden channels)."""

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        hidden = channels * INVERTED_EXPANSION
        self.expand, self.in1 = nn.Conv2d(channels, hidden, 1), _norm(norm, hidden)
        self.depthwise = ConvLayer(hidden, hidden, 3, groups=hidden)
        self.in2 = _norm(norm, hidden)
        self.project, self.in3 = nn.Conv2d(hidden, channels, 1), _norm(norm, channels)

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.in1(self.expand(x)))
        y = F.relu(self.in2(self.depthwise(y)))
        return x + self.in3(self.project(y))


BLOCKS = {"residual": ResidualBlock, "inverted": InvertedResidualBlock}


class TransformerNet(nn.Module):
    """RGB 0..1 in, RGB 0..1 out, any height and width (padded to `config.multiple`, cropped).

    Layers, in order: `down` (conv1/in1 at full resolution, then stride-2 convs), the residual
    blocks, `up` (2x upsampling layers with their norms), and `deconv3` back to RGB.
    """

    def __init__(self, config: NetConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        self.config = c = (config or NetConfig(**overrides)).validate()
        c1, c2, c3 = WIDTHS[c.width]
        up, k = UPSAMPLERS[c.upsample], c.end_kernel
        self.conv1, self.in1 = ConvLayer(3, c1, k), _norm(c.norm, c1)
        self.conv2, self.in2 = ConvLayer(c1, c2, 3, stride=2), _norm(c.norm, c2)
        self.conv3, self.in3 = ConvLayer(c2, c3, 3, stride=2), _norm(c.norm, c3)
        if c.downsample == 3:
            self.conv4, self.in_conv4 = ConvLayer(c3, c3, 3, stride=2), _norm(c.norm, c3)
        for i in range(1, c.n_residual + 1):
            self.add_module(f"res{i}", BLOCKS[c.block](c3, c.norm))
        if c.downsample == 3:
            self.deconv0, self.in_deconv0 = up(c3, c3, 3), _norm(c.norm, c3)
        self.deconv1, self.in4 = up(c3, c2, 3), _norm(c.norm, c2)
        self.deconv2, self.in5 = up(c2, c1, 3), _norm(c.norm, c1)
        self.deconv3 = ConvLayer(c1, 3, k)

    def down(self) -> list[tuple[nn.Module, nn.Module]]:
        """The (convolution, norm) pairs before the residual blocks, in order."""
        names = [("conv1", "in1"), ("conv2", "in2"), ("conv3", "in3"), ("conv4", "in_conv4")]
        return [(getattr(self, a), getattr(self, b)) for a, b in names[:self.config.downsample + 1]]

    def blocks(self) -> list[nn.Module]:
        return [getattr(self, f"res{i}") for i in range(1, self.config.n_residual + 1)]

    def up(self) -> list[tuple[nn.Module, nn.Module]]:
        """The (upsampling layer, norm) pairs after the residual blocks, in order."""
        names = [("deconv0", "in_deconv0"), ("deconv1", "in4"), ("deconv2", "in5")]
        return [(getattr(self, a), getattr(self, b)) for a, b in names[3 - self.config.downsample:]]

    def _body(self, x: Tensor) -> Tensor:
        for conv, norm in self.down():
            x = F.relu(norm(conv(x)))
        for block in self.blocks():
            x = block(x)
        for layer, norm in self.up():
            x = F.relu(norm(layer(x)))
        return self.deconv3(x)

    def _map_output(self, y: Tensor) -> Tensor:
        kind = self.config.output
        if kind == "sigmoid":
            return torch.sigmoid(y)
        if kind == "tanh":
            return (torch.tanh(y) + 1) / 2
        return y if self.training else y.clamp(0, 1)

    def forward(self, images: Tensor) -> Tensor:
        h, w = images.shape[-2:]
        multiple = self.config.multiple
        pad_h, pad_w = padding(h, multiple), padding(w, multiple)
        x = images * self.config.pixel_scale
        if pad_h or pad_w:
            mode = "reflect" if min(h, w) > max(pad_h, pad_w) else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        y = self._body(x)[..., :h, :w] / self.config.pixel_scale
        return self._map_output(y)


# The network pads every side to a multiple of 4 (8 with three downsampling stages) and to at
# least 8 px: its 9x9 convolutions reflection-pad 4 px, which needs a side of 5 or more, and the
# 3x3 convolutions at the lowest resolution pad 1 px, which needs 2 px there (16 px in, at 1/8).
# Smaller images (down to 1 px) are padded by repeating their edge and cropped back.
MIN_SIDE = 8


def padding(side: int, multiple: int = 4) -> int:
    """Pixels added after a side of `side` px (the output is cropped back)."""
    return max(MIN_SIDE, 2 * multiple, side + (-side) % multiple) - side
