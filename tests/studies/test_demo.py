"""fast_nst.studies.demo: `make demo`'s module."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fast_nst.model.files import bundled_models
from fast_nst.studies.demo import run_demo, sample_photos


def test_demo_writes_every_pair_and_the_sheet(tmp_path: Path) -> None:
    models = dict(list(bundled_models().items())[:2])
    photos = sample_photos(("coffee", "rocket"), size=48)
    assert all(p.dtype == np.uint8 and max(p.shape[:2]) == 48 for p in photos.values())
    sheet = run_demo(tmp_path, models, photos, cell=48, progress=False)
    assert sorted(p.name for p in tmp_path.glob("*.jpg")) == sorted(
        f"{photo}_{style}.jpg" for photo in photos for style in models)
    with Image.open(sheet) as image:  # 2 photo rows, photo + 2 style columns of 48 px cells
        assert image.width >= 3 * 48 and image.height >= 2 * 48
    for photo, pixels in photos.items():  # each pair stylized, and by its own style
        outs = [np.asarray(Image.open(tmp_path / f"{photo}_{style}.jpg"), np.float32)
                for style in models]
        assert all(np.abs(o - pixels).mean() > 10 for o in outs)
        assert np.abs(outs[0] - outs[1]).mean() > 5
