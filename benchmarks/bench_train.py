"""Training throughput (images/s) of the feed-forward trainer, fp32 vs bf16-mixed, full and half
width, in one process; plus the loss curve of the first steps for both precisions (same seed,
same data) as CSV + PNG. Prints Markdown tables.

    python benchmarks/bench_train.py                     # 256 px, batch 4, 200-step curves
    python benchmarks/bench_train.py --size 64 --steps 2 --rounds 1 --curve-steps 5   # a check
    python benchmarks/bench_train.py --allocator glibc --curve-steps 0   # without CPUMemory
    python benchmarks/bench_train.py --precisions 32-true,auto --widths half --curve-steps 0

Uses the real training step (Lightning Trainer + StyleTransferModule + the CPUMemory callback
that `train.py` uses, Caffe VGG19 from ../shared, Johnson layers to relu4_3, default loss
weights) on photos from ../shared/data/train cropped once into memory, so decoding does not
share the cores with the measurement. The configurations take turns (`--rounds`), so a slow
spell of the machine does not land on one of them; each step is timed and the median counts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fast_nst.device import describe_hardware, trainer_device  # noqa: E402
from fast_nst.errors import ArgumentParser, FastNSTError, exit_on_user_error  # noqa: E402
from fast_nst.precision import resolve_precision  # noqa: E402
from fast_nst.reports.tables import markdown_table, pyplot, save_figure, write_csv  # noqa: E402
from fast_nst.training.callbacks import CPUMemory  # noqa: E402
from fast_nst.training.data import ImageDataModule  # noqa: E402
from fast_nst.training.module import StyleTransferModule  # noqa: E402

SHARED = Path(os.environ.get("FAST_NST_SHARED", ROOT.parent / "shared"))
PRECISIONS = ("32-true", "bf16-mixed")


class StepTimer(pl.Callback):
    """Wall time of each step after `warmup` (batch start to end, optimizer step included),
    and the loss of every step."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.times, self.losses = warmup, 0.0, [], []
        self.module: StyleTransferModule | None = None  # set by train()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step > self.warmup:
            self.times.append(time.perf_counter() - self.start)
        self.losses.append(float(outputs["loss"]))


def crops(n: int, size: int, seed: int) -> torch.Tensor:
    """`n` training crops from ../shared/data/train, made once (fixed seed)."""
    folder = SHARED / "data" / "train"
    dm = ImageDataModule(data_dir=str(folder), image_size=size, batch_size=n, num_workers=0,
                         val_size=0, seed=seed)
    dm.setup("fit")
    torch.manual_seed(seed)
    return next(iter(dm.train_dataloader()))


