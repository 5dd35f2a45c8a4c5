"""The training DataModule: imagefolder loading, crops, fixed validation, unreadable files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fast_nst import FastNSTError
from fast_nst.training.data import ImageDataModule


def make_photos(folder: Path, n: int, seed: int = 0) -> Path:
    """`n` small random photos of different sizes and modes (a flat imagefolder)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        h, w = int(rng.integers(36, 60)), int(rng.integers(36, 60))
        pixels = (rng.random((h, w, 3)) * 255).astype("uint8")
        image = Image.fromarray(pixels)
        if i % 3 == 1:
            image.convert("L").save(folder / f"photo{i}.png")
        else:
            image.save(folder / f"photo{i}.jpg")
    return folder


def module(folder: Path, tmp_path: Path, **kwargs) -> ImageDataModule:
    options = {"image_size": 32, "batch_size": 2, "num_workers": 0, "val_size": 2,
               "cache_dir": str(tmp_path / "hf")}
    return ImageDataModule(data_dir=str(folder), **{**options, **kwargs})


def test_train_batches_are_random_square_crops(tmp_path) -> None:
    dm = module(make_photos(tmp_path / "photos", 8), tmp_path)
    dm.setup("fit")
    assert len(dm.train_set) == 6 and len(dm.val_set) == 2  # 2 held out for validation
    batches = list(dm.train_dataloader())
    assert len(batches) == 3
    for batch in batches:
        assert batch.shape == (2, 3, 32, 32) and batch.dtype == torch.float32
        assert 0 <= batch.min() and batch.max() <= 1 and batch.std() > 0.05
    torch.manual_seed(1)
    first = torch.cat(list(dm.train_dataloader()))
    torch.manual_seed(2)
    second = torch.cat(list(dm.train_dataloader()))
    assert not torch.equal(first, second)  # shuffled and randomly cropped


def test_validation_is_a_fixed_centre_crop(tmp_path) -> None:
    dm = module(make_photos(tmp_path / "photos", 6), tmp_path, val_image_size=40)
    dm.setup("fit")
    a = next(iter(dm.val_dataloader()))
    torch.manual_seed(123)
    b = next(iter(dm.val_dataloader()))
    assert a.shape == (2, 3, 40, 40)  # all validation images in one batch (one grid)
    assert torch.equal(a, b)


def test_unreadable_images_are_skipped_and_counted(tmp_path) -> None:
    folder = make_photos(tmp_path / "photos", 5)
    (folder / "broken.jpg").write_bytes(b"this is not a jpeg")
    (folder / "truncated.png").write_bytes((folder / "photo1.png").read_bytes()[:60])
    dm = module(folder, tmp_path, val_size=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm.setup("fit")  # decodes one photo, which may be a bad one
        batches = [b for _ in range(2) for b in dm.train_dataloader()]
    assert all(b.shape == (2, 3, 32, 32) for b in batches)  # batches keep their size
    messages = [str(w.message) for w in caught if "unreadable" in str(w.message)]
    assert any("broken.jpg" in m for m in messages) and any("truncated.png" in m for m in messages)
    assert dm.skipped.count == 2  # each bad file counted once, not retried
    with pytest.warns(UserWarning, match="skipped 2 unreadable images"):
        dm.teardown("fit")


def test_streaming_reads_the_same_folder(tmp_path) -> None:
    dm = module(make_photos(tmp_path / "photos", 7), tmp_path, streaming=True)
    dm.setup("fit")
    assert next(iter(dm.val_dataloader())).shape == (2, 3, 32, 32)
    epochs = [list(dm.train_dataloader()) for _ in range(2)]
    assert [len(e) for e in epochs] == [2, 2]  # 5 training rows, batch 2, last one dropped
    assert all(b.shape == (2, 3, 32, 32) for e in epochs for b in e)


def test_val_dir_gives_the_validation_photos(tmp_path) -> None:
    val = make_photos(tmp_path / "val", 3, seed=5)
    dm = module(make_photos(tmp_path / "photos", 4), tmp_path, val_dir=str(val), val_size=8)
    dm.setup("fit")
    assert len(dm.train_set) == 4 and len(dm.val_set) == 3


@pytest.mark.parametrize("case", ["empty", "missing", "no_images"])
def test_bad_folder_is_a_one_line_error(tmp_path, case) -> None:
    folder = tmp_path / "photos"
    if case != "missing":
        folder.mkdir()
    if case == "no_images":
        (folder / "notes.txt").write_text("no photos here")
    with pytest.raises(FastNSTError) as err:
        module(folder, tmp_path)
    message = str(err.value)
    assert "\n" not in message and str(folder) in message


def test_wrong_image_column_names_the_columns(tmp_path) -> None:
    dm = module(make_photos(tmp_path / "photos", 3), tmp_path, image_column="picture")
    with pytest.raises(FastNSTError, match="no column 'picture'.*image"):
        dm.setup("fit")


def test_val_size_zero_turns_validation_off_with_a_val_dir(tmp_path) -> None:
    val = make_photos(tmp_path / "val", 3, seed=5)
    dm = module(make_photos(tmp_path / "photos", 4), tmp_path, val_dir=str(val), val_size=0)
    dm.setup("fit")
    assert dm.val_set is None and dm.val_dataloader() == []


def test_streamed_set_smaller_than_a_batch_is_a_one_line_error(tmp_path) -> None:
    dm = module(make_photos(tmp_path / "photos", 3), tmp_path, streaming=True, batch_size=2)
    with pytest.raises(FastNSTError, match="fewer than data.batch_size=2 photos after the 2 "
                                           "held out") as err:
        dm.setup("fit")  # 3 rows, 2 held out: one photo, and drop_last would give no batch
    assert "\n" not in str(err.value)


def test_no_readable_photo_fails_at_setup_not_in_a_worker(tmp_path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):  # Git LFS pointers named .jpg: the folder check passes on the names
        (folder / f"p{i}.jpg").write_text("version https://git-lfs.github.com/spec/v1\n")
    dm = module(folder, tmp_path, num_workers=2, val_size=0)
    with pytest.raises(FastNSTError, match="none of the 3 images could be read") as err:
        dm.setup("fit")
    assert "\n" not in str(err.value) and "worker" not in str(err.value)
