"""The optimization path (Gatys et al. 2016/2017): optimize the pixels of one image.

Tasks: `reconstruct` (content loss only), `texture` (style loss only), `transfer` (both).
The perceptual core is `fast_nst.losses.PerceptualLoss` over one `VGGEncoder` cut at the
deepest layer in use; content and style targets are computed once per resolution, so each
optimizer step costs one VGG forward+backward of the image being optimized.

What one step is: one call of `optimizer.step(closure)`, and the closure runs VGG forward and
backward once. L-BFGS runs with `max_iter=1` and no line search by default, so one L-BFGS step
is one function evaluation plus one quasi-Newton update (with `line_search: strong_wolfe` a step
may evaluate several times; the history counts evaluations too). Pixels are kept valid by
clamping to 0..1 after every step.

Run `python -m fast_nst.gatys task=transfer content=photo.jpg style=painting.jpg` (Hydra app,
`conf/gatys/gatys.yaml`), or call `run(GatysConfig(...))` from Python.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torchvision.transforms.functional as TF
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from torch import Tensor
from tqdm.auto import tqdm

from fast_nst.cli import hydra_app
from fast_nst.color import grey, match_color_histogram, match_luminance, transfer_luminance
from fast_nst.device import keep_freed_memory, pick_device, resolve_precision
from fast_nst.errors import FastNSTError
from fast_nst.io import MAX_PIXELS, atomic_path, load_image, open_image, resize, save_image
from fast_nst.losses import LossWeights, PerceptualLoss, StyleTarget, as_layer_weights
from fast_nst.temporal import Alignment, FlowAlignment, static_alignment, temporal_loss
from fast_nst.vgg import VGGEncoder, canonical_layer, check_side, resolve_convention

TASKS = ("reconstruct", "texture", "transfer")
INITS = ("content", "noise", "style", "file")
OPTIMIZERS = ("lbfgs", "adam", "sgd", "rmsprop")
COLOR_MODES = ("luminance", "histogram")

# Loss-weight defaults per weight convention, for the loss definitions of `fast_nst.losses`
# (content = feature MSE, style = MSE of Gram/(C*H*W), TV = mean squared neighbour difference).
# Caffe features are ~255x torchvision's: content MSE scales by 255^2, Gram MSE by 255^4, so the
# style/content ratio differs by 255^2 = 65,025 between the two; TV (pixel space, 0..1) only
# scales with the content term. The caffe values were tuned here by eye on the ../shared photos
# and paintings at 256 px; the torchvision ones are derived from them by that factor.
CONVENTION_DEFAULTS: dict[str, dict[str, float]] = {
    "caffe": {"content_weight": 1.0, "style_weight": 5.0, "tv_weight": 1e4, "sgd_lr": 3e-7,
              "temporal": 1e8},
    "torchvision": {"content_weight": 1.0, "style_weight": 3.25e5, "tv_weight": 0.15,
                    "sgd_lr": 2e-2, "temporal": 1.5e3},
}
# Learning rates in pixel units (image in 0..1) where the optimizer is scale-free.
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02, "rmsprop": 0.005}
TASK_INIT = {"reconstruct": "noise", "texture": "noise", "transfer": "content"}

StepCallback = Callable[[dict[str, float], Tensor], bool | None]  # True: stop now
ExtraLoss = Callable[[Tensor], Tensor]


@dataclass
class VGGConfig:
    """The `vgg` config group: weights (`imagenet`, `random` or a file), convention, pooling."""

    weights: str = "imagenet"
    convention: str | None = "auto"
    pooling: str = "max"


@dataclass
class GatysConfig:
    """Everything one optimization needs; `null`/None fields take the documented default."""

    task: str = "transfer"
    content: str | None = None
    style: str | None = None
    style2: str | None = None  # second style, applied where `mask` is black
    mask: str | None = None  # white = style region; same pixel size as the content image
    init: str | None = None  # content | noise | style | file; None = task default
    init_file: str | None = None
    size: int = 256  # long side of the output (content resized to it)
    style_size: int | None = None  # long side of the style image(s); wins over style_scale
    style_scale: float = 1.0  # style long side = style_scale * size
    # layer names (either scheme), or {name: weight}; *_layer_weights pairs with a list
    content_layers: Any = field(default_factory=lambda: ["relu4_2"])
    style_layers: Any = field(default_factory=lambda: [
        "relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"])
    content_layer_weights: list[float] | None = None  # None = 1 each
    style_layer_weights: list[float] | None = None
    content_weight: float | None = None  # None = convention default (CONVENTION_DEFAULTS)
    style_weight: float | None = None
    tv_weight: float | None = None
    steps: int = 300
    optimizer: str = "lbfgs"
    lr: float | None = None  # None = DEFAULT_LR (SGD: per convention)
    history_size: int = 100  # L-BFGS memory
    line_search: str | None = None  # L-BFGS: None (one evaluation per step) or strong_wolfe
    first_step: float = 0.01  # L-BFGS: mean |pixel change| of its first (gradient) step
    momentum: float = 0.9  # SGD
    seed: int = 0
    preserve_color: str | None = None  # None | luminance | histogram
    coarse_sizes: list[int] = field(default_factory=list)  # e.g. [256] before size=512
    coarse_steps: int = 100  # steps at each coarse size
    clamp: bool = True
    device: str = "auto"
    precision: str = "fp32"  # fp32 | auto | bf16 | fp16: autocast of the VGG passes
    progress: bool = True
    vgg: VGGConfig = field(default_factory=VGGConfig)
    # video: each frame starts from temporal_blend * frame + (1 - blend) * the previous output
    # (aligned), with temporal_weight * masked MSE to it; None = the convention default
    temporal_weight: float | None = None
    temporal_blend: float = 0.5
    flow: str = "none"  # none (still camera) | raft (torchvision's optical flow, downloads)
    max_pixels: int | None = MAX_PIXELS  # larger input images are refused (0/None: no limit)


@dataclass
class GatysResult:
    image: Tensor  # (1, 3, H, W) in 0..1, colour preservation applied
    history: list[dict[str, float]]  # one row per step: stage, step, evaluations, seconds, losses
    final: dict[str, float]  # weighted losses of the optimized image (before colour transfer)
    seconds: float  # optimization wall time (targets and steps, not file writing)
    steps: int
    evaluations: int


@dataclass
class Inputs:
    """Images at full output resolution, already colour-prepared for the optimizer."""

    content: Tensor | None
    styles: list[Tensor]
    mask: Tensor | None
    init: Tensor | None  # the init image for `style`/`file`; None for content/noise
    shape: tuple[int, int]
    colour_source: Tensor | None  # the original content, when luminance-only transfer is on


# --------------------------------------------------------------------------- configuration
def config_from_dict(values: Mapping[str, Any]) -> GatysConfig:
    """A plain dict (e.g. a resolved Hydra config) -> GatysConfig; one-line error on typos."""
    values = dict(values)
    vgg = values.pop("vgg", None) or {}
    names = {f.name for f in dataclasses.fields(GatysConfig)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise FastNSTError(f"unknown gatys option(s) {unknown}; valid: {sorted(names)}")
    vgg_names = {f.name for f in dataclasses.fields(VGGConfig)}
    vgg = {k: v for k, v in dict(vgg).items() if k in vgg_names}
    return validate(GatysConfig(**values, vgg=VGGConfig(**vgg)))


def _choice(name: str, value: Any, options: tuple[str, ...]) -> None:
    if value not in options:
        raise FastNSTError(f"unknown {name} {value!r}; use one of {', '.join(options)}")


def validate(cfg: GatysConfig) -> GatysConfig:
    """Check names and required inputs before any image or weight is loaded."""
    _choice("task", cfg.task, TASKS)
    _choice("optimizer", cfg.optimizer, OPTIMIZERS)
    if cfg.init is not None:
        _choice("init", cfg.init, INITS)
    if cfg.preserve_color is not None:
        _choice("preserve_color", cfg.preserve_color, COLOR_MODES)
    _choice("flow", cfg.flow, ("none", "raft"))
    _choice("precision", cfg.precision, ("fp32", "auto", "bf16", "fp16"))
    if cfg.line_search not in (None, "strong_wolfe"):
        raise FastNSTError(f"unknown line_search {cfg.line_search!r}; use null or strong_wolfe")
    layer_weights(cfg.content_layers, cfg.content_layer_weights, "content")
    layer_weights(cfg.style_layers, cfg.style_layer_weights, "style")
    needs = {"reconstruct": ("content",), "texture": ("style",), "transfer": ("content", "style")}
    for key in needs[cfg.task]:
        if not getattr(cfg, key):
            raise FastNSTError(f"task={cfg.task} needs {key}=PATH")
    init = init_mode(cfg)
    if init == "file" and not cfg.init_file:
        raise FastNSTError("init=file needs init_file=PATH")
    if init == "content" and cfg.task == "texture":
        raise FastNSTError("task=texture has no content image to start from; use init=noise")
    if (cfg.mask or cfg.style2 or cfg.preserve_color) and cfg.task != "transfer":
        raise FastNSTError("mask, style2 and preserve_color apply to task=transfer only")
    if cfg.style2 and not cfg.mask:
        raise FastNSTError("style2 needs mask=PATH (white = style, black = style2)")
    if cfg.size < 16 or cfg.steps < 0:
        raise FastNSTError(f"size must be >= 16 and steps >= 0 (got {cfg.size}, {cfg.steps})")
    if any(s >= cfg.size or s < 16 for s in cfg.coarse_sizes) or \
            list(cfg.coarse_sizes) != sorted(cfg.coarse_sizes):
        raise FastNSTError(f"coarse_sizes must increase and stay within 16..size-1 "
                           f"(got {list(cfg.coarse_sizes)} with size={cfg.size})")
    return cfg


def layer_weights(layers: Any, weights: list[float] | None, what: str) -> dict[str, float]:
    """`[a, b]` + optional `[wa, wb]`, or `{a: wa, b: wb}` -> {layer: weight}."""
    if isinstance(layers, str):
        layers = [layers]
    table = as_layer_weights(layers)
    if weights is not None:
        if isinstance(layers, Mapping) or len(weights) != len(table):
            raise FastNSTError(f"{what}_layer_weights needs one weight per entry of a "
                               f"{what}_layers list ({len(table)} layers, {len(weights)} weights)")
        table = dict(zip(table, map(float, weights), strict=True))
    for layer in table:
        canonical_layer(layer)
    return table


def init_mode(cfg: GatysConfig) -> str:
    return cfg.init or TASK_INIT[cfg.task]


def loss_weights(cfg: GatysConfig, convention: str) -> LossWeights:
    """Weights for the task: None takes the convention default; the task zeroes unused terms."""
    d = CONVENTION_DEFAULTS[convention]

    def pick(value: float | None, key: str) -> float:
        return float(d[key] if value is None else value)

    return LossWeights(
        content=0.0 if cfg.task == "texture" else pick(cfg.content_weight, "content_weight"),
        style=0.0 if cfg.task == "reconstruct" else pick(cfg.style_weight, "style_weight"),
        tv=pick(cfg.tv_weight, "tv_weight"),
    )


# --------------------------------------------------------------------------- building blocks
def build_loss(cfg: GatysConfig, device: torch.device | str = "cpu") -> PerceptualLoss:
    """One encoder for the union of the layers the task uses, wrapped in PerceptualLoss."""
    convention = resolve_convention(str(cfg.vgg.weights), cfg.vgg.convention).name
    weights = loss_weights(cfg, convention)
    content_layers = (layer_weights(cfg.content_layers, cfg.content_layer_weights, "content")
                      if weights.content else {})
    style_layers = (layer_weights(cfg.style_layers, cfg.style_layer_weights, "style")
                    if weights.style else {})
    if not content_layers and not style_layers:
        raise FastNSTError("no loss to optimize: give content_layers or style_layers")
    encoder = VGGEncoder([*content_layers, *style_layers], weights=str(cfg.vgg.weights),
                         convention=convention, pooling=cfg.vgg.pooling)
    return PerceptualLoss(encoder, content_layers, style_layers, weights).to(device)


def make_optimizer(image: Tensor, cfg: GatysConfig, convention: str) -> torch.optim.Optimizer:
    """The configured optimizer over the image pixels (see the module docstring for L-BFGS)."""
    name = cfg.optimizer
    lr = cfg.lr
    if lr is None:
        lr = CONVENTION_DEFAULTS[convention]["sgd_lr"] if name == "sgd" else DEFAULT_LR[name]
    if name == "lbfgs":
        return torch.optim.LBFGS([image], lr=lr, max_iter=1, history_size=cfg.history_size,
                                 line_search_fn=cfg.line_search, tolerance_grad=0.0,
                                 tolerance_change=0.0)
    if name == "adam":
        return torch.optim.Adam([image], lr=lr)
    if name == "sgd":
        return torch.optim.SGD([image], lr=lr, momentum=cfg.momentum)
    return torch.optim.RMSprop([image], lr=lr)


def _mask_tensor(path: str, content_size: tuple[int, int], max_pixels: int | None) -> Tensor:
    """A mask file as (1, 1, H, W) in 0..1; it must have the content image's pixel size."""
    image = open_image(path, max_pixels)
    if image.size != content_size:
        raise FastNSTError(
            f"mask {path} is {image.width}x{image.height} but the content image is "
            f"{content_size[0]}x{content_size[1]}; give a mask of the same size as the content")
    return TF.to_tensor(image.convert("L")).unsqueeze(0)


