"""The five classic Gatys experiments, one command each, as labelled grids plus tables.

`fast-nst-experiments run=reconstruction` (or texture, style_weights, init, optimizers,
all; the app: `fast_nst.apps.experiments`). Each experiment is a small grid of
`fast_nst.optimizer.loop.run` calls in one process (so the VGG weights are read from disk, not
re-downloaded, and the machine runs one job at a time); it writes `<name>.png` (the contact
sheet), `<name>.csv` and `<name>.md` (final losses and times) into the run folder; `optimizers`
adds `optimizers-loss.png` (loss curves). Sizes and steps are overrides:
`size=256 reconstruction.steps=500`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from fast_nst.configs import to_dataclass
from fast_nst.core.images import load_image
from fast_nst.core.vgg import canonical_layer, resolve_convention
from fast_nst.errors import FastNSTError
from fast_nst.optimizer.config import GatysConfig, validate
from fast_nst.optimizer.loop import GatysResult, run
from fast_nst.reports.sheet import grid
from fast_nst.reports.tables import markdown_table, pyplot, save_figure, write_csv, write_text

EXPERIMENTS = ("reconstruction", "texture", "style_weights", "init", "optimizers")
LOSS_KEYS = ("content", "style", "tv", "total")


@dataclasses.dataclass
class Outcome:
    """What one experiment produced: the sheet's cells and the table rows."""

    images: list[list[Tensor | None]]
    row_labels: list[str]
    col_labels: list[str]
    table: list[dict[str, Any]]
    title: str


# --------------------------------------------------------------------------- helpers
def _layer_label(name: str) -> str:
    canonical = canonical_layer(name)
    return name if name == canonical else f"{name}\n{canonical}"


def _row(result: GatysResult, **keys: Any) -> dict[str, Any]:
    """One table row: the cell's keys, steps, final losses, optimization seconds."""
    row: dict[str, Any] = dict(keys)
    row["steps"] = result.steps
    row.update({k: result.final.get(k, 0.0) for k in LOSS_KEYS})
    row["seconds"] = round(result.seconds, 2)
    row["s_per_step"] = round(result.seconds / max(1, result.steps), 4)
    return row


def _gatys(base: Mapping[str, Any], **overrides: Any) -> GatysConfig:
    return validate(to_dataclass(GatysConfig, {**base, **overrides}, "gatys"))


# --------------------------------------------------------------------------- the five
def reconstruction(base: Mapping[str, Any], spec: Mapping[str, Any]) -> Outcome:
    """Gatys 2016 fig. 1: what each layer keeps of a photo, from white noise."""
    layers, seeds = list(spec["layers"]), list(spec["seeds"])
    images: list[list[Tensor | None]] = []
    table = []
    original = load_image(base["content"], long_side=base["size"])
    for seed in seeds:
        row: list[Tensor | None] = [original]
        for layer in layers:
            result = run(_gatys(base, task="reconstruct", init="noise", seed=seed,
                                content_layers=[layer], steps=spec["steps"], tv_weight=0.0))
            row.append(result.image)
            table.append(_row(result, seed=seed, layer=layer))
        images.append(row)
    return Outcome(images, [f"seed {s}" for s in seeds],
                   ["content"] + [_layer_label(x) for x in layers], table,
                   f"Content reconstruction from noise, {spec['steps']} L-BFGS steps")


def texture(base: Mapping[str, Any], spec: Mapping[str, Any]) -> Outcome:
    """Textures from Gram matrices of growing layer sets (Gatys 2015)."""
    sets: dict[str, list[str]] = {k: list(v) for k, v in spec["layer_sets"].items()}
    seeds = list(spec["seeds"])
    original = load_image(base["style"], long_side=base["size"])
    images, table = [], []
    for seed in seeds:
        row: list[Tensor | None] = [original]
        for name, layers in sets.items():
            result = run(_gatys(base, task="texture", init="noise", seed=seed,
                                style_layers=layers, steps=spec["steps"]))
            row.append(result.image)
            table.append(_row(result, seed=seed, layers=name))
        images.append(row)
    return Outcome(images, [f"seed {s}" for s in seeds], ["style", *sets], table,
                   f"Texture synthesis, {spec['steps']} L-BFGS steps")


def style_weights(base: Mapping[str, Any], spec: Mapping[str, Any], convention: str
                  ) -> Outcome:
    """Style/content trade-off: one row of style weights (content weight 1)."""
    weights = spec["weights"] or spec["defaults"][convention]
    row: list[Tensor | None] = []
    table = []
    for weight in weights:
        result = run(_gatys(base, task="transfer", init=spec["init"], content_weight=1.0,
                            style_weight=float(weight), steps=spec["steps"]))
        row.append(result.image)
        table.append(_row(result, style_weight=float(weight)))
    return Outcome([row], [f"init {spec['init']}"], [f"{float(w):.3g}" for w in weights],
                   table, f"Style weight (content weight 1, {convention} features), "
                   f"{spec['steps']} L-BFGS steps")


