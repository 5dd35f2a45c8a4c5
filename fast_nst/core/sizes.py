"""Output sizes (--size, --scale) and image files read at that size; shared by the image
pipeline and the video reader, so neither has to import the other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fast_nst.core.images import MAX_PIXELS, open_image
from fast_nst.errors import FastNSTError


def target_size(width: int, height: int, *, size: int | None = None,
                scale: float | None = None) -> tuple[int, int]:
    """(width, height) after `size` (long side) or `scale`; native when neither is given."""
    if size is not None and scale is not None:
        raise FastNSTError("give --size or --scale, not both")
    if size is not None:
        if size < 1:
            raise FastNSTError(f"--size must be at least 1 px, got {size}")
        f = size / max(width, height)
    elif scale is not None:
        if scale <= 0:
            raise FastNSTError(f"--scale must be positive, got {scale}")
        f = scale
    else:
        return width, height
    return max(1, round(width * f)), max(1, round(height * f))


def load_pixels(path: Path, *, size: int | None = None, scale: float | None = None,
                max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """Image file -> (H, W, 3) uint8 at the requested size (PIL resampling keeps memory low)."""
    image = open_image(path, max_pixels)
    new = target_size(*image.size, size=size, scale=scale)
    if new != image.size:
        image = image.resize(new, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(image)
