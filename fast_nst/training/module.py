"""Feed-forward training (Johnson et al. 2016) as a LightningModule (its callbacks are in
`fast_nst.training.callbacks`, the warm start in `fast_nst.training.warm_start`).

The module holds the transformation network (`self.net`, so its weights are the `net.*` keys of
every checkpoint) and a `PerceptualLoss` over a frozen VGG19. The frozen VGG is left out of
checkpoints (it is rebuilt from the config), so a checkpoint is a few MB, not 80.

Checkpoint contract with `fast_nst.model.files`: `hyper_parameters["net"]` is
`asdict(NetConfig)`, `hyper_parameters["style_name"]` the style's name, and the network weights
are `net.*`. The `loss` and `optim` groups are dataclasses in `fast_nst.training.settings`.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Mapping
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from torch import Tensor
from torchvision.utils import make_grid

from fast_nst.configs import to_dataclass
from fast_nst.core.images import load_image
from fast_nst.core.losses import as_layer_weights
from fast_nst.core.perceptual import build_perceptual_loss
from fast_nst.core.temporal import stability_loss
from fast_nst.core.vgg import VGGConfig, check_side
from fast_nst.errors import FastNSTError
from fast_nst.model.network import NetConfig, TransformerNet
from fast_nst.training.settings import LossConfig, OptimConfig
from fast_nst.training.warm_start import warm_start

_ENCODER_PREFIX = "perceptual.encoder."

# The frozen VGG stays in eval mode on purpose; Lightning's notice about it is noise.
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")



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
            numbers from `fast_nst.training.calibrate`), kept in the hyper-parameters and the
            `meta`.
    """

    def __init__(self, style_name: str, style_image: str, style_size: int | None = 512,
                 net: NetConfig | Mapping[str, Any] | None = None,
                 vgg: VGGConfig | Mapping[str, Any] | None = None,
                 loss: LossConfig | Mapping[str, Any] | None = None,
                 optim: OptimConfig | Mapping[str, Any] | None = None,
                 val_max_images: int = 8, init: str | None = None,
                 calibration: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        net_config = to_dataclass(NetConfig, net, "model").validate()
        start = warm_start(init, net_config) if init else None
        if start is not None:
            net_config = start.config
        loss_config = to_dataclass(LossConfig, loss, "loss").validate()
        self.optim_config = to_dataclass(OptimConfig, optim, "optim").validate()
        if val_max_images < 1:
            raise FastNSTError(f"module.val_max_images must be at least 1, got {val_max_images}")
        style = _load_style(style_image, style_size)
        vgg_config = to_dataclass(VGGConfig, vgg, "vgg")
        content_layers = as_layer_weights(loss_config.content_layers)
        style_layers = as_layer_weights(loss_config.style_layers)
        check_side(style_layers, *style.shape[-2:], f"style image at style.size={style_size}",
                   "raise style.size")
        perceptual = build_perceptual_loss(vgg_config, content_layers, style_layers,
                                           loss_config.resolve)
        resolved = loss_config.resolved(perceptual.encoder.convention.name)
        self.stability = loss_config.stability
        self.net = TransformerNet(net_config)
        if start is not None:
            self.net.load_state_dict(start.net.state_dict())
        self.perceptual = perceptual
        self.perceptual.set_style(style)
        self.val_max_images = val_max_images
        self.save_hyperparameters({
            "style_name": str(style_name), "style_image": str(style_image),
            "style_size": style_size, "net": asdict(net_config), "vgg": asdict(vgg_config),
            "loss": {**resolved, "stability": asdict(self.stability)},
            "optim": asdict(self.optim_config), "val_max_images": val_max_images,
            "init": str(init) if init else None,
            "calibration": dict(calibration) if calibration else None,
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
            scheduler: Any = torch.optim.lr_scheduler.LambdaLR(
                optimizer, partial(cosine_factor, total=self._total_steps(),
                                   floor=cfg.min_lr / cfg.lr))
        else:
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size,
                                                        gamma=cfg.gamma)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _total_steps(self) -> int:
        """The run's length in optimizer steps, from this run's trainer (a resumed run with a
        larger `max_steps` decays over the new length, not the one in the checkpoint)."""
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise FastNSTError("optim.schedule=cosine needs a finite run: set trainer.max_steps")
        return max(1, int(total))

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
                "vgg": dict(hp.vgg), "loss": dict(hp.loss), "optim": dict(hp.optim),
                "init": hp.get("init"), **({"calibration": hp.calibration}
                                           if hp.get("calibration") else {})}


def cosine_factor(step: int, total: int, floor: float) -> float:
    """The cosine decay as a factor of the base LR: 1 at step 0, `floor` from `total` on. In
    closed form (a LambdaLR), so nothing about the run's length is restored from a checkpoint."""
    progress = min(step, total) / total
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


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
