"""What one optimization is asked to do: `GatysConfig`, its checks, and `GatysApp`, the schema
of the gatys app (conf/gatys.yaml): GatysConfig plus a painting of the `style` group and files.

Everything here runs before any image or weight is loaded, so a typo or a missing input is a
one-line error at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fast_nst.core.images import MAX_PIXELS
from fast_nst.core.losses import CONVENTION_DEFAULTS, LossWeights, as_layer_weights
from fast_nst.core.vgg import VGGConfig, canonical_layer
from fast_nst.errors import FastNSTError

TASKS = ("reconstruct", "texture", "transfer")
INITS = ("content", "noise", "style", "file")
OPTIMIZERS = ("lbfgs", "adam", "sgd", "rmsprop")
COLOR_MODES = ("luminance", "histogram")

# Learning rates in pixel units (image in 0..1) where the optimizer is scale-free.
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02, "rmsprop": 0.005}
TASK_INIT = {"reconstruct": "noise", "texture": "noise", "transfer": "content"}




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
    content_weight: float | None = None  # None: core.losses.CONVENTION_DEFAULTS
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
class GatysApp(GatysConfig):
    """The `gatys` app: the optimization (GatysConfig) with a painting of the `style` group,
    the `paths` group, and what to write into the run folder."""

    style: Any = None  # StyleConfig from the group; GatysConfig.style is its image
    paths: Any = None
    video: str | None = None  # a clip to optimize frame by frame (Ruder et al.)
    output: str = "output.png"
    snapshot_every: int = 0  # save snapshots/step_NNNNNN.png every N steps (0 = off)
    tensorboard: bool = True  # loss curves (and snapshots) in <run folder>/tensorboard


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
    d = CONVENTION_DEFAULTS[convention]["optimizer"]

    def pick(value: float | None, key: str) -> float:
        return float(d[key] if value is None else value)

    return LossWeights(
        content=0.0 if cfg.task == "texture" else pick(cfg.content_weight, "content"),
        style=0.0 if cfg.task == "reconstruct" else pick(cfg.style_weight, "style"),
        tv=pick(cfg.tv_weight, "tv"),
    )


def training_gatys_config(meta: dict[str, Any], style: str, content: str, size: int,
                          vgg: dict[str, Any], **overrides: Any) -> GatysConfig:
    """An optimizer config with a training run's loss, from the `meta` it records (see
    `StyleTransferModule.export_meta`: `loss` with resolved weights, `style_size`)."""
    loss = meta["loss"]
    content_layers, style_layers = dict(loss["content_layers"]), dict(loss["style_layers"])
    return validate(GatysConfig(
        task="transfer", content=content, style=style, size=size,
        style_size=meta.get("style_size"),
        content_layers=list(content_layers), content_layer_weights=list(content_layers.values()),
        style_layers=list(style_layers), style_layer_weights=list(style_layers.values()),
        content_weight=loss["content_weight"], style_weight=loss["style_weight"],
        tv_weight=loss["tv_weight"], optimizer="lbfgs", vgg=VGGConfig(**vgg), **overrides))
