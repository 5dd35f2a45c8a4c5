"""The network's last convolution computed on 2x2 pixel blocks, for CPU inference.

That layer (a 9x9 convolution from 16 or 32 channels down to 3) leaves oneDNN's convolution
kernels mostly idle: they work on blocks of 16 output channels, and 3 fill under a fifth of
one. Computed on 2x2 pixel blocks instead (space-to-depth), the same sums are a 5x5
convolution from 4x the channels to 12, followed by a pixel shuffle: 23 % more multiply-adds
that run several times faster. The whole network gets 4-8 % faster on a CPU (docs/speed.md);
the outputs are the same up to float rounding.
"""

from __future__ import annotations

import copy
import itertools

import torch.nn.functional as F
from torch import Tensor, nn

from fast_nst.model.network import ConvLayer, TransformerNet


class BlockConv(nn.Module):
    """`layer` (reflection padding + a stride-1 convolution with an odd kernel) computed on 2x2
    pixel blocks. Its input's sides must be even (the network pads them to a multiple of 4)."""

    def __init__(self, layer: ConvLayer) -> None:
        super().__init__()
        weight, bias = layer.conv2d.weight.detach(), layer.conv2d.bias
        cout, cin, k, _ = weight.shape
        self.pad, taps = k // 2, k // 2 + 1
        blocked = weight.new_zeros(cout * 4, cin * 4, taps, taps)
        # Output pixel (2p + r, 2q + s) reads padded input pixel (2p + r + a, 2q + s + b), which
        # is pixel (m, n) of block (p + i, q + j) with (i, m) = divmod(r + a, 2), likewise j, n.
        # pixel_unshuffle/pixel_shuffle number a block's pixels 2m + n, after the channel.
        for r, s, a, b in itertools.product(range(2), range(2), range(k), range(k)):
            (i, m), (j, n) = divmod(r + a, 2), divmod(s + b, 2)
            blocked[2 * r + s::4, 2 * m + n::4, i, j] = weight[:, :, a, b]
        self.conv = nn.Conv2d(cin * 4, cout * 4, taps, bias=bias is not None,
                              device=weight.device, dtype=weight.dtype)
        self.conv.weight.data.copy_(blocked)
        if bias is not None:
            self.conv.bias.data.copy_(bias.detach().repeat_interleave(4))

    def forward(self, x: Tensor) -> Tensor:
        x = F.pad(x, (self.pad,) * 4, mode="reflect")
        return F.pixel_shuffle(self.conv(F.pixel_unshuffle(x, 2)), 2)


def with_block_output(net: TransformerNet) -> TransformerNet:
    """A copy of `net` whose last convolution runs as a `BlockConv`; `net` is left as it is."""
    fast = copy.deepcopy(net)
    last = fast.deconv3
    if type(last) is ConvLayer and last.conv2d.stride == (1, 1) and \
            last.conv2d.kernel_size[0] % 2 == 1:
        fast.deconv3 = BlockConv(last)
    return fast.eval()
