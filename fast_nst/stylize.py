"""Apply a trained style network in one forward pass: model files, images, folders, large
images (tiled), videos and export to ONNX / TorchScript.

`stylize.py` parses flags and calls `stylize_paths` or `export_file`; everything else lives here.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor, nn
from tqdm.auto import tqdm

from fast_nst.color import transfer_luminance
from fast_nst.errors import FastNSTError
from fast_nst.io import IMAGE_EXTENSIONS, atomic_path, open_image, output_format, save_image
from fast_nst.transformer import NetConfig, TransformerNet, is_exported, net_from_export
from fast_nst.video import READ_EXTENSIONS as VIDEO_EXTENSIONS
from fast_nst.video import check_video_output, is_video, stylize_video

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


def _torch_load(path: Path) -> Any:
    """Read a torch file safely (tensors and plain containers only); one-line errors."""
    if not path.exists():
        raise FastNSTError(f"model not found: {path}")
    if path.is_dir():
        raise FastNSTError(f"{path} is a folder; give a model file (.pt, .ckpt or .pth)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for foreign files
        if path.suffix == ".ckpt" and "weights_only" in str(err):
            # Lightning checkpoints may pickle config objects; Lightning loads them the same way.
            try:
                return torch.load(path, map_location="cpu", weights_only=False)
            except Exception as err2:
                err = err2
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FastNSTError(f"{path} is not a model file torch can read ({reason[:120]})") from None


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
    return StyleModel(net.eval(), str(style), "checkpoint", path)


def _from_examples(state: dict[str, Tensor], path: Path) -> StyleModel:
    state = {k: v for k, v in state.items() if not _LEGACY_NORM_KEY.search(k)}
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"res(\d+)\.", k))}
    width = "half" if state["conv1.conv2d.weight"].shape[0] == 16 else "full"
    config = NetConfig(**{**EXAMPLES_CONFIG, "width": width, "n_residual": len(blocks)})
    net = TransformerNet(config)
    _load_state(net, state, path, "fast_neural_style")
    return StyleModel(net.eval(), path.stem, "examples", path)


def load_model(path: str | os.PathLike) -> StyleModel:
    """Detect the model kind (export .pt, Lightning .ckpt, examples .pth) and build the net."""
    path = Path(path)
    payload = _torch_load(path)
    if is_exported(payload):
        try:
            net = net_from_export(payload)
        except (KeyError, TypeError, RuntimeError) as err:
            raise FastNSTError(f"{path}: damaged fast_nst model file ({err})") from None
        return StyleModel(net, str(payload.get("style") or path.stem), "export", path)
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


def pick_device(name: str = "auto") -> torch.device:
    """`auto` is cuda, then mps, then cpu; an explicit device that is absent is an error."""
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise FastNSTError(f"unknown device {name!r}; use auto, cpu, cuda or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FastNSTError("--device cuda but no CUDA GPU is visible; use --device auto or cpu")
    if device.type == "mps" and not has_mps:
        raise FastNSTError("--device mps but MPS is not available; use --device auto or cpu")
    return device


def check_precision(device: torch.device, precision: str) -> torch.dtype:
    if precision not in PRECISIONS:
        raise FastNSTError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise FastNSTError("this GPU has no bf16; use --precision fp16 or fp32")
    return PRECISIONS[precision]


class Stylizer:
    """The network on a device at a precision: (B, 3, H, W) 0..1 in, float32 CPU 0..1 out.

    bf16/fp16 run under autocast (weights stay fp32, so norms and the output stay accurate);
    `compile` uses torch.compile with weight freezing: the fastest CPU path (see the benchmark).
    Compiled graphs are specialised per input size, so tiles of one size compile once.
    """

    def __init__(self, net: TransformerNet, *, device: str = "auto", precision: str = "fp32",
                 channels_last: bool = False, compile: bool = False) -> None:
        self.device = pick_device(device)
        self.dtype = check_precision(self.device, precision)
        self.channels_last = channels_last
        net = net.eval().to(self.device)
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
                            enabled=self.dtype != torch.float32):
            y = (self.net if eager else self.forward)(x)
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


def _to_u8(images: Tensor) -> np.ndarray:
    """(1, 3, h, w) float 0..1 -> (h, w, 3) uint8."""
    return images[0].mul(255).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def _to_float(pixels: np.ndarray) -> Tensor:
    """(h, w, 3) uint8 -> (1, 3, h, w) float 0..1."""
    return torch.from_numpy(np.array(pixels)).permute(2, 0, 1)[None].float() / 255


# ---------------------------------------------------------------------------------------------
# Tiled inference: overlapping tiles, linear feathering, rows finished as soon as they are final


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along one axis: as few tiles as give every neighbour pair at least
    `overlap` px in common, spread evenly, the first at 0 and the last flush with the end."""
    if size <= tile:
        return [0]
    n = math.ceil((size - overlap) / (tile - overlap))
    return [round(i * (size - tile) / (n - 1)) for i in range(n)]