def load_inputs(cfg: GatysConfig) -> Inputs:
    """Read and size the images; apply colour preparation (luminance / histogram matching)."""
    content = None
    mask = None
    if cfg.content:
        pil = open_image(cfg.content, cfg.max_pixels)
        content = resize(TF.to_tensor(pil).unsqueeze(0), long_side=cfg.size)
        if cfg.mask:
            mask = resize(_mask_tensor(cfg.mask, pil.size, cfg.max_pixels),
                          size=tuple(content.shape[-2:]))
    style_long = cfg.style_size or max(16, round(cfg.style_scale * cfg.size))
    styles = [load_image(p, long_side=style_long, max_pixels=cfg.max_pixels)
              for p in (cfg.style, cfg.style2) if p]
    if content is not None:
        shape = tuple(content.shape[-2:])
    else:  # texture: the style's aspect ratio at the output size
        shape = tuple(resize(styles[0], long_side=cfg.size).shape[-2:])
    colour_source = None
    if cfg.preserve_color == "luminance":
        colour_source = content
        styles = [match_luminance(s, content) for s in styles]
        content = grey(content).contiguous()
    elif cfg.preserve_color == "histogram":
        styles = [match_color_histogram(s, content) for s in styles]
    init = None
    mode = init_mode(cfg)
    if mode == "style":
        init = resize(styles[0], size=shape)
    elif mode == "file":
        init = load_image(cfg.init_file, size=shape, max_pixels=cfg.max_pixels)
        if cfg.preserve_color == "luminance":
            init = grey(init).contiguous()
    return Inputs(content, styles, mask, init, shape, colour_source)


