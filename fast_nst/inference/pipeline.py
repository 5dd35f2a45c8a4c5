"""The stylize command: options, a `Pipeline` (model + options: pixels in, stylized pixels out,
tiled when large), batching, and `stylize_paths`, which runs images then videos.

`stylize.py` parses flags and calls `stylize_paths` or `fast_nst.inference.export.export_file`.
"""

from __future__ import annotations

import functools
import logging
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm.auto import tqdm

from fast_nst.core.images import MAX_PIXELS, save_image
from fast_nst.core.sizes import load_pixels, target_size
from fast_nst.core.video import probe, stylize_video
from fast_nst.device import pick_device
from fast_nst.errors import FastNSTError
from fast_nst.inference.aot import History
from fast_nst.inference.cores import map_across_cores, worth_spreading
from fast_nst.inference.fast_path import FastPath, choose_fast_path
from fast_nst.inference.jobs import DEFAULT_PATTERN, Job, plan_jobs
from fast_nst.inference.runtime import Shape, Stylizer, finish
from fast_nst.inference.tiling import (
    check_tiling,
    frozen_norms,
    global_norm_stats,
    instance_norms,
    stylize_tiled,
    tile_starts,
    to_float,
    to_u8,
)
from fast_nst.model.files import StyleModel, load_model

log = logging.getLogger(__name__)
Batches = list[list[Job]]  # same-size images, one forward call each


# Automatic batch size (StylizeOptions.batch_for), measured on 2 cores of an AMD EPYC Zen 5:
# per image, batches of 128 px images run fastest with 4-8 per call, 256 px with 1-2, 384 px
# and larger with 1, in float32 and bf16 alike.
CPU_BATCH_PIXELS = 2**17
CPU_BATCH_MAX = 8
GPU_BATCH = 4


