"""What every training module (style transfer, distillation) shares around its steps: Adam
with the `optim` group's LR schedule, checkpoints without the frozen networks but with the
random-number states, and image grids in TensorBoard."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from torch import Tensor, nn
from torchvision.utils import make_grid

from fast_nst.errors import FastNSTError
from fast_nst.training.settings import OptimConfig


def configure_adam(params: Iterable[nn.Parameter], cfg: OptimConfig,
                   module: pl.LightningModule) -> Any:
    """Lightning's `configure_optimizers` answer: Adam, with a per-step schedule if asked
    (the module's trainer is read only for the cosine schedule's length)."""
    optimizer = torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas),
                                 weight_decay=cfg.weight_decay)
    if cfg.schedule == "none":
        return optimizer
    if cfg.schedule == "cosine":
        scheduler: Any = torch.optim.lr_scheduler.LambdaLR(
            optimizer, partial(cosine_factor, total=total_steps(module.trainer),
                               floor=cfg.min_lr / cfg.lr))
    else:
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size,
                                                    gamma=cfg.gamma)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def total_steps(trainer: pl.Trainer) -> int:
    """The run's length in optimizer steps, from this run's trainer (a resumed run with a
    larger `max_steps` decays over the new length, not the one in the checkpoint)."""
    total = trainer.estimated_stepping_batches
    if not math.isfinite(total):
        raise FastNSTError("optim.schedule=cosine needs a finite run: set trainer.max_steps")
    return max(1, int(total))


def cosine_factor(step: int, total: int, floor: float) -> float:
    """The cosine decay as a factor of the base LR: 1 at step 0, `floor` from `total` on. In
    closed form (a LambdaLR), so nothing about the run's length is restored from a checkpoint."""
    progress = min(step, total) / total
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def rng_states() -> dict[str, Any]:
    """Global RNG states as tensors and plain values (checkpoints load with weights_only)."""
    key, array, pos, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(), "python": random.getstate(),
        "numpy": {"key": key, "state": torch.from_numpy(array.astype(np.int64)), "pos": pos,
                  "has_gauss": has_gauss, "gauss": gauss}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: Mapping[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state((n["key"], n["state"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def drop_frozen(checkpoint: dict[str, Any], prefixes: Iterable[str]) -> None:
    """Leave frozen networks (rebuilt from the config) out of a checkpoint, and add the RNG
    states: a checkpoint is then a few MB and resumes exactly."""
    state = checkpoint["state_dict"]
    for key in [k for k in state if k.startswith(tuple(prefixes))]:
        del state[key]
    checkpoint["rng_states"] = rng_states()


def restore_frozen(checkpoint: dict[str, Any], frozen: Mapping[str, nn.Module]) -> None:
    """The other half of `drop_frozen`: put the frozen networks' weights back ({prefix: net})
    so that a strict load succeeds, and the RNG states."""
    for prefix, module in frozen.items():
        checkpoint["state_dict"].update({prefix + k: v for k, v in module.state_dict().items()})
    if "rng_states" in checkpoint:
        set_rng_states(checkpoint["rng_states"])


def log_terms(module: pl.LightningModule, stage: str, terms: Mapping[str, Tensor],
              batch_size: int) -> None:
    """Every loss term as `<stage>/<term>`; in training also the total on the progress bar."""
    train = stage == "train"
    module.log_dict({f"{stage}/{k}": v.detach() if train else v for k, v in terms.items()},
                    batch_size=batch_size, sync_dist=not train)
    if train:
        module.log("loss", terms["total"].detach(), prog_bar=True, logger=False,
                   batch_size=batch_size)


def log_grid(module: pl.LightningModule, tag: str, rows: Iterable[Tensor], n: int) -> None:
    """One TensorBoard image: the first `n` images of each row (content, stylized, ...)."""
    writer = tensorboard(module)
    if writer is None:
        return
    rows = [r[:n] for r in rows]
    grid = make_grid(torch.cat(rows).float().clamp(0, 1), nrow=len(rows[0]), padding=2)
    writer.add_image(tag, grid.cpu(), module.global_step)


def tensorboard(module: pl.LightningModule) -> Any:
    """The module's TensorBoard writer, or None when it logs elsewhere."""
    for logger in module.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None
