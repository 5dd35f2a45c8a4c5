"""Distillation: a small student network learns to reproduce a trained teacher's images.

The teacher is any model file `stylize.py` loads; the style image is not needed, since the
teacher's output is the target. The loss is a pixel term (mean absolute difference of the 0..1
images) plus a feature term (VGG features of the student's image against the teacher's, each
layer's squared error relative to the teacher's feature energy, so the weight means the same
under either VGG convention). Only the first VGG block is used by default: strokes and edges at
a fraction of the cost of a full perceptual loss.

Checkpoint contract as `StyleTransferModule`'s (`fast_nst.model.files` reads it): the student is
`self.net`, `hyper_parameters["net"]` its `NetConfig`, `hyper_parameters["style_name"]` the style.
Teacher and VGG are left out of checkpoints and rebuilt from the config.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from fast_nst.configs import to_dataclass
from fast_nst.core.vgg import VGGConfig, VGGEncoder
from fast_nst.errors import FastNSTError
from fast_nst.model.files import load_model
from fast_nst.model.network import NetConfig, TransformerNet
from fast_nst.training.common import (
    configure_adam,
    drop_frozen,
    log_grid,
    log_terms,
    restore_frozen,
)
from fast_nst.training.settings import DistillLossConfig, OptimConfig
from fast_nst.training.warm_start import warm_start

_FROZEN = ("teacher.", "encoder.")

# The frozen teacher and VGG stay in eval mode on purpose; Lightning's notice about it is noise.
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")


def feature_distance(student: Mapping[str, Tensor], teacher: Mapping[str, Tensor]) -> Tensor:
    """Mean over layers of |f_s - f_t|^2 / |f_t|^2 (0 when the images match)."""
    terms = [(student[k] - t).pow(2).mean() / t.pow(2).mean().clamp_min(1e-12)
             for k, t in teacher.items()]
    return torch.stack(terms).mean()


class DistillModule(pl.LightningModule):
    """Trains a student `TransformerNet` to reproduce a teacher model's images.

    Args:
        teacher: a model file (`.pt`, `.ckpt` or examples `.pth`) that `stylize.py` loads.
        net: the student's `NetConfig` fields (the `model` config group).
        vgg: `VGGEncoder` arguments for the feature term (the `vgg` group).
        distillation: `DistillLossConfig` fields (the `distillation` group).
        optim: `OptimConfig` fields (the `optim` group).
        name: the exported file's stem (None: `<teacher's style>-fast`).
        val_max_images: at most this many validation photos in the TensorBoard grid.
        init: a model file whose weights start the student (same architecture).
    """

    def __init__(self, teacher: str, net: NetConfig | Mapping[str, Any] | None = None,
                 vgg: VGGConfig | Mapping[str, Any] | None = None,
                 distillation: DistillLossConfig | Mapping[str, Any] | None = None,
                 optim: OptimConfig | Mapping[str, Any] | None = None,
                 name: str | None = None, val_max_images: int = 8,
                 init: str | None = None) -> None:
        super().__init__()
        net_config = to_dataclass(NetConfig, net, "model").validate()
        self.loss_config = to_dataclass(DistillLossConfig, distillation, "distillation").validate()
        self.optim_config = to_dataclass(OptimConfig, optim, "optim").validate()
        if val_max_images < 1:
            raise FastNSTError(f"module.val_max_images must be at least 1, got {val_max_images}")
        teacher_model = load_model(teacher)
        start = warm_start(init, net_config) if init else None
        self.net = TransformerNet(start.config if start else net_config)
        if start is not None:
            self.net.load_state_dict(start.net.state_dict())
        self.teacher = teacher_model.net.float().eval().requires_grad_(False)
        vgg_config = to_dataclass(VGGConfig, vgg, "vgg")
        layers = self.loss_config.feature_layers or ["relu1_1"]
        self.encoder = VGGEncoder(layers, **asdict(vgg_config))
        self.val_max_images = val_max_images
        self.save_hyperparameters({
            "style_name": teacher_model.style, "teacher": str(teacher),
            "export_name": name or f"{teacher_model.style}-fast",
            "teacher_net": asdict(teacher_model.net.config), "teacher_meta": teacher_model.meta,
            "net": asdict(self.net.config), "vgg": asdict(vgg_config),
            "loss": asdict(self.loss_config), "optim": asdict(self.optim_config),
            "val_max_images": val_max_images, "init": str(init) if init else None})

    def train(self, mode: bool = True) -> DistillModule:
        """The teacher stays in eval mode (a batch-norm teacher must not update its stats)."""
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)

    def compute_losses(self, content: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """(student image, teacher image, {pixel, feature, total}) for a batch of photos."""
        with torch.no_grad():
            target = self.teacher(content).clamp(0, 1)
        output = self.net(content)
        cfg = self.loss_config
        terms = {"pixel": cfg.pixel_weight * (output - target).abs().mean()}
        if cfg.feature_weight:
            with torch.no_grad():
                wanted = self.encoder(target)
            terms["feature"] = cfg.feature_weight * feature_distance(self.encoder(output), wanted)
        terms["total"] = torch.stack(list(terms.values())).sum()
        return output, target, terms

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        _, _, terms = self.compute_losses(batch)
        log_terms(self, "train", terms, batch.shape[0])
        return terms["total"]

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        output, target, terms = self.compute_losses(batch)
        log_terms(self, "val", terms, batch.shape[0])
        if batch_idx == 0:  # rows: the photos, the teacher's images, the student's
            log_grid(self, "val/teacher_student", [batch, target, output], self.val_max_images)

    def configure_optimizers(self) -> Any:
        return configure_adam(self.net.parameters(), self.optim_config, self)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        drop_frozen(checkpoint, _FROZEN)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        restore_frozen(checkpoint, {"teacher.": self.teacher, "encoder.": self.encoder})

    @property
    def export_name(self) -> str:
        return str(self.hparams.export_name)

    def export_meta(self) -> dict[str, Any]:
        """The teacher's training settings (its style image, VGG and losses: what the student
        is judged by, e.g. in `fast-nst-compare`) and, under `distillation`, how it learned."""
        hp = self.hparams
        return {**dict(hp.teacher_meta), "distillation": {
            "teacher": hp.teacher, "teacher_net": dict(hp.teacher_net), "vgg": dict(hp.vgg),
            "loss": dict(hp.loss), "optim": dict(hp.optim), "init": hp.get("init")}}
