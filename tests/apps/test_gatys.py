"""The optimizer's Hydra app (fast_nst.apps.gatys) end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def _app(*overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, "-m", "fast_nst.apps.gatys", *overrides], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


def test_hydra_app_end_to_end(images: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "app"
    done = _app("task=transfer", f"content={images['content']}", f"style={images['style']}",
                "vgg=random", "size=32", "steps=3", "snapshot_every=3", "progress=false",
                "style_layers=[relu1_1,relu2_1]", f"hydra.run.dir={out}", cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "3 steps (3 VGG evaluations)" in done.stdout
    for name in ("output.png", "losses.csv", "snapshots/step_000003.png", ".hydra/config.yaml"):
        assert (out / name).is_file(), name
    assert Image.open(out / "output.png").size == (32, 24)

    bad = _app(f"content={tmp_path / 'nope.jpg'}", f"style={images['style']}", "vgg=random",
               f"hydra.run.dir={tmp_path / 'bad'}", cwd=ROOT)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [f"error: image not found: {tmp_path / 'nope.jpg'}"]
