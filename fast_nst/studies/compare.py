"""Ground truth for trained networks (Johnson et al. 2016, Fig. 5): the optimizer's iterations
that one forward pass is worth.

    fast-nst-compare 'models={starry_night: models/starry_night.pt}' sizes=[256]

For each network, content image and size, the network's output is scored with the network's own
training losses (layers, weights, style image and its size, VGG weights); then L-BFGS optimizes
the same image from content init and from noise init under exactly that loss. Reported: the
optimizer's loss after each checkpoint (25, 50, 100, 200, 300 iterations; the best image so
far, as L-BFGS without a line search is not monotone), the first iteration whose loss is at or
below the network's, the time the optimizer took to get there and the network's forward time.
Output in the run folder (`fast_nst.reports.compare`): compare.md, compare.csv,
compare_<size>.png and compare_curves.json (every iteration's loss, raw and best so far).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from fast_nst.core.losses import PerceptualLoss
from fast_nst.device import pick_device
from fast_nst.errors import FastNSTError
from fast_nst.inference.runtime import Stylizer
from fast_nst.model.files import StyleModel, bundled_models, load_model
from fast_nst.optimizer.config import GatysConfig, training_gatys_config
from fast_nst.optimizer.inputs import load_inputs
from fast_nst.optimizer.loop import run
from fast_nst.optimizer.loss import build_loss, final_losses, style_targets
from fast_nst.reports.compare import write_report


@dataclass
class Curve:
    """The optimizer's total loss after k iterations (index k; k = 0 is the init image) and the
    seconds it had spent by then."""

    losses: list[float]
    seconds: list[float]

    @property
    def best(self) -> list[float]:
        """The loss of the best image so far: L-BFGS without a line search is not monotone
        (an occasional step overshoots), and whoever runs it keeps the best image."""
        return list(itertools.accumulate(self.losses, min))

    def matched_at(self, target: float) -> int | None:
        """The first iteration whose loss is at or below `target` (None: never within the run)."""
        return next((k for k, value in enumerate(self.losses) if value <= target), None)


def find_models(models: dict[str, str] | None) -> dict[str, str]:
    """The models to compare: the given {name: path}, or every bundled models/*.pt."""
    if models:
        return {str(k): str(v) for k, v in models.items()}
    return {name: str(path) for name, path in bundled_models().items()}


def style_image(model: StyleModel, shared: str) -> str:
    """The training style image: its recorded path, else the same file name in shared/."""
    recorded = model.meta.get("style_image")
    for candidate in (Path(recorded), Path(shared) / "data" / "styles" / Path(recorded).name):
        if candidate.is_file():
            return str(candidate)
    raise FastNSTError(f"{model.path}: its style image {recorded} is not here; put it in "
                       f"{shared}/data/styles")


def gatys_config(model: StyleModel, content: str, size: int, vgg: dict[str, Any],
                 shared: str, **overrides: Any) -> GatysConfig:
    """An optimizer config with exactly the network's training loss (layers, weights, style)."""
    if not model.meta.get("loss") or not model.meta.get("style_image"):
        raise FastNSTError(f"{model.path} records no training loss or style image (a "
                           "pytorch/examples .pth?); compare needs a model from train.py")
    trained_vgg = model.meta.get("vgg") or {}
    if trained_vgg.get("convention") not in (None, "auto", vgg.get("convention")):
        raise FastNSTError(f"{model.path} was trained with {trained_vgg['convention']} VGG "
                           f"weights, not {vgg.get('convention')}; pick the matching vgg=...")
    return training_gatys_config(model.meta, style_image(model, shared), content, size, vgg,
                                 **overrides)


def time_forward(net: Callable[[Tensor], Tensor], image: Tensor, repeats: int = 3
                 ) -> tuple[Tensor, float]:
    """The network's output and its best-of-`repeats` forward time (after one warm-up)."""
    with torch.inference_mode():
        output = net(image)
        best = float("inf")
        for _ in range(repeats):
            tic = time.perf_counter()
            net(image)
            if image.device.type == "cuda":
                torch.cuda.synchronize(image.device)
            best = min(best, time.perf_counter() - tic)
    return output.clone(), best


def network_losses(model: StyleModel, cfg: GatysConfig, loss: PerceptualLoss,
                   device: torch.device) -> tuple[dict[str, float], float]:
    """The network's output scored by `loss` with the optimizer's own targets and content;
    the network runs at `cfg.precision` (eager, as stylize.py runs one image)."""
    inputs = load_inputs(cfg)
    loss.style.set_targets(style_targets(loss, inputs.styles, None, 1.0, device))
    content = inputs.content.to(device)
    stylizer = Stylizer(model.net, device=str(device), precision=cfg.precision)
    output, seconds = time_forward(stylizer, content)
    output = output.to(device)
    return final_losses(loss, output.clamp(0, 1), loss.content_targets(content)), seconds


def optimizer_curve(cfg: GatysConfig, loss: PerceptualLoss, stop_below: float | None) -> Curve:
    """L-BFGS under `loss`: a history row holds the loss before its update, so row k is the
    loss after k iterations and the final evaluation closes the curve."""
    rows: list[dict[str, float]] = []

    def keep(row: dict[str, float], image: Tensor) -> bool:
        rows.append(row)
        return stop_below is not None and row["total"] <= stop_below

    result = run(cfg, loss=loss, on_step=keep)
    losses = [row["total"] for row in rows]
    seconds = [0.0] + [row["seconds"] for row in rows]
    if len(rows) == cfg.steps:  # ran to the end: the last update's result, not yet scored
        losses.append(result.final["total"])
    return Curve(losses, seconds[:len(losses)])


def compare_one(name: str, model: StyleModel, content: str, size: int, cfg: dict[str, Any],
                device: torch.device) -> list[dict[str, Any]]:
    """One network, one image, one size: a row per optimizer init."""
    iterations = sorted(int(i) for i in cfg["iterations"])
    base = gatys_config(model, content, size, cfg["vgg"], cfg["shared"], steps=iterations[-1],
                        device=str(device), progress=cfg["progress"], seed=cfg["seed"],
                        precision=cfg["precision"])
    loss = build_loss(base, device)
    net, net_seconds = network_losses(model, base, loss, device)
    rows = []
    for init in cfg["inits"]:
        stop = net["total"] if cfg["stop_when_matched"] else None
        curve = optimizer_curve(dataclasses.replace(base, init=init), loss, stop)
        matched = curve.matched_at(net["total"])
        row: dict[str, Any] = {"style": name, "image": Path(content).stem, "size": size,
                               "init": init, "network": net["total"],
                               **{f"network_{k}": net[k] for k in ("content", "style", "tv")}}
        best = curve.best
        for k in iterations:
            row[f"lbfgs_{k}"] = best[k] if k < len(best) else None
            row[f"lbfgs_{k}_s"] = curve.seconds[k] if k < len(best) else None
        row["matched_at"] = matched
        row["optimizer_s"] = curve.seconds[matched] if matched is not None else None
        row["network_s"] = net_seconds
        row["speedup"] = row["optimizer_s"] / net_seconds if matched else None
        row["run_s"] = curve.seconds[-1]
        row["curve"], row["raw_curve"] = best, curve.losses
        rows.append(row)
    return rows


def compare(cfg: dict[str, Any], folder: Path) -> list[dict[str, Any]]:
    """Every model x content image x size x init; writes the report into `folder`."""
    if not cfg.get("contents"):
        raise FastNSTError("no content images: set contents=[a.jpg,b.jpg]")
    for content in cfg["contents"]:
        if not Path(content).is_file():
            raise FastNSTError(f"content image not found: {content}")
    device = pick_device(cfg["device"])
    models = {name: load_model(path) for name, path in find_models(cfg.get("models")).items()}
    for model in models.values():  # every model's settings, before the first report is written
        gatys_config(model, cfg["contents"][0], 64, cfg["vgg"], cfg["shared"])
    # photo-major, so that an interrupted run has every style on the photos it reached
    jobs = [(n, c, int(s)) for s in cfg["sizes"] for c in cfg["contents"] for n in models]
    rows: list[dict[str, Any]] = []
    for name, content, size in tqdm(jobs, desc="compare", disable=not cfg["progress"]):
        rows += compare_one(name, models[name], content, size, cfg, device)
        rows.sort(key=lambda r: (r["style"], r["size"], r["image"], r["init"]))
        write_report(rows, cfg, folder)  # partial results survive an interrupted run
    return rows
