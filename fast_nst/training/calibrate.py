"""Choose the style weight before training: a preview with the optimizer.

    fast-nst-calibrate style=painting.jpg         # the app: fast_nst.apps.calibrate
    fast-nst-calibrate 'train=[experiment=bundle/udnie]'
    python train.py style=custom style.image=painting.jpg loss.style_weight=auto

A network trained with content weight c and style weight w learns to approximate, photo by
photo, the image that minimizes c * content + w * style (Johnson et al. 2016); L-BFGS from the
photo gets near that image in tens of iterations. So for a few photos and a log-spaced range of
style weights this runs short L-BFGS transfers under exactly the trainer's loss (train.py's
config composed with the given overrides: layers, VGG weights, style image and size, content and
TV weights, photos centre-cropped to data.image_size as in validation) and suggests a weight by
`fast_nst.training.calibration.suggest` (the rule and its constants: docs/calibrate.md).
Output in the run folder: calibration.png (the grid), calibration.csv and calibration.md.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue
from torch import Tensor
from tqdm.auto import tqdm

from fast_nst.configs import to_dataclass
from fast_nst.core.images import load_image, open_image
from fast_nst.core.losses import PerceptualLoss
from fast_nst.core.vgg import VGGConfig, resolve_convention
from fast_nst.device import pick_device
from fast_nst.errors import FastNSTError
from fast_nst.optimizer.config import GatysConfig, training_gatys_config
from fast_nst.optimizer.loop import make_optimizer, optimize
from fast_nst.optimizer.loss import build_loss
from fast_nst.training.calibration import (
    Calibration,
    Cell,
    Reference,
    Settings,
    suggest,
    weight_range,
)
from fast_nst.training.photos import val_transform
from fast_nst.training.settings import AUTO, LossConfig


@dataclass
class Setup:
    """What the training config decides about the loss: `meta` as the exported model records
    it (style_image, style_size, vgg, loss with the weights in effect), and the crop size."""

    style_name: str
    meta: dict[str, Any]
    image_size: int
    overrides: list[str]  # train.py overrides that give this config (for the printed command)
    default_style_weight: float  # the loss's style weight when none is given (the range's unit)


def setup_from_training(cfg: DictConfig, overrides: list[str] | None = None) -> Setup:
    """The loss train.py would build from `cfg` (one source of truth: LossConfig.resolved)."""
    try:
        module = OmegaConf.to_container(cfg.module, resolve=True)
        image_size = int(cfg.data.image_size)
    except MissingMandatoryValue as err:
        raise FastNSTError(f"{err.full_key} is not set; give a style image: "
                           "style=painting.jpg") from None
    style_image = str(module["style_image"])
    if not Path(style_image).is_file():
        raise FastNSTError(f"style image not found: {style_image}")
    vgg = to_dataclass(VGGConfig, module["vgg"], "vgg")
    convention = resolve_convention(str(vgg.weights), vgg.convention).name
    loss = to_dataclass(LossConfig, module["loss"], "loss")  # as the module reads it
    default = dataclasses.replace(loss, style_weight=None)  # the range is relative to it
    resolved = (default if loss.style_weight == AUTO else loss).resolved(convention)
    meta = {"style_image": style_image, "style_size": module["style_size"],
            "vgg": {**dataclasses.asdict(vgg), "convention": convention}, "loss": resolved}
    return Setup(str(module["style_name"]), meta, image_size, list(overrides or []),
                 default.resolve(convention).style)


# --------------------------------------------------------------------------- measuring
def _crop(path: str, size: int) -> Tensor:
    """A photo as validation sees it: short side to `size`, centre square crop."""
    return val_transform(size)(open_image(path)).unsqueeze(0).contiguous()


@torch.no_grad()
def score(loss: PerceptualLoss, image: Tensor,
          targets: Mapping[str, Tensor]) -> tuple[float, float]:
    """(content term as training weighs it, style loss per unit style weight) of `image`."""
    terms = loss(image, targets)
    return float(terms["content"]), float(terms["style"]) / loss.weights.style


@torch.no_grad()
def crops_style_loss(loss: PerceptualLoss, style: Tensor, size: int) -> float:
    """The painting's own level: the mean style loss of `size` px crops of the painting at its
    training scale (a 3 x 3 grid of positions), i.e. of pieces of the painting itself."""
    h, w = style.shape[-2:]
    side = min(size, h, w)
    ys = sorted({round(i * (h - side) / 2) for i in range(3)})
    xs = sorted({round(i * (w - side) / 2) for i in range(3)})
    crops = torch.cat([style[..., y:y + side, x:x + side] for y in ys for x in xs])
    return float(loss.style(loss.encoder(crops)))


class KeepBest:
    """`optimize`'s step callback that keeps the lowest-loss image: L-BFGS without a line
    search is not monotone, and the last image can be an overshoot. A history row holds the
    loss of the image before its step, i.e. the image the previous call saw."""

    def __init__(self, start: Tensor) -> None:
        self.previous = start.detach().clone()
        self.image, self.loss = self.previous, float("inf")

    def __call__(self, row: dict[str, float], image: Tensor) -> None:
        if row["total"] < self.loss:
            self.image, self.loss = self.previous, row["total"]
        self.previous = image.detach().clone()

    def finish(self, total: float) -> Tensor:
        """The best image, given the loss of the last one (never scored by a step)."""
        return self.previous if total < self.loss else self.image


def transfer(loss: PerceptualLoss, photo: Tensor, targets: Mapping[str, Tensor],
             cfg: GatysConfig, convention: str) -> Tensor:
    """`cfg.steps` L-BFGS iterations from the photo under `loss`; the best image."""
    image = photo.clone().requires_grad_(True)
    keep = KeepBest(photo)
    optimize(loss, image, make_optimizer(image, cfg, convention), cfg.steps, targets,
             clamp=cfg.clamp, on_step=keep, progress=False, first_step=cfg.first_step)
    with torch.no_grad():
        last = float(loss(image, targets)["total"])
    return keep.finish(last)


def measure(setup: Setup, settings: Settings) -> Calibration:
    """Every photo x style weight: the optimized image and its losses, plus the references."""
    weights = weight_range(settings, setup.default_style_weight)
    for photo in settings.photos:
        if not Path(photo).is_file():
            raise FastNSTError(f"calibration photo not found: {photo}; set "
                               "calibration.photos=[a.jpg,b.jpg]")
    device = pick_device(settings.device)
    torch.manual_seed(0)  # a random-weight VGG (tests) is the same every time
    cfg = training_gatys_config(setup.meta, setup.meta["style_image"], settings.photos[0],
                                setup.image_size, setup.meta["vgg"], steps=settings.steps,
                                device=str(device), progress=False)
    loss = build_loss(cfg, device)
    convention = setup.meta["vgg"]["convention"]
    base = loss.weights
    style = load_image(setup.meta["style_image"], long_side=setup.meta["style_size"])
    loss.set_style(style.to(device))  # as the trainer: the style at style_size, once
    painting = _crop(setup.meta["style_image"], setup.image_size).to(device)
    painting_style = crops_style_loss(loss, style.to(device), setup.image_size)
    cells, references = [], []
    bar = tqdm(total=len(settings.photos) * len(weights), desc="calibrate",
               disable=not settings.progress, dynamic_ncols=True)
    tic = time.perf_counter()
    for photo_path in settings.photos:
        photo = _crop(photo_path, setup.image_size).to(device)
        targets = loss.content_targets(photo)
        loss.weights = dataclasses.replace(base, style=1.0)
        references.append(Reference(Path(photo_path).stem, photo.cpu(),
                                    score(loss, photo, targets)[1],
                                    score(loss, painting, targets)[0]))
        for weight in weights:
            loss.weights = dataclasses.replace(base, style=weight)
            start = time.perf_counter()
            image = transfer(loss, photo, targets, cfg, convention)
            content, style_loss = score(loss, image, targets)
            cells.append(Cell(Path(photo_path).stem, weight, content, style_loss,
                              time.perf_counter() - start, image.cpu()))
            bar.set_postfix(photo=Path(photo_path).stem, weight=f"{weight:.3g}", refresh=False)
            bar.update()
    bar.close()
    loss.weights = base
    return Calibration(setup.style_name, setup.meta, setup.image_size, settings, weights,
                       cells, references, painting_style, style[0].cpu(),
                       time.perf_counter() - tic)


def calibrate(setup: Setup, settings: Settings) -> Calibration:
    """Measure, apply the rule, and say the train.py command that follows (the grid and the
    tables are `fast_nst.reports.calibration.write_report`)."""
    result = measure(setup, settings)
    result.suggestion = suggest(result.weights, result.mean_progress(),
                                result.mean_content_ratio(), settings.rule)
    result.command = train_command(setup, result.suggestion.weight)
    return result


def train_command(setup: Setup, weight: float) -> str:
    """The train.py command line that trains with `weight` and this calibration's loss."""
    kept = [o for o in setup.overrides if not o.startswith("loss.style_weight=")]
    return " ".join(["python train.py", *kept, f"loss.style_weight={weight:g}"])
