"""Plot the bundled networks' quality against the photos they have seen in training.

    python benchmarks/plot_progress.py            # docs/data/bundled-progress.csv -> docs/images/

The CSV holds the scores of `benchmarks/study_recipes.py` (median L-BFGS iterations matched at
256 px on the six content photos) for each stage of each shipped network's training history,
each under the style weight that stage was trained with (`style_weight`): a stage trained at
another weight than the first is another loss, drawn apart (stars).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from fast_nst.reports.tables import pyplot, save_figure

ROOT = Path(__file__).resolve().parents[1]


def plot(rows: list[dict[str, str]], path: Path) -> Path:
    fig, ax = pyplot().subplots(figsize=(6.5, 4), dpi=100)
    for style in dict.fromkeys(r["style"] for r in rows):
        mine = [r for r in rows if r["style"] == style]
        first = [r for r in mine if r["style_weight"] == mine[0]["style_weight"]]
        line, = ax.plot([int(r["images"]) for r in first],
                        [float(r["median_matched"]) for r in first], "o-", label=style)
        gpu = [r for r in mine if r["hardware"] == "gpu"]
        ax.plot([int(r["images"]) for r in gpu], [float(r["median_matched"]) for r in gpu], "s",
                color=line.get_color(), markersize=8)
        if len(first) < len(mine):  # trained on under another style weight: another loss
            later = [first[-1], *mine[len(first):]]
            ax.plot([int(r["images"]) for r in later],
                    [float(r["median_matched"]) for r in later], "*:",
                    color=line.get_color(), markersize=11, markevery=slice(1, None))
    ax.axhline(50, color="grey", linestyle="--", label="target (Johnson et al.: 50-100)")
    ax.axvline(160_000, color="grey", linestyle=":", label="Johnson et al.'s 160,000 photos")
    ax.set_xscale("log")
    ticks = [2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 160_000]
    ax.set_xticks(ticks, [f"{t // 1000}k" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("training photos seen (log; squares: on a GPU; stars: then at style weight 3)")
    ax.set_ylabel("median L-BFGS iterations matched (256 px)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=ROOT / "docs" / "data" / "bundled-progress.csv")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "docs" / "images" / "training-progress.png")
    args = parser.parse_args()
    with args.csv.open(newline="") as handle:
        print(plot(list(csv.DictReader(handle)), args.out))


if __name__ == "__main__":
    main()