def _stage_shape(shape: tuple[int, int], size: int, stage: int) -> tuple[int, int]:
    f = stage / size
    return max(1, round(shape[0] * f)), max(1, round(shape[1] * f))


def check_size(loss: PerceptualLoss, image: Tensor, what: str) -> None:
    """One-line error when an image is too small to reach the deepest layer (every max-pool
    halves it)."""
    h, w = image.shape[-2:]
    check_side(loss.encoder.layers, h, w, what, "raise size")


def style_targets(loss: PerceptualLoss, styles: list[Tensor], mask: Tensor | None,
                  scale: float, device: torch.device) -> list[StyleTarget]:
    """Gram targets (computed once): one style everywhere, or masked ones per region."""
    scaled = [resize(s, scale=scale).to(device) if scale != 1 else s.to(device) for s in styles]
    for image in scaled:
        check_size(loss, image, "style image")
    if mask is None:
        return [loss.style_target(scaled[0])]
    mask = mask.to(device)
    targets = [loss.style_target(scaled[0], mask=mask)]
    if len(scaled) > 1:
        targets.append(loss.style_target(scaled[1], mask=1 - mask))
    return targets


def first_image(cfg: GatysConfig, inputs: Inputs, shape: tuple[int, int]) -> Tensor:
    """The starting image at `shape`: content, seeded uniform noise, the style, or a file."""
    mode = init_mode(cfg)
    if mode == "content":
        return resize(inputs.content, size=shape).clone()
    if mode == "noise":
        generator = torch.Generator().manual_seed(cfg.seed)
        return torch.rand((1, 3, *shape), generator=generator)
    return resize(inputs.init, size=shape).clone()


