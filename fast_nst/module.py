"""Feed-forward training (Johnson et al. 2016) as a LightningModule, and the export callback.

The module holds the transformation network (`self.net`, so its weights are the `net.*` keys of
every checkpoint) and a `PerceptualLoss` over a frozen VGG19. The frozen VGG is left out of
checkpoints (it is rebuilt from the config), so a checkpoint is a few MB, not 80.

Checkpoint contract with `stylize`: `hyper_parameters["net"]` is `asdict(NetConfig)`,
`hyper_parameters["style_name"]` the style's name, and the network weights are `net.*`.
"""

from __future__ import annotations

import random
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.accelerators import CPUAccelerator
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_info
from torch import Tensor
from torchvision.utils import make_grid

from fast_nst.device import keep_freed_memory
from fast_nst.errors import FastNSTError
from fast_nst.io import load_image
from fast_nst.losses import LossWeights, PerceptualLoss, as_layer_weights
from fast_nst.temporal import StabilityConfig, stability_loss
from fast_nst.transformer import NetConfig, TransformerNet, export_model
from fast_nst.vgg import VGGEncoder, check_side

# Loss weights when the config leaves them null, per VGG input convention (caffe features are
# ~255x torchvision's: content MSE ~255^2x, Gram MSE ~255^4x). See docs/training.md for how they
# were chosen; conf/loss/*.yaml repeats them per layer set.
DEFAULT_WEIGHTS: dict[str, dict[str, float]] = {
    "caffe": {"content": 1.0, "style": 0.2, "tv": 0.0},
    "torchvision": {"content": 1.0, "style": 1.3e4, "tv": 0.0},  # caffe's x 255^2
}
_ENCODER_PREFIX = "perceptual.encoder."

# The frozen VGG stays in eval mode on purpose; Lightning's notice about it is noise.
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")


# loss.style_weight=auto: train.py measures a weight first (fast_nst.calibrate) and puts it here.
AUTO = "auto"


@dataclass
class LossConfig:
    """Which VGG layers, and how much each loss counts (null weight: the convention default;
    style_weight `auto`: chosen by train.py's calibration before the module is built)."""

    content_layers: Any = field(default_factory=lambda: {"relu2_2": 1.0})
    style_layers: Any = field(default_factory=lambda: {
        "relu1_2": 1.0, "relu2_2": 1.0, "relu3_3": 1.0, "relu4_3": 1.0})
    content_weight: float | None = None
    style_weight: float | str | None = None  # a number, null or "auto"
    tv_weight: float | None = None
    stability: Any = field(default_factory=dict)  # StabilityConfig fields (temporal.py)
    by_convention: dict[str, dict[str, float]] = field(default_factory=lambda: DEFAULT_WEIGHTS)

    def resolve(self, convention: str) -> LossWeights:
        base = {**DEFAULT_WEIGHTS.get(convention, {}), **self.by_convention.get(convention, {})}
        chosen = {"content": self.content_weight, "style": self.style_weight,
                  "tv": self.tv_weight}
        values = {k: float(base.get(k, 0.0)) if v is None else _weight(k, v)
                  for k, v in chosen.items()}
        for name, value in values.items():
            if value < 0:
                raise FastNSTError(f"loss.{name}_weight must be >= 0, got {value}")
        return LossWeights(**values)

    def resolved(self, convention: str) -> dict[str, Any]:
        """The loss as training uses and records it (hparams, the exported `meta`): layer
        tables {layer: weight} and the weights in effect for the VGG convention."""
        weights = self.resolve(convention)
        return {**asdict(self), "content_layers": as_layer_weights(self.content_layers),
                "style_layers": as_layer_weights(self.style_layers),
                "content_weight": weights.content, "style_weight": weights.style,
                "tv_weight": weights.tv}


