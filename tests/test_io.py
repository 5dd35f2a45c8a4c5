from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fast_nst import FastNSTError
from fast_nst.io import load_image, resize, save_image

RED = (200, 30, 40)


def _pixel(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(round(v * 255) for v in t[0, :, 0, 0].tolist())


@pytest.mark.parametrize(
    "mode, make, expected",
    [
        ("RGB", lambda: Image.new("RGB", (5, 3), RED), RED),
        ("L", lambda: Image.new("L", (5, 3), 77), (77, 77, 77)),
        ("LA", lambda: Image.new("LA", (5, 3), (77, 255)), (77, 77, 77)),
        ("P", lambda: Image.new("RGB", (5, 3), RED).quantize(4), RED),
        ("RGBA", lambda: Image.new("RGBA", (5, 3), (*RED, 255)), RED),
        ("RGBA-clear", lambda: Image.new("RGBA", (5, 3), (*RED, 0)), (255, 255, 255)),
        ("CMYK", lambda: Image.new("CMYK", (5, 3), (0, 255, 255, 0)), (255, 0, 0)),
        ("I;16", lambda: Image.fromarray(np.full((3, 5), 65535, np.uint16)), (255, 255, 255)),
    ],
)
def test_every_mode_loads_as_rgb(tmp_path, mode, make, expected) -> None:
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    make().save(path)
    image = load_image(path)
    assert image.shape == (1, 3, 3, 5) and image.dtype == torch.float32
    assert _pixel(image) == pytest.approx(expected, abs=2)


def test_exif_orientation_is_applied(tmp_path) -> None:
    img = Image.new("RGB", (6, 4), RED)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif)
    assert load_image(path).shape == (1, 3, 6, 4)


def test_png_round_trip_is_exact_and_clamped(tmp_path) -> None:
    image = torch.randint(0, 256, (1, 3, 7, 9)).float() / 255
    path = save_image(image, tmp_path / "out.png")
    torch.testing.assert_close(load_image(path), image)
    save_image(image * 3 - 1, tmp_path / "clamped.png")
    loaded = load_image(tmp_path / "clamped.png")
    assert loaded.min() >= 0 and loaded.max() <= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clamped.png", "out.png"]


def test_resize_modes() -> None:
    x = torch.rand(1, 3, 40, 80)
    assert resize(x, long_side=20).shape[-2:] == (10, 20)
    assert resize(x, short_side=20).shape[-2:] == (20, 40)
    assert resize(x, scale=0.5).shape[-2:] == (20, 40)
    assert resize(x, size=(7, 9)).shape[-2:] == (7, 9)
    assert resize(x) is x
    with pytest.raises(FastNSTError, match="only one"):
        resize(x, long_side=3, scale=2.0)


def test_load_with_long_side(tmp_path) -> None:
    Image.new("RGB", (50, 20), RED).save(tmp_path / "a.png")
    assert load_image(tmp_path / "a.png", long_side=25).shape == (1, 3, 10, 25)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(FastNSTError, match=r"image not found: .*nope\.jpg"):
        load_image(tmp_path / "nope.jpg")


def test_folder_is_not_an_image(tmp_path) -> None:
    with pytest.raises(FastNSTError, match="is a folder"):
        load_image(tmp_path)


def test_non_image(tmp_path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("just text")
    with pytest.raises(FastNSTError, match=r"notes\.jpg is not an image"):
        load_image(path)


def test_truncated_image(tmp_path) -> None:
    full = tmp_path / "full.jpg"
    Image.fromarray(np.random.randint(0, 255, (64, 64, 3), np.uint8)).save(full)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(full.read_bytes()[:600])
    with pytest.raises(FastNSTError, match=r"cut\.jpg is truncated or corrupt"):
        load_image(cut)


def test_unsupported_extension_and_missing_folder(tmp_path) -> None:
    image = torch.rand(1, 3, 4, 4)
    with pytest.raises(FastNSTError, match="extension '.xyz'"):
        save_image(image, tmp_path / "out.xyz")
    with pytest.raises(FastNSTError, match="output folder does not exist"):
        save_image(image, tmp_path / "missing" / "out.png")


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch) -> None:
    def broken_save(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_image(torch.rand(1, 3, 4, 4), tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []
