"""What the web page runs (fast_nst.web.jobs): same pixels as stylize.py, limits, one-line
errors, one load per model."""

from __future__ import annotations

import os
import shutil

import av
import numpy as np
import pytest
from PIL import Image

from fast_nst import FastNSTError
from fast_nst.inference.pipeline import stylize_paths
from fast_nst.web.jobs import (
    Limits,
    ModelCache,
    request_options,
    style_sheet,
    stylize_clip,
    stylize_photo,
)
from tests.core.test_video import make_clip
from tests.web.helpers import JUNK_MODEL, MODELS, STYLE, cat_photo, pixels


def test_cache_loads_each_model_once_and_reloads_a_changed_file(tmp_path) -> None:
    cache = ModelCache()
    model = shutil.copy(MODELS[STYLE], tmp_path / "mine.pt")
    first = cache.pipeline(model, request_options("original", 1.0, False))
    again = cache.pipeline(model, request_options("original", 1.0, False))
    other = cache.pipeline(model, request_options("256 px", 0.5, True))
    assert cache.loads == 1 and again.stylizer is first.stylizer is other.stylizer
    assert (other.options.size, other.options.strength, other.options.preserve_color) == \
        (256, 0.5, True) and first.options.size is None
    cache.model(MODELS["the_scream"])
    assert cache.loads == 2
    os.utime(model, ns=(1, 1))  # a new file under the same name is loaded again
    assert cache.pipeline(model, first.options).stylizer is not first.stylizer
    assert cache.loads == 3


@pytest.mark.parametrize("tiled", [False, True])
def test_photo_gives_the_same_pixels_as_stylize_py(tmp_path, tiled) -> None:
    photo = cat_photo(tmp_path / "cat.png", (120, 80))
    options = request_options("original", 0.8, True)
    if tiled:  # the large-photo path, on a small photo
        options.auto_tile_pixels, options.auto_tile, options.overlap = 1000, 64, 16
    out = stylize_photo(ModelCache(), MODELS[STYLE], photo, options, tmp_path / "web")
    reference = stylize_paths(MODELS[STYLE], [photo], tmp_path / "cli.png", options)[0]
    assert out.name == "cat_udnie.png" and out.parent.parent == tmp_path / "web"
    np.testing.assert_array_equal(pixels(out), pixels(reference))
    assert np.abs(pixels(out) - pixels(photo)).mean() > 10


def test_output_size_and_jpeg_in_jpeg_out(tmp_path) -> None:
    photo = cat_photo(tmp_path / "cat.jpg", (120, 80))
    out = stylize_photo(ModelCache(), MODELS[STYLE], photo, request_options("256 px", 1, False),
                        tmp_path)
    assert out.suffix == ".jpg" and Image.open(out).size == (256, 171)


def test_user_mistakes_are_one_line_errors(tmp_path) -> None:
    photo = cat_photo(tmp_path / "cat.png")
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model, just text\n" * 50)
    fake_clip = tmp_path / "fake.mp4"
    fake_clip.write_text("not a clip")
    cache = ModelCache()
    opts = request_options("original", 1, False)
    cases = [
        (lambda: stylize_photo(cache, MODELS[STYLE], text, opts, tmp_path), "is not an image"),
        (lambda: stylize_photo(cache, junk, photo, opts, tmp_path), JUNK_MODEL),
        (lambda: stylize_photo(cache, MODELS[STYLE], photo, request_options("2048 px", 1, False),
                               tmp_path, Limits(max_megapixels=1)), "the limit here is 1"),
        (lambda: stylize_clip(cache, MODELS[STYLE], photo, opts, tmp_path), "not a video clip"),
        (lambda: stylize_clip(cache, MODELS[STYLE], fake_clip, opts, tmp_path),
         "fake.mp4 is not a video PyAV can read"),
        (lambda: request_options("huge", 1, False), "unknown output size"),
        (lambda: request_options("original", 2, False), "--strength must be between 0 and 1"),
    ]
    for call, message in cases:
        with pytest.raises(FastNSTError, match=message) as err:
            call()
        assert "\n" not in str(err.value)
    assert cache.loads == 0  # photo, size and clip are checked before a model is loaded


def test_clip_through_the_video_path_with_progress_and_a_frame_limit(tmp_path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=6)
    seen: list[tuple[int, int | None]] = []
    out = stylize_clip(ModelCache(), MODELS[STYLE], clip, request_options("original", 1, False),
                       tmp_path / "web", on_frame=lambda i, n: seen.append((i, n)))
    assert out.suffix == ".mp4" and [i for i, _ in seen] == [1, 2, 3, 4, 5, 6]
    with av.open(str(out)) as video:
        frames = [f.to_ndarray(format="rgb24") for f in video.decode(video=0)]
        assert len(frames) == 6 and video.streams.audio
    with pytest.raises(FastNSTError, match="more than 4 frames"):
        stylize_clip(ModelCache(), MODELS[STYLE], clip, request_options("original", 1, False),
                     tmp_path / "short", Limits(max_frames=4))
    assert not list((tmp_path / "short").rglob("*.mp4"))  # nothing half-written


def test_several_styles_sheet(tmp_path) -> None:
    photo = cat_photo(tmp_path / "cat.png", (96, 64))
    cache = ModelCache()
    out = style_sheet(cache, MODELS, photo, request_options("original", 1, False), tmp_path,
                      Limits(sheet_size=64))
    sheet = pixels(out)
    assert cache.loads == len(MODELS)
    assert sheet.shape[1] > (len(MODELS) + 1) * 64 and sheet.shape[0] < 2 * 64 + 40