def _weight(name: str, value: Any) -> float:
    """A loss weight from the config: a number; `auto` and other words are one-line errors."""
    if value == AUTO and name == "style":
        raise FastNSTError("loss.style_weight=auto is resolved by train.py before training "
                           "(fast_nst.calibrate.auto_style_weight); give a number here")
    try:
        return float(value)
    except (TypeError, ValueError):
        extra = ", null or auto" if name == "style" else " or null"
        raise FastNSTError(f"loss.{name}_weight must be a number{extra}, got {value!r}") \
            from None


@dataclass
class OptimConfig:
    """Adam, and an optional per-step LR schedule: none, cosine (to `min_lr`) or step."""

    lr: float = 1e-3
    betas: Sequence[float] = (0.9, 0.999)
    weight_decay: float = 0.0
    schedule: str = "none"
    min_lr: float = 0.0
    step_size: int = 10000
    gamma: float = 0.5


def _plain(value: Any) -> Any:
    """Config values (possibly OmegaConf containers) as plain Python for hparams and meta."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, (DictConfig, ListConfig)):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _build(cls: type, values: Mapping[str, Any] | None, group: str) -> Any:
    """A config dataclass from a dict; unknown keys are a one-line error naming the group."""
    values = dict(values or {})
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        raise FastNSTError(f"unknown {group} option(s) {', '.join(unknown)}; "
                           f"valid: {', '.join(sorted(known))}")
    return cls(**values)


class StyleTransferModule(pl.LightningModule):
    """Trains one TransformerNet for one style image.

    Args:
        style_name: the style's name (names the exported `<style_name>.pt`).
        style_image: path to the style image.
        style_size: the style image's long side for the Gram targets (None: as it is).
        net: `NetConfig` fields (the `model` config group).
        vgg: `VGGEncoder` arguments: weights, convention, pooling (the `vgg` group).
        loss: `LossConfig` fields (the `loss` group).
        optim: `OptimConfig` fields (the `optim` group).
        val_max_images: at most this many validation images go into the TensorBoard grid.
        init: a trained model file (anything `stylize.py` loads) whose weights start the
            network: the fast way to a new style (a warm start).
        calibration: how the style weight was chosen (`loss.style_weight=auto`; the grid's
            numbers from `fast_nst.calibrate`), kept in the hyper-parameters and the `meta`.
    """

    def __init__(self, style_name: str, style_image: str, style_size: int | None = 512,
                 net: Mapping[str, Any] | None = None, vgg: Mapping[str, Any] | None = None,
                 loss: Mapping[str, Any] | None = None, optim: Mapping[str, Any] | None = None,
                 val_max_images: int = 8, init: str | None = None,
                 calibration: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        net_config = _build(NetConfig, _plain(net), "model").validate()
        start = warm_start(init, net_config) if init else None
        if start is not None:
            net_config = start.config
        loss_config = _build(LossConfig, _plain(loss), "loss")
        self.optim_config = _build(OptimConfig, _plain(optim), "optim")
        if self.optim_config.schedule not in ("none", "cosine", "step"):
            raise FastNSTError(f"unknown optim.schedule {self.optim_config.schedule!r}; "
                               "use none, cosine or step")
        style = _load_style(style_image, style_size)
        vgg = {"weights": "imagenet", "convention": "auto", "pooling": "max", **_plain(vgg or {})}
        content_layers = as_layer_weights(loss_config.content_layers)
        style_layers = as_layer_weights(loss_config.style_layers)
        check_side(style_layers, *style.shape[-2:], f"style image at style.size={style_size}",
                   "raise style.size")
        encoder = VGGEncoder([*content_layers, *style_layers], weights=str(vgg["weights"]),
                             convention=vgg["convention"], pooling=vgg["pooling"])
        resolved = loss_config.resolved(encoder.convention.name)
        weights = LossWeights(resolved["content_weight"], resolved["style_weight"],
                              resolved["tv_weight"])
        self.stability = _build(StabilityConfig, _plain(loss_config.stability), "loss.stability")
        if self.stability.mode not in ("noise", "shift") or self.stability.weight < 0:
            raise FastNSTError("loss.stability needs mode noise or shift and weight >= 0, got "
                               f"{self.stability.mode!r} and {self.stability.weight}")
        self.net = TransformerNet(net_config)
        if start is not None:
            self.net.load_state_dict(start.net.state_dict())
        self.perceptual = PerceptualLoss(encoder, content_layers, style_layers, weights)
        self.perceptual.set_style(style)
        self.val_max_images = val_max_images
        self.save_hyperparameters({
            "style_name": str(style_name), "style_image": str(style_image),
            "style_size": style_size, "net": asdict(net_config), "vgg": vgg,
            "loss": {**resolved, "stability": asdict(self.stability)},
            "optim": _plain(asdict(self.optim_config)), "val_max_images": val_max_images,
            "init": str(init) if init else None, "calibration": _plain(calibration),
        })
        self._style_image = style

    # -- steps ---------------------------------------------------------------------------

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)

    def compute_losses(self, content: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Stylize `content` and score it: (output, {content, style, tv, [stability,] total})."""
        targets = self.perceptual.content_targets(content)
        output = self.net(content)
        terms = self.perceptual(output, targets)
        if self.stability.weight and self.training:
            terms["stability"] = self.stability.weight * stability_loss(
                self.net, content, output, self.stability)
            terms["total"] = terms["total"] + terms["stability"]
        return output, terms

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        _, terms = self.compute_losses(batch)
        self.log_dict({f"train/{k}": v.detach() for k, v in terms.items()},
                      batch_size=batch.shape[0])
        self.log("loss", terms["total"].detach(), prog_bar=True, logger=False,
                 batch_size=batch.shape[0])
        return terms["total"]

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        output, terms = self.compute_losses(batch)
        self.log_dict({f"val/{k}": v for k, v in terms.items()}, sync_dist=True,
                      batch_size=batch.shape[0])
        if batch_idx == 0:
            self._log_images("val/stylized", batch, output)

    def _log_images(self, tag: str, content: Tensor, output: Tensor) -> None:
        """One grid: the content photos on top, their stylized versions below."""
        writer = self._tensorboard()
        if writer is None:
            return
        n = min(len(content), self.val_max_images)
        grid = make_grid(torch.cat([content[:n], output[:n]]).float().clamp(0, 1), nrow=n,
                         padding=2)
        writer.add_image(tag, grid.cpu(), self.global_step)

    def _tensorboard(self) -> Any:
        for logger in self.loggers:
            if isinstance(logger, TensorBoardLogger):
                return logger.experiment
        return None

    def on_fit_start(self) -> None:
        self._move_style_targets()
        writer = self._tensorboard()
        if writer is not None and self.global_step == 0:
            writer.add_image("style", self._style_image[0].clamp(0, 1), 0)

    def on_validation_start(self) -> None:
        self._move_style_targets()

    def _move_style_targets(self) -> None:
        for target in self.perceptual.style.targets:
            target.grams = {k: v.to(self.device) for k, v in target.grams.items()}

    # -- optimizer -----------------------------------------------------------------------

    def configure_optimizers(self) -> Any:
        cfg = self.optim_config
        optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, betas=tuple(cfg.betas),
                                     weight_decay=cfg.weight_decay)
        if cfg.schedule == "none":
            return optimizer
        if cfg.schedule == "cosine":
            total = max(1, int(self.trainer.estimated_stepping_batches))
            scheduler: Any = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=total, eta_min=cfg.min_lr)
        else:
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size,
                                                        gamma=cfg.gamma)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- checkpoints: no frozen VGG inside, RNG states for an exact resume ----------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(_ENCODER_PREFIX)]:
            del state[key]
        checkpoint["rng_states"] = _rng_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        encoder = self.perceptual.encoder.state_dict()
        checkpoint["state_dict"].update({_ENCODER_PREFIX + k: v for k, v in encoder.items()})
        if "rng_states" in checkpoint:
            _set_rng_states(checkpoint["rng_states"])

    def export_meta(self) -> dict[str, Any]:
        """The settings that decide what the network learned (for the exported model)."""
        hp = self.hparams
        return {"style_image": hp.style_image, "style_size": hp.style_size,
                "vgg": _plain(hp.vgg), "loss": _plain(hp.loss), "optim": _plain(hp.optim),
                "init": hp.get("init"), **({"calibration": hp.calibration}
                                           if hp.get("calibration") else {})}


