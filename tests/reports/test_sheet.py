"""fast_nst.reports.sheet: labelled contact sheets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from fast_nst.reports.sheet import grid


def test_sheet_grid_labels_and_atomic_save(tmp_path: Path) -> None:
    red = Image.new("RGB", (20, 10), (255, 0, 0))
    sheet = grid([[red, torch.zeros(3, 10, 10)], [None, red]], ["row one", "row two"],
                 ["a", "b"], cell=40, title="title", path=tmp_path / "sheet.png")
    assert Image.open(tmp_path / "sheet.png").size == sheet.size
    assert sheet.width > 2 * 40 and sheet.height > 2 * 40
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.png"]  # no temporary left
    pixels = sheet.convert("RGB").getcolors(1 << 16)
    assert any(colour == (255, 0, 0) for _, colour in pixels)
    with pytest.raises(ValueError, match="labels"):
        grid([[red]], ["one", "two"])
