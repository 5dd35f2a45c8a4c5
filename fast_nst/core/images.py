"""Image files in and out: RGB float tensors, EXIF orientation, resizing, atomic writes."""

from __future__ import annotations

import contextlib
import glob
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from fast_nst.errors import FastNSTError

# torchvision is imported where it is used: importing it costs ~2 s (it loads torch._dynamo),
# which every `--help` and `--cfg job` would pay.

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
# The largest image opened unless asked for more: Pillow's own decompression-bomb limit (about
# 179 megapixels; a small file can decode to gigabytes). 0 or None: no limit.
MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode (L, LA, P, RGBA, CMYK, I;16, F ...) to 8-bit RGB; transparency over white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I") and array.max() > 255 else 255.0
        if image.mode == "F" and array.max() <= 1.0:
            top = 1.0
        array = np.clip(array / top * 255.0, 0, 255).round().astype(np.uint8)
        image = Image.fromarray(array)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


_limit_lock = threading.Lock()
_limit_holders = 0  # threads inside `_pillow_limit_off`
_limit_saved: int | None = None


@contextlib.contextmanager
def _pillow_limit_off() -> Iterator[None]:
    """Pillow's bomb check raises (or warns) inside `Image.open`, before the size can be read;
    `check_pixels` applies the limit the caller chose instead. Counted under a lock, so threads
    reading at once (one image per core) restore the caller's limit when the last one leaves."""
    global _limit_holders, _limit_saved
    with _limit_lock:
        if _limit_holders == 0:
            _limit_saved = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
        _limit_holders += 1
    try:
        yield
    finally:
        with _limit_lock:
            _limit_holders -= 1
            if _limit_holders == 0:
                Image.MAX_IMAGE_PIXELS = _limit_saved


def check_pixels(path: str | os.PathLike, width: int, height: int,
                 max_pixels: int | None = MAX_PIXELS) -> None:
    """One-line error for an image above `max_pixels` (checked from the header, before
    decoding)."""
    if max_pixels and width * height > max_pixels:
        raise FastNSTError(
            f"{path} is {width}x{height} ({width * height:,} pixels), above the limit of "
            f"{max_pixels:,} pixels that guards against decompression bombs; raise it with "
            "--max-pixels N (stylize.py) or max_pixels=N (the optimizer), 0 for no limit")


def image_header(path: str | os.PathLike, max_pixels: int | None = MAX_PIXELS
                 ) -> tuple[int, int]:
    """(width, height) after EXIF rotation, from the header (a PNG's chunks are checked, not
    decoded: a truncated or damaged file is refused here, before any work); one-line errors."""
    path = Path(path)
    try:
        with _pillow_limit_off(), Image.open(path) as image:
            w, h = image.size
            check_pixels(path, w, h, max_pixels)
            orientation = _orientation(image)
            image.verify()  # PNG: every chunk's checksum, without decoding (0.2 ms for 512 px)
    except UnidentifiedImageError:
        raise FastNSTError(f"{path} is not an image PIL can read") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise FastNSTError(f"{path} is truncated or corrupt ({err})") from None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


