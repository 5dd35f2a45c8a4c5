"""Planning a run: expand inputs (files, folders), name every output and check all inputs and
outputs before any work starts, so a bad file fails the command at once, not halfway.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fast_nst.core.images import IMAGE_EXTENSIONS, MAX_PIXELS, image_header, output_format
from fast_nst.core.video import READ_EXTENSIONS as VIDEO_EXTENSIONS
from fast_nst.core.video import check_video_output, is_video, probe
from fast_nst.errors import FastNSTError

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
