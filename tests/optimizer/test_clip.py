"""fast_nst.optimizer.clip: the optimizer's temporal loss on clips."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fast_nst import FastNSTError
from fast_nst.core.temporal import (
    Window,
    static_alignment,
    temporal_error,
)
from fast_nst.core.vgg import VGGConfig
from fast_nst.optimizer.clip import ClipStylizer, stylize_clip
from fast_nst.optimizer.config import GatysConfig


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
