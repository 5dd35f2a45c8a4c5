"""The architecture study: transformation-network variants on two axes, speed and quality.

Speed: each variant's fp32 eager forward pass at one size on this CPU (the variants measured in
turn, round after round, so that a busy moment hurts them all alike), its multiply-adds and
parameters, and bf16 where the CPU runs it natively. Quality: a trained network's content and
style loss on photos, scored with its teacher's training loss (style image, layers, weights,
VGG), as a ratio to the teacher's own. `benchmarks/study_architectures.py` runs both and writes
the tables of docs/studies/architecture.md.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fast_nst import device as hw
from fast_nst.device import pick_device
from fast_nst.inference.runtime import low_precision_net
from fast_nst.model.files import StyleModel
from fast_nst.model.network import NetConfig, TransformerNet
from fast_nst.optimizer.loss import build_loss
from fast_nst.studies.compare import gatys_config, network_losses

# name -> NetConfig fields; the first is the reference the speed-ups are measured against.
VARIANTS: dict[str, dict[str, Any]] = {
    "half (bundled)": {"width": "half"},
    "full (Johnson)": {"width": "full"},
    "half, 3 downsamplings": {"width": "half", "downsample": 3},
    "half, 3 residual blocks": {"width": "half", "n_residual": 3},
    "quarter width": {"width": "quarter"},
    "half, inverted residual": {"width": "half", "block": "inverted"},
    "half, 3x3 end layers": {"width": "half", "end_kernel": 3},
    "half, transposed-conv upsampling": {"width": "half", "upsample": "deconv"},
    "half, separable upsampling": {"width": "half", "upsample": "separable"},
    "half, 3 down, 3x3 ends, deconv": {"width": "half", "downsample": 3, "end_kernel": 3,
                                        "upsample": "deconv"},
    "fast (model=fast)": {"width": "quarter", "downsample": 3, "end_kernel": 3,
                          "upsample": "deconv"},
    "fast, inverted residual": {"width": "quarter", "downsample": 3, "end_kernel": 3,
                                "upsample": "deconv", "block": "inverted"},
    "fast, 3 residual blocks": {"width": "quarter", "downsample": 3, "end_kernel": 3,
                                "upsample": "deconv", "n_residual": 3},
}


def multiply_adds(net: nn.Module, size: int) -> int:
    """Multiply-adds of the convolutions for one size x size image."""
    total = 0

    def count(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        nonlocal total
        w = module.weight
        # a conv's output pixel costs cin/groups * k * k per output channel; a transposed
        # conv's input pixel spreads cin * k * k over cout/groups outputs: the same product
        pixels = (args[0] if isinstance(module, nn.ConvTranspose2d) else output)[0, 0].numel()
        total += pixels * w.numel()

    hooks = [m.register_forward_hook(count) for m in net.modules()
             if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    with torch.inference_mode():
        net(torch.rand(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    return total


def time_variants(variants: Mapping[str, Mapping[str, Any]], size: int, rounds: int = 7,
                  bf16: bool = False) -> dict[str, float]:
    """Median forward milliseconds of each variant (random weights, eval mode) at `size`;
    `bf16`: as stylize runs bf16 on a CPU (`low_precision_net`: bf16 weights, first layer fp32)."""
    nets: dict[str, nn.Module] = {name: TransformerNet(NetConfig(**cfg)).eval()
                                  for name, cfg in variants.items()}
    if bf16:
        nets = {name: low_precision_net(net, torch.bfloat16, cast=True)
                for name, net in nets.items()}
    x = torch.rand(1, 3, size, size)
    times: dict[str, list[float]] = {name: [] for name in nets}
    with torch.inference_mode():
        for net in nets.values():  # warm-up: oneDNN picks and caches its kernels
            net(x)
        for _ in range(rounds):
            for name, net in nets.items():
                tic = time.perf_counter()
                net(x)
                times[name].append(time.perf_counter() - tic)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def speed_rows(variants: Mapping[str, Mapping[str, Any]], size: int, rounds: int = 7
               ) -> list[dict[str, Any]]:
    """One row per variant: ms fp32 (and bf16 where native), speed-up, images/s, GMAC, params."""
    fp32 = time_variants(variants, size, rounds)
    bf16 = time_variants(variants, size, rounds, bf16=True) if hw.cpu_native_bf16() else {}
    reference = fp32[next(iter(variants))]
    rows = []
    for name, cfg in variants.items():
        net = TransformerNet(NetConfig(**cfg)).eval()
        row = {"variant": name, "ms_fp32": round(fp32[name], 1),
               "speedup": round(reference / fp32[name], 2),
               "images_per_s": round(1000 / fp32[name], 1)}
        if bf16:
            row["ms_bf16"] = round(bf16[name], 1)
        row["gmac"] = round(multiply_adds(net, size) / 1e9, 2)
        row["params_k"] = round(sum(p.numel() for p in net.parameters()) / 1e3, 1)
        rows.append(row)
    return rows


def quality_rows(teacher: StyleModel, students: Mapping[str, StyleModel], photos: list[str],
                 size: int, vgg: dict[str, Any], shared: str) -> list[dict[str, Any]]:
    """Per model (the teacher first), its mean content and style loss over `photos` at `size`
    under the teacher's training loss, and both as ratios to the teacher's."""
    device = pick_device("cpu")
    models = {"teacher": teacher, **students}
    sums = {name: {"content": 0.0, "style": 0.0} for name in models}
    for photo in photos:
        cfg = gatys_config(teacher, photo, size, vgg, shared, device="cpu", precision="fp32")
        loss = build_loss(cfg, device)
        for name, model in models.items():
            terms, _ = network_losses(model, cfg, loss, device)
            for key in ("content", "style"):
                sums[name][key] += terms[key] / len(photos)
    base = sums["teacher"]
    return [{"model": name, "net": _describe(models[name].net.config),
             "content": round(s["content"], 4), "style": round(s["style"], 4),
             "content_ratio": round(s["content"] / base["content"], 3),
             "style_ratio": round(s["style"] / base["style"], 3)} for name, s in sums.items()]


def _describe(config: NetConfig) -> str:
    """The fields that differ from Johnson's network, as `key=value` (or `johnson`)."""
    default = NetConfig()
    parts = [f"{k}={getattr(config, k)}" for k in ("width", "downsample", "n_residual",
                                                    "block", "upsample", "end_kernel")
             if getattr(config, k) != getattr(default, k)]
    return " ".join(parts) or "johnson"


def content_photos(shared: str | Path) -> list[str]:
    """The six content photos of ../shared/data/content."""
    return [str(p) for p in sorted((Path(shared) / "data" / "content").glob("*.jpg"))]