def feather(starts: Sequence[int], length: int, size: int) -> list[Tensor]:
    """Per-tile 1-D weights: linear ramps across each overlap, normalised to sum to 1.

    Instance-norm statistics differ from tile to tile, so neighbouring tiles disagree a little;
    a ramp across the whole overlap turns that step into a gradient no eye can see as a seam.
    """
    length = min(length, size)
    ramps = []
    for i, s in enumerate(starts):
        w = torch.ones(length)
        if i > 0:  # overlap with the previous tile
            o = starts[i - 1] + length - s
            w[:o] = torch.minimum(w[:o], (torch.arange(o) + 0.5) / o)
        if i + 1 < len(starts):  # overlap with the next tile
            o = s + length - starts[i + 1]
            w[length - o:] = torch.minimum(w[length - o:], (torch.arange(o, 0, -1) - 0.5) / o)
        ramps.append(w)
    total = torch.zeros(size)
    for s, w in zip(starts, ramps, strict=True):
        total[s:s + length] += w
    return [w / total[s:s + length] for s, w in zip(starts, ramps, strict=True)]


def check_tiling(tile: int, overlap: int) -> None:
    if tile < 32:
        raise FastNSTError(f"--tile must be at least 32 px, got {tile}")
    if not 0 <= overlap <= tile // 2:
        raise FastNSTError(f"--overlap must be between 0 and half the tile ({tile // 2}), "
                           f"got {overlap}")


def stylize_tiled(fn: Callable[[Tensor], Tensor], pixels: np.ndarray, *, tile: int = 1024,
                  overlap: int = 128, post: Callable[[Tensor, Tensor], Tensor] | None = None,
                  progress: bool = False) -> np.ndarray:
    """Stylize an (H, W, 3) uint8 image tile by tile; returns (H, W, 3) uint8.

    Memory: the uint8 input and output, one band of tile rows in float32 and the network's
    activations for one tile, whatever the image size. `post(stylized, content)` is applied to
    each block of finished rows (colour preservation, strength).
    """
    check_tiling(tile, overlap)
    h, w = pixels.shape[:2]
    th, tw = min(tile, h), min(tile, w)
    ys, xs = tile_starts(h, th, overlap), tile_starts(w, tw, overlap)
    wy, wx = feather(ys, th, h), feather(xs, tw, w)
    out = np.empty_like(pixels)
    acc_start, acc = 0, torch.zeros(3, th, w)  # float rows [acc_start, acc_start + th)

    def flush(upto: int) -> None:
        nonlocal acc, acc_start
        rows = upto - acc_start
        if rows <= 0:
            return
        block = acc[None, :, :rows]
        if post is not None:
            block = post(block, _to_float(pixels[acc_start:upto]))
        out[acc_start:upto] = _to_u8(block)
        kept = torch.zeros(3, th, w)
        kept[:, :th - rows] = acc[:, rows:]
        acc, acc_start = kept, upto

    bar = tqdm(total=len(ys) * len(xs), desc="tiles", unit="tile", leave=False,
               disable=not progress or len(ys) * len(xs) < 2)
    for y, ry in zip(ys, wy, strict=True):
        flush(y)
        for x, rx in zip(xs, wx, strict=True):
            result = fn(_to_float(pixels[y:y + th, x:x + tw]))[0]
            acc[:, y - acc_start:y - acc_start + th, x:x + tw] += result * ry[:, None] * rx
            bar.update()
    flush(h)
    bar.close()
    return out


