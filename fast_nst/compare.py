"""Ground truth for trained networks (Johnson et al. 2016, Fig. 5): the optimizer's iterations
that one forward pass is worth.

    python -m fast_nst.compare 'models={starry_night: models/starry_night.pt}' sizes=[256]

For each network, content image and size, the network's output is scored with the network's own
training losses (layers, weights, style image and its size, VGG weights); then L-BFGS optimizes
the same image from content init and from noise init under exactly that loss. Reported: the
optimizer's loss after each checkpoint (25, 50, 100, 200, 300 iterations; the best image so
far, as L-BFGS without a line search is not monotone), the first iteration whose loss is at or
below the network's, the time the optimizer took to get there and the network's forward time.
Output in the run folder: compare.md, compare.csv, compare_<size>.png and compare_curves.json
(every iteration's loss, raw and best so far).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from torch import Tensor
from tqdm.auto import tqdm

from fast_nst.cli import hydra_app
from fast_nst.device import pick_device
from fast_nst.errors import FastNSTError
from fast_nst.experiments import markdown_table, pyplot, save_figure
from fast_nst.gatys import (
    GatysConfig,
    VGGConfig,
    build_loss,
    final_losses,
    load_inputs,
    run,
    style_targets,
    validate,
    write_csv,
)
from fast_nst.io import atomic_path
from fast_nst.losses import PerceptualLoss
from fast_nst.stylize import StyleModel, Stylizer, bundled_models, load_model


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


def training_gatys_config(meta: dict[str, Any], style: str, content: str, size: int,
                          vgg: dict[str, Any], **overrides: Any) -> GatysConfig:
    """An optimizer config with a training run's loss, from the `meta` it records (see
    `StyleTransferModule.export_meta`: `loss` with resolved weights, `style_size`)."""
    loss = meta["loss"]
    content_layers, style_layers = dict(loss["content_layers"]), dict(loss["style_layers"])
    return validate(GatysConfig(
        task="transfer", content=content, style=style, size=size,
        style_size=meta.get("style_size"),
        content_layers=list(content_layers), content_layer_weights=list(content_layers.values()),
        style_layers=list(style_layers), style_layer_weights=list(style_layers.values()),
        content_weight=loss["content_weight"], style_weight=loss["style_weight"],
        tv_weight=loss["tv_weight"], optimizer="lbfgs", vgg=VGGConfig(**vgg), **overrides))


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
                        precision=cfg.get("precision", "fp32"))
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


def _cell(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _with_time(loss: float | None, seconds: float | None) -> str:
    return "—" if loss is None else f"{_cell(loss)} ({seconds:.1f})"


def detail_table(rows: list[dict[str, Any]], iterations: list[int]) -> str:
    """Every measurement: the network's loss (and its terms), L-BFGS's at each checkpoint with
    the seconds spent by then (lower is better), where L-BFGS reaches the network's loss, and
    the two times."""
    table = []
    for r in rows:
        maximum = iterations[-1] if r["lbfgs_" + str(iterations[-1])] is not None else None
        matched = r["matched_at"]
        table.append({
            "style": r["style"], "image": r["image"], "size": r["size"], "init": r["init"],
            "network (content + style + tv)": (
                f"{_cell(r['network'])} ({_cell(r['network_content'], 3)} + "
                f"{_cell(r['network_style'], 3)} + {_cell(r['network_tv'], 3)})"),
            **{f"L-BFGS {k} (s)": _with_time(r[f"lbfgs_{k}"], r[f"lbfgs_{k}_s"])
               for k in iterations},
            "L-BFGS matches at": (str(matched) if matched is not None
                                  else f"> {maximum or len(r['curve']) - 1}"),
            "optimizer s": _cell(r["optimizer_s"], 3),
            "network s": _cell(r["network_s"], 3),
            "speed-up": "—" if r["speedup"] is None else f"{r['speedup']:.0f}x"})
    return markdown_table(table)


def beats_optimizer(row: dict[str, Any], iterations: int) -> bool | None:
    """Is the network's loss at or below L-BFGS's after `iterations`? None: not measured."""
    curve = row["curve"]
    if len(curve) > iterations:
        return row["network"] <= curve[iterations]
    return False if row["matched_at"] is not None else None  # stopped early: L-BFGS got there


def summary_table(rows: list[dict[str, Any]], target: int) -> str:
    """Per style, size and init: on how many images the network is at or below L-BFGS after
    `target` iterations, and the median iterations L-BFGS needs to match the network."""
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["style"], r["size"], r["init"]), []).append(r)
    table = []
    for (style, size, init), group in groups.items():
        verdicts = [v for v in (beats_optimizer(r, target) for r in group) if v is not None]
        matched = [r["matched_at"] for r in group if r["matched_at"] is not None]
        never = len(group) - len(matched)
        median = _cell(float(statistics.median(matched))) if matched else "—"
        table.append({
            "style": style, "size": size, "init": init,
            f"network <= L-BFGS {target}": f"{sum(verdicts)}/{len(verdicts)}",
            "median iterations to match": median + (f" ({never} never)" if never else ""),
            "images": len(group)})
    return markdown_table(table)


def plot(rows: list[dict[str, Any]], size: int, path: Path) -> Path:
    """Mean loss over the images vs L-BFGS iterations, per style and init, with each network's
    mean loss as a dashed horizontal line (log scale). Curves are cut to the shortest run of
    their group (runs differ in length only with `stop_when_matched`)."""
    styles = list(dict.fromkeys(r["style"] for r in rows if r["size"] == size))
    fig, axes = pyplot().subplots(1, len(styles), figsize=(4 * len(styles), 3.4), dpi=100,
                             squeeze=False)
    for ax, style in zip(axes[0], styles, strict=True):
        mine = [r for r in rows if r["size"] == size and r["style"] == style]
        for init in dict.fromkeys(r["init"] for r in mine):
            curves = [r["curve"] for r in mine if r["init"] == init]
            length = min(len(c) for c in curves)
            mean = [statistics.fmean(c[k] for c in curves) for k in range(1, length)]
            ax.plot(range(1, length), mean, label=f"L-BFGS, {init} init")
        network = statistics.fmean(r["network"] for r in mine if r["init"] == mine[0]["init"])
        ax.axhline(network, color="k", linestyle="--", label="network")
        ax.set_yscale("log")
        ax.set_title(f"{style}, {size} px")
        ax.set_xlabel("L-BFGS iterations")
    axes[0][0].set_ylabel("total loss (mean over images)")
    axes[0][0].legend()
    fig.tight_layout()
    return save_figure(fig, path)


def write_report(rows: list[dict[str, Any]], cfg: dict[str, Any], folder: Path) -> str:
    """compare.md (summary, then every measurement), compare.csv and one plot per size."""
    iterations = sorted(int(i) for i in cfg["iterations"])
    target = int(cfg["target_iterations"])
    text = ("## Summary\n\n" + summary_table(rows, target) + "\n## Every run\n\n" +
            detail_table(rows, iterations))
    with atomic_path(folder / "compare.md") as tmp:
        tmp.write_text(text)
    write_csv([{k: v for k, v in r.items() if "curve" not in k} for r in rows],
              folder / "compare.csv")
    with atomic_path(folder / "compare_curves.json") as tmp:  # every iteration, raw and best
        tmp.write_text(json.dumps([{k: r[k] for k in ("style", "image", "size", "init",
                                                       "network", "curve", "raw_curve")}
                                   for r in rows]))
    for size in dict.fromkeys(r["size"] for r in rows):
        plot(rows, size, folder / f"compare_{size}.png")
    return text


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


@hydra_app(config_path="../conf/compare", config_name="compare")
def main(cfg: DictConfig) -> None:
    values = OmegaConf.to_container(cfg, resolve=True)
    folder = Path(HydraConfig.get().runtime.output_dir)
    rows = compare(values, folder)
    print(write_report(rows, values, folder))
    print(f"wrote {folder / 'compare.md'}, compare.csv and compare_<size>.png")


if __name__ == "__main__":
    main()