# Where Pillow finds a PNG's orientation: an eXIf chunk, ImageMagick's text chunk, or XMP.
_PNG_ORIENTATION_KEYS = {"exif", "Raw profile type exif", "XML:com.adobe.xmp", "xmp"}


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation of an opened, not yet decoded image. A PNG's counts only from the
    chunks before the pixel data (where the PNG specification puts eXIf): asking Pillow for a
    later one decodes the whole image (7 ms for 512 px, far more for a large one)."""
    if image.format == "PNG" and not _PNG_ORIENTATION_KEYS & image.info.keys():
        return 1
    return image.getexif().get(0x0112, 1)


def open_image(path: str | os.PathLike, max_pixels: int | None = MAX_PIXELS) -> Image.Image:
    """Open and fully decode an image, EXIF-rotated, as RGB; one-line errors naming the file."""
    path = Path(path)
    if not path.exists():
        raise FastNSTError(f"image not found: {path}")
    if path.is_dir():
        raise FastNSTError(f"{path} is a folder, not an image file")
    try:
        with _pillow_limit_off(), Image.open(path) as image:
            check_pixels(path, *image.size, max_pixels)
            rotated = _orientation(image) != 1
            image.load()
            return to_rgb(ImageOps.exif_transpose(image) if rotated else image)
    except UnidentifiedImageError:
        raise FastNSTError(f"{path} is not an image PIL can read") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise FastNSTError(f"{path} is truncated or corrupt ({err})") from None


def resize(
    images: Tensor,
    *,
    long_side: int | None = None,
    short_side: int | None = None,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
) -> Tensor:
    """Resize (..., H, W) by one of: long side, short side, scale factor, exact (H, W)."""
    chosen = [x is not None for x in (long_side, short_side, scale, size)]
    if sum(chosen) > 1:
        raise FastNSTError("give only one of long_side, short_side, scale, size")
    h, w = images.shape[-2:]
    if long_side is not None:
        f = long_side / max(h, w)
        target = (max(1, round(h * f)), max(1, round(w * f)))
    elif short_side is not None:
        f = short_side / min(h, w)
        target = (max(1, round(h * f)), max(1, round(w * f)))
    elif scale is not None:
        if scale <= 0:
            raise FastNSTError(f"scale must be positive, got {scale}")
        target = (max(1, round(h * scale)), max(1, round(w * scale)))
    elif size is not None:
        target = (int(size[0]), int(size[1]))
    else:
        return images
    if target == (h, w):
        return images
    import torchvision.transforms.functional as TF

    return TF.resize(images, list(target), antialias=True)


def load_image(
    path: str | os.PathLike,
    *,
    long_side: int | None = None,
    short_side: int | None = None,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    max_pixels: int | None = MAX_PIXELS,
) -> Tensor:
    """Image file -> (1, 3, H, W) float tensor in 0..1, optionally resized (see `resize`)."""
    import torchvision.transforms.functional as TF

    tensor = TF.to_tensor(open_image(path, max_pixels)).unsqueeze(0)
    return resize(tensor, long_side=long_side, short_side=short_side, scale=scale, size=size)


def output_format(path: str | os.PathLike) -> str:
    """PIL format name for a file extension, or a one-line error."""
    ext = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise FastNSTError(
            f"cannot write images with extension {ext or '(none)'!r}: {path}; use .png or .jpg"
        )
    return fmt


_umask_lock = threading.Lock()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary name beside `path`; rename onto `path` only if the block succeeds.

    The temporary name is `.<stem>.<pid>.<random>.tmp<suffix>`: a process killed outright
    (kill -9, power loss) cannot remove its own, so the next write of the same file removes
    those whose process is gone (`remove_stale_temporaries`).
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FastNSTError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise FastNSTError(f"output folder is not writable: {folder}")
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.{os.getpid()}.",
                               suffix=f".tmp{path.suffix}", dir=folder)
    os.close(fd)
    with _umask_lock:  # reading the umask means setting it: not while another thread does
        umask = os.umask(0)
        os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the finished file gets the usual mode
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files `atomic_path` left for `path` in processes that no longer
    run; those of running processes (another write in progress) stay."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    name = re.compile(rf"\.{re.escape(path.stem)}\.(\d+)\.[^.]+\.tmp{re.escape(path.suffix)}")
    removed = []
    for candidate in folder.glob(f".{glob.escape(path.stem)}.*.tmp{glob.escape(path.suffix)}"):
        match = name.fullmatch(candidate.name)
        if match and not _process_alive(int(match.group(1))):
            with contextlib.suppress(FileNotFoundError):
                candidate.unlink()
                removed.append(candidate)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def to_pil(image: Tensor) -> Image.Image:
    """(1|3, H, W) or (1, 3, H, W) float 0..1 -> 8-bit RGB PIL image, clamped."""
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {image.shape[0]}")
        image = image[0]
    # rounded to the nearest level, as the stylize paths do (to_pil_image of a float truncates)
    levels = image.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    import torchvision.transforms.functional as TF

    return TF.to_pil_image(levels.cpu())


def save_image(image: Tensor | Image.Image, path: str | os.PathLike, **save_args) -> Path:
    """Write an image (clamped to 0..1), format from the extension, atomically."""
    fmt = output_format(path)
    pil = image if isinstance(image, Image.Image) else to_pil(image)
    if fmt == "JPEG":
        save_args.setdefault("quality", 95)
    elif fmt == "PNG":  # zlib level 1, OpenCV's default: a stylized 512 px image in 22 ms
        save_args.setdefault("compress_level", 1)  # instead of 29 ms, the file 6 % larger
    with atomic_path(path) as tmp:
        pil.save(tmp, format=fmt, **save_args)
    return Path(path)


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS
