"""Johnson et al.'s image transformation network and its architecture settings (`NetConfig`).

Module names follow pytorch/examples `fast_neural_style` (conv1, in1, res1 ... deconv3), so
their `.pth` state dicts load into the full-width, instance-norm, upsample configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fast_nst.errors import FastNSTError

WIDTHS = {"full": (32, 64, 128), "half": (16, 32, 64)}
OUTPUTS = ("sigmoid", "tanh", "clamp")


# The NetConfig fields that decide the weights' shapes: a resumed checkpoint and a warm start
# must match them (a warm start may widen; the output mapping comes from the model file).
SHAPE_FIELDS = ("width", "n_residual", "norm", "upsample")


@dataclass
class NetConfig:
    """Architecture choices; stored in every exported model so it rebuilds itself."""

    width: str = "full"  # full 32/64/128 or half 16/32/64 channels
    n_residual: int = 5
    norm: str = "instance"  # instance (affine) or batch
    upsample: str = "nearest"  # nearest + conv (no checkerboard) or deconv (transposed conv)
    output: str = "sigmoid"  # sigmoid, tanh ((tanh+1)/2) or clamp (linear, clamped in eval)
    pixel_scale: float = 1.0  # 255 for pytorch/examples nets, which work in 0..255

    def validate(self) -> NetConfig:
        choices = {"width": tuple(WIDTHS), "norm": ("instance", "batch"),
                   "upsample": ("nearest", "deconv"), "output": OUTPUTS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise FastNSTError(f"unknown model.{name} {getattr(self, name)!r}; "
                                   f"use one of {', '.join(allowed)}")
        if self.n_residual < 0:
            raise FastNSTError(f"model.n_residual must be >= 0, got {self.n_residual}")
        return self


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.InstanceNorm2d(channels, affine=True)


class ConvLayer(nn.Module):
    """Reflection padding then convolution (no zero-padding borders)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel // 2)
        self.conv2d = nn.Conv2d(cin, cout, kernel, stride)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2d(self.reflection_pad(x))


class UpsampleConvLayer(ConvLayer):
    """Nearest-neighbour upsampling then a convolution: avoids checkerboard artefacts."""

    def __init__(self, cin: int, cout: int, kernel: int, upsample: int = 2) -> None:
        super().__init__(cin, cout, kernel)
        self.upsample = upsample

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.interpolate(x, scale_factor=self.upsample, mode="nearest"))


class DeconvLayer(nn.Module):
    """Transposed convolution, stride 2 (Johnson's original upsampling)."""

    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__()
        self.conv2d = nn.ConvTranspose2d(cin, cout, kernel, stride=2, padding=kernel // 2,
                                         output_padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2d(x)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3)
        self.in1 = _norm(norm, channels)
        self.conv2 = ConvLayer(channels, channels, 3)
        self.in2 = _norm(norm, channels)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.in2(self.conv2(F.relu(self.in1(self.conv1(x)))))


class TransformerNet(nn.Module):
    """RGB 0..1 in, RGB 0..1 out, any height and width (padded to a multiple of 4, cropped)."""

    def __init__(self, config: NetConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        self.config = (config or NetConfig(**overrides)).validate()
        c1, c2, c3 = WIDTHS[self.config.width]
        norm = self.config.norm
        up = UpsampleConvLayer if self.config.upsample == "nearest" else DeconvLayer
        self.conv1, self.in1 = ConvLayer(3, c1, 9), _norm(norm, c1)
        self.conv2, self.in2 = ConvLayer(c1, c2, 3, stride=2), _norm(norm, c2)
        self.conv3, self.in3 = ConvLayer(c2, c3, 3, stride=2), _norm(norm, c3)
        for i in range(1, self.config.n_residual + 1):
            self.add_module(f"res{i}", ResidualBlock(c3, norm))
        self.deconv1, self.in4 = up(c3, c2, 3), _norm(norm, c2)
        self.deconv2, self.in5 = up(c2, c1, 3), _norm(norm, c1)
        self.deconv3 = ConvLayer(c1, 3, 9)

    def _body(self, x: Tensor) -> Tensor:
        y = F.relu(self.in1(self.conv1(x)))
        y = F.relu(self.in2(self.conv2(y)))
        y = F.relu(self.in3(self.conv3(y)))
        for i in range(1, self.config.n_residual + 1):
            y = getattr(self, f"res{i}")(y)
        y = F.relu(self.in4(self.deconv1(y)))
        y = F.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)

    def _map_output(self, y: Tensor) -> Tensor:
        kind = self.config.output
        if kind == "sigmoid":
            return torch.sigmoid(y)
        if kind == "tanh":
            return (torch.tanh(y) + 1) / 2
        return y if self.training else y.clamp(0, 1)

    def forward(self, images: Tensor) -> Tensor:
        h, w = images.shape[-2:]
        pad_h, pad_w = padding(h), padding(w)
        x = images * self.config.pixel_scale
        if pad_h or pad_w:
            mode = "reflect" if min(h, w) > max(pad_h, pad_w) else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        y = self._body(x)[..., :h, :w] / self.config.pixel_scale
        return self._map_output(y)


# The network pads every side to a multiple of 4 (two stride-2 convs, two 2x upsamplings) and
# to at least 8 px: its 9x9 convolutions reflection-pad 4 px, which needs a side of 5 or more.
# Smaller images (down to 1 px) are padded by repeating their edge and cropped back.
MIN_SIDE = 8


def padding(side: int) -> int:
    """Pixels added after a side of `side` px (the output is cropped back)."""
    return max(MIN_SIDE, side + (-side) % 4) - side
