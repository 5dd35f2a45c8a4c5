"""fast_nst.studies.flicker: the flicker measurement end to end (tiny sizes)."""

from __future__ import annotations

import pytest
import torch

from fast_nst.core.images import save_image
from fast_nst.errors import FastNSTError
from fast_nst.model.files import export_model
from fast_nst.model.network import TransformerNet
from fast_nst.studies.flicker import make_clip
from fast_nst.studies.flicker import run as flicker_run


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
           "models": {"tiny": str(model)}, "precision": "fp32", "gatys_without_temporal": True,
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


def test_a_clip_of_one_frame_is_a_one_line_error(tmp_path) -> None:
    photo = tmp_path / "photo.png"
    save_image(torch.rand(1, 3, 64, 64), photo)
    with pytest.raises(FastNSTError, match="frames must be at least 2"):
        make_clip(str(photo), (32, 32), 1, 1.0, 0.0)
