"""Noise photos and the bundled udnie model, for the tests that run stylize.py or train.py
in this process."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "udnie.pt"


def write_photo(path: Path, w: int, h: int, seed: int = 0) -> Path:
    pixels = (np.random.default_rng(seed).random((h, w, 3)) * 255).astype("uint8")
    Image.fromarray(pixels).save(path)
    return path


def load_script(name: str) -> ModuleType:
    """A script of the project imported as a module: train.py or stylize.py (the commands
    users run; the tests call their `main`), or one under benchmarks/ ("benchmarks/NAME")."""
    spec = importlib.util.spec_from_file_location(Path(name).name, ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
