"""Checks `train.py` runs before it builds anything or writes a file: resume settings, the
network, loss and optimizer settings and the warm-start file, image sizes against the VGG
layers, and whether a hub dataset can be reached at all (offline, the `datasets` library would
retry for half a minute before failing)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from omegaconf import OmegaConf

from fast_nst.configs import to_dataclass
from fast_nst.core.losses import as_layer_weights
from fast_nst.core.vgg import check_side
from fast_nst.errors import FastNSTError
from fast_nst.model.files import load_model
from fast_nst.model.network import NetConfig
from fast_nst.training.resume import check_checkpoint, check_run_folder
from fast_nst.training.settings import DistillLossConfig, LossConfig, OptimConfig
from fast_nst.training.warm_start import warm_start

# `datasets` builders that read local files (no hub access).
LOCAL_BUILDERS = ("imagefolder", "csv", "json", "parquet", "text", "arrow", "webdataset")
_OFFLINE_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
_PROXY_ENV = ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


def check_training(cfg: Any, run_dir: Path) -> None:
    """All of the checks below, cheapest first."""
    check_seed(cfg)
    check_resume(cfg, run_dir, str(cfg.style.name))
    check_settings(cfg)
    check_image_sizes(cfg)
    check_data_source(cfg.data, str(cfg.vgg.weights))


def check_distill(cfg: Any, run_dir: Path) -> None:
    """`fast-nst-distill`'s checks: the teacher file, the student and loss settings, resume,
    and the crop against the feature layers; before anything is built or written."""
    check_seed(cfg)
    teacher = load_model(str(cfg.teacher))
    net = to_dataclass(NetConfig, cfg.model, "model").validate()
    loss = to_dataclass(DistillLossConfig, cfg.distillation, "distillation").validate()
    to_dataclass(OptimConfig, cfg.optim, "optim").validate()
    check_resume(cfg, run_dir, teacher.style)
    if cfg.get("init"):
        warm_start(str(cfg.init), net)
    if loss.feature_weight:
        side = int(cfg.data.image_size)
        check_side(loss.feature_layers, side, side, f"data.image_size={side} crop",
                   "raise data.image_size")
    check_data_source(cfg.data, str(cfg.vgg.weights))


def check_settings(cfg: Any) -> None:
    """The network, loss and optimizer settings and the warm-start file: what the module would
    refuse, refused before a calibration or a data scan takes minutes."""
    net = to_dataclass(NetConfig, cfg.model, "model").validate()
    to_dataclass(LossConfig, cfg.loss, "loss").validate()
    optim = to_dataclass(OptimConfig, cfg.optim, "optim").validate()
    trainer = cfg.trainer
    if optim.schedule == "cosine" and trainer.get("max_steps", -1) in (-1, None) \
            and trainer.get("max_epochs", -1) in (-1, None):
        raise FastNSTError("optim.schedule=cosine needs a finite run: set trainer.max_steps")
    images = cfg.module.get("val_max_images", 1)
    if images < 1:
        raise FastNSTError(f"module.val_max_images must be at least 1, got {images}")
    if cfg.get("init"):
        warm_start(str(cfg.init), net)


def check_seed(cfg: Any) -> None:
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool):
        raise FastNSTError(f"seed must be an integer, got {cfg.seed!r}")


def check_resume(cfg: Any, run_dir: Path, style: str) -> None:
    """`ckpt_path`, if given, is a safe fast_nst checkpoint of `style` and this architecture; a
    run folder with checkpoints is reused only to resume."""
    callback = (cfg.get("callbacks") or {}).get("model_checkpoint") or {}
    checkpoints = callback.get("dirpath") or run_dir / "checkpoints"
    if cfg.ckpt_path:
        check_checkpoint(cfg.ckpt_path, style, dict(cfg.model))
    check_run_folder(checkpoints, cfg.ckpt_path)


def check_image_sizes(cfg: Any) -> None:
    """Training and validation crops must survive every pool before the deepest loss layer."""
    loss: LossConfig = OmegaConf.to_object(cfg.loss)  # no layers given: Johnson's
    layers = [*as_layer_weights(loss.content_layers), *as_layer_weights(loss.style_layers)]
    data = cfg.data
    for key in ("image_size", "val_image_size"):
        side = data.get(key)
        if side is not None:
            check_side(layers, int(side), int(side), f"data.{key}={side} crop",
                       f"raise data.{key}")


def check_data_source(data: Any, vgg_weights: str = "") -> None:
    """Fail at once, in one line, when a hub dataset is asked for and the hub is unreachable."""
    name = str(data.get("name") or "")
    if (data.get("data_dir") or name in LOCAL_BUILDERS or Path(name).expanduser().exists()
            or any(os.environ.get(k) for k in _OFFLINE_ENV + _PROXY_ENV)):
        return  # local files; or offline mode / a proxy, which `datasets` handles quickly
    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname
    if host is None or reachable(host):
        return
    recipe = "data=local vgg=caffe" if vgg_weights == "imagenet" else "data=local"
    raise FastNSTError(f"cannot reach {host} for the hub dataset data.name={name} (offline?); "
                       f"train on the local photos instead: {recipe} (or experiment=local), or "
                       "set HF_HUB_OFFLINE=1 to use a copy already in the datasets cache")


def reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