@dataclass
class StylizeOptions:
    """Everything `stylize.py` exposes besides the model, inputs and output."""

    size: int | None = None
    scale: float | None = None
    preserve_color: bool = False
    strength: float = 1.0
    tile: int | None = None  # None: tile only images above auto_tile_pixels
    overlap: int | None = None  # None: 128 px, at most a quarter of the tile
    tile_stats: str = "tile"  # tile: each tile's own norm statistics; global: whole image's
    auto_tile_pixels: int = 2560 * 1600
    auto_tile: int = 768
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 where the hardware runs it natively, else fp32
    channels_last: bool | None = None  # None: with bf16/fp16
    compile: bool | None = None  # None: for the shapes whose work repays a compile
    batch_size: int | None = None  # None: automatic (see batch_for)
    workers: int | None = None  # images in flight on a CPU (None: automatic, see cores)
    max_pixels: int | None = MAX_PIXELS  # larger images are refused (0 or None: no limit)
    pattern: str = DEFAULT_PATTERN
    recursive: bool = False
    overwrite: bool = False
    progress: bool = True

    def overlap_for(self, tile: int) -> int:
        return self.overlap if self.overlap is not None else min(128, tile // 4)

    def tile_for(self, height: int, width: int) -> int | None:
        if self.tile is not None:
            return self.tile if max(height, width) > self.tile else None
        return self.auto_tile if height * width > self.auto_tile_pixels else None

    def batch_for(self, height: int, width: int) -> int:
        """Same-size images per forward call. Automatic: on a CPU, as many as make about
        CPU_BATCH_PIXELS (one 512 px image per call is 1.4-1.7x faster per image than four:
        the activations of one stay in the caches; docs/speed.md); on a GPU, GPU_BATCH."""
        if self.batch_size is not None:
            return self.batch_size
        if pick_device(self.device).type != "cpu":
            return GPU_BATCH
        return max(1, min(CPU_BATCH_MAX, CPU_BATCH_PIXELS // (height * width)))

    def validate(self) -> StylizeOptions:
        if not 0.0 <= self.strength <= 1.0:
            raise FastNSTError(f"--strength must be between 0 and 1, got {self.strength}")
        if self.batch_size is not None and self.batch_size < 1:
            raise FastNSTError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.workers is not None and self.workers < 1:
            raise FastNSTError(f"--workers must be at least 1, got {self.workers}")
        if self.max_pixels is not None and self.max_pixels < 0:
            raise FastNSTError(f"--max-pixels must be >= 0 (0: no limit), got {self.max_pixels}")
        target_size(8, 8, size=self.size, scale=self.scale)
        if self.tile is not None:
            check_tiling(self.tile, self.overlap_for(self.tile))
        if self.tile_stats not in ("tile", "global"):
            raise FastNSTError(f"--tile-stats must be tile or global, got {self.tile_stats!r}")
        return self


class Pipeline:
    """A loaded model plus options: turns pixels into stylized pixels (tiled when large).

    `work` ({(batch, height, width): forward calls}, see `plan_work`) lets the automatic
    choices compile exactly the shapes whose work repays it."""

    def __init__(self, model: StyleModel, options: StylizeOptions,
                 work: Counter[Shape] | None = None) -> None:
        self.model, self.options = model, options.validate()
        o, device = self.options, pick_device(options.device)
        history = History(model.net) if work and device.type == "cpu" else None
        self.path: FastPath = choose_fast_path(
            device, precision=o.precision, channels_last=o.channels_last, compile=o.compile,
            work=work or Counter(), history=history)
        self.stylizer = Stylizer(model.net, device=str(device), precision=self.path.precision,
                                 channels_last=self.path.channels_last,
                                 compile=self.path.compile, compile_shapes=self.path.shapes,
                                 digest=history.digest if history is not None else None)
        if history is not None:
            history.record(work, self.path)

    def post(self, stylized: Tensor, content: Tensor) -> Tensor:
        o = self.options
        return finish(stylized, content, preserve_color=o.preserve_color, strength=o.strength)

    def tile_for(self, height: int, width: int) -> int | None:
        return self.options.tile_for(height, width)

    def pixels(self, pixels: np.ndarray, progress: bool = False) -> np.ndarray:
        """(H, W, 3) uint8 -> stylized (H, W, 3) uint8."""
        tile = self.tile_for(*pixels.shape[:2])
        if tile is None:
            return self.batch([pixels])[0]
        overlap, norms = self.options.overlap_for(tile), instance_norms(self.stylizer.net)
        if self.options.tile_stats == "tile" or not norms:
            return stylize_tiled(self.stylizer, pixels, tile=tile, overlap=overlap,
                                 post=self.post, progress=progress)
        stats = global_norm_stats(self.stylizer, pixels, tile=tile, overlap=overlap,
                                  progress=progress)
        with frozen_norms(norms, stats):
            return stylize_tiled(self.stylizer.eager, pixels, tile=tile, overlap=overlap,
                                 post=self.post, progress=progress)

    def batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Same-size (H, W, 3) uint8 images in one forward pass."""
        content = torch.cat([to_float(p) for p in images])
        result = self.post(self.stylizer(content), content)
        return [to_u8(result[i:i + 1]) for i in range(len(images))]

    def frame(self, frame: Tensor) -> Tensor:
        """Video frame callback: (1, 3, H, W) float 0..1 -> stylized, same shape."""
        return to_float(self.pixels(to_u8(frame)))


def _batches(jobs: list[Job], o: StylizeOptions) -> Iterator[list[Job]]:
    """Group same-size images (by header, after --size/--scale) into batches; large ones alone."""
    keyed = []
    for job in jobs:
        w, h = target_size(*job.size, size=o.size, scale=o.scale)
        size = o.batch_for(h, w)
        alone = o.tile_for(h, w) is not None or size == 1
        keyed.append(((h, w, size) if not alone else (-1, id(job), 1), job))
    keyed.sort(key=lambda kj: kj[0])
    batch: list[Job] = []
    last = None
    for key, job in keyed:
        if batch and (key != last or len(batch) == key[2]):
            yield batch
            batch = []
        batch.append(job)
        last = key
    if batch:
        yield batch


def _stylize_batch(batch: list[Job], pipeline: Pipeline, progress: bool) -> list[Path]:
    """Read, stylize and write one batch of same-size images."""
    o = pipeline.options
    pixels = [load_pixels(j.src, size=o.size, scale=o.scale, max_pixels=o.max_pixels)
              for j in batch]
    if len({p.shape for p in pixels}) > 1:  # header lied (rare): fall back to one by one
        results = [pipeline.pixels(p) for p in pixels]
    elif len(batch) == 1:
        results = [pipeline.pixels(pixels[0], progress=progress)]
    else:
        results = pipeline.batch(pixels)
    return [save_image(Image.fromarray(result), job.dst)
            for job, result in zip(batch, results, strict=True)]


def _spread(batches: Batches, pipeline: Pipeline) -> tuple[Batches, Batches, int]:
    """The batches that run one per core (eager CPU calls of untiled images, when there are
    enough of them: `cores.worth_spreading`, or `--workers`), the others (one at a time on
    every core), and how many workers run the first."""
    o = pipeline.options
    cpu = pipeline.stylizer.device.type == "cpu"
    spread: Batches = []
    rest: Batches = []
    largest = 0
    for batch in batches:
        w, h = target_size(*batch[0].size, size=o.size, scale=o.scale)
        if cpu and o.tile_for(h, w) is None and not pipeline.stylizer.compiles((len(batch), h, w)):
            spread.append(batch)
            largest = max(largest, len(batch) * h * w)
        else:
            rest.append(batch)
    workers = worth_spreading(len(spread), largest) if o.workers is None else \
        min(o.workers, len(spread))
    if o.workers is not None and o.workers > 1 and workers < 2:
        log.info("stylize: --workers %d not used: it spreads eager, untiled CPU calls, and %d "
                 "batch(es) here are such", o.workers, len(spread))
    return (spread, rest, workers) if workers > 1 else ([], batches, 1)


def stylize_images(jobs: list[Job], pipeline: Pipeline) -> list[Path]:
    """Stylize and write every job, batched by size, one image per core where that pays."""
    o = pipeline.options
    batches = list(_batches(jobs, o))
    spread, rest, workers = _spread(batches, pipeline)
    if workers > 1:
        log.info("stylize: %d images one per core (%d workers)", sum(map(len, spread)), workers)
    written: list[Path] = []
    bar = tqdm(total=len(jobs), desc="images", unit="img", disable=not o.progress or len(jobs) < 2)
    quiet = functools.partial(_stylize_batch, pipeline=pipeline, progress=False)
    across = map_across_cores(quiet, spread, workers)
    for paths in chain(across, (_stylize_batch(b, pipeline, o.progress) for b in rest)):
        written.extend(paths)
        bar.update(len(paths))
    bar.close()
    return written


def _add_work(work: Counter[Shape], o: StylizeOptions, width: int, height: int, batch: int,
              times: int) -> None:
    """Count the forward calls an image (or a video frame, `times` over) will make."""
    w, h = target_size(width, height, size=o.size, scale=o.scale)
    tile = o.tile_for(h, w)
    if tile is None:
        work[batch, h, w] += times
    elif o.tile_stats == "tile":  # global statistics run eager
        overlap, th, tw = o.overlap_for(tile), min(tile, h), min(tile, w)
        tiles = len(tile_starts(h, th, overlap)) * len(tile_starts(w, tw, overlap))
        work[1, th, tw] += tiles * times


def plan_work(jobs: list[Job], options: StylizeOptions) -> Counter[Shape]:
    """{(batch, height, width): forward calls} that stylizing `jobs` will make: batches of
    images, tiles and video frames (a frame count the header does not give counts as none)."""
    work: Counter[Shape] = Counter()
    for batch in _batches([j for j in jobs if not j.video], options):
        _add_work(work, options, *batch[0].size, len(batch), 1)
    for job in (j for j in jobs if j.video):
        info = probe(job.src)
        _add_work(work, options, info.width, info.height, 1, info.frames or 0)
    return work


def stylize_paths(model: str | os.PathLike | StyleModel, inputs: Sequence[str | os.PathLike],
                  output: str | os.PathLike, options: StylizeOptions | None = None) -> list[Path]:
    """The whole command: load the model, plan every output, stylize images then videos."""
    options = (options or StylizeOptions()).validate()
    if not isinstance(model, StyleModel):
        model = load_model(model)
    jobs = plan_jobs(inputs, output, style=model.style, pattern=options.pattern,
                     recursive=options.recursive, overwrite=options.overwrite,
                     max_pixels=options.max_pixels)
    pipeline = Pipeline(model, options, plan_work(jobs, options))
    if pipeline.path.warning:
        log.warning(pipeline.path.warning)
    log.info("stylize: %s", pipeline.path.describe())
    written = stylize_images([j for j in jobs if not j.video], pipeline)
    for job in (j for j in jobs if j.video):
        stylize_video(job.src, job.dst, pipeline.frame, size=options.size, scale=options.scale,
                      progress=options.progress)
        written.append(job.dst)
    return written
