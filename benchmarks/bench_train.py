"""Training throughput (images/s) of the feed-forward trainer, fp32 vs bf16-mixed, full and half
width, in one process; plus the loss curve of the first steps for both precisions (same seed,
same data) as CSV + PNG. Prints a Markdown table.

    python benchmarks/bench_train.py                     # 256 px, batch 4, 200-step curves
    python benchmarks/bench_train.py --size 64 --steps 2 --curve-steps 5   # a quick check

Uses the real training step (Lightning Trainer + StyleTransferModule, Caffe VGG19 from
../shared, Johnson layers to relu4_3, default loss weights) on photos from ../shared/data/train
cropped once into memory, so decoding does not share the cores with the measurement.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fast_nst.data import ImageDataModule  # noqa: E402
from fast_nst.errors import FastNSTError, exit_on_user_error  # noqa: E402
from fast_nst.module import StyleTransferModule  # noqa: E402

SHARED = Path(os.environ.get("FAST_NST_SHARED", ROOT.parent / "shared"))
PRECISIONS = ("32-true", "bf16-mixed")


class StepTimer(pl.Callback):
    """Wall time of the steps after `warmup`, and the loss of every step."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.elapsed, self.losses = warmup, 0.0, 0.0, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))
        if trainer.global_step > self.warmup:
            self.elapsed = time.perf_counter() - self.start


def crops(n: int, size: int, seed: int) -> torch.Tensor:
    """`n` training crops from ../shared/data/train, made once (fixed seed)."""
    folder = SHARED / "data" / "train"
    dm = ImageDataModule(data_dir=str(folder), image_size=size, batch_size=n, num_workers=0,
                         val_size=0, seed=seed)
    dm.setup("fit")
    torch.manual_seed(seed)
    return next(iter(dm.train_dataloader()))


def train(images: torch.Tensor, *, width: str, precision: str, steps: int, warmup: int,
          batch: int, seed: int, vgg: str, style: Path) -> StepTimer:
    pl.seed_everything(seed, verbose=False)
    module = StyleTransferModule("bench", str(style), style_size=512, net={"width": width},
                                 vgg={"weights": vgg})
    loader = DataLoader(images, batch_size=batch, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    timer = StepTimer(warmup)
    trainer = pl.Trainer(accelerator="auto", devices=1, precision=precision,
                         max_steps=warmup + steps, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, limit_val_batches=0, callbacks=[timer])
    trainer.fit(module, train_dataloaders=loader)
    return timer


def plot(curves: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, losses in curves.items():
        ax.plot(range(1, len(losses) + 1), losses, label=name, linewidth=1)
    ax.set(xlabel="step", ylabel="total loss", yscale="log",
           title="Training loss, same seed and data: fp32 vs bf16-mixed")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="training crop (px)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--curve-steps", type=int, default=200, help="0 skips the curves")
    parser.add_argument("--curve-width", default="half", choices=("full", "half"))
    parser.add_argument("--widths", default="full,half")
    parser.add_argument("--images", type=int, default=64, help="photos cropped into memory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vgg", default=str(SHARED / "weights" /
                                             "vgg19-caffe-rgb255-features.pth"))
    parser.add_argument("--style", type=Path, default=SHARED / "data" / "styles" /
                        "starry_night.jpg")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "train")
    args = parser.parse_args()
    if args.vgg not in ("imagenet", "random") and not Path(args.vgg).is_file():
        raise FastNSTError(f"VGG19 weights not found: {args.vgg}; pass --vgg imagenet (online)")
    args.out.mkdir(parents=True, exist_ok=True)
    need = max(args.batch * (args.warmup + args.steps), args.batch * args.curve_steps)
    images = crops(min(args.images, need), args.size, args.seed)
    common = {"batch": args.batch, "seed": args.seed, "vgg": args.vgg, "style": args.style}

    rows = []
    for width in args.widths.split(","):
        base = None
        for precision in PRECISIONS:
            timer = train(images, width=width, precision=precision, steps=args.steps,
                          warmup=args.warmup, **common)
            per_step = timer.elapsed / args.steps
            base = base or per_step
            rows.append((width, precision, per_step, args.batch / per_step, base / per_step))
            print(f"{width} {precision}: {per_step:.3f} s/step", file=sys.stderr, flush=True)

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else (
        f"CPU, {torch.get_num_threads()} threads")
    print(f"\nTraining throughput, {args.size} px, batch {args.batch}, {args.steps} timed steps "
          f"after {args.warmup} warm-up, {device}:\n")
    print("| width | precision | s/step | images/s | speed-up vs fp32 |")
    print("|---|---|---|---|---|")
    for width, precision, per_step, ips, speedup in rows:
        print(f"| {width} | {precision} | {per_step:.3f} | {ips:.2f} | {speedup:.2f}x |")

    if args.curve_steps:
        curves = {p: train(images, width=args.curve_width, precision=p, steps=args.curve_steps,
                           warmup=0, **common).losses for p in PRECISIONS}
        csv_path, png_path = args.out / "loss_curve.csv", args.out / "loss_curve.png"
        with csv_path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["step", *PRECISIONS])
            for step, values in enumerate(zip(*curves.values(), strict=True), start=1):
                writer.writerow([step, *(f"{v:.6g}" for v in values)])
        plot(curves, png_path)
        tail = max(1, args.curve_steps // 10)
        means = {p: sum(v[-tail:]) / tail for p, v in curves.items()}
        print(f"\nLoss over the first {args.curve_steps} steps ({args.curve_width} width; mean "
              f"of the last {tail}): " + ", ".join(f"{p} {m:.4g}" for p, m in means.items())
              + f"; bf16/fp32 = {means['bf16-mixed'] / means['32-true']:.3f}")
        print(f"curves: {csv_path} and {png_path}")


if __name__ == "__main__":
    main()