def autocast_dtype(cfg: GatysConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of the VGG passes from `cfg.precision` (the rule of
    `fast_nst.device`); None for float32. Warns once when an explicit choice will be slow."""
    precision = resolve_precision(cfg.precision, device)
    if precision.warning:
        warnings.warn(precision.warning, stacklevel=2)
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision.short)


# --------------------------------------------------------------------------- the loop
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


@torch.no_grad()
def final_losses(loss: PerceptualLoss, image: Tensor,
                 content_features: Mapping[str, Tensor] | None) -> dict[str, float]:
    """The weighted loss terms of the finished image (one forward pass)."""
    return {k: float(v) for k, v in loss(image, content_features).items()}


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


# --------------------------------------------------------------------------- outputs
class Recorder:
    """Per-step side effects of the app: TensorBoard scalars, snapshots every N steps, CSV.

    Nothing is created before the first step, so a run that stops on a bad input leaves no
    empty losses.csv or TensorBoard file behind."""

    def __init__(self, folder: Path, snapshot_every: int = 0, tensorboard: bool = True) -> None:
        self.folder = folder
        self.snapshot_every = snapshot_every
        self.tensorboard = tensorboard
        self.rows: list[dict[str, float]] = []
        self.writer = None

    def _open(self) -> None:
        if self.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.folder / "tensorboard"))
        if self.snapshot_every:
            (self.folder / "snapshots").mkdir(parents=True, exist_ok=True)

    def __call__(self, row: dict[str, float], image: Tensor) -> None:
        if not self.rows:
            self._open()
        self.rows.append(row)
        step = int(row["step"])
        if self.writer is not None:
            for key in ("content", "style", "tv", "total", "extra"):
                if key in row:
                    self.writer.add_scalar(f"loss/{key}", row[key], step)
        if self.snapshot_every and step % self.snapshot_every == 0:
            snap = image.detach().clamp(0, 1)
            save_image(snap, self.folder / "snapshots" / f"step_{step:06d}.png")
            if self.writer is not None:
                self.writer.add_image("snapshot", snap[0].cpu(), step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.rows:
            write_csv(self.rows, self.folder / "losses.csv")


def write_csv(rows: list[dict[str, float]], path: Path) -> Path:
    """Rows of dicts (union of keys, in first-seen order) to a CSV file, atomically."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    return path


def run_to_folder(cfg: GatysConfig, folder: Path, *, output: str = "output.png",
                  snapshot_every: int = 0, tensorboard: bool = True) -> GatysResult:
    """`run` plus the files: output image, losses.csv, snapshots/, tensorboard/ in `folder`."""
    validate(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    recorder = Recorder(folder, snapshot_every, tensorboard)
    try:
        result = run(cfg, on_step=recorder)
    finally:
        recorder.close()
    save_image(result.image, folder / output)
    return result


def summary(result: GatysResult) -> str:
    """One line: steps, evaluations, time, final losses."""
    losses = ", ".join(f"{k} {v:.4g}" for k, v in result.final.items())
    per_step = result.seconds / max(1, result.steps)
    return (f"{result.steps} steps ({result.evaluations} VGG evaluations) in "
            f"{result.seconds:.1f} s ({per_step:.3f} s/step); final {losses}")


# --------------------------------------------------------------------------- video
class ClipStylizer:
    """Stylizes a clip frame by frame for `fast_nst.video.stylize_video` (Ruder et al. 2016):
    each frame is optimized from a blend of itself and the previous output aligned to it, with
    a temporal loss (masked MSE to that aligned output). One encoder and one set of style
    targets serve the whole clip."""

    def __init__(self, cfg: GatysConfig, align: Alignment | None = None) -> None:
        self.cfg = validate(cfg)
        self.device = pick_device(cfg.device)
        self.autocast = autocast_dtype(cfg, self.device)
        self.convention = resolve_convention(str(cfg.vgg.weights), cfg.vgg.convention).name
        self.loss = build_loss(cfg, self.device)
        self.style = load_image(cfg.style, long_side=cfg.style_size or max(
            16, round(cfg.style_scale * cfg.size)), max_pixels=cfg.max_pixels).to(self.device)
        self.loss.set_style(self.style)
        self.flow = FlowAlignment() if cfg.flow == "raft" and align is None else None
        self.align = align or self.flow or static_alignment
        weight = cfg.temporal_weight
        self.temporal_weight = (CONVENTION_DEFAULTS[self.convention]["temporal"]
                                if weight is None else weight)
        self.previous: Tensor | None = None
        self.index = 0
        self.history: list[list[dict[str, float]]] = []

    def __call__(self, frame: Tensor) -> Tensor:
        content = frame.to(self.device)
        if self.flow is not None:
            self.flow.observe(content)
        extra = None
        init = content.clone()
        if self.previous is not None:
            aligned, mask = self.align(self.previous, self.index)
            blend = self.cfg.temporal_blend
            init = blend * content + (1 - blend) * aligned
            if self.temporal_weight:
                extra = lambda image: self.temporal_weight * temporal_loss(  # noqa: E731
                    image, aligned, mask)
        check_size(self.loss, content, "video frame")
        image = init.detach().clamp(0, 1).requires_grad_(True)
        optimizer = make_optimizer(image, self.cfg, self.convention)
        rows = optimize(self.loss, image, optimizer, self.cfg.steps,
                        self.loss.content_targets(content), clamp=self.cfg.clamp,
                        extra_loss=extra, progress=False, first_step=self.cfg.first_step,
                        autocast=self.autocast)
        self.history.append(rows)
        self.previous = image.detach().clamp(0, 1)
        self.index += 1
        return self.previous.cpu()


def stylize_clip(cfg: GatysConfig, src: str, dst: Path) -> Path:
    """A video file, optimized frame by frame with the temporal loss (see ClipStylizer)."""
    from fast_nst.video import is_video, stylize_video

    if not is_video(dst):
        dst = dst.with_suffix(Path(src).suffix)
    cfg = dataclasses.replace(cfg, content=cfg.content or src, task="transfer")
    frames = stylize_video(src, dst, ClipStylizer(cfg), size=cfg.size, progress=cfg.progress)
    print(f"wrote {dst} ({frames} frames)")
    return dst


# --------------------------------------------------------------------------- Hydra app
APP_KEYS = ("output", "snapshot_every", "tensorboard", "shared", "video")


@hydra_app(config_path="../conf/gatys", config_name="gatys")
def main(cfg: DictConfig) -> None:
    """`python -m fast_nst.gatys task=transfer content=... style=...`; outputs in the run dir."""
    values = OmegaConf.to_container(cfg, resolve=True)
    app = {k: values.pop(k, None) for k in APP_KEYS}
    gcfg = config_from_dict(values)
    folder = Path(HydraConfig.get().runtime.output_dir)
    output = app["output"] or "output.png"
    if app["video"]:
        stylize_clip(gcfg, app["video"], folder / output)
        return
    result = run_to_folder(gcfg, folder, output=output,
                           snapshot_every=int(app["snapshot_every"] or 0),
                           tensorboard=bool(app["tensorboard"]))
    print(f"wrote {folder / output}")
    print(summary(result))


if __name__ == "__main__":
    main()