# ---------------------------------------------------------------------------------------------
# Whole-image instance-norm statistics for tiled inference (optional, ~7x the compute)

Stats = list[tuple[Tensor, Tensor]]  # per InstanceNorm2d: (mean, var), each (1, C, 1, 1)


class _Stop(Exception):
    """Raised by a recording hook: the rest of the network is not needed for this layer."""


def instance_norms(net: nn.Module) -> list[nn.InstanceNorm2d]:
    return [m for m in net.modules() if isinstance(m, nn.InstanceNorm2d)]


@contextlib.contextmanager
def frozen_norms(norms: Sequence[nn.InstanceNorm2d], stats: Stats) -> Iterator[None]:
    """Make these norm layers use fixed statistics instead of each input's own."""

    def fixed(norm: nn.InstanceNorm2d, mean: Tensor, var: Tensor) -> Callable[[Tensor], Tensor]:
        def forward(x: Tensor) -> Tensor:
            y = (x.float() - mean.to(x.device)) * torch.rsqrt(var.to(x.device) + norm.eps)
            if norm.affine:
                y = y * norm.weight[:, None, None] + norm.bias[:, None, None]
            return y.to(x.dtype)
        return forward

    for norm, (mean, var) in zip(norms, stats, strict=False):
        norm.forward = fixed(norm, mean, var)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for norm in norms:
            norm.__dict__.pop("forward", None)


