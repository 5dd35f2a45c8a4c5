"""Widen a trained network (half -> full width) without changing what it computes.

Net2Net's widening (Chen et al. 2016): every channel of the wider network copies a channel of
the narrow one, and a layer that reads duplicated channels splits each weight among the copies
so the sums are unchanged. The split is uneven (random shares that add up to one), so the copies
get different gradients and grow apart in training. Instance and batch norm see identical copies
and keep them identical. A full-width network so starts where a trained half-width one stands
instead of at random weights.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor, nn

from fast_nst.errors import FastNSTError
from fast_nst.model.network import WIDTHS, TransformerNet


def _copies(old: int, new: int) -> Tensor:
    """Index of the narrow channel each wide channel copies (channel j copies j mod old)."""
    return torch.arange(new) % old


def _shares(source: Tensor, old: int, spread: float, generator: torch.Generator) -> Tensor:
    """Per wide channel, its share of the narrow channel's weight: random, adding up to 1
    (in float64, so the shares of a float64 network add up to 1 within its own rounding)."""
    raw = 1 + spread * (2 * torch.rand(source.numel(), generator=generator,
                                       dtype=torch.float64) - 1)
    totals = torch.zeros(old, dtype=torch.float64).index_add_(0, source, raw)
    return raw / totals[source]


def _widen_weight(weight: Tensor, out_dim: int, in_dim: int, out_new: int, in_new: int,
                  spread: float, generator: torch.Generator) -> Tensor:
    """Copy output channels; split input channels' weights among their copies."""
    out_old, in_old = weight.shape[out_dim], weight.shape[in_dim]
    wide = weight.index_select(out_dim, _copies(out_old, out_new))
    source = _copies(in_old, in_new)
    wide = wide.index_select(in_dim, source)
    shape = [1] * wide.dim()
    shape[in_dim] = in_new
    return wide * _shares(source, in_old, spread, generator).view(shape).to(wide.dtype)


def _widen_module(old: nn.Module, new: nn.Module, spread: float,
                  generator: torch.Generator) -> None:
    """Fill `new` (a wider copy of `old`'s layer) from `old`'s tensors."""
    if isinstance(old, (nn.Conv2d, nn.ConvTranspose2d)):
        out_dim, in_dim = (1, 0) if isinstance(old, nn.ConvTranspose2d) else (0, 1)
        new.weight.copy_(_widen_weight(old.weight, out_dim, in_dim, new.weight.shape[out_dim],
                                       new.weight.shape[in_dim], spread, generator))
        if old.bias is not None:
            new.bias.copy_(old.bias[_copies(old.bias.numel(), new.bias.numel())])
        return
    for name, tensor in [*old.named_parameters(recurse=False), *old.named_buffers(recurse=False)]:
        target = getattr(new, name)
        if tensor.dim() == 0:  # batch norm's num_batches_tracked
            target.copy_(tensor)
        else:  # per-channel norm weights, biases and running statistics
            target.copy_(tensor[_copies(tensor.numel(), target.numel())])


def can_widen(narrow: str, wide: str) -> bool:
    """Whether a `narrow`-width network widens to `wide` (a different width, whole multiples)."""
    pairs = zip(WIDTHS[narrow], WIDTHS[wide], strict=True)
    return narrow != wide and all(w >= n and w % n == 0 for n, w in pairs)


def widen(net: TransformerNet, width: str = "full", *, spread: float = 0.2,
          seed: int = 0) -> TransformerNet:
    """A `width` network computing what `net` computes (up to float rounding).

    `spread` sets how uneven the split of duplicated channels' weights is (0: even halves,
    which would keep the copies identical for ever). Only widening by whole multiples.
    """
    if not 0.0 <= spread < 1.0:
        raise FastNSTError(f"widen spread must be in [0, 1), got {spread}: at 1 or more a "
                           "copy's share of the weights can reach zero or change sign")
    if net.config.block == "inverted" or net.config.upsample == "separable":
        raise FastNSTError("cannot widen a network with depthwise convolutions (model.block="
                           "inverted or model.upsample=separable); train the wider one anew")
    if not can_widen(net.config.width, width):
        raise FastNSTError(f"cannot widen a {net.config.width}-width network to {width} width; "
                           f"use a model of width {width} or narrower")
    wide = TransformerNet(replace(net.config, width=width)).to(next(net.parameters()).dtype)
    generator = torch.Generator().manual_seed(seed)
    narrow_modules = dict(net.named_modules())
    with torch.no_grad():
        for name, module in wide.named_modules():
            if name and not any(True for _ in module.children()):
                _widen_module(narrow_modules[name], module, spread, generator)
    return wide.train(net.training)
