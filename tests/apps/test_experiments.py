"""The experiments app (fast_nst.apps.experiments) end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from fast_nst.core.images import save_image

ROOT = Path(__file__).resolve().parents[2]


def test_experiments_command_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "exp"
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    save_image(torch.rand(1, 3, 24, 32), content)
    save_image(torch.rand(1, 3, 32, 32), style)
    done = subprocess.run(
        [sys.executable, "-m", "fast_nst.apps.experiments", "run=style_weights",
         "vgg=random", "size=32", "style_weights.steps=2", "style_weights.weights=[1,1000]",
         "progress=false",
         f"content={content}", f"style={style}", f"out={out}", f"hydra.run.dir={tmp_path}/h"],
        cwd=ROOT, env={**os.environ}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "style_weights.csv", "style_weights.md", "style_weights.png"]