# Fields that decide the weights' shapes; a warm start must match them. The output mapping and
# pixel scale say what the weights mean, so a warm start takes them from the model file.
_SHAPE_FIELDS = ("width", "n_residual", "norm", "upsample")


@dataclass
class WarmStart:
    net: TransformerNet
    config: NetConfig


def warm_start(path: str, config: NetConfig) -> WarmStart:
    """The trained network in `path` and the config to train it further; one-line errors."""
    from fast_nst.stylize import load_model  # the one model loader (export, ckpt, examples)

    model = load_model(path)
    trained = model.net.config
    differ = [f"model.{k}={getattr(trained, k)} (config: {getattr(config, k)})"
              for k in _SHAPE_FIELDS if getattr(trained, k) != getattr(config, k)]
    if differ:
        raise FastNSTError(f"init={path} is another architecture: {', '.join(differ)}; "
                           "set those model options to match")
    adopted = NetConfig(**{**asdict(config), "output": trained.output,
                           "pixel_scale": trained.pixel_scale})
    rank_zero_info(f"warm start from {path} ({model.kind}, style {model.style})")
    return WarmStart(model.net, adopted)


def _load_style(path: str, long_side: int | None) -> Tensor:
    if not path or not Path(path).is_file():
        raise FastNSTError(f"style image not found: {path}; set style.image=PATH or pick a "
                           "style from conf/style (style=starry_night)")
    return load_image(path, long_side=long_side)


