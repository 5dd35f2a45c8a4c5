"""fast_nst.core.images: reading any image as RGB, EXIF, resizing, the pixel limit, atomic
writes and stale temporaries."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import stylize as stylize_app
from fast_nst import FastNSTError
from fast_nst.core.images import (
    image_header,
    load_image,
    open_image,
    resize,
    save_image,
    to_pil,
)
from tests.app_helpers import MODEL, write_photo

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


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_exif_orientation_is_applied(tmp_path, suffix) -> None:
    img = Image.new("RGB", (6, 4), RED)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    path = tmp_path / f"rotated{suffix}"
    img.save(path, exif=exif)
    assert load_image(path).shape == (1, 3, 6, 4)
    assert image_header(path) == (4, 6)  # the planned size is the decoded one


def test_png_header_refuses_truncated_and_damaged_files(tmp_path) -> None:
    full = tmp_path / "full.png"
    Image.fromarray(np.random.randint(0, 255, (64, 48, 3), np.uint8)).save(full)
    data = full.read_bytes()
    assert image_header(full) == (48, 64)
    (tmp_path / "cut.png").write_bytes(data[:400])
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF  # one bit pattern inside the pixel data
    (tmp_path / "flipped.png").write_bytes(bytes(flipped))
    for name in ("cut", "flipped"):
        with pytest.raises(FastNSTError, match=rf"{name}[.]png is truncated or corrupt"):
            image_header(tmp_path / f"{name}.png")


def test_png_header_does_not_decode_the_pixels(tmp_path, monkeypatch) -> None:
    # decoding a PNG is what made reading sizes slow: make it fail, and read the header
    from PIL import PngImagePlugin

    path = save_image(torch.rand(1, 3, 40, 30), tmp_path / "photo.png")
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load",
                        lambda self: (_ for _ in ()).throw(AssertionError("decoded")))
    assert image_header(path) == (30, 40)


def test_png_round_trip_is_exact_and_clamped(tmp_path) -> None:
    image = torch.randint(0, 256, (1, 3, 7, 9)).float() / 255
    path = save_image(image, tmp_path / "out.png")
    torch.testing.assert_close(load_image(path), image)
    save_image(image * 3 - 1, tmp_path / "clamped.png")
    loaded = load_image(tmp_path / "clamped.png")
    torch.testing.assert_close(loaded, (image * 3 - 1).clamp(0, 1), atol=0.5 / 255, rtol=0)
    half_levels = torch.tensor([0.2, 100.6, 254.7]).div(255).view(1, 1, 1, 3).expand(1, 3, 1, 3)
    rounded = load_image(save_image(half_levels, tmp_path / "rounded.png")) * 255
    assert rounded[0, 0, 0].tolist() == [0, 101, 255]  # nearest level, not truncated
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clamped.png", "out.png", "rounded.png"]


def test_png_is_written_with_fast_compression_unless_asked(tmp_path) -> None:
    # a smooth gradient compresses differently at zlib levels 1 and 9: the size tells the level
    ramp = torch.linspace(0, 1, 64 * 64).view(1, 1, 64, 64).expand(1, 3, 64, 64)
    pil = to_pil(ramp)
    sizes = {}
    for level in (1, 9):
        pil.save(tmp_path / f"level{level}.png", compress_level=level)
        sizes[level] = (tmp_path / f"level{level}.png").stat().st_size
    assert sizes[1] != sizes[9]
    assert save_image(ramp, tmp_path / "default.png").stat().st_size == sizes[1]
    asked = save_image(ramp, tmp_path / "asked.png", compress_level=9)
    assert asked.stat().st_size == sizes[9]
    torch.testing.assert_close(load_image(tmp_path / "default.png"), load_image(asked))


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


def test_pixel_limit_refuses_and_can_be_lifted(tmp_path, monkeypatch, capsys) -> None:
    """Pillow's own bomb check (here shrunk to 2,000 px) no longer escapes as a traceback:
    the limit is fast_nst's, named in the error, and --max-pixels lifts it."""
    src = write_photo(tmp_path / "p.png", 64, 48)  # 3,072 px
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(FastNSTError, match=r"3,072 pixels\), above the limit of 3,000"):
        open_image(src, max_pixels=3000)
    assert open_image(src, max_pixels=None).size == (64, 48)
    assert Image.MAX_IMAGE_PIXELS == 1000  # restored after each open
    stylize_app.main(["--model", str(MODEL), str(src), "-o", str(tmp_path / "a.png"),
                      "--max-pixels", "0"])
    stylize_app.main(["--model", str(MODEL), str(src), "-o", str(tmp_path / "b.png"),
                      "--max-pixels", "3072"])
    monkeypatch.undo()
    assert Image.open(tmp_path / "a.png").size == Image.open(tmp_path / "b.png").size == (64, 48)


def test_stale_temporaries_are_removed_on_the_next_write(tmp_path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = int(gone.stdout)
    stale = tmp_path / f".out.{dead}.abc123.tmp.png"
    running = tmp_path / f".out.{__import__('os').getpid()}.def456.tmp.png"  # a live writer
    other = tmp_path / f".other.{dead}.ghi789.tmp.png"  # another file's temporary
    for path in (stale, running, other):
        path.write_bytes(b"half written")
    save_image(torch.rand(1, 3, 8, 8), tmp_path / "out.png")
    assert not stale.exists() and running.exists() and other.exists()
    assert (tmp_path / "out.png").is_file()
