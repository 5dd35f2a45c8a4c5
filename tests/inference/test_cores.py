"""fast_nst.inference.cores: a folder of small images runs one image per core, each call on one
torch thread, with the same outputs as one image at a time."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from fast_nst import FastNSTError
from fast_nst.inference import pipeline as pipeline_module
from fast_nst.inference.cores import MAX_PIXELS_PER_CORE, map_across_cores, worth_spreading
from fast_nst.inference.jobs import Job
from fast_nst.inference.pipeline import StylizeOptions, _spread, stylize_paths
from tests.stylize_helpers import QUIET, read, write_photos


@pytest.fixture
def real_threads():
    """Two real torch threads for the test, the process's count restored after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_worth_spreading_needs_two_calls_per_thread_and_small_calls() -> None:
    assert worth_spreading(4, 512 * 512, threads=2) == 2
    assert worth_spreading(3, 512 * 512, threads=2) == 1  # fewer than two calls per thread
    assert worth_spreading(100, 512 * 512, threads=1) == 1  # one thread: nothing to spread
    assert worth_spreading(100, MAX_PIXELS_PER_CORE + 1, threads=2) == 1  # memory


@pytest.mark.usefixtures("real_threads")
def test_map_keeps_order_and_gives_each_worker_one_thread() -> None:
    seen: list[tuple[str, int]] = []

    def work(i: int) -> int:
        seen.append((threading.current_thread().name, torch.get_num_threads()))
        torch.mm(torch.rand(64, 64), torch.rand(64, 64))  # a real op on the worker's thread
        return i * i

    assert list(map_across_cores(work, range(8), workers=2)) == [i * i for i in range(8)]
    assert {threads for _, threads in seen} == {1}
    assert all(name.startswith("fast_nst-core") for name, _ in seen)
    assert torch.get_num_threads() == 2  # restored

    seen.clear()
    assert list(map_across_cores(work, range(3), workers=1)) == [0, 1, 4]
    assert {name for name, _ in seen} == {threading.current_thread().name}


@pytest.mark.usefixtures("real_threads")
def test_a_failure_is_raised_and_threads_restored() -> None:
    def work(i: int) -> int:
        if i == 2:
            raise ValueError("image 2 is broken")
        return i

    results = map_across_cores(work, range(6), workers=2)
    assert next(results) == 0 and next(results) == 1
    with pytest.raises(ValueError, match="image 2 is broken"):
        next(results)
    assert torch.get_num_threads() == 2


@pytest.mark.usefixtures("real_threads")
def test_folder_across_cores_equals_one_at_a_time(tmp_path, model_pt, caplog) -> None:
    write_photos(tmp_path / "in", 6, 24, 20)
    options = StylizeOptions(**QUIET, precision="fp32", compile=False, batch_size=1)
    with caplog.at_level(logging.INFO, logger="fast_nst.inference.pipeline"):
        spread = stylize_paths(model_pt, [tmp_path / "in"], tmp_path / "spread", options)
    assert "6 images one per core (2 workers)" in caplog.text
    caplog.clear()
    one_at_a_time = StylizeOptions(**{**options.__dict__, "workers": 1})
    with caplog.at_level(logging.INFO, logger="fast_nst.inference.pipeline"):
        single = stylize_paths(model_pt, [tmp_path / "in"], tmp_path / "single", one_at_a_time)
    assert "one per core" not in caplog.text
    assert sorted(p.name for p in spread) == sorted(p.name for p in single)
    assert len(spread) == 6
    for a in spread:
        diff = read(a).astype(int) - read(tmp_path / "single" / a.name).astype(int)
        assert np.abs(diff).max() <= 1


def test_workers_below_one_is_a_one_line_error() -> None:
    with pytest.raises(FastNSTError, match="--workers must be at least 1, got 0") as err:
        StylizeOptions(workers=0).validate()
    assert "\n" not in str(err.value)


def fake_pipeline(device: str = "cpu", compiled: frozenset = frozenset(), **options):
    """What `_spread` reads of a pipeline: its options, and its stylizer's device and compiled
    shapes."""
    stylizer = SimpleNamespace(device=torch.device(device),
                               compiles=lambda shape: shape in compiled)
    return SimpleNamespace(options=StylizeOptions(**QUIET, **options), stylizer=stylizer)


def batches_of(*sizes: tuple[int, int]) -> list[list[Job]]:
    """One single-image batch per (width, height)."""
    return [[Job(Path(f"{i}.png"), Path(f"out/{i}.png"), False, size)]
            for i, size in enumerate(sizes)]


@pytest.mark.usefixtures("real_threads")
def test_spread_keeps_tiles_and_compiled_shapes_one_at_a_time() -> None:
    batches = batches_of((64, 48), (64, 48), (64, 48), (64, 48), (900, 700), (32, 32))
    pipeline = fake_pipeline(compiled=frozenset({(1, 32, 32)}), tile=512)
    spread, rest, workers = _spread(batches, pipeline)
    assert workers == 2  # four eager calls on two threads
    assert spread == batches[:4]
    assert rest == [batches[4], batches[5]]  # tiled (900 px > 512), compiled (32 x 32)


def test_spread_with_explicit_workers_is_capped_by_the_batches(caplog) -> None:
    pipeline = fake_pipeline(workers=5)
    spread, rest, workers = _spread(batches_of((64, 48), (40, 40)), pipeline)
    assert (len(spread), rest, workers) == (2, [], 2)
    with caplog.at_level(logging.INFO, logger="fast_nst.inference.pipeline"):
        spread, rest, workers = _spread(batches_of((64, 48), (40, 40)),
                                        fake_pipeline(device="cuda", workers=4))
    assert (spread, len(rest), workers) == ([], 2, 1)  # GPUs run one call at a time
    assert "--workers 4 not used" in caplog.text


@pytest.mark.usefixtures("real_threads")
def test_spread_run_leaves_no_global_state_behind(tmp_path, model_pt) -> None:
    write_photos(tmp_path / "in", 6, 24, 20)
    limit = Image.MAX_IMAGE_PIXELS
    options = StylizeOptions(**QUIET, precision="fp32", compile=False, batch_size=1, workers=2)
    written = stylize_paths(model_pt, [tmp_path / "in"], tmp_path / "out", options)
    assert len(written) == 6
    assert Image.MAX_IMAGE_PIXELS == limit  # readers on two threads restore Pillow's limit
    assert torch.get_num_threads() == 2


@pytest.mark.usefixtures("real_threads")
def test_a_failure_in_a_spread_folder_is_a_one_line_error(tmp_path, model_pt,
                                                          monkeypatch) -> None:
    write_photos(tmp_path / "in", 6, 24, 20)
    real_load = pipeline_module.load_pixels

    def load(path, **kwargs):
        if Path(path).name == "3.png":
            raise FastNSTError(f"not an image PIL can read: {path}")
        return real_load(path, **kwargs)

    monkeypatch.setattr(pipeline_module, "load_pixels", load)
    options = StylizeOptions(**QUIET, precision="fp32", compile=False, batch_size=1, workers=2)
    with pytest.raises(FastNSTError, match="3.png") as err:
        stylize_paths(model_pt, [tmp_path / "in"], tmp_path / "out", options)
    assert "\n" not in str(err.value)
    assert torch.get_num_threads() == 2
    assert not [p for p in (tmp_path / "out").iterdir() if ".tmp" in p.name]
