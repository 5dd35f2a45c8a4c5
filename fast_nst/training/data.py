"""Training photos for the feed-forward networks: a Hugging Face `datasets` source in a
LightningDataModule.

One code path serves a hub dataset (`name="user/dataset"`, optionally streamed) and a local
folder (`name="imagefolder", data_dir=...`). Images are decoded by `fast_nst.training.photos`,
not by `datasets`, so a corrupt file is skipped and counted instead of crashing a long run.
"""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset
from torchvision.transforms import v2

from fast_nst.core.images import is_image_file
from fast_nst.errors import FastNSTError
from fast_nst.training.photos import (
    DecodedImages,
    SkipCounter,
    StreamedImages,
    train_transform,
    val_transform,
)


def _has_image_file(folder: Path) -> bool:
    """True as soon as one image file is found below `folder` (stops early on big trees)."""
    for _root, _dirs, files in os.walk(folder):
        if any(is_image_file(Path(f)) for f in files):
            return True
    return False


class ImageDataModule(pl.LightningDataModule):
    """Content photos for training, plus a small fixed validation set.

    Args:
        name: a Hugging Face hub dataset ("user/name") or a builder such as `imagefolder`.
        data_dir: the folder for `imagefolder` (relative paths are taken from the launch
            directory).
        split: which split to train on.
        image_column: the column that holds the images.
        streaming: iterate a huge hub dataset without downloading it first.
        image_size: training crop (square), after resizing the short side to it.
        batch_size, num_workers: DataLoader settings (workers decode and crop).
        val_size: validation images (held out from the training rows, or the first files of
            `val_dir`); they are centre-cropped to `val_image_size` (default `image_size`).
        val_dir: a folder of validation photos instead of held-out rows.
        shuffle_buffer: reservoir size when shuffling a streamed dataset.
        seed: the held-out split and the streamed shuffle order.
        cache_dir: where `datasets` keeps its cache (default: its own, ~/.cache/huggingface).
    """

    def __init__(self, name: str = "imagefolder", data_dir: str | None = None,
                 split: str = "train", image_column: str = "image", streaming: bool = False,
                 image_size: int = 256, batch_size: int = 4, num_workers: int = 2,
                 val_size: int = 8, val_image_size: int | None = None,
                 val_dir: str | None = None, shuffle_buffer: int = 1000, seed: int = 0,
                 cache_dir: str | None = None) -> None:
        super().__init__()
        if image_size < 8:
            raise FastNSTError(f"data.image_size must be at least 8, got {image_size}")
        if batch_size < 1:
            raise FastNSTError(f"data.batch_size must be at least 1, got {batch_size}")
        self.name, self.split, self.image_column = name, split, image_column
        self.data_dir = str(Path(data_dir).expanduser().resolve()) if data_dir else None
        self.val_dir = str(Path(val_dir).expanduser().resolve()) if val_dir else None
        self.streaming, self.image_size, self.batch_size = streaming, image_size, batch_size
        self.num_workers, self.val_size = max(0, num_workers), max(0, val_size)
        self.val_image_size = val_image_size or image_size
        self.shuffle_buffer, self.seed, self.cache_dir = shuffle_buffer, seed, cache_dir
        for label, folder in (("data.data_dir", self.data_dir), ("data.val_dir", self.val_dir)):
            if folder is not None:
                self._check_folder(label, Path(folder))
        self.train_set: Dataset | IterableDataset | None = None
        self.val_set: Dataset | None = None
        self.skipped = SkipCounter()

    @staticmethod
    def _check_folder(label: str, folder: Path) -> None:
        if not folder.is_dir():
            raise FastNSTError(f"{label} folder not found: {folder}")
        if not _has_image_file(folder):
            raise FastNSTError(f"{label} folder {folder} holds no image files "
                               f"(.jpg, .png, ...); put training photos there")

    def describe(self) -> dict[str, Any]:
        """The settings that identify the training data (for the exported model's meta)."""
        return {"name": self.name, "data_dir": self.data_dir, "split": self.split,
                "streaming": self.streaming, "image_size": self.image_size,
                "batch_size": self.batch_size}

    # -- loading -------------------------------------------------------------------------

    def _load(self) -> Any:
        import datasets

        kwargs: dict[str, Any] = {"split": self.split, "streaming": self.streaming}
        if self.data_dir:
            kwargs["data_dir"] = self.data_dir
        if self.cache_dir:
            kwargs["cache_dir"] = self.cache_dir
        where = self.data_dir or self.name
        try:
            data = datasets.load_dataset(self.name, **kwargs)
        except datasets.data_files.EmptyDatasetError:
            raise FastNSTError(f"no images found in {where}; put training photos there") from None
        except ValueError as err:  # unknown split, bad config
            raise FastNSTError(f"cannot load dataset {where!r}: {_first_line(err)}") from None
        except (OSError, ConnectionError, FileNotFoundError) as err:
            raise FastNSTError(
                f"cannot load dataset {where!r} ({type(err).__name__}: {_first_line(err)}); "
                "offline, use a local folder: data=local data.data_dir=PATH") from None
        return self._image_column(data)

    def _image_column(self, data: Any) -> Any:
        """Check the image column and turn off `datasets`' own decoding (we decode, to skip)."""
        import datasets

        features = getattr(data, "features", None)
        if features is None:
            return data
        if self.image_column not in features:
            raise FastNSTError(f"dataset {self.name!r} has no column {self.image_column!r}; "
                               f"set data.image_column to one of {', '.join(features)}")
        if isinstance(features[self.image_column], datasets.Image):
            data = data.cast_column(self.image_column, datasets.Image(decode=False))
        return data

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        data = self._load()
        train_tf = train_transform(self.image_size)
        if self.streaming:
            self._setup_streamed(data, train_tf)
        else:
            self._setup_map(data, train_tf)
        if self.val_dir and self.val_size:
            self.val_set = self._folder_val_set(Path(self.val_dir))

    def _setup_map(self, data: Any, train_tf: v2.Transform) -> None:
        n = len(data)
        if n == 0:
            raise FastNSTError(f"dataset {self.data_dir or self.name!r} split {self.split!r} "
                               "is empty; put training photos there")
        self.train_set = DecodedImages(data, self.image_column, range(n), train_tf,
                                       self.skipped, self.image_size)
        self.train_set[0]  # one decoded here: if none can be, a one-line error, not a worker's
        if self.val_dir or not self.val_size:
            return
        # Hold out val_size rows (seeded); with a single photo, validate on it as well.
        order = list(range(n))
        random.Random(self.seed).shuffle(order)
        held = order[: min(self.val_size, n - 1)] or order[:1]
        train_rows = sorted(set(range(n)) - set(held)) if n > 1 else [0]
        self.train_set.indices = train_rows
        self.val_set = DecodedImages(data, self.image_column, sorted(held),
                                     val_transform(self.val_image_size), self.skipped,
                                     self.val_image_size)

    def _setup_streamed(self, data: Any, train_tf: v2.Transform) -> None:
        from datasets.distributed import split_dataset_by_node

        held = 0 if self.val_dir else self.val_size
        val_rows = list(data.take(held)) if held else []
        rest = data.skip(len(val_rows))
        if len(list(rest.take(self.batch_size))) < self.batch_size:  # else every epoch is empty
            raise FastNSTError(f"dataset {self.name!r} split {self.split!r} has fewer than "
                               f"data.batch_size={self.batch_size} photos after the "
                               f"{len(val_rows)} held out for validation; lower data.batch_size "
                               "or data.val_size")
        train = rest.shuffle(seed=self.seed, buffer_size=self.shuffle_buffer)
        if self.trainer is not None and self.trainer.world_size > 1:
            train = split_dataset_by_node(train, rank=self.trainer.global_rank,
                                          world_size=self.trainer.world_size)
        self.train_set = StreamedImages(train, self.image_column, train_tf, self.skipped,
                                        self.image_size)
        if val_rows:
            self.val_set = DecodedImages(val_rows, self.image_column, range(len(val_rows)),
                                         val_transform(self.val_image_size), self.skipped,
                                         self.val_image_size)

    def _folder_val_set(self, folder: Path) -> Dataset:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p))
        rows = [{self.image_column: str(p)} for p in files[: self.val_size]]
        return DecodedImages(rows, self.image_column, range(len(rows)),
                             val_transform(self.val_image_size), self.skipped,
                             self.val_image_size)

    # -- loaders -------------------------------------------------------------------------

    def train_dataloader(self) -> DataLoader:
        data = self.train_set
        if data is None:
            raise RuntimeError("call setup() first")
        streamed = isinstance(data, IterableDataset)
        drop_last = streamed or len(data) >= self.batch_size  # type: ignore[arg-type]
        return DataLoader(data, batch_size=self.batch_size, shuffle=not streamed,
                          num_workers=self.num_workers, drop_last=drop_last,
                          persistent_workers=self.num_workers > 0,
                          pin_memory=torch.cuda.is_available())

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []  # val_size 0: no validation
        # One batch: the fixed set becomes one image grid in TensorBoard.
        return DataLoader(self.val_set, batch_size=max(1, len(self.val_set)), shuffle=False,
                          num_workers=0)

    def teardown(self, stage: str | None = None) -> None:
        if self.skipped.count:
            warnings.warn(f"skipped {self.skipped.count} unreadable images in "
                          f"{self.data_dir or self.name}", stacklevel=2)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
