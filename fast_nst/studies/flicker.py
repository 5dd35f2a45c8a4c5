"""Measure flicker: temporal error of stylized synthetic clips whose true motion is known.

    fast-nst-flicker 'models={plain: a.pt, stable: b.pt}' gatys.enabled=true

A slow pan and zoom over one photo (`fast_nst.core.temporal.synthetic_clip`) is stylized frame by
frame by each network and, optionally, by the optimizer with its temporal loss; each row of the
table gives the temporal error (mean |frame - aligned previous frame| over pixels seen in both,
in 0..255 units) and the mean style loss of the frames against the style image.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from fast_nst.configs import to_dataclass
from fast_nst.core.images import atomic_path, load_image
from fast_nst.core.losses import LossWeights, PerceptualLoss, as_layer_weights
from fast_nst.core.perceptual import build_perceptual_loss
from fast_nst.core.temporal import KnownMotion, Window, synthetic_clip, temporal_error
from fast_nst.core.vgg import VGGConfig
from fast_nst.core.video import VideoWriter, tensor_to_frame
from fast_nst.errors import FastNSTError
from fast_nst.inference.runtime import Stylizer
from fast_nst.model.files import load_model
from fast_nst.optimizer.clip import ClipStylizer
from fast_nst.optimizer.config import GatysConfig, validate
from fast_nst.reports.tables import markdown_table, write_csv, write_text

FrameFn = Callable[[Tensor], Tensor]


def make_clip(photo: str, size: tuple[int, int], frames: int, pan: float,
              zoom: float) -> tuple[list[Tensor], list[Window]]:
    """The synthetic clip: frames (1, 3, h, w) and their windows over the photo."""
    if frames < 2:
        raise FastNSTError(f"frames must be at least 2 (flicker compares neighbours), got {frames}")
    image = load_image(photo)
    try:
        return synthetic_clip(image, size, frames, pan=pan, zoom=zoom)
    except ValueError as err:
        raise FastNSTError(f"{photo}: {err}") from None


def write_clip(frames: list[Tensor], windows: list[Window], path: Path, fps: int = 24) -> Path:
    """Save the clip as a video plus `<name>.json` holding the true motion (the windows)."""

    with atomic_path(path) as tmp, VideoWriter(tmp, Fraction(fps)) as writer:
        for frame in frames:
            writer.write(tensor_to_frame(frame))
    write_text(json.dumps([dataclasses.asdict(w) for w in windows], indent=1),
               path.with_suffix(".json"))
    return path


def style_meter(style: str, vgg: dict[str, Any], layers: list[str]) -> PerceptualLoss:
    """A style-only PerceptualLoss (weight 1) to score how stylized the frames are."""
    meter = build_perceptual_loss(to_dataclass(VGGConfig, vgg, "vgg"), {},
                                  as_layer_weights(layers), LossWeights(0, 1, 0))
    meter.set_style(load_image(style, long_side=512))
    return meter


@torch.no_grad()
def measure(name: str, frame_fn: FrameFn, frames: list[Tensor], windows: list[Window],
            meter: PerceptualLoss) -> dict[str, Any]:
    """Stylize every frame with `frame_fn`; its temporal error and mean style loss."""
    outputs, style = [], 0.0
    for frame in tqdm(frames, desc=name, leave=False):
        with torch.enable_grad():
            out = frame_fn(frame).float().clamp(0, 1)
        outputs.append(out)
        style += float(meter(out)["style"])
    return {"method": name, "temporal_error": 255 * temporal_error(outputs, windows),
            "style_loss": style / len(frames), "frames": len(frames)}


def network_fn(path: str, precision: str) -> FrameFn:
    return Stylizer(load_model(path).net, device="cpu", precision=precision)


def markdown(rows: list[dict[str, Any]]) -> str:
    """flicker.md: a row per method (temporal error to two decimals)."""
    return markdown_table([{"method": r["method"],
                            "temporal error (0..255)": f"{r['temporal_error']:.2f}",
                            "style loss": f"{r['style_loss']:.4g}", "frames": r["frames"]}
                           for r in rows])


def run(cfg: dict[str, Any], folder: Path) -> list[dict[str, Any]]:
    """All rows: the raw clip (the floor), each model, and the optimizer if enabled."""
    frames, windows = make_clip(cfg["photo"], tuple(cfg["frame_size"]), cfg["frames"],
                                cfg["pan"], cfg["zoom"])
    if cfg.get("write_clip"):
        write_clip(frames, windows, folder / cfg["write_clip"])
    meter = style_meter(cfg["style"], cfg["vgg"], list(cfg["style_layers"]))
    rows = [measure("input clip (no stylization)", lambda f: f, frames, windows, meter)]
    for name, path in (cfg.get("models") or {}).items():
        rows.append(measure(f"network {name}", network_fn(path, cfg["precision"]),
                            frames, windows, meter))
    gatys = dict(cfg.get("gatys") or {})
    if gatys.pop("enabled", False):
        base = validate(to_dataclass(GatysConfig, {
            "precision": cfg["precision"], **gatys, "task": "transfer",
            "style": cfg["style"], "content": cfg["photo"], "vgg": cfg["vgg"],
            "progress": False}, "flicker gatys"))
        rows.append(measure("optimizer + temporal loss",
                            ClipStylizer(base, align=KnownMotion(windows)), frames, windows,
                            meter))
        if cfg["gatys_without_temporal"]:
            plain = dataclasses.replace(base, temporal_weight=0.0, temporal_blend=1.0)
            rows.append(measure("optimizer per frame (no temporal loss)", ClipStylizer(plain),
                                frames, windows, meter))
    write_csv(rows, folder / "flicker.csv")
    write_text(markdown(rows), folder / "flicker.md")
    return rows
