"""Tiled inference for large images: overlapping tiles, feathered blending, bounded memory.

Instance norm makes each tile's output depend on the tile's own statistics; overlap plus linear
ramps hide that, or `global_norm_stats` computes the whole image's statistics tile by tile.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from fast_nst.errors import FastNSTError
from fast_nst.inference.runtime import Stylizer

# ---------------------------------------------------------------------------------------------
# Tiled inference: overlapping tiles, linear feathering, rows finished as soon as they are final


def to_u8(images: Tensor) -> np.ndarray:
    """(1, 3, h, w) float 0..1 -> (h, w, 3) uint8."""
    return images[0].mul(255).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def to_float(pixels: np.ndarray) -> Tensor:
    """(h, w, 3) uint8 -> (1, 3, h, w) float 0..1."""
    return torch.from_numpy(np.array(pixels)).permute(2, 0, 1)[None].float() / 255


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along one axis: as few tiles as give every neighbour pair at least
    `overlap` px in common, spread evenly, the first at 0 and the last flush with the end."""
    if size <= tile:
        return [0]
    n = math.ceil((size - overlap) / (tile - overlap))
    return [round(i * (size - tile) / (n - 1)) for i in range(n)]


def feather(starts: Sequence[int], length: int, size: int) -> list[Tensor]:
    """Per-tile 1-D weights: linear ramps across each overlap, normalised to sum to 1.

    Instance-norm statistics differ from tile to tile, so neighbouring tiles disagree a little;
    a ramp across the whole overlap turns that step into a gradient no eye can see as a seam.
    """
    length = min(length, size)
    ramps = []
    for i, s in enumerate(starts):
        w = torch.ones(length)
        if i > 0:  # overlap with the previous tile
            o = starts[i - 1] + length - s
            w[:o] = torch.minimum(w[:o], (torch.arange(o) + 0.5) / o)
        if i + 1 < len(starts):  # overlap with the next tile
            o = s + length - starts[i + 1]
            w[length - o:] = torch.minimum(w[length - o:], (torch.arange(o, 0, -1) - 0.5) / o)
        ramps.append(w)
    total = torch.zeros(size)
    for s, w in zip(starts, ramps, strict=True):
        total[s:s + length] += w
    return [w / total[s:s + length] for s, w in zip(starts, ramps, strict=True)]


def check_tiling(tile: int, overlap: int) -> None:
    if tile < 32:
        raise FastNSTError(f"--tile must be at least 32 px, got {tile}")
    if not 0 <= overlap <= tile // 2:
        raise FastNSTError(f"--overlap must be between 0 and half the tile ({tile // 2}), "
                           f"got {overlap}")


def stylize_tiled(fn: Callable[[Tensor], Tensor], pixels: np.ndarray, *, tile: int = 1024,
                  overlap: int = 128, post: Callable[[Tensor, Tensor], Tensor] | None = None,
                  progress: bool = False) -> np.ndarray:
    """Stylize an (H, W, 3) uint8 image tile by tile; returns (H, W, 3) uint8.

    Memory: the uint8 input and output, one band of tile rows in float32 and the network's
    activations for one tile, whatever the image size. `post(stylized, content)` is applied to
    each block of finished rows (colour preservation, strength).
    """
    check_tiling(tile, overlap)
    h, w = pixels.shape[:2]
    th, tw = min(tile, h), min(tile, w)
    ys, xs = tile_starts(h, th, overlap), tile_starts(w, tw, overlap)
    wy, wx = feather(ys, th, h), feather(xs, tw, w)
    out = np.empty_like(pixels)
    acc_start, acc = 0, torch.zeros(3, th, w)  # float rows [acc_start, acc_start + th)

    def flush(upto: int) -> None:
        nonlocal acc, acc_start
        rows = upto - acc_start
        if rows <= 0:
            return
        block = acc[None, :, :rows]
        if post is not None:
            block = post(block, to_float(pixels[acc_start:upto]))
        out[acc_start:upto] = to_u8(block)
        kept = torch.zeros(3, th, w)
        kept[:, :th - rows] = acc[:, rows:]
        acc, acc_start = kept, upto

    bar = tqdm(total=len(ys) * len(xs), desc="tiles", unit="tile", leave=False,
               disable=not progress or len(ys) * len(xs) < 2)
    for y, ry in zip(ys, wy, strict=True):
        flush(y)
        for x, rx in zip(xs, wx, strict=True):
            result = fn(to_float(pixels[y:y + th, x:x + tw]))[0]
            acc[:, y - acc_start:y - acc_start + th, x:x + tw] += result * ry[:, None] * rx
            bar.update()
    flush(h)
    bar.close()
    return out


