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

import warnings
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from torch import Tensor

from fast_nst.configs import to_dataclass
from fast_nst.core.images import load_image
from fast_nst.core.losses import as_layer_weights
from fast_nst.core.perceptual import build_perceptual_loss
from fast_nst.core.temporal import stability_loss
from fast_nst.core.vgg import VGGConfig, check_side
from fast_nst.errors import FastNSTError
from fast_nst.model.network import NetConfig, TransformerNet
from fast_nst.training.common import (
    configure_adam,
    drop_frozen,
    log_grid,
    log_terms,
    restore_frozen,
    tensorboard,
)
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
        log_terms(self, "train", terms, batch.shape[0])
        return terms["total"]

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        output, terms = self.compute_losses(batch)
        log_terms(self, "val", terms, batch.shape[0])
        if batch_idx == 0:
            log_grid(self, "val/stylized", [batch, output], self.val_max_images)

    def on_fit_start(self) -> None:
        self._move_style_targets()
        writer = tensorboard(self)
        if writer is not None and self.global_step == 0:
            writer.add_image("style", self._style_image[0].clamp(0, 1), 0)

    def on_validation_start(self) -> None:
        self._move_style_targets()

    def _move_style_targets(self) -> None:
        for target in self.perceptual.style.targets:
            target.grams = {k: v.to(self.device) for k, v in target.grams.items()}

    # -- optimizer ---------------------------------------------------------------------

    def configure_optimizers(self) -> Any:
        return configure_adam(self.net.parameters(), self.optim_config, self)

    # -- checkpoints: no frozen VGG inside, RNG states for an exact resume ----------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        drop_frozen(checkpoint, [_ENCODER_PREFIX])

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        restore_frozen(checkpoint, {_ENCODER_PREFIX: self.perceptual.encoder})

    def export_meta(self) -> dict[str, Any]:
        """The settings that decide what the network learned (for the exported model)."""
        hp = self.hparams
        return {"style_image": hp.style_image, "style_size": hp.style_size,
                "vgg": dict(hp.vgg), "loss": dict(hp.loss), "optim": dict(hp.optim),
                "init": hp.get("init"), **({"calibration": hp.calibration}
                                           if hp.get("calibration") else {})}


def _load_style(path: str, long_side: int | None) -> Tensor:
    if not path or not Path(path).is_file():
        raise FastNSTError(f"style image not found: {path}; set style.image=PATH or pick a "
                           "style from conf/style (style=starry_night)")
    return load_image(path, long_side=long_side)
