"""fast_nst.training.photos: a dataset image cell decoded to an upright RGB image."""

from __future__ import annotations

from PIL import Image

from fast_nst.training.photos import decode_image


def test_decode_applies_exif_rotation_and_rgb(tmp_path) -> None:
    image = Image.new("RGBA", (30, 20), (255, 0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    image.convert("RGB").save(tmp_path / "rotated.jpg", exif=exif)
    image.save(tmp_path / "transparent.png")
    assert decode_image({"path": str(tmp_path / "rotated.jpg"), "bytes": None}).size == (20, 30)
    white = decode_image((tmp_path / "transparent.png").read_bytes())
    assert white.mode == "RGB" and white.getpixel((0, 0)) == (255, 255, 255)
