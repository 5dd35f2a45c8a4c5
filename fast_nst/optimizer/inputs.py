"""The optimizer's input images: read, sized to the output, colour-prepared, and the image the
optimization starts from (content, seeded noise, the style, or a file)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchvision.transforms.functional as TF
from torch import Tensor

from fast_nst.core.color import grey, match_color_histogram, match_luminance
from fast_nst.core.images import load_image, open_image, resize
from fast_nst.errors import FastNSTError
from fast_nst.optimizer.config import GatysConfig, init_mode


@dataclass
class Inputs:
    """Images at full output resolution, already colour-prepared for the optimizer."""

    content: Tensor | None
    styles: list[Tensor]
    mask: Tensor | None
    init: Tensor | None  # the init image for `style`/`file`; None for content/noise
    shape: tuple[int, int]
    colour_source: Tensor | None  # the original content, when luminance-only transfer is on


def _mask_tensor(path: str, content_size: tuple[int, int], max_pixels: int | None) -> Tensor:
    """A mask file as (1, 1, H, W) in 0..1; it must have the content image's pixel size."""
    image = open_image(path, max_pixels)
    if image.size != content_size:
        raise FastNSTError(
            f"mask {path} is {image.width}x{image.height} but the content image is "
            f"{content_size[0]}x{content_size[1]}; give a mask of the same size as the content")
    return TF.to_tensor(image.convert("L")).unsqueeze(0)


def load_inputs(cfg: GatysConfig) -> Inputs:
    """Read and size the images; apply colour preparation (luminance / histogram matching)."""
    content = None
    mask = None
    if cfg.content:
        pil = open_image(cfg.content, cfg.max_pixels)
        content = resize(TF.to_tensor(pil).unsqueeze(0), long_side=cfg.size)
        if cfg.mask:
            mask = resize(_mask_tensor(cfg.mask, pil.size, cfg.max_pixels),
                          size=tuple(content.shape[-2:]))
    style_long = cfg.style_size or max(16, round(cfg.style_scale * cfg.size))
    styles = [load_image(p, long_side=style_long, max_pixels=cfg.max_pixels)
              for p in (cfg.style, cfg.style2) if p]
    if content is not None:
        shape = tuple(content.shape[-2:])
    else:  # texture: the style's aspect ratio at the output size
        shape = tuple(resize(styles[0], long_side=cfg.size).shape[-2:])
    colour_source = None
    if cfg.preserve_color == "luminance":
        colour_source = content
        styles = [match_luminance(s, content) for s in styles]
        content = grey(content).contiguous()
    elif cfg.preserve_color == "histogram":
        styles = [match_color_histogram(s, content) for s in styles]
    init = None
    mode = init_mode(cfg)
    if mode == "style":
        init = resize(styles[0], size=shape)
    elif mode == "file":
        init = load_image(cfg.init_file, size=shape, max_pixels=cfg.max_pixels)
        if cfg.preserve_color == "luminance":
            init = grey(init).contiguous()
    return Inputs(content, styles, mask, init, shape, colour_source)


def first_image(cfg: GatysConfig, inputs: Inputs, shape: tuple[int, int]) -> Tensor:
    """The starting image at `shape`: content, seeded uniform noise, the style, or a file."""
    mode = init_mode(cfg)
    if mode == "content":
        return resize(inputs.content, size=shape).clone()
    if mode == "noise":
        generator = torch.Generator().manual_seed(cfg.seed)
        return torch.rand((1, 3, *shape), generator=generator)
    return resize(inputs.init, size=shape).clone()
