"""Tiny style networks, model files of every kind and photo-like images, for the tests of
the stylize path (tests/inference, tests/apps/test_stylize.py)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fast_nst.model.files import EXAMPLES_CONFIG, export_model
from fast_nst.model.network import NetConfig, TransformerNet

QUIET = dict(progress=False, device="cpu")


def tiny_net(**overrides) -> TransformerNet:
    torch.manual_seed(0)
    return TransformerNet(NetConfig(**{"width": "half", "n_residual": 1, **overrides})).eval()


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth, photo-like uint8 image (low-frequency colour noise plus an edge)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, max(2, h // 16), max(2, w // 16), generator=g)
    img = torch.nn.functional.interpolate(low, size=(h, w), mode="bicubic", align_corners=False)
    img[..., : h // 3, :] *= 0.5
    return (img[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def write_photo(path: Path, h: int, w: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(photo(h, w, seed)).save(path)
    return path


def read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def fake_checkpoint(path: Path, net: TransformerNet) -> Path:
    """The layout the Lightning module writes: hparams["net"] = asdict(NetConfig), `net.` keys."""
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    state["loss.encoder.features.0.weight"] = torch.zeros(2, 3, 3, 3)  # other submodules
    payload = {"epoch": 1, "global_step": 10, "pytorch-lightning_version": "2.5.0",
               "state_dict": state, "optimizer_states": [],
               "hyper_parameters": {"net": asdict(net.config), "style_name": "waves",
                                    "lr": 1e-3}}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return path


def fake_examples_pth(path: Path) -> tuple[Path, TransformerNet]:
    """A pytorch/examples-style state dict, legacy InstanceNorm running stats included."""
    torch.manual_seed(1)
    net = TransformerNet(NetConfig(**EXAMPLES_CONFIG)).eval()
    state = dict(net.state_dict())
    for name in ("in1", "in2", "in3", "in4", "in5", "res1.in1", "res5.in2"):
        channels = state[f"{name}.weight"].shape[0]
        state[f"{name}.running_mean"] = torch.zeros(channels)
        state[f"{name}.running_var"] = torch.ones(channels)
    torch.save(state, path)
    return path, net


def write_photos(folder: Path, n: int, h: int, w: int, stem: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        pixels = (rng.random((h, w, 3)) * 255).astype("uint8")
        Image.fromarray(pixels).save(folder / f"{stem}{i}.png")


def tiny_model(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    net = TransformerNet(NetConfig(width="half", n_residual=1)).eval()
    return export_model(net, tmp_path / "tiny.pt", style="tiny")
