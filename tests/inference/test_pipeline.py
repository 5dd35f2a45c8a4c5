"""fast_nst.inference.pipeline: images, folders and batches through `stylize_paths`, the
planned work and the precision `auto` picks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fast_nst.inference.jobs import plan_jobs
from fast_nst.inference.pipeline import Pipeline, StylizeOptions, plan_work, stylize_paths
from fast_nst.model.files import bundled_models, load_model
from tests.stylize_helpers import QUIET, read, tiny_model, write_photo, write_photos


def test_one_image_to_a_file_keeps_odd_size(tmp_path, model_pt) -> None:
    src = write_photo(tmp_path / "in" / "a.png", 23, 17)
    out = tmp_path / "out.jpg"
    assert stylize_paths(model_pt, [src], out, StylizeOptions(**QUIET)) == [out]
    assert Image.open(out).size == (17, 23) and Image.open(out).format == "JPEG"
    assert not read(out).std() == 0


def test_several_images_folders_and_recursive(tmp_path, model_pt) -> None:
    a = write_photo(tmp_path / "in" / "a.png", 21, 35)
    b = write_photo(tmp_path / "in" / "b.jpg", 21, 35, seed=1)
    write_photo(tmp_path / "in" / "sub" / "c.png", 33, 19, seed=2)
    (tmp_path / "in" / "notes.txt").write_text("skipped in folders")
    opts = StylizeOptions(**QUIET)

    stylize_paths(model_pt, [a, b], tmp_path / "two", opts)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == \
        ["a_stripes.png", "b_stripes.jpg"]

    stylize_paths(model_pt, [tmp_path / "in"], tmp_path / "flat", opts)
    assert sorted(p.name for p in (tmp_path / "flat").iterdir()) == \
        ["a_stripes.png", "b_stripes.jpg"]

    deep = StylizeOptions(**QUIET, recursive=True, pattern="{stem}.png")
    stylize_paths(model_pt, [tmp_path / "in"], tmp_path / "deep", deep)
    deep_files = (tmp_path / "deep").rglob("*.png")
    assert sorted(str(p.relative_to(tmp_path / "deep")) for p in deep_files) == \
        ["a.png", "b.png", "sub/c.png"]
    assert Image.open(tmp_path / "deep" / "sub" / "c.png").size == (19, 33)


def test_batched_folder_equals_one_by_one(tmp_path, model_pt) -> None:
    for i in range(3):
        write_photo(tmp_path / "in" / f"{i}.png", 24, 20, seed=i)
    write_photo(tmp_path / "in" / "odd.png", 13, 20)
    stylize_paths(model_pt, [tmp_path / "in"], tmp_path / "b3", StylizeOptions(**QUIET,
                                                                                batch_size=3))
    stylize_paths(model_pt, [tmp_path / "in"], tmp_path / "b1", StylizeOptions(**QUIET,
                                                                                batch_size=1))
    for name in ("0", "1", "2", "odd"):
        a, b = read(tmp_path / "b3" / f"{name}_stripes.png"), read(tmp_path / "b1" /
                                                                   f"{name}_stripes.png")
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_pipeline_runs_a_bundled_model_on_pixels() -> None:
    model = load_model(next(iter(bundled_models().values())))
    pixels = np.random.default_rng(0).integers(0, 256, (30, 44, 3), dtype=np.uint8)
    out = Pipeline(model, StylizeOptions(progress=False, precision="fp32")).pixels(pixels)
    assert out.shape == pixels.shape and out.dtype == np.uint8
    with torch.no_grad():  # the model's own network on the same pixels
        x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255
        expected = model.net.float().eval()(x)[0].permute(1, 2, 0).numpy() * 255
    assert np.abs(out - expected).max() <= 1.0


@pytest.mark.usefixtures("two_threads")
def test_plan_work_counts_batches_and_tiles(tmp_path) -> None:
    write_photos(tmp_path / "in", 9, 24, 32)
    write_photos(tmp_path / "big", 1, 300, 200, stem="big")
    jobs = plan_jobs([tmp_path / "in", tmp_path / "big"], tmp_path / "out", style="s")
    work = plan_work(jobs, StylizeOptions(batch_size=4, tile=128, overlap=32))
    # 9 small images: 2 batches of 4 and 1 of 1; the 200 x 300 image: 2 x 3 tiles of 128 px
    assert work == {(4, 24, 32): 2, (1, 24, 32): 1, (1, 128, 128): 6}


@pytest.mark.usefixtures("two_threads")
def test_auto_stylizes_in_float32_without_native_bf16(tmp_path, zen3) -> None:
    model = tiny_model(tmp_path)
    write_photos(tmp_path / "in", 1, 40, 48)
    src = tmp_path / "in" / "0.png"
    opts = {"device": "cpu", "progress": False}
    stylize_paths(model, [src], tmp_path / "auto.png", StylizeOptions(**opts))
    stylize_paths(model, [src], tmp_path / "fp32.png", StylizeOptions(**opts, precision="fp32"))
    stylize_paths(model, [src], tmp_path / "bf16.png", StylizeOptions(**opts, precision="bf16"))
    read = {k: np.asarray(Image.open(tmp_path / f"{k}.png")) for k in ("auto", "fp32", "bf16")}
    assert np.array_equal(read["auto"], read["fp32"])
    assert not np.array_equal(read["bf16"], read["fp32"])  # so the comparison can fail


@pytest.mark.usefixtures("two_threads")
def test_automatic_batch_size_on_a_cpu_keeps_about_131k_pixels_per_call(tmp_path) -> None:
    options = StylizeOptions(device="cpu")
    assert [options.batch_for(s, s) for s in (512, 384, 362, 256, 128, 64)] == [1, 1, 1, 2, 8, 8]
    assert StylizeOptions(device="cpu", batch_size=3).batch_for(512, 512) == 3
    write_photos(tmp_path / "small", 9, 128, 128)
    write_photos(tmp_path / "mid", 5, 256, 256, stem="mid")
    write_photos(tmp_path / "large", 2, 512, 512, stem="large")
    jobs = plan_jobs([tmp_path / "small", tmp_path / "mid", tmp_path / "large"],
                     tmp_path / "out", style="s")
    assert plan_work(jobs, options) == {(8, 128, 128): 1, (1, 128, 128): 1, (2, 256, 256): 2,
                                        (1, 256, 256): 1, (1, 512, 512): 2}
