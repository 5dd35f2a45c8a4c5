"""The bundled models, a small photo and pixel reading, for the web jobs and page tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fast_nst.model.files import bundled_models

MODELS = bundled_models()
STYLE = "udnie"


# safe_load's message for a file torch cannot unpickle with weights_only (garbage included)
JUNK_MODEL = r"junk\.pt (refused|is not a model)"


def cat_photo(path: Path, size: tuple[int, int] = (96, 64)) -> Path:
    """scikit-image's cat, small (ships with the package, nothing downloaded)."""
    from skimage import data

    Image.fromarray(data.chelsea()).resize(size, Image.Resampling.LANCZOS).save(path)
    return path


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(np.int16)
