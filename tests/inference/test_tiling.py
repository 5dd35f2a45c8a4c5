"""fast_nst.inference.tiling: seamless tiles, tiled against untiled, automatic tiling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fast_nst import FastNSTError
from fast_nst.inference.pipeline import Pipeline, StylizeOptions, stylize_paths
from fast_nst.inference.tiling import stylize_tiled
from fast_nst.model.files import StyleModel
from fast_nst.model.network import TransformerNet
from tests.stylize_helpers import QUIET, photo, tiny_net, write_photo


def test_tiling_with_identity_is_exact_and_has_no_seams() -> None:
    pixels = photo(300, 250)
    same = stylize_tiled(lambda x: x, pixels, tile=96, overlap=32)
    assert np.array_equal(same, pixels)  # the feather weights sum to one everywhere
    # Each tile shifted by its own constant (as per-tile instance-norm statistics do):
    # the ramps turn the steps into gradients of at most offset / overlap per pixel.
    shift = lambda x: (x + torch.rand(()) * 0.2).clamp(0, 1)  # noqa: E731
    flat = np.full((300, 250, 3), 100, np.uint8)
    out = stylize_tiled(shift, flat, tile=96, overlap=32).astype(int)
    step = max(np.abs(np.diff(out, axis=0)).max(), np.abs(np.diff(out, axis=1)).max())
    assert step <= 0.2 * 255 / 32 + 1


@pytest.fixture(scope="module")
def untiled_1024() -> tuple[TransformerNet, np.ndarray, np.ndarray]:
    torch.manual_seed(0)
    net = tiny_net(n_residual=1)
    pixels = photo(1024, 1024, seed=3)
    with torch.inference_mode():
        full = net(torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255)
    return net, pixels, full[0].permute(1, 2, 0).numpy() * 255


def _tiled_vs_untiled(untiled_1024, tile_stats: str) -> np.ndarray:
    net, pixels, full = untiled_1024
    pipeline = Pipeline(StyleModel(net, "s", "export", Path("x")),
                        StylizeOptions(**QUIET, tile=640, overlap=128, tile_stats=tile_stats))
    tiled = pipeline.pixels(pixels).astype(float)
    diff = np.abs(full - tiled) / 255
    print(f"tiled ({tile_stats} stats) vs untiled: mean {diff.mean():.4f}, "
          f"p99 {np.quantile(diff, 0.99):.4f}, max {diff.max():.4f}")
    return diff


def test_tiled_matches_untiled_on_a_1024_px_image(untiled_1024) -> None:
    """The stated bounds (docs/stylize.md): half-width random net (seeded), 1024 x 1024
    photo-like input, 640 px tiles (2 x 2), 128 px overlap, as fractions of the 0..1 range.
    Per-tile statistics (default): mean abs difference < 0.06, 99th percentile < 0.2
    (measured 0.036 / 0.14, max 0.40: a slow tone drift, no seams). Whole-image statistics
    (--tile-stats global): mean < 0.005, max < 0.05 (measured 0.001 / 0.010)."""
    diff = _tiled_vs_untiled(untiled_1024, "tile")
    assert diff.mean() < 0.06 and np.quantile(diff, 0.99) < 0.2
    diff = _tiled_vs_untiled(untiled_1024, "global")
    assert diff.mean() < 0.005 and diff.max() < 0.05


def test_large_images_are_tiled_automatically(tmp_path, model_pt) -> None:
    src = write_photo(tmp_path / "big.png", 150, 130)
    opts = StylizeOptions(**QUIET, auto_tile_pixels=100 * 100, auto_tile=64, overlap=16)
    stylize_paths(model_pt, [src], tmp_path / "out.png", opts)
    assert Image.open(tmp_path / "out.png").size == (130, 150)
    with pytest.raises(FastNSTError, match="overlap"):
        StylizeOptions(tile=64, overlap=40).validate()
