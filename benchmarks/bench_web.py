"""Time the web page's jobs (the code its buttons call, without the browser) on this machine.

    python benchmarks/bench_web.py            # from the repo root; about 2 minutes on 2 cores

A bundled network on scikit-image's cat at 512 to 2048 px (one warm-up call first), then a
24-frame 512 x 288 clip through the video path. Prints one line per case.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image
from skimage import data

from fast_nst.model.files import bundled_models
from fast_nst.web.jobs import ModelCache, request_options, stylize_clip, stylize_photo

SIZES = ((512, 341), (1024, 683), (2048, 1365))


def write_clip(path: Path, cat: Image.Image, frames: int = 24) -> Path:
    """A pan across the cat, H.264 at 24 fps."""
    base = np.asarray(cat.resize((512 + frames, 288)))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 512, 288, "yuv420p"
        for i in range(frames):
            frame = np.ascontiguousarray(base[:, i:i + 512])
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return path


def main(style: str = "udnie") -> None:
    tmp = Path(tempfile.mkdtemp())
    cat = Image.fromarray(data.chelsea())
    model, cache = bundled_models()[style], ModelCache()
    options = request_options("original", 1.0, False)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{torch.backends.cpu.get_cpu_capability()}, "
          f"bf16 {torch.ops.mkldnn._is_mkldnn_bf16_supported()}, precision {options.precision}")
    for i, (w, h) in enumerate(SIZES):
        photo = tmp / f"cat{w}.png"
        cat.resize((w, h), Image.Resampling.LANCZOS).save(photo)
        if i == 0:
            stylize_photo(cache, model, photo, options, tmp)  # warm-up
        start = time.perf_counter()
        stylize_photo(cache, model, photo, options, tmp)
        seconds = time.perf_counter() - start
        print(f"photo {w}x{h}: {seconds:.2f} s ({w * h / 1e6 / seconds:.2f} megapixels/s)")
    clip = write_clip(tmp / "clip.mp4", cat)
    start = time.perf_counter()
    stylize_clip(cache, model, clip, options, tmp)
    seconds = time.perf_counter() - start
    print(f"clip 24 frames 512x288: {seconds:.1f} s ({24 / seconds:.2f} frames/s)")


if __name__ == "__main__":
    main()
