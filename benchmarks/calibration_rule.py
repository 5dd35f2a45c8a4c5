"""Set the calibration rule's constants on the bundled styles (docs/calibrate.md).

    python benchmarks/calibration_rule.py starry_night=outputs/calibrate/starry_night \\
        the_scream=outputs/calibrate/the_scream great_wave=... udnie=...

Each folder holds a `fast-nst-calibrate 'train=["experiment=bundle/<style>"]'` run
(its calibration.csv). The weight each bundled network was trained with comes from the `meta`
of models/<style>.pt. For each style this prints the mean style progress and content ratio of
the optimizer's images at that weight (linear in log weight between the measured weights) and
the same two measures for the shipped network's own output on the same photos. The constants:
`style_progress` = the median of the styles' progress at their shipped weight (two decimals);
`max_content` = the largest content ratio at a shipped weight, rounded up to one decimal (the
bound then stops no choice that was judged good by eye). Then each style's suggestion with
those constants, and leave-one-out: the constants set on the other styles only.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
from pathlib import Path

import torch

from fast_nst.core.images import load_image
from fast_nst.model.files import load_model
from fast_nst.optimizer.config import training_gatys_config
from fast_nst.optimizer.loss import build_loss
from fast_nst.reports.tables import markdown_table
from fast_nst.training.calibrate import (
    _crop,
    crops_style_loss,
    score,
    setup_from_training,
    training_config,
)
from fast_nst.training.calibration import Rule, nan_mean, style_progress, suggest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FAST_NST_SHARED", ROOT.parent / "shared"))


def means(path: Path) -> tuple[list[float], list[float], list[float], list[str]]:
    """Weights, mean progress and mean content ratio per weight, and the photos of a run."""
    with open(path / "calibration.csv") as f:
        rows = list(csv.DictReader(f))
    weights = sorted({float(r["style_weight"]) for r in rows})

    def mean(key: str, w: float) -> float:  # as the app: photos without a measure skipped
        return nan_mean(float(r[key]) for r in rows if float(r["style_weight"]) == w)

    return (weights, [mean("style_progress", w) for w in weights],
            [mean("content_ratio", w) for w in weights], list(dict.fromkeys(r["photo"]
                                                                             for r in rows)))


def at(weights: list[float], values: list[float], weight: float) -> float:
    """`values` at `weight`, linear in log weight between the measured points."""
    logs = [math.log(w) for w in weights]
    x = min(max(math.log(weight), logs[0]), logs[-1])
    i = max(1, next((k for k, v in enumerate(logs) if v >= x), len(logs) - 1))
    t = (x - logs[i - 1]) / (logs[i] - logs[i - 1])
    return values[i - 1] + t * (values[i] - values[i - 1])


@torch.no_grad()
def network(style: str, photos: list[str]) -> tuple[float, float]:
    """The shipped network's mean style progress and content ratio on the same photos."""
    setup = setup_from_training(training_config([f"experiment=bundle/{style}"]))
    cfg = training_gatys_config(setup.meta, setup.meta["style_image"], photos[0],
                                setup.image_size, setup.meta["vgg"])
    loss = build_loss(cfg)
    style_image = load_image(setup.meta["style_image"], long_side=setup.meta["style_size"])
    loss.set_style(style_image)
    loss.weights.style = 1.0
    own = crops_style_loss(loss, style_image, setup.image_size)
    painting = _crop(setup.meta["style_image"], setup.image_size)
    net = load_model(ROOT / "models" / f"{style}.pt").net.float().eval()
    progress, ratio = [], []
    for photo_path in photos:
        photo = _crop(photo_path, setup.image_size)
        targets = loss.content_targets(photo)
        content, style_loss = score(loss, net(photo).clamp(0, 1), targets)
        progress.append(style_progress(style_loss, score(loss, photo, targets)[1], own))
        ratio.append(content / score(loss, painting, targets)[0])
    return nan_mean(progress), nan_mean(ratio)


def fit(points: list[tuple[float, float]]) -> Rule:
    """Constants from (progress, content ratio) at the shipped weights of some styles."""
    return Rule(style_progress=round(statistics.median(p for p, _ in points), 2),
                max_content=math.ceil(10 * max(c for _, c in points)) / 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="style=folder of its calibration run")
    args = parser.parse_args()
    runs = dict(item.split("=", 1) for item in args.runs)
    data = {}
    for style, folder in runs.items():
        weights, progress, content, photos = means(Path(folder))
        shipped = float(load_model(ROOT / "models" / f"{style}.pt").meta["loss"]["style_weight"])
        paths = [str(SHARED / "data" / "content" / f"{p}.jpg") for p in photos]
        data[style] = {"weights": weights, "progress": progress, "content": content,
                       "shipped": shipped, "at": (at(weights, progress, shipped),
                                                  at(weights, content, shipped)),
                       "network": network(style, paths)}
    rule = fit([d["at"] for d in data.values()])
    print(f"rule: style_progress={rule.style_progress}, max_content={rule.max_content}\n")
    table = []
    for style, d in data.items():
        s = suggest(d["weights"], d["progress"], d["content"], rule)
        others = fit([o["at"] for name, o in data.items() if name != style])
        loo = suggest(d["weights"], d["progress"], d["content"], others)
        table.append({
            "style": style, "shipped weight": d["shipped"],
            "optimizer progress / content at shipped": f"{d['at'][0]:.2f} / {d['at'][1]:.2f}",
            "network progress / content": "{:.2f} / {:.2f}".format(*d["network"]),
            "suggested": f"{s.weight:g} ({s.limit})",
            "suggested / shipped": f"{s.weight / d['shipped']:.2f}",
            "leave-one-out rule": f"{others.style_progress:g} / {others.max_content:g}",
            "leave-one-out suggested": f"{loo.weight:g} ({loo.limit})"})
    print(markdown_table(table))


if __name__ == "__main__":
    main()