def train(images: torch.Tensor, *, width: str, precision: str, steps: int, warmup: int,
          batch: int, seed: int, vgg: str, style: Path, allocator: str) -> StepTimer:
    pl.seed_everything(seed, verbose=False)
    module = StyleTransferModule("bench", str(style), style_size=512, net={"width": width},
                                 vgg={"weights": vgg})
    loader = DataLoader(images, batch_size=batch, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    timer = StepTimer(warmup)
    callbacks = [timer, CPUMemory()] if allocator == "keep" else [timer]
    trainer = pl.Trainer(accelerator="auto", devices=1, precision=precision,
                         max_steps=warmup + steps, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, limit_val_batches=0, callbacks=callbacks)
    trainer.fit(module, train_dataloaders=loader)
    timer.module = module
    return timer


def plot(curves: dict[str, list[float]], path: Path, width: str) -> None:
    fig, ax = pyplot().subplots(figsize=(7, 4), dpi=120)
    for name, losses in curves.items():
        ax.plot(range(1, len(losses) + 1), losses, label=name, linewidth=1)
    ax.set(xlabel="step", ylabel="total loss", yscale="log",
           title=f"Training loss ({width} width), same seed and data: fp32 vs bf16-mixed")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def precision_names(text: str) -> dict[str, str]:
    """`32-true,auto` -> {label: Lightning precision}; auto resolved as train.py does it."""
    device = trainer_device("auto")
    names = {}
    for value in text.split(","):
        resolved = resolve_precision(value, device).name
        names[f"auto -> {resolved}" if value == "auto" else value] = resolved
    return names


def time_configurations(images: torch.Tensor, args: argparse.Namespace,
                        common: dict) -> list[tuple[str, str, float, float]]:
    """(width, precision, median s/step, speed-up vs the first), configurations taking turns."""
    widths, precisions = args.widths.split(","), precision_names(args.precisions)
    times: dict[tuple[str, str], list[float]] = {(w, p): [] for w in widths for p in precisions}
    for round_ in range(1, args.rounds + 1):
        for width, precision in times:
            timer = train(images, width=width, precision=precisions[precision],
                          steps=args.steps, warmup=args.warmup, **common)
            times[width, precision] += timer.times
            print(f"round {round_}: {width} {precision}: "
                  + " ".join(f"{t:.2f}" for t in timer.times) + " s/step",
                  file=sys.stderr, flush=True)
    median = {key: statistics.median(values) for key, values in times.items()}
    first = next(iter(precisions))
    return [(w, p, median[w, p], median[w, first] / median[w, p]) for w, p in times]


@torch.no_grad()
def float32_loss(module: StyleTransferModule, batch: torch.Tensor) -> float:
    """The trained network's total loss in float32, so both precisions are scored alike (a loss
    computed under bf16 carries bf16 rounding of its own)."""
    module.eval()
    return float(module.compute_losses(batch)[1]["total"])


def loss_curves(images: torch.Tensor, held_out: torch.Tensor, args: argparse.Namespace,
                common: dict) -> None:
    """Both precisions from the same seed and data; CSV + PNG per width, summary lines."""
    for width in args.curve_widths.split(","):
        curves, scores = {}, {}
        for p in PRECISIONS:
            timer = train(images, width=width, precision=p, steps=args.curve_steps, warmup=0,
                          **common)
            curves[p], scores[p] = timer.losses, float32_loss(timer.module, held_out)
        stem = args.out / f"loss_curve_{width}"
        write_csv([{"step": step, **{p: f"{v:.6g}" for p, v in zip(PRECISIONS, values,
                                                                    strict=True)}}
                   for step, values in enumerate(zip(*curves.values(), strict=True), start=1)],
                  stem.with_suffix(".csv"))
        plot(curves, stem.with_suffix(".png"), width)
        tail = max(1, args.curve_steps // 4)
        means = {p: sum(v[-tail:]) / tail for p, v in curves.items()}
        print(f"\nLoss over the first {args.curve_steps} steps ({width} width; mean of the last "
              f"{tail}): " + ", ".join(f"{p} {m:.4g}" for p, m in means.items())
              + f"; bf16/fp32 = {means['bf16-mixed'] / means['32-true']:.3f}"
              + f"\nThe trained networks in float32 on {len(held_out)} other crops: "
              + ", ".join(f"{p} {v:.4g}" for p, v in scores.items())
              + f"; bf16/fp32 = {scores['bf16-mixed'] / scores['32-true']:.3f}"
              + f"\ncurves: {stem}.csv and {stem}.png")


def print_table(rows: list[tuple[str, str, float, float]], args: argparse.Namespace) -> None:
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else (
        f"CPU, {torch.get_num_threads()} threads")
    print(f"\nTraining throughput, {args.size} px, batch {args.batch}, median of "
          f"{args.rounds} x {args.steps} timed steps (each after {args.warmup} warm-up), "
          f"allocator {args.allocator}, {device}:\n")
    first = args.precisions.split(",")[0]
    print(markdown_table([{"width": w, "precision": p, "s/step": f"{t:.3f}",
                           "images/s": f"{args.batch / t:.2f}",
                           f"speed-up vs {first}": f"{x:.2f}x"} for w, p, t, x in rows]),
          end="")
    write_csv([{"width": w, "precision": p, "s_per_step": f"{t:.6g}",
                "images_per_s": f"{args.batch / t:.6g}", "speedup": f"{x:.6g}"}
               for w, p, t, x in rows], args.out / "throughput.csv")
    print(f"\ntable: {args.out / 'throughput.csv'}")


def check_args(args: argparse.Namespace) -> None:
    """Bad values are one-line errors before any work starts."""
    for name, least in (("size", 32), ("batch", 1), ("steps", 0), ("warmup", 0), ("rounds", 1),
                        ("curve_steps", 0), ("images", 1)):
        if getattr(args, name) < least:
            raise FastNSTError(f"--{name.replace('_', '-')} must be at least {least}, "
                               f"got {getattr(args, name)}")
    for flag in ("widths", "curve_widths"):
        bad = set(getattr(args, flag).split(",")) - {"full", "half"}
        if bad:
            raise FastNSTError(f"--{flag.replace('_', '-')} takes full and/or half, "
                               f"not {', '.join(sorted(bad))}")
    known = {"auto", "32", "32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true"}
    bad = set(args.precisions.split(",")) - known
    if bad:
        raise FastNSTError(f"--precisions: unknown {', '.join(sorted(bad))}; use "
                           f"{', '.join(sorted(known))}")
    if args.vgg not in ("imagenet", "random") and not Path(args.vgg).is_file():
        raise FastNSTError(f"VGG19 weights not found: {args.vgg}; pass --vgg imagenet (online)")
    if not args.style.is_file():
        raise FastNSTError(f"style image not found: {args.style}")


@exit_on_user_error
def main() -> None:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="training crop (px)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=6,
                        help="timed steps per configuration and round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first, each time")
    parser.add_argument("--rounds", type=int, default=3,
                        help="the configurations take turns this many times")
    parser.add_argument("--allocator", default="keep", choices=("keep", "glibc"),
                        help="keep: the CPUMemory callback as in train.py; glibc: without it")
    parser.add_argument("--curve-steps", type=int, default=200, help="0 skips the curves")
    parser.add_argument("--curve-widths", default="full,half")
    parser.add_argument("--widths", default="full,half")
    parser.add_argument("--precisions", default=",".join(PRECISIONS),
                        help="timed precisions, the first is the reference; auto = train.py's")
    parser.add_argument("--images", type=int, default=64, help="photos cropped into memory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vgg", default=str(SHARED / "weights" /
                                             "vgg19-caffe-rgb255-features.pth"))
    parser.add_argument("--style", type=Path, default=SHARED / "data" / "styles" /
                        "starry_night.jpg")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "train")
    args = parser.parse_args()
    check_args(args)
    print(describe_hardware())
    args.out.mkdir(parents=True, exist_ok=True)
    need = max(args.batch * (args.warmup + args.steps), args.batch * args.curve_steps)
    images = crops(min(args.images, need), args.size, args.seed)
    held_out = crops(8, args.size, args.seed + 1)  # another seed: other photos, other crops
    common = {"batch": args.batch, "seed": args.seed, "vgg": args.vgg, "style": args.style,
              "allocator": args.allocator}

    if args.steps:
        print_table(time_configurations(images, args, common), args)
    if args.curve_steps:
        loss_curves(images, held_out, args, common)


if __name__ == "__main__":
    main()
