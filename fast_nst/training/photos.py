"""Training photos as torch datasets: a `datasets` image cell decoded to an EXIF-rotated RGB
image, cropped to a float tensor; an unreadable file is skipped and counted, never fatal, so a
corrupt photo cannot end a long run.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from PIL import Image, ImageOps
from torch import Tensor
from torch.utils.data import Dataset, IterableDataset, get_worker_info
from torchvision.transforms import v2

from fast_nst.core.images import to_rgb
from fast_nst.errors import FastNSTError

# What PIL raises on a file it cannot decode (truncated, not an image, bomb, bad header).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError, EOFError)
_WARN_FIRST = 10  # warn for each of the first skips, then at powers of two


def decode_image(record: Any, draft_size: int | None = None) -> Image.Image:
    """A `datasets` image cell ({bytes, path} with decoding off, bytes, a path or a PIL image)
    to an EXIF-rotated RGB image. `draft_size` lets JPEG decode at a reduced scale that still
    covers that size (much faster for large photos)."""
    if isinstance(record, Image.Image):
        image = record
    else:
        if isinstance(record, Mapping):
            data, path = record.get("bytes"), record.get("path")
        elif isinstance(record, (bytes, bytearray)):
            data, path = record, None
        else:
            data, path = None, record
        if data is None and not path:
            raise ValueError("empty image cell")
        image = Image.open(io.BytesIO(data) if data is not None else path)
    if draft_size and image.format == "JPEG":
        image.draft("RGB", (draft_size, draft_size))
    image.load()
    return to_rgb(ImageOps.exif_transpose(image))


def _describe(record: Any) -> str:
    if isinstance(record, Mapping) and record.get("path"):
        return str(record["path"])
    if isinstance(record, (str, os.PathLike)):
        return str(record)
    return "an image"


class SkipCounter:
    """Counts unreadable images across DataLoader worker processes and warns about them."""

    def __init__(self) -> None:
        self.value = multiprocessing.get_context().Value("i", 0)

    def skip(self, record: Any, err: BaseException) -> None:
        with self.value.get_lock():
            self.value.value += 1
            count = self.value.value
        if count <= _WARN_FIRST or count & (count - 1) == 0:
            warnings.warn(f"skipped unreadable image {_describe(record)} "
                          f"({type(err).__name__}: {err}); {count} skipped so far", stacklevel=2)

    @property
    def count(self) -> int:
        return int(self.value.value)


class DecodedImages(Dataset):
    """Map-style view of some rows of a `datasets.Dataset`, decoded and transformed.

    An unreadable row is replaced by the next readable one, so batches keep their size.
    """

    def __init__(self, data: Any, column: str, indices: Sequence[int], transform: v2.Transform,
                 counter: SkipCounter, draft_size: int | None = None) -> None:
        self.data, self.column, self.indices = data, column, list(indices)
        self.transform, self.counter, self.draft_size = transform, counter, draft_size
        self._bad: set[int] = set()  # rows known unreadable (per process): not retried

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Tensor:
        n = len(self.indices)
        for k in range(n):
            row = self.indices[(i + k) % n]
            if row in self._bad:
                continue
            record = self.data[row][self.column]
            try:
                return self.transform(decode_image(record, self.draft_size))
            except _DECODE_ERRORS as err:
                self._bad.add(row)
                self.counter.skip(record, err)
        raise FastNSTError(f"none of the {n} images could be read; check the dataset")


class StreamedImages(IterableDataset):
    """A streamed `datasets.IterableDataset`, decoded and transformed; unreadable rows skipped.

    Reshuffles every epoch: the epoch seed is the worker base seed (the same in every worker of
    one DataLoader iterator, new for each), so workers agree on the shard order.
    """

    def __init__(self, data: Any, column: str, transform: v2.Transform,
                 counter: SkipCounter, draft_size: int | None = None) -> None:
        self.data, self.column, self.transform = data, column, transform
        self.counter, self.draft_size = counter, draft_size
        self._epoch = 0

    def __iter__(self) -> Iterator[Tensor]:
        info = get_worker_info()
        self._epoch += 1
        epoch = self._epoch if info is None else (info.seed - info.id) % 2**31
        if hasattr(self.data, "set_epoch"):
            self.data.set_epoch(epoch)
        for row in self.data:
            record = row[self.column]
            try:
                yield self.transform(decode_image(record, self.draft_size))
            except _DECODE_ERRORS as err:
                self.counter.skip(record, err)


def train_transform(size: int) -> v2.Transform:
    """Short side to `size`, then a random `size` x `size` crop, as float 0..1."""
    return v2.Compose([v2.ToImage(), v2.Resize(size, antialias=True), v2.RandomCrop(size),
                       v2.ToDtype(torch.float32, scale=True)])


def val_transform(size: int) -> v2.Transform:
    """Short side to `size`, then the centre crop: the same pixels every time."""
    return v2.Compose([v2.ToImage(), v2.Resize(size, antialias=True), v2.CenterCrop(size),
                       v2.ToDtype(torch.float32, scale=True)])
