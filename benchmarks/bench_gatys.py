"""Time per L-BFGS step of the optimizer vs one bare VGG19 forward+backward, as a Markdown table.

    .venv/bin/python benchmarks/bench_gatys.py                 # 256 and 512 px, 20 timed steps
    .venv/bin/python benchmarks/bench_gatys.py --sizes 64 --steps 3   # a quick check

The step is `fast_nst.optimizer.loop.optimize` with the default transfer losses (content
relu4_2, style relu1_1..relu5_1, TV) and L-BFGS (one closure evaluation per step); the
reference is the same encoder's forward to relu5_1 and a backward to the image, nothing else.
A ratio close to 1 means the step costs one VGG pass (targets are not recomputed, VGG does not
run twice).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fast_nst.core.images import load_image  # noqa: E402
from fast_nst.core.vgg import (
    VGGConfig,  # noqa: E402
    deepest,  # noqa: E402
)
from fast_nst.device import describe_hardware, pick_device  # noqa: E402
from fast_nst.errors import ArgumentParser, FastNSTError, exit_on_user_error  # noqa: E402
from fast_nst.optimizer.config import GatysConfig  # noqa: E402
from fast_nst.optimizer.loop import make_optimizer, optimize  # noqa: E402
from fast_nst.optimizer.loss import build_loss  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FAST_NST_SHARED", ROOT.parent / "shared"))
WEIGHTS = SHARED / "weights" / "vgg19-caffe-rgb255-features.pth"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _images(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    content = SHARED / "data" / "content" / "chelsea_cat.jpg"
    style = SHARED / "data" / "styles" / "starry_night.jpg"
    if content.is_file() and style.is_file():
        return load_image(content, long_side=size), load_image(style, long_side=size)
    return torch.rand(1, 3, size * 3 // 4, size), torch.rand(1, 3, size, size)


def bench(size: int, steps: int, warmup: int, weights: str, device: torch.device) -> dict:
    cfg = GatysConfig(size=size, vgg=VGGConfig(weights, "auto"), progress=False)
    loss = build_loss(cfg, device)
    content, style = (x.to(device) for x in _images(size))
    loss.set_style(style)
    targets = loss.content_targets(content)
    image = content.clone().requires_grad_(True)
    convention = loss.encoder.convention.name
    optimizer = make_optimizer(image, cfg, convention)
    optimize(loss, image, optimizer, warmup, targets, progress=False)
    _sync(device)
    history = optimize(loss, image, optimizer, steps, targets, progress=False)
    per_step = history[-1]["seconds"] / steps
    evaluations = history[-1]["evaluations"] / steps

    layer = deepest(list(loss.encoder.layers))
    probe = content.clone().requires_grad_(True)
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            tic = time.perf_counter()
        loss.encoder(probe)[layer].sum().backward()
        probe.grad = None
    _sync(device)
    per_pass = (time.perf_counter() - tic) / steps
    h, w = content.shape[-2:]
    return {"size": f"{w}x{h}", "layer": layer, "step": per_step, "evals": evaluations,
            "vgg": per_pass, "ratio": per_step / per_pass}


def check_args(args: argparse.Namespace) -> torch.device:
    """Bad values are one-line errors before any work starts; returns the device."""
    if min(args.sizes) < 32:
        raise FastNSTError(f"--sizes must each be at least 32 px, got {min(args.sizes)}")
    if args.steps < 1 or args.warmup < 0:
        raise FastNSTError("--steps must be at least 1 and --warmup at least 0")
    if args.weights != "random" and not Path(args.weights).is_file():
        raise FastNSTError(f"VGG19 weights not found: {args.weights}; pass --weights random")
    return pick_device(args.device)


@exit_on_user_error
def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per size")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--weights", default=str(WEIGHTS) if WEIGHTS.is_file() else "random")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = check_args(args)
    print(describe_hardware())
    print(f"device: {device}; weights: "
          f"{Path(args.weights).name}; {args.steps} timed steps after {args.warmup} warm-up\n")
    print("| output (long side) | deepest layer | s / L-BFGS step | VGG evals / step "
          "| s / VGG fwd+bwd | step / fwd+bwd |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        r = bench(size, args.steps, args.warmup, args.weights, device)
        print(f"| {r['size']} | {r['layer']} | {r['step']:.3f} | {r['evals']:.0f} "
              f"| {r['vgg']:.3f} | {r['ratio']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
