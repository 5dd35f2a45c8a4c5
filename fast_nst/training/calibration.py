"""The style-weight calibration's numbers: settings, measured cells, the rule that suggests a
weight, and what the model meta and TensorBoard keep. The measuring is in
`fast_nst.training.calibrate`, the grid, CSV and Markdown in `fast_nst.reports.calibration`.

Two scale-free measures per optimized image (the same for caffe and torchvision features):
- style progress: how far its style loss has fallen from the photo's own style loss towards
  the painting's own (the painting, cropped like the photos, against the style targets), on a
  log scale: 0 = the photo, 1 = as close to the targets as the painting itself;
- content ratio: its content loss over the content loss the painting itself would have
  (1 = the photo's features as lost as if the painting replaced the photo).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from torch import Tensor

from fast_nst.errors import FastNSTError


@dataclass
class Rule:
    """The smallest weight whose images' mean style progress reaches `style_progress`, unless
    their mean content ratio reaches `max_content` at a smaller one (then that weight). The
    constants were set on the four bundled styles (docs/calibrate.md)."""

    style_progress: float = 1.88
    max_content: float = 0.3


@dataclass
class Settings:
    """The `calibration` config group's schema (conf/calibration/default.yaml gives the photos).
    Keys: `calibration.steps=30` and so on, in train.py and in fast-nst-calibrate alike."""

    photos: list[str]  # centre-cropped to data.image_size, as validation photos are
    weights: list[float] | None = None  # e.g. [0.3, 1, 3]; None: `count` log-spaced over `span`
    # x the loss's default style weight (caffe, johnson: 0.2 -> 0.1 .. 10)
    span: list[float] = field(default_factory=lambda: [0.5, 50.0])
    count: int = 7
    steps: int = 40  # L-BFGS iterations per photo and weight (the best image is kept)
    rule: Rule = field(default_factory=Rule)
    grid_cell: int | None = None  # px of each grid cell; None: data.image_size
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise FastNSTError(f"calibration steps must be >= 1, got {self.steps}")
        stems = [Path(p).stem for p in self.photos]
        if not stems or len(set(stems)) != len(stems):
            raise FastNSTError(f"calibration.photos needs one or more photos with distinct file "
                               f"names (results are keyed by name), got {list(self.photos)}")


def weight_range(settings: Settings, default: float) -> list[float]:
    """The style weights to try, ascending: the explicit list, or `count` log-spaced ones over
    `span` x the default style weight of the training loss."""
    if settings.weights is not None:
        weights = sorted(float(w) for w in settings.weights)
    else:
        low, high = (float(x) * default for x in settings.span)
        count = int(settings.count)
        if count < 1 or not 0 < low <= high:
            weights = []
        else:
            step = (math.log(high) - math.log(low)) / max(1, count - 1)
            weights = [math.exp(math.log(low) + i * step) for i in range(count)]
    if not weights or weights[0] <= 0:
        raise FastNSTError(f"no style weights to try (weights={settings.weights}, "
                           f"span={list(settings.span)}, count={settings.count}); give "
                           "positive weights=[0.1,1,10] or count >= 1 and 0 < span[0] <= span[1]")
    return weights


@dataclass
class Cell:
    photo: str
    weight: float
    content: float  # content term as training weighs it (content_weight x feature MSE)
    style: float  # style loss per unit style weight (Gram MSE summed over layers)
    seconds: float
    image: Tensor


@dataclass
class Reference:
    """Per photo: its own style loss, and the content loss the painting has against it (the
    painting cropped like the photo)."""

    photo: str
    image: Tensor
    photo_style: float
    painting_content: float


@dataclass
class Suggestion:
    weight: float
    limit: str  # style | content | range
    reason: str


def nan_mean(values: Iterable[float]) -> float:
    """The mean over the photos that have a measure (NaN: nothing to measure against)."""
    numbers = [v for v in values if not math.isnan(v)]
    return statistics.fmean(numbers) if numbers else math.nan


def style_progress(style: float, photo_style: float, painting_style: float) -> float:
    """0 at the photo's style loss, 1 at the painting's own, log scale; NaN when the photo is
    not farther from the style targets than the painting (nothing to measure against)."""
    span = math.log(photo_style) - math.log(painting_style)
    if not span > 0 or style <= 0:
        return math.nan
    return (math.log(photo_style) - math.log(style)) / span


def crossing(weights: Sequence[float], values: Sequence[float], level: float) -> float | None:
    """The first weight at which `values` reach `level`, interpolated linearly in log weight
    between the grid points; the smallest weight if the first value is there; None: never."""
    previous = None
    for weight, value in zip(weights, values, strict=True):
        if math.isnan(value):
            continue
        if value >= level:
            if previous is None:
                return weight
            (w0, v0) = previous
            t = (level - v0) / (value - v0)
            return math.exp(math.log(w0) + t * (math.log(weight) - math.log(w0)))
        previous = (weight, value)
    return None


def _round(weight: float) -> float:
    return float(f"{weight:.2g}")


def suggest(weights: Sequence[float], progress: Sequence[float], content: Sequence[float],
            rule: Rule) -> Suggestion:
    """The rule (see `Rule`) on per-weight means: `progress` (style progress) and `content`
    (content ratio), both ascending with the weights as measured."""
    if all(math.isnan(v) for v in progress):
        raise FastNSTError("no style progress to measure: the photos' style losses are not "
                           "above the painting's own; calibrate with other photos")
    by_style = crossing(weights, progress, rule.style_progress)
    by_content = crossing(weights, content, rule.max_content)
    best = max(v for v in progress if not math.isnan(v))
    if by_content is not None and (by_style is None or by_content < by_style):
        low = " (at the smallest weight tried: lower the range)" if by_content == weights[0] \
            else ""
        return Suggestion(_round(by_content), "content",
                          f"content loss reaches {rule.max_content:g} x the painting's{low}")
    if by_style is None:
        return Suggestion(_round(weights[-1]), "range",
                          f"style progress only {best:.2f} < {rule.style_progress:g} at the "
                          "largest weight tried: raise the range")
    low = " (at the smallest weight tried: lower the range)" if by_style == weights[0] else ""
    return Suggestion(_round(by_style), "style",
                      f"style progress reaches {rule.style_progress:g}{low}")


@dataclass
class Calibration:
    """A finished calibration: every cell, the references, the suggestion, the outputs."""

    style_name: str
    meta: dict[str, Any]  # the training loss (style_image, style_size, vgg, loss)
    image_size: int
    settings: Settings
    weights: list[float]
    cells: list[Cell]
    references: list[Reference]
    painting_style: float  # the painting's own style loss (crops at its training scale)
    style_image: Tensor
    seconds: float
    suggestion: Suggestion | None = None
    command: str = ""
    sheet: Image.Image | None = None  # calibration.png, set by calibration_report.write_report
    report: str = ""  # calibration.md's text, set there too

    def reference(self, photo: str) -> Reference:
        return next(r for r in self.references if r.photo == photo)

    def rows(self) -> list[dict[str, Any]]:
        """The table: one row per photo and weight, with the scale-free measures."""
        rows = []
        for c in self.cells:
            ref = self.reference(c.photo)
            rows.append({"photo": c.photo, "style_weight": c.weight, "content": c.content,
                         "style": c.style, "style_weighted": c.weight * c.style,
                         "style_progress": style_progress(c.style, ref.photo_style,
                                                          self.painting_style),
                         "content_ratio": (c.content / ref.painting_content
                                           if ref.painting_content else math.nan),
                         "photo_style": ref.photo_style, "painting_style": self.painting_style,
                         "painting_content": ref.painting_content, "seconds": c.seconds})
        return rows

    def _mean(self, key: str) -> list[float]:
        rows = self.rows()
        return [nan_mean(r[key] for r in rows if r["style_weight"] == w) for w in self.weights]

    def mean_progress(self) -> list[float]:
        return self._mean("style_progress")

    def mean_content_ratio(self) -> list[float]:
        return self._mean("content_ratio")

    def summary(self) -> str:
        s = self.suggestion
        return (f"suggested style weight for {self.style_name}: {s.weight:g} ({s.reason})\n"
                f"  {self.command}\n  {len(self.cells)} transfers in {self.seconds:.0f} s")

    def as_meta(self) -> dict[str, Any]:
        """What the exported model records under meta['calibration']: plain numbers."""
        return {"style_weight": self.suggestion.weight, "limit": self.suggestion.limit,
                "reason": self.suggestion.reason, "rule": dataclasses.asdict(self.settings.rule),
                "steps": self.settings.steps, "image_size": self.image_size,
                "weights": self.weights, "style_progress": self.mean_progress(),
                "content_ratio": self.mean_content_ratio(), "seconds": self.seconds,
                "cells": [{k: v for k, v in r.items() if k != "seconds"} for r in self.rows()]}

    def log(self, trainer: Any) -> None:
        """The grid and the Markdown into TensorBoard (step 0), when a TensorBoard logger runs."""
        from pytorch_lightning.loggers import TensorBoardLogger
        from torchvision.transforms.functional import to_tensor

        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger) and self.sheet is not None:
                logger.experiment.add_image("calibration", to_tensor(self.sheet), 0)
                logger.experiment.add_text("calibration", self.report, 0)
