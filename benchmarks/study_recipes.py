"""Training recipes measured by quality per minute of compute.

    python benchmarks/study_recipes.py --style udnie --minutes 10
    python benchmarks/study_recipes.py --style udnie --variants baseline,progressive --minutes 30
    python benchmarks/study_recipes.py --out bench-out/study --score-only   # re-score the runs

Every variant trains a network for the same style under the same loss for the same wall-clock
budget (Lightning's `trainer.max_time`), checkpointing as it goes. Each checkpoint is then
scored under one reference loss (the bundled recipe's: style image at 512 px) with
`fast_nst.studies.compare`: the L-BFGS iterations from content init at 256 px that match the
network's loss on the six content photos (stopped once matched, at most `--max-iterations`), and the
network's own content and style losses at 512 px. Output in --out: study.csv, study.md and
study.png (median matched iterations against training minutes).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fast_nst.errors import FastNSTError, exit_on_user_error  # noqa: E402
from fast_nst.model.files import StyleModel, load_model  # noqa: E402
from fast_nst.reports.tables import markdown_table, pyplot, save_figure, write_csv  # noqa: E402
from fast_nst.safe_load import load_torch_file  # noqa: E402
from fast_nst.studies.compare import compare_one  # noqa: E402

SHARED = Path(os.environ.get("FAST_NST_SHARED", ROOT.parent / "shared"))
CONTENTS = ["astronaut", "chelsea_cat", "china_summer_palace", "coffee", "flower", "rocket"]
PHASE_128 = ["data.image_size=128", "style.size=256", "data.batch_size=4"]

# name -> phases; a phase is (share of the time budget, train.py overrides). A later phase
# starts from the network the previous one exported.
VARIANTS: dict[str, list[tuple[float, list[str]]]] = {
    "baseline": [(1.0, [])],  # the bundled recipe: 256 px, batch 2, lr 1e-3
    "batch4": [(1.0, ["data.batch_size=4"])],
    "progressive": [(0.75, PHASE_128), (0.25, ["data.batch_size=4"])],
    "128px": [(1.0, PHASE_128)],
    "cosine": [(1.0, ["optim=adam_cosine"])],
    "full": [(1.0, ["model=full"])],
    "warm": [(1.0, ["init=models/{other}.pt"])],
    "continue": [(1.0, ["init=models/{style}.pt"])],  # more compute for the shipped network
}


def max_time(minutes: float) -> str:
    seconds = max(1, round(minutes * 60))
    return f"00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def phase_args(style: str, overrides: list[str], minutes: float, every: int, run: Path,
               init: Path | None) -> list[str]:
    """train.py overrides for one phase. `init`: the previous phase's export; a first phase
    that names no `init=` starts from random weights, not from the warm start the bundle
    recipe names (the variants are compared against each other, not against the recipe)."""
    other = "the_scream" if style != "the_scream" else "udnie"
    args = [f"experiment=bundle/{style}", f"hydra.run.dir={run}",
            "trainer.max_steps=10000000", f"++trainer.max_time={max_time(minutes)}",
            f"callbacks.model_checkpoint.every_n_train_steps={every}",
            "trainer.val_check_interval=100000", "trainer.num_sanity_val_steps=0",
            *(o.format(other=other, style=style) for o in overrides)]
    if init is not None:
        return [*args, f"init={init}"]
    if not any(o.startswith("init=") for o in overrides):
        return [*args, "init=null"]
    return args


def train_variant(name: str, style: str, minutes: float, every: int, out: Path) -> None:
    """Run the variant's phases with train.py (a fresh process each)."""
    init = None
    for number, (share, overrides) in enumerate(VARIANTS[name]):
        run = out / name / f"phase{number}"
        args = phase_args(style, overrides, minutes * share, every, run, init)
        print(f"[{name} phase {number}] train.py {' '.join(args)}", flush=True)
        with open(out / f"{name}-phase{number}.log", "w") as log:
            proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT,
                                  stdout=log, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            raise FastNSTError(f"variant {name} failed; see {out}/{name}-phase{number}.log")
        init = run / f"{style}.pt"


def checkpoints(variant: Path) -> list[tuple[float, int, Path]]:
    """(training minutes so far, steps so far, checkpoint) over the variant's phases."""
    found, offset_min, offset_steps = [], 0.0, 0
    for phase in sorted(variant.glob("phase*")):
        phase_rows = []
        export = load_torch_file(next(phase.glob("*.pt")))
        per_step = export["meta"]["train_seconds"] / max(1, export["meta"]["steps"])
        for ckpt in (phase / "checkpoints").glob("step*.ckpt"):
            payload = load_torch_file(ckpt, what="checkpoint")
            step = payload["global_step"]
            timer = payload.get("callbacks", {}).get("Timer", {})
            # A run without max_time has no Timer: its average seconds per step stand in.
            seconds = timer.get("time_elapsed", {}).get("train", step * per_step)
            phase_rows.append((offset_min + seconds / 60, offset_steps + step, ckpt))
        phase_rows.sort()
        found += phase_rows
        offset_min += export["meta"]["train_seconds"] / 60
        offset_steps += export["meta"]["steps"]
    return found


