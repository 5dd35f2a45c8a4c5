"""Warm start (`train.py init=<model>`): every model kind stylize.py loads starts the network,
training moves on from it, and a wrong file is a one-line error."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from fast_nst import FastNSTError
from fast_nst.core.images import save_image
from fast_nst.model.files import EXAMPLES_CONFIG, export_model
from fast_nst.model.network import NetConfig, TransformerNet
from fast_nst.training.module import StyleTransferModule
from tests.tolerance import float64
from tests.training.helpers import train_steps

ROOT = Path(__file__).resolve().parents[2]
HALF = {"width": "half", "n_residual": 1}


def trained_net(**config) -> TransformerNet:
    torch.manual_seed(3)
    net = TransformerNet(NetConfig(**config))
    with torch.no_grad():  # not a fresh init: the test can tell copied weights from new ones
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return net


def model_file(folder: Path, kind: str) -> tuple[Path, TransformerNet]:
    """The same kind of files stylize.py loads: export .pt, Lightning .ckpt, examples .pth."""
    if kind == "pt":
        net = trained_net(**HALF)
        return export_model(net, folder / "m.pt", style="old"), net
    if kind == "ckpt":
        net = trained_net(**HALF)
        payload = {"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
                   "hyper_parameters": {"net": asdict(net.config), "style_name": "old"}}
        torch.save(payload, folder / "m.ckpt")
        return folder / "m.ckpt", net
    net = trained_net(**EXAMPLES_CONFIG)
    torch.save(net.state_dict(), folder / "m.pth")
    return folder / "m.pth", net


@pytest.fixture
def style(tmp_path) -> Path:
    image = torch.zeros(1, 3, 24, 24)
    image[:, 0, :, ::3] = 1.0
    return save_image(image, tmp_path / "style.png")


def build(style: Path, init: Path | str, **net) -> StyleTransferModule:
    return StyleTransferModule("new", str(style), 24, net={**HALF, **net},
                               vgg={"weights": "random"}, loss={"style_weight": 10.0},
                               init=str(init))


@pytest.mark.parametrize("kind", ["pt", "ckpt", "pth"])
def test_every_model_kind_starts_the_network_and_trains_on(tmp_path, style, kind) -> None:
    path, source = model_file(tmp_path, kind)
    net = {"width": "full", "n_residual": 5} if kind == "pth" else {}
    module = build(style, path, **net)
    for key, value in source.state_dict().items():
        assert torch.equal(module.net.state_dict()[key], value), key
    # What the weights mean travels with them (examples nets work in 0..255, clamped).
    assert module.net.config.pixel_scale == source.config.pixel_scale
    assert module.hparams.init == str(path) and module.export_meta()["init"] == str(path)

    photos = torch.rand(2, 3, 24, 24)
    losses = train_steps(module, photos, torch.optim.Adam(module.net.parameters(), lr=1e-2), 4)
    assert losses[-1] < losses[0]
    first = next(iter(source.state_dict()))
    assert not torch.equal(module.net.state_dict()[first], source.state_dict()[first])


def test_bad_init_path_is_one_line(tmp_path, style) -> None:
    with pytest.raises(FastNSTError, match="model not found") as err:
        build(style, tmp_path / "nope.pt")
    assert "\n" not in str(err.value)
    (tmp_path / "junk.pt").write_text("not a model")
    with pytest.raises(FastNSTError, match="junk.pt"):
        build(style, tmp_path / "junk.pt")


def test_other_architecture_is_one_line(tmp_path, style) -> None:
    path = export_model(trained_net(width="full", n_residual=1), tmp_path / "m.pt", style="old")
    with pytest.raises(FastNSTError, match=r"another architecture: model\.width=full "
                                           r"\(config: half\)") as err:
        build(style, path)
    assert "\n" not in str(err.value)


def test_half_width_model_is_widened_for_a_full_width_run(tmp_path, style) -> None:
    path, source = model_file(tmp_path, "pt")
    module = build(style, path, width="full")
    assert module.net.config.width == "full"
    assert module.net.conv1.conv2d.weight.shape[0] == 32
    images = torch.rand(1, 3, 24, 24, dtype=torch.float64)
    # Evaluated in float64, so the kernels' rounding (which differs between CPUs) is gone; what
    # is left is the float32 split of each weight (one rounding, 6e-8 relative): ~4e-8 here.
    with torch.no_grad():
        torch.testing.assert_close(float64(module.net).eval()(images),
                                   float64(source).eval()(images), atol=1e-6, rtol=0)


def test_train_py_init_error_exits_2_in_one_line(tmp_path, style) -> None:
    path, _ = model_file(tmp_path, "pt")
    args = [f"hydra.run.dir={tmp_path / 'run'}", "style=custom", f"style.image={style}",
            "vgg=random", "model=full", "data=local", f"data.data_dir={tmp_path}",
            f"init={path}"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        f"error: init={path} is another architecture: model.n_residual=1 (config: 5); "
        "set those model options to match"]
    written = [p for p in (tmp_path / "run").rglob("*")
               if p.is_file() and ".hydra" not in p.parts and p.name != "train.log"]
    assert not written  # refused before anything of the run was written
