"""Apply a trained style network in one forward pass: model files, images, folders, large
images (tiled, see `fast_nst.tiling`) and videos (`fast_nst.video`).

`stylize.py` parses flags and calls `stylize_paths` or `fast_nst.export.export_file`.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm.auto import tqdm

from fast_nst.color import transfer_luminance
from fast_nst.device import FastPath, choose_fast_path, pick_device, resolve_precision
from fast_nst.errors import FastNSTError
from fast_nst.io import (
    IMAGE_EXTENSIONS,
    MAX_PIXELS,
    image_header,
    open_image,
    output_format,
    save_image,
)
from fast_nst.safe_load import load_torch_file
from fast_nst.tiling import (
    check_tiling,
    frozen_norms,
    global_norm_stats,
    instance_norms,
    stylize_tiled,
    tile_starts,
    to_float,
    to_u8,
)
from fast_nst.transformer import NetConfig, TransformerNet, is_exported, net_from_export
from fast_nst.video import READ_EXTENSIONS as VIDEO_EXTENSIONS
from fast_nst.video import check_video_output, is_video, probe, stylize_video

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Model files: our exported .pt, a Lightning .ckpt, a pytorch/examples fast_neural_style .pth

MODEL_KINDS = ("export", "checkpoint", "examples")
EXAMPLES_CONFIG = dict(width="full", n_residual=5, norm="instance", upsample="nearest",
                       output="clamp", pixel_scale=255.0)
# Old PyTorch InstanceNorm2d tracked running stats; the examples' .pth files still carry them.
_LEGACY_NORM_KEY = re.compile(r"(^|\.)in\d+\.(running_mean|running_var|num_batches_tracked)$")


@dataclass
class StyleModel:
    """A network ready for inference, with where it came from."""

    net: TransformerNet
    style: str
    kind: str  # one of MODEL_KINDS
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)  # training settings (style, VGG, losses)


def _config_from(values: dict[str, Any]) -> NetConfig:
    known = {f.name for f in fields(NetConfig)}
    return NetConfig(**{k: v for k, v in dict(values).items() if k in known})


def _load_state(net: TransformerNet, state: dict[str, Tensor], path: Path, kind: str) -> None:
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise FastNSTError(f"{path}: weights do not fit the {kind} network ({first[:150]})") \
            from None


def _is_examples_state(payload: Any) -> bool:
    return (isinstance(payload, dict) and all(isinstance(v, Tensor) for v in payload.values())
            and "conv1.conv2d.weight" in payload and "deconv3.conv2d.weight" in payload)


def _from_checkpoint(payload: dict[str, Any], path: Path) -> StyleModel:
    hparams = payload.get("hyper_parameters") or {}
    net = TransformerNet(_config_from(hparams["net"]))
    state = {k[len("net."):]: v for k, v in payload["state_dict"].items() if k.startswith("net.")}
    if not state:
        raise FastNSTError(f"{path}: Lightning checkpoint has no `net.*` weights")
    _load_state(net, state, path, "checkpoint's")
    style = hparams.get("style_name") or path.stem
    return StyleModel(net.eval(), str(style), "checkpoint", path, dict(hparams))


def _from_examples(state: dict[str, Tensor], path: Path) -> StyleModel:
    state = {k: v for k, v in state.items() if not _LEGACY_NORM_KEY.search(k)}
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"res(\d+)\.", k))}
    width = "half" if state["conv1.conv2d.weight"].shape[0] == 16 else "full"
    config = NetConfig(**{**EXAMPLES_CONFIG, "width": width, "n_residual": len(blocks)})
    net = TransformerNet(config)
    _load_state(net, state, path, "fast_neural_style")
    return StyleModel(net.eval(), path.stem, "examples", path)


BUNDLED_MODELS = Path(__file__).resolve().parent.parent / "models"


def bundled_models(folder: str | os.PathLike = BUNDLED_MODELS) -> dict[str, Path]:
    """{style: path} of the models shipped in `folder` (the repo's models/*.pt)."""
    models = {p.stem: p for p in sorted(Path(folder).glob("*.pt"))}
    if not models:
        raise FastNSTError(f"no models in {folder}; train one with "
                           "`python train.py experiment=bundle/starry_night`")
    return models


def load_model(path: str | os.PathLike) -> StyleModel:
    """Detect the model kind (export .pt, Lightning .ckpt, examples .pth) and build the net."""
    path = Path(path)
    payload = load_torch_file(path)
    if is_exported(payload):
        try:
            net = net_from_export(payload)
        except (KeyError, TypeError, RuntimeError) as err:
            raise FastNSTError(f"{path}: damaged fast_nst model file ({err})") from None
        return StyleModel(net, str(payload.get("style") or path.stem), "export", path,
                          dict(payload.get("meta") or {}))
    if (isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict)
            and isinstance(payload.get("hyper_parameters"), dict)
            and "net" in payload["hyper_parameters"]):
        return _from_checkpoint(payload, path)
    if _is_examples_state(payload):
        return _from_examples(payload, path)
    raise FastNSTError(f"{path} is not a style model: expected a fast_nst .pt from train.py, "
                       "a Lightning .ckpt or a pytorch/examples fast_neural_style .pth")