def init(base: Mapping[str, Any], spec: Mapping[str, Any]) -> Outcome:
    """Content vs noise init, snapshots at several step counts of one run each."""
    checkpoints = sorted(int(s) for s in spec["checkpoints"])
    images, table = [], []
    for mode in spec["inits"]:
        shots: dict[int, Tensor] = {}
        losses: dict[int, dict[str, float]] = {}  # the loss of the image after n updates
        seconds: dict[int, float] = {}

        def keep(row: dict[str, float], image: Tensor, shots=shots, losses=losses,
                 seconds=seconds) -> None:
            step = int(row["step"])  # row: the loss before update `step`; image: after it
            losses[step - 1], seconds[step] = dict(row), row["seconds"]
            if step in checkpoints:
                shots[step] = image.detach().clamp(0, 1).cpu().clone()

        result = run(_gatys(base, task="transfer", init=mode, steps=checkpoints[-1]),
                     on_step=keep)
        shots[checkpoints[-1]], losses[checkpoints[-1]] = result.image, dict(result.final)
        images.append([shots.get(s) for s in checkpoints])
        for step in checkpoints:
            table.append({"init": mode, "steps": step,
                          **{k: losses[step].get(k, 0.0) for k in LOSS_KEYS},
                          "seconds": round(seconds[step], 2)})
    return Outcome(images, [f"init {m}" for m in spec["inits"]],
                   [f"{s} steps" for s in checkpoints], table,
                   "Content init vs noise init (L-BFGS)")


def optimizers(base: Mapping[str, Any], spec: Mapping[str, Any], folder: Path) -> Outcome:
    """The optimizers at equal steps; loss curves in one plot."""
    row: list[Tensor | None] = []
    table, curves = [], {}
    for name in spec["optimizers"]:
        lr = (spec.get("lr") or {}).get(name)
        result = run(_gatys(base, task="transfer", init=spec["init"], optimizer=name, lr=lr,
                            steps=spec["steps"]))
        row.append(result.image)
        curves[name] = [(r["step"], r["total"]) for r in result.history]
        table.append(_row(result, optimizer=name, lr=lr if lr is not None else "default"))
    plot_curves(curves, folder / "optimizers-loss.png",
                f"Total loss, init {spec['init']}, size {base['size']}")
    return Outcome([row], [f"init {spec['init']}"], list(spec["optimizers"]), table,
                   f"Optimizers at {spec['steps']} steps (one VGG pass each)")


def plot_curves(curves: Mapping[str, list[tuple[float, float]]], path: Path,
                title: str) -> Path:
    """Loss vs step, log scale, one line per curve (matplotlib, Agg)."""
    fig, ax = pyplot().subplots(figsize=(6, 4), dpi=100)
    for name, points in curves.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], label=name)
    ax.set_yscale("log")
    ax.set_xlabel("step (= one VGG forward+backward)")
    ax.set_ylabel("total loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


# --------------------------------------------------------------------------- driver
def selected(choice: Any) -> list[str]:
    """`all`, one name, or a list of names -> the experiments to run, validated."""
    names = list(EXPERIMENTS) if choice in (None, "all") else (
        [choice] if isinstance(choice, str) else list(choice))
    for name in names:
        if name not in EXPERIMENTS:
            raise FastNSTError(f"unknown experiment {name!r}; use all or one of "
                               f"{', '.join(EXPERIMENTS)}")
    return names


def run_experiment(name: str, base: Mapping[str, Any], spec: Mapping[str, Any],
                   folder: Path) -> dict[str, Path]:
    """Run one experiment; write its grid, CSV and Markdown table into `folder`."""
    vgg = base["vgg"]
    convention = resolve_convention(str(vgg["weights"]), vgg.get("convention")).name
    base = {**base, **(spec.get("gatys") or {})}
    if spec.get("size"):
        base["size"] = spec["size"]
    runners: dict[str, Callable[[], Outcome]] = {
        "reconstruction": lambda: reconstruction(base, spec),
        "texture": lambda: texture(base, spec),
        "style_weights": lambda: style_weights(base, spec, convention),
        "init": lambda: init(base, spec),
        "optimizers": lambda: optimizers(base, spec, folder),
    }
    outcome = runners[name]()
    first = next(im for row in outcome.images for im in row if im is not None)
    width = max(128, int(base["size"]))
    cell = (width, max(1, round(width * first.shape[-2] / first.shape[-1])))
    paths = {"grid": folder / f"{name}.png", "csv": folder / f"{name}.csv",
             "md": folder / f"{name}.md"}
    grid(outcome.images, outcome.row_labels, outcome.col_labels, cell=cell,
         title=f"{outcome.title}; size {base['size']}", path=paths["grid"])
    write_csv(outcome.table, paths["csv"])
    write_text(f"### {outcome.title} (size {base['size']})\n\n" + markdown_table(outcome.table),
               paths["md"])
    if name == "optimizers":
        paths["plot"] = folder / "optimizers-loss.png"
    return paths