def _rng_states() -> dict[str, Any]:
    """Global RNG states as tensors and plain values (checkpoints load with weights_only)."""
    key, array, pos, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(), "python": random.getstate(),
        "numpy": {"key": key, "state": torch.from_numpy(array.astype(np.int64)), "pos": pos,
                  "has_gauss": has_gauss, "gauss": gauss}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: Mapping[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state((n["key"], n["state"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class ExportModel(pl.Callback):
    """At the end of training, write `<dirpath>/<style_name>.pt` with `export_model`.

    Args:
        dirpath: output folder (default: the trainer's `default_root_dir`, Hydra's run dir).
        half: store the weights as float16 (half the file size; stylize casts back).
    """

    def __init__(self, dirpath: str | None = None, half: bool = False) -> None:
        self.dirpath, self.half = dirpath, half
        self.path: Path | None = None
        self._started = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or not isinstance(pl_module, StyleTransferModule):
            return
        folder = Path(self.dirpath or trainer.default_root_dir)
        folder.mkdir(parents=True, exist_ok=True)
        name = pl_module.hparams.style_name
        meta = {**pl_module.export_meta(), "steps": int(trainer.global_step),
                "epochs": int(trainer.current_epoch), "precision": str(trainer.precision),
                "world_size": int(trainer.world_size),
                "train_seconds": round(time.perf_counter() - self._started, 1)}
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "describe"):
            meta["dataset"] = datamodule.describe()
            meta["image_size"] = meta["dataset"].get("image_size")
        self.path = export_model(pl_module.net, folder / f"{name}.pt", style=name, meta=meta,
                                 half=self.half)
        rank_zero_info(f"exported the trained network to {self.path}")


class CPUMemory(pl.Callback):
    """On a CPU run, keep freed tensor memory for reuse (`fast_nst.device.keep_freed_memory`):
    float32 steps 9-37% and bf16-mixed steps 3-18% faster on a 2-core AMD EPYC
    (docs/benchmarks.md)."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if isinstance(trainer.accelerator, CPUAccelerator):
            keep_freed_memory()


class Checkpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint whose `last.ckpt` always holds the final step.

    Lightning 2.6 skips the end-of-training `last` save once any periodic checkpoint was
    written, so a run of 4,500 steps with a checkpoint every 2,000 would leave `last` at 4,000.
    """

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
