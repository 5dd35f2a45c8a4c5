"""Issue 7 on the trained-network and optimizer paths: the stability loss, the optimizer's
temporal loss on clips, and the flicker command end to end (tiny sizes)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fast_nst import FastNSTError
from fast_nst.flicker import run as flicker_run
from fast_nst.gatys import ClipStylizer, GatysConfig, VGGConfig, stylize_clip
from fast_nst.io import save_image
from fast_nst.module import StyleTransferModule
from fast_nst.temporal import (
    StabilityConfig,
    Window,
    stability_loss,
    static_alignment,
    temporal_error,
)
from fast_nst.transformer import TransformerNet, export_model


class Identity(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Constant(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, 0.5)


def test_stability_loss_values() -> None:
    x = torch.rand(2, 3, 16, 16)
    noise = StabilityConfig(weight=1, mode="noise", noise=0.05)
    shift = StabilityConfig(weight=1, mode="shift", max_shift=3)
    assert stability_loss(Constant(), x, Constant()(x), noise).item() == 0.0
    assert stability_loss(Identity(), x, x, shift).item() == 0.0  # identity is shift-equivariant
    assert 0.5 * 0.05**2 < stability_loss(Identity(), x, x, noise).item() < 1.5 * 0.05**2
    with pytest.raises(ValueError, match="noise or shift"):
        stability_loss(Identity(), x, x, StabilityConfig(mode="blur"))


@pytest.fixture
def style_file(tmp_path):
    style = torch.zeros(1, 3, 32, 32)
    style[:, 0, :, ::4] = 1.0
    return str(save_image(style, tmp_path / "style.png"))


def _module(style_file: str, weight: float) -> StyleTransferModule:
    torch.manual_seed(0)
    return StyleTransferModule(
        "s", style_file, 32, net={"width": "half", "n_residual": 1}, vgg={"weights": "random"},
        loss={"style_weight": 1e3, "stability": {"weight": weight, "mode": "noise",
                                                  "noise": 0.05}})


def _response_to_noise(net: torch.nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return (net(x + 0.05 * torch.randn_like(x)) - net(x)).abs().mean().item()


def test_stability_training_lowers_the_response_to_input_noise(style_file) -> None:
    """Trains the same tiny net 30 steps with and without the option (same seed, random VGG)
    and checks the stable one changes its output less when the input gets noise, which is
    what per-frame flicker comes from."""
    x = torch.rand(4, 3, 32, 32)
    responses = {}
    for weight in (0.0, 100.0):
        module = _module(style_file, weight).train()
        opt = torch.optim.Adam(module.net.parameters(), lr=1e-2)
        for _ in range(30):
            _, terms = module.compute_losses(x)
            assert ("stability" in terms) == (weight > 0)
            opt.zero_grad()
            terms["total"].backward()
            opt.step()
        torch.manual_seed(1)
        responses[weight] = _response_to_noise(module.net.eval(), x)
    assert responses[100.0] < 0.7 * responses[0.0]


def test_bad_stability_mode_is_a_one_line_error(style_file) -> None:
    with pytest.raises(FastNSTError, match="loss.stability needs mode noise or shift"):
        StyleTransferModule("s", style_file, 32, vgg={"weights": "random"},
                            loss={"stability": {"mode": "blur"}})


def _flickering_clip(n: int = 4) -> list[torch.Tensor]:
    torch.manual_seed(0)
    base = torch.rand(1, 3, 1, 1) * 0.5 + torch.linspace(0, 0.5, 32).view(1, 1, 1, 32)
    base = base.expand(1, 3, 32, 32)
    return [(base + 0.1 * torch.randn(1, 3, 32, 32)).clamp(0, 1) for _ in range(n)]


def test_optimizer_temporal_loss_lowers_flicker(caffe_weights, style_file) -> None:
    frames = _flickering_clip()
    cfg = GatysConfig(style=style_file, content="unused", size=32, steps=8,
                      style_layers=["relu1_1", "relu2_1"], content_layers=["relu2_1"],
                      vgg=VGGConfig(str(caffe_weights), "caffe"), progress=False)
    still = [Window(1.0, 0.0, 0.0)] * len(frames)  # a still camera: no motion to compensate
    errors = {}
    for name, weight, blend in (("plain", 0.0, 1.0), ("temporal", 1e9, 0.5)):
        clip = ClipStylizer(dataclasses.replace(cfg, temporal_weight=weight,
                                                temporal_blend=blend), align=static_alignment)
        outputs = [clip(f) for f in frames]
        assert all(o.shape == (1, 3, 32, 32) for o in outputs)
        assert len(clip.history) == len(frames) and len(clip.history[1]) == 8
        errors[name] = temporal_error(outputs, still)
    assert errors["temporal"] < 0.7 * errors["plain"]


def test_clip_of_a_non_video_is_a_one_line_error(tmp_path, style_file) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    cfg = GatysConfig(style=style_file, content="unused", size=32, steps=1,
                      vgg=VGGConfig("random", "torchvision"), progress=False)
    with pytest.raises(FastNSTError, match="notes.mp4"):
        stylize_clip(cfg, str(text), tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()


def test_flicker_command_end_to_end(tmp_path, style_file) -> None:
    photo = tmp_path / "photo.png"
    ys, xs = torch.meshgrid(torch.linspace(0, 4, 96), torch.linspace(0, 5, 128), indexing="ij")
    save_image(torch.stack([torch.sin(xs), torch.cos(ys), torch.sin(xs + ys)])
               .unsqueeze(0) * 0.4 + 0.5, photo)
    model = export_model(TransformerNet(width="half", n_residual=1).eval(), tmp_path / "m.pt",
                         style="s")
    cfg = {"photo": str(photo), "frame_size": [32, 40], "frames": 3, "pan": 1.0, "zoom": 0.0,
           "write_clip": "clip.mp4", "style": style_file, "style_layers": ["relu1_1"],
           "vgg": {"weights": "random", "convention": "torchvision", "pooling": "max"},
           "models": {"tiny": str(model)},
           "gatys": {"enabled": True, "size": 40, "steps": 2, "content_layers": ["relu1_1"],
                     "style_layers": ["relu1_1"]}}
    rows = flicker_run(cfg, tmp_path)
    assert [r["method"] for r in rows] == [
        "input clip (no stylization)", "network tiny", "optimizer + temporal loss",
        "optimizer per frame (no temporal loss)"]
    assert rows[0]["temporal_error"] < 2.0  # the raw clip: only resampling error (0..255)
    assert all(r["frames"] == 3 and r["style_loss"] > 0 for r in rows)
    table = (tmp_path / "flicker.md").read_text()
    assert "network tiny" in table and (tmp_path / "flicker.csv").is_file()
    assert (tmp_path / "clip.mp4").stat().st_size > 0 and (tmp_path / "clip.json").is_file()
