"""The bundled models (models/*.pt) and `make demo`'s module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fast_nst.demo import run_demo, sample_photos
from fast_nst.stylize import BUNDLED_MODELS, Pipeline, StylizeOptions, bundled_models, load_model

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted(p.stem for p in (ROOT / "conf" / "experiment" / "bundle").glob("*.yaml")
                 if p.stem != "recipe")


def test_every_recipe_has_its_model_and_back() -> None:
    assert len(RECIPES) >= 4
    assert sorted(bundled_models()) == RECIPES


@pytest.mark.parametrize("style", RECIPES)
def test_bundled_model_loads_and_stylizes(style: str) -> None:
    path = BUNDLED_MODELS / f"{style}.pt"
    assert path.stat().st_size <= 7 * 2**20
    model = load_model(path)
    assert model.kind == "export" and model.style == style
    assert {"style_image", "style_size", "loss", "vgg", "steps"} <= set(model.meta)
    y, x = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 56), indexing="ij")
    content = torch.stack([x, y, 0.5 + 0 * x]).unsqueeze(0)
    with torch.no_grad():
        out = model.net(content)
    assert out.shape == content.shape and torch.isfinite(out).all()
    assert 0 <= out.min() and out.max() <= 1
    assert (out - content).abs().mean() > 0.05  # it did restyle the image


def test_demo_writes_every_pair_and_the_sheet(tmp_path: Path) -> None:
    models = dict(list(bundled_models().items())[:2])
    photos = sample_photos(("coffee", "rocket"), size=48)
    assert all(p.dtype == np.uint8 and max(p.shape[:2]) == 48 for p in photos.values())
    sheet = run_demo(tmp_path, models, photos, cell=48, progress=False)
    assert sorted(p.name for p in tmp_path.glob("*.jpg")) == sorted(
        f"{photo}_{style}.jpg" for photo in photos for style in models)
    with Image.open(sheet) as image:  # 2 photo rows, photo + 2 style columns of 48 px cells
        assert image.width >= 3 * 48 and image.height >= 2 * 48


def test_demo_without_models_is_a_one_line_error(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "fast_nst.demo", "--models", str(tmp_path),
                             "-o", str(tmp_path / "out")], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0 and "no models in" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_pipeline_runs_a_bundled_model_on_pixels() -> None:
    model = load_model(next(iter(bundled_models().values())))
    pixels = np.full((30, 44, 3), 128, np.uint8)
    out = Pipeline(model, StylizeOptions(progress=False)).pixels(pixels)
    assert out.shape == pixels.shape and out.dtype == np.uint8