def _cores(starts: Sequence[int], length: int, size: int) -> list[tuple[int, int]]:
    """Each tile's share of the axis (cut at the middle of overlaps), relative to the tile."""
    cuts = [0] + [(starts[i] + starts[i - 1] + length) // 2 for i in range(1, len(starts))]
    cuts.append(size)
    return [(cuts[i] - s, cuts[i + 1] - s) for i, s in enumerate(starts)]


def global_norm_stats(stylizer: Stylizer, pixels: np.ndarray, *, tile: int, overlap: int,
                      progress: bool = False) -> Stats:
    """The statistics every InstanceNorm2d would see on the whole image, tile by tile.

    Layer k's statistics need the whole image through layers < k with their own whole-image
    statistics, so one tiled pass per norm layer (each stopping at that layer): about 7x the
    cost of one pass for the standard network. Each pixel counts once (tile cores); partial
    results are merged with Chan's parallel mean/variance formula in float64.
    """
    norms = instance_norms(stylizer.net)
    h, w = pixels.shape[:2]
    th, tw = min(tile, h), min(tile, w)
    ys, xs = tile_starts(h, th, overlap), tile_starts(w, tw, overlap)
    grid = [(y, x, cy, cx) for y, cy in zip(ys, _cores(ys, th, h), strict=True)
            for x, cx in zip(xs, _cores(xs, tw, w), strict=True)]
    padded = (th + (-th) % 4, tw + (-tw) % 4)
    stats: Stats = []
    bar = tqdm(total=len(norms) * len(grid), desc="norm statistics", unit="tile", leave=False,
               disable=not progress)
    core: list[tuple[int, int]] = [(0, 0), (0, 0)]  # the current tile's rows and columns
    for target in norms:
        count, mean, m2 = 0, torch.zeros(0), torch.zeros(0)

        def record(module: nn.Module, args: tuple[Tensor, ...]) -> None:
            nonlocal count, mean, m2
            a = args[0]
            fy, fx = padded[0] // a.shape[2], padded[1] // a.shape[3]
            (y0, y1), (x0, x1) = core
            part = a[0, :, y0 // fy:y1 // fy, x0 // fx:x1 // fx].float().flatten(1)
            n = part.shape[1]
            if n:
                m = part.mean(1).double().cpu()
                q = (part - part.mean(1, keepdim=True)).square().sum(1).double().cpu()
                if count == 0:
                    mean, m2 = m, q
                else:
                    delta = m - mean
                    mean = mean + delta * n / (count + n)
                    m2 = m2 + q + delta.square() * count * n / (count + n)
                count += n
            raise _Stop

        handle = target.register_forward_pre_hook(record)
        try:
            with frozen_norms(norms, stats):
                for y, x, cy, cx in grid:
                    core[:] = [cy, cx]
                    try:
                        stylizer.eager(_to_float(pixels[y:y + th, x:x + tw]))
                    except _Stop:
                        pass
                    bar.update()
        finally:
            handle.remove()
        var = m2 / max(count, 1)
        stats.append((mean.float()[None, :, None, None], var.float()[None, :, None, None]))
    bar.close()
    return stats


# ---------------------------------------------------------------------------------------------
# Sizes


def target_size(width: int, height: int, *, size: int | None = None,
                scale: float | None = None) -> tuple[int, int]:
    """(width, height) after `size` (long side) or `scale`; native when neither is given."""
    if size is not None and scale is not None:
        raise FastNSTError("give --size or --scale, not both")
    if size is not None:
        if size < 4:
            raise FastNSTError(f"--size must be at least 4 px, got {size}")
        f = size / max(width, height)
    elif scale is not None:
        if scale <= 0:
            raise FastNSTError(f"--scale must be positive, got {scale}")
        f = scale
    else:
        return width, height
    return max(1, round(width * f)), max(1, round(height * f))


def load_pixels(path: Path, *, size: int | None = None, scale: float | None = None) -> np.ndarray:
    """Image file -> (H, W, 3) uint8 at the requested size (PIL resampling keeps memory low)."""
    image = open_image(path)
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


def _header(path: Path) -> tuple[int, int]:
    """(width, height) after EXIF rotation, reading only the header; one-line errors."""
    try:
        with Image.open(path) as image:
            w, h = image.size
            orientation = image.getexif().get(0x0112, 1)
    except UnidentifiedImageError:
        raise FastNSTError(f"{path} is not an image PIL can read") from None
    except OSError as err:
        raise FastNSTError(f"cannot read {path} ({err})") from None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


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


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "style"


def output_name(src: Path, pattern: str, style: str) -> str:
    try:
        return pattern.format(stem=src.stem, style=_safe(style), ext=src.suffix.lower()[1:],
                              name=src.name)
    except (KeyError, IndexError, ValueError) as err:
        raise FastNSTError(f"bad --pattern {pattern!r} ({err}); use {{stem}}, {{style}}, {{ext}}"
                           ", {name}") from None


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FastNSTError(f"cannot create output folder {folder} ({err.strerror})") from None
    if not os.access(folder, os.W_OK):
        raise FastNSTError(f"output folder is not writable: {folder}")


def plan_jobs(inputs: Sequence[str | os.PathLike], output: str | os.PathLike, *, style: str,
              pattern: str = DEFAULT_PATTERN, recursive: bool = False,
              overwrite: bool = False) -> list[Job]:
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
    _check_outputs(jobs, overwrite)
    return jobs


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
        _make_folder(folder)
    for job in jobs:
        if not job.video:
            job.size = _header(job.src)


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
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    batch_size: int = 4
    pattern: str = DEFAULT_PATTERN
    recursive: bool = False
    overwrite: bool = False
    progress: bool = True

    def overlap_for(self, tile: int) -> int:
        return self.overlap if self.overlap is not None else min(128, tile // 4)

    def validate(self) -> StylizeOptions:
        if not 0.0 <= self.strength <= 1.0:
            raise FastNSTError(f"--strength must be between 0 and 1, got {self.strength}")
        if self.batch_size < 1:
            raise FastNSTError(f"--batch-size must be at least 1, got {self.batch_size}")
        target_size(8, 8, size=self.size, scale=self.scale)
        if self.tile is not None:
            check_tiling(self.tile, self.overlap_for(self.tile))
        if self.tile_stats not in ("tile", "global"):
            raise FastNSTError(f"--tile-stats must be tile or global, got {self.tile_stats!r}")
        return self


class Pipeline:
    """A loaded model plus options: turns pixels into stylized pixels (tiled when large)."""

    def __init__(self, model: StyleModel, options: StylizeOptions) -> None:
        self.model, self.options = model, options.validate()
        self.stylizer = Stylizer(model.net, device=options.device, precision=options.precision,
                                 channels_last=options.channels_last, compile=options.compile)

    def post(self, stylized: Tensor, content: Tensor) -> Tensor:
        o = self.options
        return finish(stylized, content, preserve_color=o.preserve_color, strength=o.strength)

    def tile_for(self, height: int, width: int) -> int | None:
        o = self.options
        if o.tile is not None:
            return o.tile if max(height, width) > o.tile else None
        return o.auto_tile if height * width > o.auto_tile_pixels else None

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
        content = torch.cat([_to_float(p) for p in images])
        result = self.post(self.stylizer(content), content)
        return [_to_u8(result[i:i + 1]) for i in range(len(images))]

    def frame(self, frame: Tensor) -> Tensor:
        """Video frame callback: (1, 3, H, W) float 0..1 -> stylized, same shape."""
        return _to_float(self.pixels(_to_u8(frame)))


def _batches(jobs: list[Job], pipeline: Pipeline) -> Iterator[list[Job]]:
    """Group same-size images (by header, after --size/--scale) into batches; large ones alone."""
    o = pipeline.options
    keyed = []
    for job in jobs:
        w, h = target_size(*job.size, size=o.size, scale=o.scale)
        alone = pipeline.tile_for(h, w) is not None or o.batch_size == 1
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
    for batch in _batches(jobs, pipeline):
        pixels = [load_pixels(j.src, size=o.size, scale=o.scale) for j in batch]
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


def stylize_paths(model: str | os.PathLike | StyleModel, inputs: Sequence[str | os.PathLike],
                  output: str | os.PathLike, options: StylizeOptions | None = None) -> list[Path]:
    """The whole command: load the model, plan every output, stylize images then videos."""
    options = (options or StylizeOptions()).validate()
    if not isinstance(model, StyleModel):
        model = load_model(model)
    jobs = plan_jobs(inputs, output, style=model.style, pattern=options.pattern,
                     recursive=options.recursive, overwrite=options.overwrite)
    pipeline = Pipeline(model, options)
    written = stylize_images([j for j in jobs if not j.video], pipeline)
    for job in (j for j in jobs if j.video):
        stylize_video(job.src, job.dst, pipeline.frame, size=options.size, scale=options.scale,
                      progress=options.progress)
        written.append(job.dst)
    return written


# ---------------------------------------------------------------------------------------------
# Export: ONNX and TorchScript, each checked against PyTorch right after writing


class PortableNet(nn.Module):
    """TransformerNet.forward rewritten so that TorchScript and ONNX keep H and W dynamic.

    (Tracing the original would freeze its pad-to-a-multiple-of-4 and crop sizes.) It shares
    the original's parameters. Inputs need both sides >= 4 px (reflection padding).
    """

    def __init__(self, net: TransformerNet) -> None:
        super().__init__()
        c = net.config
        self.pixel_scale = float(c.pixel_scale)
        self.output_kind = c.output
        self.nearest = c.upsample == "nearest"
        self.head = nn.ModuleList([net.conv1, net.conv2, net.conv3])
        self.head_norms = nn.ModuleList([net.in1, net.in2, net.in3])
        self.blocks = nn.ModuleList([getattr(net, f"res{i}") for i in range(1, c.n_residual + 1)])
        # Upsampling layers are split into their parts (TorchScript cannot compile super()).
        up = [net.deconv1, net.deconv2]
        self.up_pads = nn.ModuleList([m.reflection_pad if self.nearest else nn.Identity()
                                      for m in up])
        self.up_convs = nn.ModuleList([m.conv2d for m in up])
        self.up_norms = nn.ModuleList([net.in4, net.in5])
        self.tail = net.deconv3

    def forward(self, images: Tensor) -> Tensor:
        h, w = images.shape[2], images.shape[3]
        x = F.pad(images * self.pixel_scale, [0, (4 - w % 4) % 4, 0, (4 - h % 4) % 4],
                  mode="reflect")
        for conv, norm in zip(self.head, self.head_norms):  # noqa: B905
            x = F.relu(norm(conv(x)))
        for block in self.blocks:
            x = block(x)
        for pad, conv, norm in zip(self.up_pads, self.up_convs, self.up_norms):  # noqa: B905
            if self.nearest:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = F.relu(norm(conv(pad(x))))
        y = self.tail(x)[:, :, :h, :w] / self.pixel_scale
        if self.output_kind == "sigmoid":
            return torch.sigmoid(y)
        if self.output_kind == "tanh":
            return (torch.tanh(y) + 1.0) / 2.0
        return y.clamp(0.0, 1.0)


EXPORT_FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
EXPORT_TOLERANCE = 1e-3  # max abs difference (0..1 pixels) accepted after export
CHECK_SIZES = ((1, 3, 64, 64), (2, 3, 37, 50))  # one size a multiple of 4, one not


def _export_onnx(module: nn.Module, path: Path) -> Callable[[Tensor], Tensor]:
    import onnxruntime as ort

    example = torch.rand(1, 3, 64, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(path), input_names=["image"],
                          output_names=["stylized"], opset_version=17, dynamo=False,
                          dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                        "stylized": {0: "batch", 2: "height", 3: "width"}})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(None, {"image": x.numpy()})[0])


def _export_torchscript(module: nn.Module, path: Path) -> Callable[[Tensor], Tensor]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(module)
        scripted.save(str(path))
        loaded = torch.jit.load(str(path), map_location="cpu")
    return loaded


def export_file(model: str | os.PathLike | StyleModel, fmt: str, output: str | os.PathLike,
                *, tolerance: float = EXPORT_TOLERANCE) -> tuple[Path, float]:
    """Write the network as ONNX (dynamic batch, H, W) or TorchScript, reload it, and compare
    with PyTorch on two input sizes. Returns (path, max abs diff); an error above `tolerance`
    (nothing is left on disk then)."""
    if fmt not in EXPORT_FORMATS:
        raise FastNSTError(f"unknown export format {fmt!r}; use onnx or torchscript")
    if not isinstance(model, StyleModel):
        model = load_model(model)
    path = Path(output)
    if path.is_dir():
        path = path / f"{_safe(model.style)}{EXPORT_FORMATS[fmt]}"
    if not path.suffix:
        path = path.with_suffix(EXPORT_FORMATS[fmt])
    _make_folder(path.parent)
    net = model.net.float().cpu().eval()
    module = PortableNet(net).eval()
    with atomic_path(path) as tmp:
        exported = (_export_onnx if fmt == "onnx" else _export_torchscript)(module, tmp)
        diff = 0.0
        with torch.inference_mode():
            for shape in CHECK_SIZES:
                x = torch.rand(shape)
                diff = max(diff, (exported(x) - net(x)).abs().max().item())
        if not math.isfinite(diff) or diff > tolerance:
            raise FastNSTError(f"{fmt} export differs from PyTorch by {diff:.2e} "
                               f"(> {tolerance:.0e}); nothing written")
    return path, diff
