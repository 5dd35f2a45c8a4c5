"""The optimizer on video (Ruder et al. 2016): each frame is optimized from a blend of itself
and the previous output aligned to it, under an extra temporal loss."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from torch import Tensor

from fast_nst.core.images import load_image
from fast_nst.core.losses import CONVENTION_DEFAULTS
from fast_nst.core.temporal import Alignment, FlowAlignment, static_alignment, temporal_loss
from fast_nst.core.vgg import check_side, resolve_convention
from fast_nst.device import pick_device
from fast_nst.errors import FastNSTError
from fast_nst.optimizer.config import GatysConfig, validate
from fast_nst.optimizer.loop import make_optimizer, optimize
from fast_nst.optimizer.loss import autocast_dtype, build_loss, check_size


class ClipStylizer:
    """Stylizes a clip frame by frame for `fast_nst.core.video.stylize_video`: each frame
    is optimized from a blend of itself and the previous output aligned to it, with a temporal
    loss (masked MSE to that aligned output). One encoder and one set of style targets serve
    the whole clip."""

    def __init__(self, cfg: GatysConfig, align: Alignment | None = None) -> None:
        self.cfg = validate(cfg)
        images_only = [name for name in ("mask", "style2", "preserve_color", "coarse_sizes",
                                         "init") if getattr(cfg, name)]
        if images_only:
            raise FastNSTError(f"{', '.join(images_only)} apply to images, not to a video "
                               "(each frame starts from itself blended with the previous "
                               "output); drop them, or stylize single frames")
        self.device = pick_device(cfg.device)
        self.autocast = autocast_dtype(cfg, self.device)
        self.convention = resolve_convention(str(cfg.vgg.weights), cfg.vgg.convention).name
        self.loss = build_loss(cfg, self.device)
        self.style = load_image(cfg.style, long_side=cfg.style_size or max(
            16, round(cfg.style_scale * cfg.size)), max_pixels=cfg.max_pixels).to(self.device)
        check_side(self.loss.encoder.layers, *self.style.shape[-2:], "style image",
                   "raise style_size or style_scale")
        self.loss.set_style(self.style)
        self.flow = FlowAlignment() if cfg.flow == "raft" and align is None else None
        self.align = align or self.flow or static_alignment
        weight = cfg.temporal_weight
        self.temporal_weight = (CONVENTION_DEFAULTS[self.convention]["optimizer"]["temporal"]
                                if weight is None else weight)
        self.previous: Tensor | None = None
        self.index = 0
        self.history: list[list[dict[str, float]]] = []

    def __call__(self, frame: Tensor) -> Tensor:
        content = frame.to(self.device)
        if self.flow is not None:
            self.flow.observe(content)
        extra = None
        init = content.clone()
        if self.previous is not None:
            aligned, mask = self.align(self.previous, self.index)
            blend = self.cfg.temporal_blend
            init = blend * content + (1 - blend) * aligned
            if self.temporal_weight:
                extra = lambda image: self.temporal_weight * temporal_loss(  # noqa: E731
                    image, aligned, mask)
        check_size(self.loss, content, "video frame")
        image = init.detach().clamp(0, 1).requires_grad_(True)
        optimizer = make_optimizer(image, self.cfg, self.convention)
        rows = optimize(self.loss, image, optimizer, self.cfg.steps,
                        self.loss.content_targets(content), clamp=self.cfg.clamp,
                        extra_loss=extra, progress=False, first_step=self.cfg.first_step,
                        autocast=self.autocast)
        self.history.append(rows)
        self.previous = image.detach().clamp(0, 1)
        self.index += 1
        return self.previous.cpu()


def stylize_clip(cfg: GatysConfig, src: str, dst: Path) -> Path:
    """A video file, optimized frame by frame with the temporal loss (see ClipStylizer)."""
    from fast_nst.core.video import is_video, stylize_video  # PyAV loads only for video

    if not is_video(dst):
        dst = dst.with_suffix(Path(src).suffix)
    cfg = dataclasses.replace(cfg, content=cfg.content or src, task="transfer")
    frames = stylize_video(src, dst, ClipStylizer(cfg), size=cfg.size, progress=cfg.progress)
    print(f"wrote {dst} ({frames} frames)")
    return dst
