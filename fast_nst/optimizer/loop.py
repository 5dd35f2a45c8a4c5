"""The optimization loop (Gatys et al. 2016/2017): optimize the pixels of one image.

Tasks: `reconstruct` (content loss only), `texture` (style loss only), `transfer` (both).
The perceptual core is `fast_nst.core.losses.PerceptualLoss` over one `VGGEncoder` cut at the
deepest layer in use; content and style targets are computed once per resolution, so each
optimizer step costs one VGG forward+backward of the image being optimized.

What one step is: one call of `optimizer.step(closure)`, and the closure runs VGG forward and
backward once. L-BFGS runs with `max_iter=1` and no line search by default, so one L-BFGS step
is one function evaluation plus one quasi-Newton update (with `line_search: strong_wolfe` a step
may evaluate several times; the history counts evaluations too). Pixels are kept valid by
clamping to 0..1 after every step.

Run `fast-nst-gatys task=transfer content=photo.jpg style=painting.jpg` (Hydra app,
`conf/gatys.yaml`), or call `run(GatysConfig(...))` from Python.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from fast_nst.core.color import transfer_luminance
from fast_nst.core.images import resize
from fast_nst.core.losses import CONVENTION_DEFAULTS, PerceptualLoss
from fast_nst.core.vgg import resolve_convention
from fast_nst.device import keep_freed_memory, pick_device
from fast_nst.errors import FastNSTError
from fast_nst.optimizer.config import DEFAULT_LR, GatysConfig, validate
from fast_nst.optimizer.inputs import first_image, load_inputs
from fast_nst.optimizer.loss import (
    autocast_dtype,
    build_loss,
    check_size,
    final_losses,
    style_targets,
)

StepCallback = Callable[[dict[str, float], Tensor], bool | None]  # True: stop now
ExtraLoss = Callable[[Tensor], Tensor]


@dataclass
class GatysResult:
    """One finished optimization: the image and how it got there."""

    image: Tensor  # (1, 3, H, W) in 0..1, colour preservation applied
    history: list[dict[str, float]]  # one row per step: stage, step, evaluations, seconds, losses
    final: dict[str, float]  # weighted losses of the optimized image (before colour transfer)
    seconds: float  # optimization wall time (targets and steps, not file writing)
    steps: int
    evaluations: int


def make_optimizer(image: Tensor, cfg: GatysConfig, convention: str) -> torch.optim.Optimizer:
    """The configured optimizer over the image pixels (see the module docstring for L-BFGS)."""
    name = cfg.optimizer
    lr = cfg.lr
    if lr is None:
        sgd = CONVENTION_DEFAULTS[convention]["optimizer"]["sgd_lr"]
        lr = sgd if name == "sgd" else DEFAULT_LR[name]
    if name == "lbfgs":
        return torch.optim.LBFGS([image], lr=lr, max_iter=1, history_size=cfg.history_size,
                                 line_search_fn=cfg.line_search, tolerance_grad=0.0,
                                 tolerance_change=0.0)
    if name == "adam":
        return torch.optim.Adam([image], lr=lr)
    if name == "sgd":
        return torch.optim.SGD([image], lr=lr, momentum=cfg.momentum)
    return torch.optim.RMSprop([image], lr=lr)


def _stage_shape(shape: tuple[int, int], size: int, stage: int) -> tuple[int, int]:
    f = stage / size
    return max(1, round(shape[0] * f)), max(1, round(shape[1] * f))


def optimize(
    loss: PerceptualLoss,
    image: Tensor,
    optimizer: torch.optim.Optimizer,
    steps: int,
    content_features: Mapping[str, Tensor] | None = None,
    *,
    clamp: bool = True,
    extra_loss: ExtraLoss | None = None,
    on_step: StepCallback | None = None,
    progress: bool = True,
    desc: str = "gatys",
    start_step: int = 0,
    stage: int = 0,
    first_step: float = 0.01,
    restart_factor: float = 100.0,
    autocast: torch.dtype | None = None,
) -> list[dict[str, float]]:
    """Run `steps` optimizer steps on `image` (a leaf tensor the optimizer owns), in place.

    Each history row holds the losses the step evaluated (of the image before its update), the
    step number (1-based, counted over all stages), the evaluations so far, and the seconds of
    optimization so far. `extra_loss(image)` adds a term (e.g. a temporal loss for video);
    `on_step(row, image)` sees every step and stops the run early by returning True.

    L-BFGS safeguards (no extra evaluations): torch's first L-BFGS step moves the pixels by
    1/|grad|_1, which with these loss scales is so small that its curvature pair is rejected
    and the second step is a raw, enormous gradient step; so the first step's length is set
    to a mean pixel change of `first_step`. And if a step's loss exceeds `restart_factor` x
    the best so far, the image goes back to the best one and the optimizer restarts (the
    history's `restarts` column counts these). `autocast` (bf16/fp16) runs the VGG passes at
    that precision; the pixels, Gram matrices and L-BFGS stay float32.
    """
    if image.device.type == "cpu":
        keep_freed_memory()  # each step would page-fault its activations in again (~13% at 512 px)
    history: list[dict[str, float]] = []
    last: dict[str, float] = {}
    evaluations = 0

    def closure() -> Tensor:
        nonlocal evaluations
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(image.device.type, dtype=autocast or torch.float32,
                            enabled=autocast is not None):
            terms = loss(image, content_features)
        total = terms["total"]
        if extra_loss is not None:
            extra = extra_loss(image)
            terms["extra"] = extra
            total = total + extra
        total.backward()
        evaluations += 1
        last.clear()
        last.update({k: float(v.detach()) for k, v in terms.items() if k != "total"})
        last["total"] = float(total.detach())
        return total

    is_lbfgs = isinstance(optimizer, torch.optim.LBFGS)
    base_lr = [group["lr"] for group in optimizer.param_groups]
    best_loss, best_image, restarts = math.inf, image.detach().clone(), 0

    def start_lbfgs() -> None:  # the first L-BFGS step: t = lr / |grad|_1, so |step|_1 = lr
        if is_lbfgs:
            optimizer.param_groups[0]["lr"] = first_step * image.numel()

    start_lbfgs()
    seconds = 0.0
    bar = tqdm(range(start_step + 1, start_step + steps + 1), desc=desc, disable=not progress,
               dynamic_ncols=True, leave=False)
    for step in bar:
        tic = time.perf_counter()
        before = image.detach().clone()
        optimizer.step(closure)
        if is_lbfgs:
            for group, lr in zip(optimizer.param_groups, base_lr, strict=True):
                group["lr"] = lr
        total = last["total"]  # the loss of `before`
        if total < best_loss:
            best_loss, best_image = total, before
        elif restart_factor and (total > restart_factor * best_loss or not math.isfinite(total)):
            with torch.no_grad():
                image.copy_(best_image)
            optimizer.state.clear()
            start_lbfgs()
            restarts += 1
        if clamp:
            with torch.no_grad():
                image.clamp_(0, 1)
        if image.device.type == "cuda":
            torch.cuda.synchronize(image.device)
        seconds += time.perf_counter() - tic
        if not math.isfinite(best_loss):
            raise FastNSTError(f"the loss is {total} at step {step}; lower lr or the loss "
                               "weights")
        row = {"stage": stage, "step": step, "evaluations": evaluations, "seconds": seconds,
               **last, "restarts": restarts}
        history.append(row)
        bar.set_postfix({k: f"{v:.3g}" for k, v in last.items()}, refresh=False)
        if on_step is not None and on_step(row, image):
            break
    bar.close()
    return history


def run(
    cfg: GatysConfig,
    *,
    loss: PerceptualLoss | None = None,
    on_step: StepCallback | None = None,
    extra_loss: ExtraLoss | None = None,
) -> GatysResult:
    """Load the inputs, build the loss (unless given), optimize through each stage.

    Coarse-to-fine: each size in `cfg.coarse_sizes` runs `cfg.coarse_steps` steps, its result is
    upsampled (bilinear, antialiased resize) to start the next size; the last stage runs
    `cfg.steps` at `cfg.size`. Style images are scaled with the stage so that the brush strokes
    keep their size relative to the output.
    """
    cfg = validate(cfg)
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    autocast = autocast_dtype(cfg, device)
    convention = resolve_convention(str(cfg.vgg.weights), cfg.vgg.convention).name
    inputs = load_inputs(cfg)
    if loss is None:
        loss = build_loss(cfg, device)
    loss = loss.to(device)
    history: list[dict[str, float]] = []
    evaluations = 0
    seconds = 0.0
    image: Tensor | None = None
    stages = [*cfg.coarse_sizes, cfg.size]
    for index, stage in enumerate(stages):
        tic = time.perf_counter()
        last_stage = index == len(stages) - 1
        shape = _stage_shape(inputs.shape, cfg.size, stage)
        start = first_image(cfg, inputs, shape) if image is None else resize(image, size=shape)
        check_size(loss, start, "output" if last_stage else f"coarse stage {stage}")
        image = start.to(device).requires_grad_(True)
        content_features = None
        if inputs.content is not None and loss.content_layers:
            content_features = loss.content_targets(resize(inputs.content, size=shape).to(device))
        if loss.style.weights:
            mask = None if inputs.mask is None else resize(inputs.mask, size=shape)
            loss.style.set_targets(style_targets(loss, inputs.styles, mask, stage / cfg.size,
                                                 device))
        optimizer = make_optimizer(image, cfg, convention)
        seconds += time.perf_counter() - tic
        rows = optimize(
            loss, image, optimizer, cfg.steps if last_stage else cfg.coarse_steps,
            content_features, clamp=cfg.clamp, extra_loss=extra_loss, on_step=on_step,
            progress=cfg.progress, desc=f"{cfg.task} {shape[1]}x{shape[0]}",
            start_step=len(history), stage=index, first_step=cfg.first_step,
            autocast=autocast)
        for row in rows:
            row["evaluations"] += evaluations
            row["seconds"] += seconds
        if rows:
            evaluations, seconds = int(rows[-1]["evaluations"]), rows[-1]["seconds"]
        history += rows
        image = image.detach()
    final = final_losses(loss, image, content_features)
    output = image.clamp(0, 1)
    if inputs.colour_source is not None:
        output = transfer_luminance(output, inputs.colour_source.to(device))
    return GatysResult(output.cpu(), history, final, seconds, len(history), evaluations)