def pick(rows: list[Any], n: int) -> list[Any]:
    """At most n rows spread evenly, always with the last."""
    if len(rows) <= n:
        return rows
    return [rows[round(i * (len(rows) - 1) / (n - 1))] for i in range(n)]


def score(model: StyleModel, reference: dict[str, Any], max_iterations: int) -> dict[str, Any]:
    """Matched L-BFGS iterations at 256 px (content init) and the network's 512 px losses."""
    model = dataclasses.replace(model, meta=reference)
    cfg = {"vgg": {"weights": str(SHARED / "weights" / "vgg19-caffe-rgb255-features.pth"),
                   "convention": "caffe", "pooling": "max"}, "shared": str(SHARED),
           "inits": ["content"], "iterations": [max_iterations], "stop_when_matched": True,
           "progress": False, "seed": 0}
    device = torch.device("cpu")
    matched, content, style = [], [], []
    for photo in CONTENTS:
        path = str(SHARED / "data" / "content" / f"{photo}.jpg")
        row = compare_one(model.style, model, path, 256, cfg, device)[0]
        matched.append(row["matched_at"] if row["matched_at"] is not None
                       else max_iterations + 1)
        big = compare_one(model.style, model, path, 512, {**cfg, "iterations": [1]}, device)[0]
        content.append(big["network_content"])
        style.append(big["network_style"])
    return {"median_matched": statistics.median(matched), "min_matched": min(matched),
            "content_512": statistics.fmean(content), "style_512": statistics.fmean(style)}


def score_all(out: Path, style: str, per_variant: int, max_iterations: int) -> list[dict]:
    shipped = load_model(ROOT / "models" / f"{style}.pt")
    reference = dict(shipped.meta)
    reference["style_size"] = 512
    print(f"scoring the bundled models/{style}.pt", flush=True)
    seconds = reference.get("train_seconds")  # absent from files exported before it was kept
    rows = [{"variant": "bundled", "minutes": round(seconds / 60, 1) if seconds else "",
             "steps": reference.get("steps"), **score(shipped, reference, max_iterations),
             "checkpoint": f"models/{style}.pt"}]
    for variant in sorted(p for p in out.iterdir() if p.is_dir()):
        for minutes, steps, ckpt in pick(checkpoints(variant), per_variant):
            print(f"scoring {variant.name} at {minutes:.1f} min ({steps} steps)", flush=True)
            rows.append({"variant": variant.name, "minutes": round(minutes, 1),
                         "steps": steps, **score(load_model(ckpt), reference, max_iterations),
                         "checkpoint": str(ckpt.relative_to(out))})
            write_report(rows, out)
    return rows


def write_report(rows: list[dict], out: Path) -> None:
    write_csv(rows, out / "study.csv")
    table = [{**r, "content_512": f"{r['content_512']:.4g}", "style_512": f"{r['style_512']:.4g}"}
             for r in rows]
    (out / "study.md").write_text(markdown_table(table))
    fig, ax = pyplot().subplots(figsize=(6, 4), dpi=100)
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == variant]
        if all(r["minutes"] == "" for r in mine):  # no training time known: a level to reach
            ax.axhline(float(mine[-1]["median_matched"]), color="grey", linestyle="--",
                       label=f"{variant} ({mine[-1]['steps']} steps)")
            continue
        ax.plot([float(r["minutes"]) for r in mine],
                [float(r["median_matched"]) for r in mine], "o-", label=variant)
    ax.set_xlabel("training minutes (this CPU)")
    ax.set_ylabel("median L-BFGS iterations matched (256 px)")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out / "study.png")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--style", default="udnie", help="a bundled style (conf/style)")
    parser.add_argument("--variants", default="baseline,batch4,progressive,warm",
                        help=f"comma-separated, from: {', '.join(VARIANTS)}")
    parser.add_argument("--minutes", type=float, default=10.0, help="budget per variant")
    parser.add_argument("--every", type=int, default=100, help="checkpoint every N steps")
    parser.add_argument("--per-variant", type=int, default=3, help="checkpoints scored")
    parser.add_argument("--max-iterations", type=int, default=100)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "study")
    parser.add_argument("--score-only", action="store_true", help="score existing runs")
    args = parser.parse_args(argv)
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(sorted(unknown))}; "
                     f"choose from {', '.join(VARIANTS)}")
    if args.minutes <= 0 or args.every < 1 or args.per_variant < 1:
        parser.error("--minutes, --every and --per-variant must be positive")
    return args


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.score_only:
        for name in args.variants.split(","):
            train_variant(name, args.style, args.minutes, args.every, args.out)
    rows = score_all(args.out, args.style, args.per_variant, args.max_iterations)
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