# ---------------------------------------------------------------------------------------------
# Device, precision and the forward pass

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
Shape = tuple[int, int, int]  # (batch, height, width) of a forward call


def check_precision(device: torch.device, precision: str) -> torch.dtype:
    if precision == "auto":
        precision = resolve_precision(precision, device).short
    if precision not in PRECISIONS:
        raise FastNSTError(f"unknown precision {precision!r}; use auto or one of "
                           f"{', '.join(PRECISIONS)}")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise FastNSTError("this GPU has no bf16; use --precision fp16 or fp32")
    return PRECISIONS[precision]


class Float32(torch.nn.Module):
    """Runs `module` in float32 (also under autocast) and casts its output to `out`."""

    def __init__(self, module: torch.nn.Module, out: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.module, self.out = module.float(), out

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return self.module(x.float()).to(self.out)


def low_precision_net(net: TransformerNet, dtype: torch.dtype, cast: bool) -> TransformerNet:
    """A copy of `net` for bf16/fp16 inference whose first convolution and norm stay float32:
    they see the pixels, and bf16's 8-bit mantissa there, amplified by the norm, costs 3-15 dB
    of PSNR against float32 for 5% of the work. `cast`: the other weights in `dtype` and no
    autocast (on a CPU, autocast widens every norm and padding back to float32, and those
    copies cost more than bf16 saves: 2.0x float32 instead of 1.3x); else autocast runs them."""
    first_conv, first_norm = copy.deepcopy(net.conv1), copy.deepcopy(net.in1)
    low = copy.deepcopy(net).to(dtype) if cast else copy.deepcopy(net)
    low.conv1 = Float32(first_conv)
    low.in1 = Float32(first_norm, dtype if cast else torch.float32)
    return low.eval()


class Stylizer:
    """The network on a device at a precision: (B, 3, H, W) 0..1 in, float32 CPU 0..1 out.

    bf16 on a CPU runs a bf16 copy of the network, fp16 and GPUs autocast; either way the first
    convolution and norm stay float32 (see `low_precision_net`);
    `compile` uses torch.compile with weight freezing: the fastest CPU path (see the benchmark).
    Compiled graphs are specialised per input size, so tiles of one size compile once;
    `compile_shapes` limits compiling to those (batch, height, width), the rest run eager.
    """

    def __init__(self, net: TransformerNet, *, device: str = "auto", precision: str = "fp32",
                 channels_last: bool = False, compile: bool = False,
                 compile_shapes: frozenset[Shape] | None = None) -> None:
        self.device = pick_device(device)
        self.dtype = check_precision(self.device, precision)
        self.channels_last = channels_last
        self.compile_shapes = compile_shapes
        net = net.eval().to(self.device)
        self.cast = self.dtype == torch.bfloat16 and self.device.type == "cpu"
        if self.dtype != torch.float32:
            net = low_precision_net(net, self.dtype, self.cast)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.net = net
        self.forward: Callable[[Tensor], Tensor] = net
        if compile:
            self.forward = torch.compile(net, dynamic=False, options={"freezing": True})

    @torch.inference_mode()
    def __call__(self, images: Tensor, eager: bool = False) -> Tensor:
        x = images.to(self.device, torch.float32, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=self.dtype,
                            enabled=self.dtype != torch.float32 and not self.cast):
            compiled = self.compile_shapes is None or (x.shape[0], *x.shape[2:]) in \
                self.compile_shapes
            y = (self.net if eager or not compiled else self.forward)(x)
        return y.float().contiguous().cpu()

    def eager(self, images: Tensor) -> Tensor:
        """Uncompiled forward (for norm layers patched at run time, see `global_norm_stats`)."""
        return self(images, eager=True)


# ---------------------------------------------------------------------------------------------
# Post-processing (pixel-wise, so it can run on any block of rows)


def finish(stylized: Tensor, content: Tensor, *, preserve_color: bool = False,
           strength: float = 1.0) -> Tensor:
    """Colour preservation (content chroma, stylized luminance), then blend toward the content."""
    if preserve_color:
        stylized = transfer_luminance(stylized, content)
    if strength < 1.0:
        stylized = content + strength * (stylized - content)
    return stylized.clamp(0, 1)



# ---------------------------------------------------------------------------------------------
# Sizes


def target_size(width: int, height: int, *, size: int | None = None,
                scale: float | None = None) -> tuple[int, int]:
    """(width, height) after `size` (long side) or `scale`; native when neither is given."""
    if size is not None and scale is not None:
        raise FastNSTError("give --size or --scale, not both")
    if size is not None:
        if size < 1:
            raise FastNSTError(f"--size must be at least 1 px, got {size}")
        f = size / max(width, height)
    elif scale is not None:
        if scale <= 0:
            raise FastNSTError(f"--scale must be positive, got {scale}")
        f = scale
    else:
        return width, height
    return max(1, round(width * f)), max(1, round(height * f))


def load_pixels(path: Path, *, size: int | None = None, scale: float | None = None,
                max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """Image file -> (H, W, 3) uint8 at the requested size (PIL resampling keeps memory low)."""
    image = open_image(path, max_pixels)
    new = target_size(*image.size, size=size, scale=scale)
    if new != image.size:
        image = image.resize(new, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(image)


# ---------------------------------------------------------------------------------------------
# Inputs and outputs

DEFAULT_PATTERN = "{stem}_{style}.{ext}"


@dataclass
class Job:
    """One input file and where its result goes."""

    src: Path
    dst: Path
    video: bool
    size: tuple[int, int] = (0, 0)  # stored (width, height) from the header, for batching


def _supported(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS


def collect_inputs(inputs: Sequence[str | os.PathLike], recursive: bool = False
                   ) -> list[tuple[Path, Path]]:
    """Expand folders into (file, folder it was found under) pairs; files map to their parent."""
    found: list[tuple[Path, Path]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            walk = item.rglob("*") if recursive else item.glob("*")
            files = sorted(p for p in walk if p.is_file() and _supported(p)
                           and not any(part.startswith(".") for part in p.relative_to(item).parts))
            if not files:
                hint = "" if recursive else " (add --recursive for subfolders)"
                raise FastNSTError(f"no images or videos in folder {item}{hint}")
            found += [(p, item) for p in files]
        elif not item.exists():
            raise FastNSTError(f"input not found: {item}")
        elif not _supported(item):
            raise FastNSTError(f"unsupported input {item}: give images "
                               f"({' '.join(IMAGE_EXTENSIONS)}) or videos "
                               f"({' '.join(VIDEO_EXTENSIONS)})")
        else:
            found.append((item, item.parent))
    if not found:
        raise FastNSTError("no inputs given")
    return found


def safe_name(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "style"


def output_name(src: Path, pattern: str, style: str) -> str:
    try:
        return pattern.format(stem=src.stem, style=safe_name(style), ext=src.suffix.lower()[1:],
                              name=src.name)
    except (KeyError, IndexError, ValueError) as err:
        raise FastNSTError(f"bad --pattern {pattern!r} ({err}); use {{stem}}, {{style}}, {{ext}}"
                           ", {name}") from None


def make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FastNSTError(f"cannot create output folder {folder} ({err.strerror})") from None
    if not os.access(folder, os.W_OK):
        raise FastNSTError(f"output folder is not writable: {folder}")


def plan_jobs(inputs: Sequence[str | os.PathLike], output: str | os.PathLike, *, style: str,
              pattern: str = DEFAULT_PATTERN, recursive: bool = False,
              overwrite: bool = False, max_pixels: int | None = MAX_PIXELS) -> list[Job]:
    """Map every input to its output path and check everything before any work starts.

    One file input and an output with an extension: that file. Otherwise `output` is a folder
    (created if needed) and names follow `pattern`; subfolders of a --recursive input are kept.
    """
    found = collect_inputs(inputs, recursive)
    out = Path(output)
    as_file = (len(found) == 1 and not Path(inputs[0]).is_dir() and not out.is_dir()
               and bool(out.suffix) and not str(output).endswith(("/", os.sep)))
    if len(found) > 1 and out.suffix and not out.is_dir() and out.suffix.lower() in \
            IMAGE_EXTENSIONS + VIDEO_EXTENSIONS:
        raise FastNSTError(f"{len(found)} inputs need an output folder, not the file {out}")
    jobs = []
    for src, root in found:
        video = is_video(src)
        if as_file:
            dst = out
        else:
            rel = src.parent.relative_to(root) if src.is_relative_to(root) else Path()
            dst = out / rel / output_name(src, pattern, style)
        jobs.append(Job(src, dst, video))
    _check_inputs(jobs, max_pixels)
    _check_outputs(jobs, overwrite)
    return jobs


def _check_inputs(jobs: list[Job], max_pixels: int | None) -> None:
    """Read every input's header (image size, or that a video really is one) before any
    output is written."""
    for job in jobs:
        if job.video:
            probe(job.src)
        else:
            job.size = image_header(job.src, max_pixels)


def _check_outputs(jobs: list[Job], overwrite: bool) -> None:
    inputs = {j.src.resolve() for j in jobs}
    seen: dict[Path, Path] = {}
    for job in jobs:
        target = job.dst.resolve()
        if target in inputs and not overwrite:
            raise FastNSTError(f"{job.dst} is an input; choose another --output/--pattern "
                               "or pass --overwrite")
        if target in seen:
            raise FastNSTError(f"{seen[target]} and {job.src} would both be written to "
                               f"{job.dst}; change --pattern")
        seen[target] = job.src
        if job.video:
            check_video_output(job.dst)
        else:
            output_format(job.dst)
    for folder in sorted({j.dst.parent for j in jobs}):
        make_folder(folder)


# ---------------------------------------------------------------------------------------------
# Running


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
    batch_size: int = 4
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

    def validate(self) -> StylizeOptions:
        if not 0.0 <= self.strength <= 1.0:
            raise FastNSTError(f"--strength must be between 0 and 1, got {self.strength}")
        if self.batch_size < 1:
            raise FastNSTError(f"--batch-size must be at least 1, got {self.batch_size}")
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
        self.path: FastPath = choose_fast_path(
            device, precision=o.precision, channels_last=o.channels_last, compile=o.compile,
            work=work or Counter())
        self.stylizer = Stylizer(model.net, device=str(device), precision=self.path.precision,
                                 channels_last=self.path.channels_last,
                                 compile=self.path.compile, compile_shapes=self.path.shapes)

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
        alone = o.tile_for(h, w) is not None or o.batch_size == 1
        keyed.append(((h, w) if not alone else (-1, id(job)), job))
    keyed.sort(key=lambda kj: kj[0])
    batch: list[Job] = []
    last = None
    for key, job in keyed:
        if batch and (key != last or len(batch) == o.batch_size):
            yield batch
            batch = []
        batch.append(job)
        last = key
    if batch:
        yield batch


def stylize_images(jobs: list[Job], pipeline: Pipeline) -> list[Path]:
    o = pipeline.options
    written = []
    bar = tqdm(total=len(jobs), desc="images", unit="img", disable=not o.progress or len(jobs) < 2)
    for batch in _batches(jobs, o):
        pixels = [load_pixels(j.src, size=o.size, scale=o.scale, max_pixels=o.max_pixels)
                  for j in batch]
        if len({p.shape for p in pixels}) > 1:  # header lied (rare): fall back to one by one
            results = [pipeline.pixels(p) for p in pixels]
        elif len(batch) == 1:
            results = [pipeline.pixels(pixels[0], progress=o.progress)]
        else:
            results = pipeline.batch(pixels)
        for job, result in zip(batch, results, strict=True):
            written.append(save_image(Image.fromarray(result), job.dst))
        bar.update(len(batch))
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

