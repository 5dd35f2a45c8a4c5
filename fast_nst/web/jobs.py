"""What the web page (`fast_nst.web.app`) runs, without Gradio: a model cache, one photo, one
clip, several styles at once, style thumbnails.

Built on what stylize.py uses (`load_model`, `Pipeline`, `StylizeOptions`), so the page and the
command give the same pixels; files in, files out, one-line `FastNSTError`s for bad input.
"""

from __future__ import annotations

import copy
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import astuple, dataclass, replace
from pathlib import Path

from PIL import Image

from fast_nst.core.images import image_header, save_image
from fast_nst.core.sizes import load_pixels, target_size
from fast_nst.core.video import READ_EXTENSIONS, is_video, probe, stylize_video
from fast_nst.errors import FastNSTError
from fast_nst.inference.jobs import safe_name
from fast_nst.inference.pipeline import Pipeline, StylizeOptions
from fast_nst.model.files import StyleModel, load_model
from fast_nst.reports import sheet
from fast_nst.studies.demo import sample_photos

# Output size choices on the page: label -> long side in px (None: the input's own size).
SIZES: dict[str, int | None] = {"original": None, "256 px": 256, "512 px": 512,
                                "1024 px": 1024, "2048 px": 2048}


@dataclass(frozen=True)
class Limits:
    """What one request may ask for (a 2-core CPU does about 0.2 megapixels a second)."""

    max_frames: int = 300  # frames per clip (10 s at 30 fps)
    max_megapixels: float = 36.0  # output photo size; larger ones go through tiles
    upload_mb: int = 200
    sheet_size: int = 256  # long side of each picture in the several-styles sheet

    def check_pixels(self, width: int, height: int) -> None:
        if width * height > self.max_megapixels * 1e6:
            raise FastNSTError(f"a {width}x{height} result is {width * height / 1e6:.0f} "
                               f"megapixels; the limit here is {self.max_megapixels:g}; "
                               "pick a smaller output size")

    def check_frames(self, frames: int) -> None:
        if frames > self.max_frames:
            raise FastNSTError(f"the clip has more than {self.max_frames} frames (the limit "
                               "here); trim it or use stylize.py, which has no limit")


# Options the page changes per request; they only steer Pipeline's pre- and post-processing.
PAGE_CONTROLS = dict(size=None, strength=1.0, preserve_color=False)


class ModelCache:
    """Each model file loaded once and kept (keyed by path, size and modification time), and a
    `Pipeline` per model and options, so repeated requests never reload a network."""

    def __init__(self, max_models: int = 8, max_pipelines: int = 16) -> None:
        self.max_models, self.max_pipelines = max_models, max_pipelines
        self.loads = 0  # load_model calls so far: a repeated request must not raise it
        self._models: OrderedDict[tuple, StyleModel] = OrderedDict()
        self._pipelines: OrderedDict[tuple, Pipeline] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(path: Path) -> tuple:
        try:
            stat = path.stat()
        except OSError:
            return (str(path),)  # load_model reports the missing file
        return (str(path.resolve()), stat.st_size, stat.st_mtime_ns)

    def model(self, path: str | os.PathLike) -> StyleModel:
        key = self._key(Path(path))
        with self._lock:
            if key not in self._models:
                self._models[key] = load_model(path)
                self.loads += 1
            self._models.move_to_end(key)
            while len(self._models) > self.max_models:
                self._models.popitem(last=False)
            return self._models[key]

    def pipeline(self, path: str | os.PathLike, options: StylizeOptions) -> Pipeline:
        """A Pipeline with `options`, sharing one network on its device (and its compiled
        graph, if any) with every request that differs only in the page's controls."""
        model = self.model(path)
        runtime = replace(options, **PAGE_CONTROLS)  # what the Stylizer is built from
        key = (self._key(Path(path)), astuple(runtime))
        with self._lock:
            if key not in self._pipelines:
                self._pipelines[key] = Pipeline(model, runtime)
            self._pipelines.move_to_end(key)
            while len(self._pipelines) > self.max_pipelines:
                self._pipelines.popitem(last=False)
            view = copy.copy(self._pipelines[key])
        view.options = options.validate()
        return view


