"""The network on a device at a precision (`Stylizer`), and the pixel-wise post-processing
(`finish`). Knows nothing of files, tiles or videos: those modules call it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor

from fast_nst.core.color import transfer_luminance
from fast_nst.device import pick_device
from fast_nst.inference.aot import CompiledNetwork, Shape, network_digest
from fast_nst.inference.blocks import with_block_output
from fast_nst.model.network import TransformerNet
from fast_nst.precision import short_of_dtype, stylize_dtype


class Float32(torch.nn.Module):
    """Runs `module` in float32 (also under autocast) and casts its output to `out`."""

    def __init__(self, module: torch.nn.Module, out: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.module, self.out = module.float(), out

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return self.module(x.float()).to(self.out)


def low_precision_net(net: TransformerNet, dtype: torch.dtype, cast: bool) -> TransformerNet:
    """A copy of `net` for bf16/fp16 inference whose first convolution and norm stay float32:
    they see the pixels, and bf16's 8-bit mantissa there, amplified by the norm, costs 3-15 dB
    of PSNR against float32 for 5% of the work. `cast`: the other weights in `dtype` and no
    autocast (on a CPU, autocast widens every norm and padding back to float32, and those
    copies cost more than bf16 saves: 2.0x float32 instead of 1.3x); else autocast runs them."""
    first_conv, first_norm = copy.deepcopy(net.conv1), copy.deepcopy(net.in1)
    low = copy.deepcopy(net).to(dtype) if cast else copy.deepcopy(net)
    low.conv1 = Float32(first_conv)
    low.in1 = Float32(first_norm, dtype if cast else torch.float32)
    return low.eval()


class Stylizer:
    """The network on a device at a precision: (B, 3, H, W) 0..1 in, float32 CPU 0..1 out.

    bf16 on a CPU runs a bf16 copy of the network, fp16 and GPUs autocast; either way the first
    convolution and norm stay float32 (see `low_precision_net`);
    `compile`: on a CPU without autocast, ahead-of-time packages kept on disk (`aot`: a shape
    compiled once loads in ~0.1 s in any later process); else torch.compile. Both freeze the
    weights and specialise per input size, so tiles of one size compile once; `compile_shapes`
    limits compiling to those (batch, height, width), the rest run eager. On a CPU the last
    convolution runs on 2x2 pixel blocks (`blocks`: same outputs, faster).
    """

    def __init__(self, net: TransformerNet, *, device: str = "auto", precision: str = "fp32",
                 channels_last: bool = False, compile: bool = False,
                 compile_shapes: frozenset[Shape] | None = None, digest: str | None = None
                 ) -> None:
        """`digest`: `aot.network_digest(net)` where the caller has it already."""
        self.device = pick_device(device)
        self.dtype = stylize_dtype(self.device, precision)
        self.channels_last = channels_last
        self.compile_shapes = compile_shapes
        source = net.eval().to(self.device)
        self.cast = self.dtype == torch.bfloat16 and self.device.type == "cpu"
        fast = with_block_output(source) if self.device.type == "cpu" else source
        net = fast if self.dtype == torch.float32 else \
            low_precision_net(fast, self.dtype, self.cast)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.net = net
        self.forward: Callable[[Tensor], Tensor] = net
        if compile and self.device.type == "cpu" and (self.dtype == torch.float32 or self.cast):
            self.forward = CompiledNetwork(net, digest or network_digest(source),
                                           short_of_dtype(self.dtype), channels_last)
        elif compile:
            self.forward = torch.compile(net, dynamic=False, options={"freezing": True})

    @torch.inference_mode()
    def __call__(self, images: Tensor, eager: bool = False) -> Tensor:
        x = images.to(self.device, torch.float32, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=self.dtype,
                            enabled=self.dtype != torch.float32 and not self.cast):
            compiled = not eager and self.compiles((x.shape[0], *x.shape[2:]))
            y = (self.forward if compiled else self.net)(x)
        return y.float().contiguous().cpu()

    def compiles(self, shape: Shape) -> bool:
        """Whether a call of this (batch, height, width) runs the compiled network."""
        return self.forward is not self.net and (self.compile_shapes is None
                                                 or shape in self.compile_shapes)

    def eager(self, images: Tensor) -> Tensor:
        """Uncompiled forward (for norm layers patched at run time, see `global_norm_stats`)."""
        return self(images, eager=True)


# ---------------------------------------------------------------------------------------------
# Post-processing (pixel-wise, so it can run on any block of rows)


def finish(stylized: Tensor, content: Tensor, *, preserve_color: bool = False,
           strength: float = 1.0) -> Tensor:
    """Colour preservation (content chroma, stylized luminance), then blend toward the content."""
    if preserve_color:
        stylized = transfer_luminance(stylized, content)
    if strength < 1.0:
        stylized = content + strength * (stylized - content)
    return stylized.clamp(0, 1)