# ---------------------------------------------------------------------------------------------
# Whole-image instance-norm statistics for tiled inference (optional, ~7x the compute)

Stats = list[tuple[Tensor, Tensor]]  # per InstanceNorm2d: (mean, var), each (1, C, 1, 1)


class _Stop(Exception):
    """Raised by a recording hook: the rest of the network is not needed for this layer."""


def instance_norms(net: nn.Module) -> list[nn.InstanceNorm2d]:
    return [m for m in net.modules() if isinstance(m, nn.InstanceNorm2d)]


@contextlib.contextmanager
def frozen_norms(norms: Sequence[nn.InstanceNorm2d], stats: Stats) -> Iterator[None]:
    """Make these norm layers use fixed statistics instead of each input's own."""

    def fixed(norm: nn.InstanceNorm2d, mean: Tensor, var: Tensor) -> Callable[[Tensor], Tensor]:
        def forward(x: Tensor) -> Tensor:
            y = (x.float() - mean.to(x.device)) * torch.rsqrt(var.to(x.device) + norm.eps)
            if norm.affine:
                y = y * norm.weight[:, None, None] + norm.bias[:, None, None]
            return y.to(x.dtype)
        return forward

    for norm, (mean, var) in zip(norms, stats, strict=False):
        norm.forward = fixed(norm, mean, var)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for norm in norms:
            norm.__dict__.pop("forward", None)


def _cores(starts: Sequence[int], length: int, size: int) -> list[tuple[int, int]]:
    """Each tile's share of the axis (cut at the middle of overlaps), relative to the tile."""
    cuts = [0] + [(starts[i] + starts[i - 1] + length) // 2 for i in range(1, len(starts))]
    cuts.append(size)
    return [(cuts[i] - s, cuts[i + 1] - s) for i, s in enumerate(starts)]


def global_norm_stats(stylizer: Stylizer, pixels: np.ndarray, *, tile: int, overlap: int,
                      progress: bool = False) -> Stats:
    """The statistics every InstanceNorm2d would see on the whole image, tile by tile.

    Layer k's statistics need the whole image through layers < k with their own whole-image
    statistics, so one tiled pass per norm layer (each stopping at that layer): about 7x the
    cost of one pass for the standard network. Each pixel counts once (tile cores); partial
    results are merged with Chan's parallel mean/variance formula in float64.
    """
    norms = instance_norms(stylizer.net)
    h, w = pixels.shape[:2]
    th, tw = min(tile, h), min(tile, w)
    ys, xs = tile_starts(h, th, overlap), tile_starts(w, tw, overlap)
    grid = [(y, x, cy, cx) for y, cy in zip(ys, _cores(ys, th, h), strict=True)
            for x, cx in zip(xs, _cores(xs, tw, w), strict=True)]
    m = stylizer.net.config.multiple  # the network pads each side to a multiple of this
    padded = (th + (-th) % m, tw + (-tw) % m)
    stats: Stats = []
    bar = tqdm(total=len(norms) * len(grid), desc="norm statistics", unit="tile", leave=False,
               disable=not progress)
    core: list[tuple[int, int]] = [(0, 0), (0, 0)]  # the current tile's rows and columns
    for target in norms:
        count, mean, m2 = 0, torch.zeros(0), torch.zeros(0)

        def record(module: nn.Module, args: tuple[Tensor, ...]) -> None:
            nonlocal count, mean, m2
            a = args[0]
            fy, fx = padded[0] // a.shape[2], padded[1] // a.shape[3]
            (y0, y1), (x0, x1) = core
            part = a[0, :, y0 // fy:y1 // fy, x0 // fx:x1 // fx].float().flatten(1)
            n = part.shape[1]
            if n:
                m = part.mean(1).double().cpu()
                q = (part - part.mean(1, keepdim=True)).square().sum(1).double().cpu()
                if count == 0:
                    mean, m2 = m, q
                else:
                    delta = m - mean
                    mean = mean + delta * n / (count + n)
                    m2 = m2 + q + delta.square() * count * n / (count + n)
                count += n
            raise _Stop

        handle = target.register_forward_pre_hook(record)
        try:
            with frozen_norms(norms, stats):
                for y, x, cy, cx in grid:
                    core[:] = [cy, cx]
                    try:
                        stylizer.eager(to_float(pixels[y:y + th, x:x + tw]))
                    except _Stop:
                        pass
                    bar.update()
        finally:
            handle.remove()
        var = m2 / max(count, 1)
        stats.append((mean.float()[None, :, None, None], var.float()[None, :, None, None]))
    bar.close()
    return stats


