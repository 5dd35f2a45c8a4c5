"""Noise photos and the bundled udnie model, for the tests that run stylize.py or train.py
in this process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "udnie.pt"


def write_photo(path: Path, w: int, h: int, seed: int = 0) -> Path:
    pixels = (np.random.default_rng(seed).random((h, w, 3)) * 255).astype("uint8")
    Image.fromarray(pixels).save(path)
    return path
