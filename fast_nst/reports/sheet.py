"""Labelled contact sheets: a grid of images with row and column labels, written atomically.

Used by the classic experiments (`fast_nst.studies.experiments`) and by the demo; any code that
wants to show "rows x columns" of results calls `grid(...)` and then `save(...)`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from fast_nst.core.images import save_image, to_pil
from fast_nst.errors import FastNSTError

Cell = Image.Image | Tensor | None

BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)


def _font(size: int) -> ImageFont.ImageFont:
    """PIL's built-in font at `size` (Pillow >= 10.1 scales it); no font file needed."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # older Pillow: fixed-size bitmap font
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont) -> tuple[int, int]:
    left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def _as_pil(cell: Cell) -> Image.Image | None:
    if cell is None or isinstance(cell, Image.Image):
        return cell
    return to_pil(cell)


def _fit(image: Image.Image, box: tuple[int, int]) -> Image.Image:
    """Scale to fit inside `box` keeping the aspect ratio (small images are enlarged)."""
    scale = min(box[0] / image.width, box[1] / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS) if size != image.size else image


def grid(
    images: Sequence[Sequence[Cell]],
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    *,
    cell: int | tuple[int, int] | None = None,
    title: str | None = None,
    pad: int = 4,
    font_size: int = 12,
    path: str | os.PathLike | None = None,
) -> Image.Image:
    """Lay out `images[row][col]` (PIL images or (1|3, H, W) tensors in 0..1; None = blank).

    Each image is fitted into a cell of `cell` pixels (width, height; default: the largest
    image), centred. Row labels go on the left, column labels on top, a title above all.
    Labels may contain newlines. With `path`, the sheet is also written there atomically.
    """
    rows = [[_as_pil(c) for c in row] for row in images]
    if not rows or not any(rows):
        raise FastNSTError("a contact sheet needs at least one image")
    n_cols = max(len(r) for r in rows)
    if row_labels is not None and len(row_labels) != len(rows):
        raise ValueError(f"{len(row_labels)} row labels for {len(rows)} rows")
    if col_labels is not None and len(col_labels) != n_cols:
        raise ValueError(f"{len(col_labels)} column labels for {n_cols} columns")
    present = [im for row in rows for im in row if im is not None]
    if cell is None:
        cell_w, cell_h = max(im.width for im in present), max(im.height for im in present)
    else:
        cell_w, cell_h = (cell, cell) if isinstance(cell, int) else cell

    font = _font(font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = max((_text_size(probe, t, font)[0] for t in row_labels or ()), default=0)
    label_h = max((_text_size(probe, t, font)[1] for t in col_labels or ()), default=0)
    left = label_w + 2 * pad if row_labels else 0
    top = label_h + 2 * pad if col_labels else 0
    title_h = _text_size(probe, title, font)[1] + 2 * pad if title else 0

    width = left + n_cols * (cell_w + pad) + pad
    height = title_h + top + len(rows) * (cell_h + pad) + pad
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.multiline_text((pad, pad), title, fill=INK, font=font)
    for j, text in enumerate(col_labels or ()):
        tw, _ = _text_size(draw, text, font)
        x = left + pad + j * (cell_w + pad) + (cell_w - tw) // 2
        draw.multiline_text((x, title_h + pad), text, fill=INK, font=font, align="center")
    for i, row in enumerate(rows):
        y0 = title_h + top + pad + i * (cell_h + pad)
        if row_labels:
            _, th = _text_size(draw, row_labels[i], font)
            draw.multiline_text((pad, y0 + (cell_h - th) // 2), row_labels[i], fill=INK,
                                font=font)
        for j, image in enumerate(row):
            if image is None:
                continue
            fitted = _fit(image, (cell_w, cell_h))
            x = left + pad + j * (cell_w + pad) + (cell_w - fitted.width) // 2
            sheet.paste(fitted, (x, y0 + (cell_h - fitted.height) // 2))
    if path is not None:
        save(sheet, path)
    return sheet


def save(sheet: Image.Image, path: str | os.PathLike) -> Path:
    """Write a sheet atomically (format from the extension); returns the path."""
    return save_image(sheet, path, **({"optimize": True} if str(path).endswith(".png") else {}))
