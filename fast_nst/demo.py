"""The demo: photos that ship inside scikit-image, stylized by every bundled style, plus one
contact sheet (photos down the side, the styles across).

    python -m fast_nst.demo --output demo        # what `make demo` runs
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from fast_nst import sheet
from fast_nst.errors import FastNSTError, exit_on_user_error
from fast_nst.io import save_image
from fast_nst.stylize import (
    BUNDLED_MODELS,
    Pipeline,
    StylizeOptions,
    bundled_models,
    load_model,
    target_size,
)

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")  # in skimage.data, no download


def sample_photos(names: tuple[str, ...] = PHOTOS, size: int = 512) -> dict[str, np.ndarray]:
    """scikit-image's sample photos as (H, W, 3) uint8, long side `size`."""
    from skimage import data

    photos = {}
    for name in names:
        image = Image.fromarray(getattr(data, name)()).convert("RGB")
        photos[name] = np.asarray(image.resize(target_size(*image.size, size=size),
                                               Image.Resampling.LANCZOS))
    return photos


def run_demo(output: Path, models: dict[str, Path], photos: dict[str, np.ndarray],
             cell: int = 256, progress: bool = True) -> Path:
    """Write <photo>_<style>.jpg for every pair and contact_sheet.png; returns the sheet."""
    output.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[Image.Image]] = {name: [Image.fromarray(p)] for name, p in photos.items()}
    bar = tqdm(total=len(models) * len(photos), desc="demo", unit="img", disable=not progress)
    for style, path in models.items():
        pipeline = Pipeline(load_model(path), StylizeOptions(progress=False))
        for name, pixels in photos.items():
            result = Image.fromarray(pipeline.pixels(pixels))
            save_image(result, output / f"{name}_{style}.jpg")
            rows[name].append(result)
            bar.update()
    bar.close()
    return sheet.save(sheet.grid(list(rows.values()), list(rows), ["photo", *models],
                                 cell=(cell, cell)), output / "contact_sheet.png")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--output", "-o", default="demo", help="folder for the results (default demo)")
    p.add_argument("--models", default=str(BUNDLED_MODELS),
                   help="folder of .pt models (default: the bundled models/)")
    p.add_argument("--size", type=int, default=512, help="long side of the photos in px")
    p.add_argument("--cell", type=int, default=256, help="contact sheet cell size in px")
    p.add_argument("--no-progress", action="store_true")
    return p


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.size < 16:
        raise FastNSTError(f"--size must be at least 16 px, got {args.size}")
    models = bundled_models(Path(args.models))
    path = run_demo(Path(args.output), models, sample_photos(size=args.size), args.cell,
                    progress=not args.no_progress)
    print(f"wrote {len(models)} styles x {len(PHOTOS)} photos to {args.output}/ and {path}")


if __name__ == "__main__":
    main()