def request_options(size: str, strength: float, preserve_color: bool) -> StylizeOptions:
    """The page's controls as StylizeOptions; everything else keeps stylize.py's defaults."""
    if size not in SIZES:
        raise FastNSTError(f"unknown output size {size!r}; pick one of {', '.join(SIZES)}")
    return StylizeOptions(size=SIZES[size], strength=float(strength),
                          preserve_color=bool(preserve_color), progress=False).validate()


def _result_path(folder: Path, src: Path, style: str, ext: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(dir=folder))  # one folder per request: names never clash
    return fresh / f"{safe_name(src.stem)}_{safe_name(style)}{ext}"


def photo_size(photo: Path, size: int | None) -> tuple[int, int]:
    """(width, height) the result will have; one-line errors for files that are no image."""
    try:
        return target_size(*image_header(photo), size=size)
    except Image.DecompressionBombError:
        raise FastNSTError(f"{photo} has too many pixels to open safely") from None


def stylize_photo(cache: ModelCache, model: Path, photo: Path, options: StylizeOptions,
                  folder: Path, limits: Limits = Limits(), progress: bool = False) -> Path:
    """One photo the way stylize.py does it (tiled above its 4-megapixel threshold); returns
    the full-resolution result file (.jpg for JPEG inputs, else .png)."""
    limits.check_pixels(*photo_size(photo, options.size))
    pipeline = cache.pipeline(model, options)
    result = pipeline.pixels(load_pixels(photo, size=options.size), progress=progress)
    ext = ".jpg" if photo.suffix.lower() in (".jpg", ".jpeg") else ".png"
    dst = _result_path(folder, photo, pipeline.model.style, ext)
    return save_image(Image.fromarray(result), dst)


def stylize_clip(cache: ModelCache, model: Path, clip: Path, options: StylizeOptions,
                 folder: Path, limits: Limits = Limits(),
                 on_frame: Callable[[int, int | None], None] | None = None) -> Path:
    """A short clip through `fast_nst.core.video.stylize_video` (audio kept) to an .mp4;
    `on_frame(done, total)` reports progress. Longer clips than the limit are refused."""
    if not is_video(clip):
        raise FastNSTError(f"{clip} is not a video clip ({' '.join(READ_EXTENSIONS)})")
    info = probe(clip)
    if info.frames:
        limits.check_frames(info.frames)
    pipeline = cache.pipeline(model, options)
    done = 0

    def frame(x):
        nonlocal done
        done += 1
        limits.check_frames(done)  # headers may not say how long a clip is
        if on_frame is not None:
            on_frame(done, info.frames)
        return pipeline.frame(x)

    dst = _result_path(folder, clip, pipeline.model.style, ".mp4")
    stylize_video(clip, dst, frame, size=options.size, progress=False)
    return dst


def style_sheet(cache: ModelCache, models: dict[str, Path], photo: Path,
                options: StylizeOptions, folder: Path, limits: Limits = Limits()) -> Path:
    """The photo and its result under every style in `models`, side by side, small."""
    if not models:
        raise FastNSTError("no styles to compare")
    options = replace(options, size=limits.sheet_size)
    photo_size(photo, None)  # one-line error before any work
    pixels = load_pixels(photo, size=options.size)
    cells = [Image.fromarray(pixels)]
    cells += [Image.fromarray(cache.pipeline(path, options).pixels(pixels))
              for path in models.values()]
    dst = _result_path(folder, photo, "styles", ".png")
    sheet.grid([cells], None, ["photo", *models], font_size=14, path=dst)
    return dst


def thumbnails(cache: ModelCache, models: dict[str, Path], folder: Path,
               size: int = 160) -> list[tuple[str, str]]:
    """(image file, style) for each model: its result on scikit-image's cat photo.

    Makes every bundled model load once at start, so the first request is as fast as the rest.
    """

    pixels = sample_photos(("chelsea",), size=size)["chelsea"]
    folder.mkdir(parents=True, exist_ok=True)
    shown = []
    for style, path in models.items():
        result = cache.pipeline(path, StylizeOptions(progress=False)).pixels(pixels)
        shown.append((str(save_image(Image.fromarray(result), folder / f"{style}.jpg")), style))
    return shown

