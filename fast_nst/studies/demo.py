"""The demo: photos that ship inside scikit-image, stylized by every bundled style, plus one
contact sheet (photos down the side, the styles across).

    fast-nst-demo --output demo        # what `make demo` runs (the app: fast_nst.apps.demo)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from fast_nst.core.images import save_image
from fast_nst.core.sizes import target_size
from fast_nst.inference.pipeline import Pipeline, StylizeOptions
from fast_nst.model.files import load_model
from fast_nst.reports import sheet

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")  # in skimage.data, no download
PHOTO_SIZE = 512  # long side of the sample photos, px
CELL = 256  # contact sheet cell, px


def sample_photos(names: tuple[str, ...] = PHOTOS,
                  size: int = PHOTO_SIZE) -> dict[str, np.ndarray]:
    """scikit-image's sample photos as (H, W, 3) uint8, long side `size`."""
    from skimage import data

    photos = {}
    for name in names:
        image = Image.fromarray(getattr(data, name)()).convert("RGB")
        photos[name] = np.asarray(image.resize(target_size(*image.size, size=size),
                                               Image.Resampling.LANCZOS))
    return photos


def run_demo(output: Path, models: dict[str, Path], photos: dict[str, np.ndarray],
             cell: int = CELL, progress: bool = True) -> Path:
    """Write <photo>_<style>.jpg for every pair and contact_sheet.png; returns the sheet."""
    output.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[Image.Image]] = {name: [Image.fromarray(p)] for name, p in photos.items()}
    bar = tqdm(total=len(models) * len(photos), desc="demo", unit="img", disable=not progress)
    for style, path in models.items():
        pipeline = Pipeline(load_model(path), StylizeOptions(progress=False))
        for name, pixels in photos.items():
            result = Image.fromarray(pipeline.pixels(pixels))
            save_image(result, output / f"{name}_{style}.jpg")
            rows[name].append(result)
            bar.update()
    bar.close()
    return sheet.save(sheet.grid(list(rows.values()), list(rows), ["photo", *models],
                                 cell=(cell, cell)), output / "contact_sheet.png")
