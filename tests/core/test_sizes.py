"""fast_nst.core.sizes: --size and --scale."""

from __future__ import annotations

from PIL import Image

from fast_nst.inference.pipeline import StylizeOptions, stylize_paths
from tests.stylize_helpers import QUIET, write_photo


def test_size_and_scale(tmp_path, model_pt) -> None:
    src = write_photo(tmp_path / "in.png", 30, 45)
    stylize_paths(model_pt, [src], tmp_path / "s.png", StylizeOptions(**QUIET, size=27))
    stylize_paths(model_pt, [src], tmp_path / "f.png", StylizeOptions(**QUIET, scale=0.5))
    assert Image.open(tmp_path / "s.png").size == (27, 18)
    assert Image.open(tmp_path / "f.png").size == (22, 15)  # round(22.5) banker's -> 22
