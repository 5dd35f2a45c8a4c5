"""The report of `fast_nst.studies.compare`: compare.md (a summary per style, size and init,
then every measurement), compare.csv, compare_curves.json and one plot per size. Rows are the
dicts that `compare_one` returns."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from fast_nst.reports.tables import markdown_table, pyplot, save_figure, write_csv, write_text


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
    write_text(text, folder / "compare.md")
    write_csv([{k: v for k, v in r.items() if "curve" not in k} for r in rows],
              folder / "compare.csv")
    curves = [{k: r[k] for k in ("style", "image", "size", "init", "network", "curve",
                                 "raw_curve")} for r in rows]
    write_text(json.dumps(curves), folder / "compare_curves.json")  # every iteration, raw and best
    for size in dict.fromkeys(r["size"] for r in rows):
        plot(rows, size, folder / f"compare_{size}.png")
    return text
