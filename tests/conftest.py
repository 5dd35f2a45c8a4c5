"""Shared fixtures: tiny images, a random-weight VGG for plumbing, the real weights for quality."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fast_nst import device as hw
from fast_nst.core.images import save_image
from fast_nst.model.files import export_model
from tests.stylize_helpers import tiny_net

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FAST_NST_SHARED", ROOT.parent / "shared"))
CAFFE_WEIGHTS = SHARED / "weights" / "vgg19-caffe-rgb255-features.pth"
STYLES = SHARED / "data" / "styles"
CONTENT = SHARED / "data" / "content"
TRAIN_IMAGES = SHARED / "data" / "train"


@pytest.fixture(autouse=True, scope="session")
def _private_compile_cache(tmp_path_factory) -> None:
    """Compiled networks and counts of stylize runs go to a temporary folder, not the user's
    cache (fast_nst.inference.aot)."""
    os.environ["FAST_NST_CACHE"] = str(tmp_path_factory.mktemp("fast_nst_cache"))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _no_stale_log_handlers() -> None:
    """Hydra apps called in-process point the root logger at the streams of their test, which
    pytest closes afterwards; a later log record would print a 'Logging error' traceback into
    another test's output. A real command ends with its process, so only tests need this."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(getattr(handler, "stream", None), "closed", False):
            root.removeHandler(handler)


@pytest.fixture
def caffe_weights() -> Path:
    if not CAFFE_WEIGHTS.is_file():
        pytest.skip(f"real VGG19 weights absent ({CAFFE_WEIGHTS}); see ../shared/README.md")
    return CAFFE_WEIGHTS


@pytest.fixture
def shared_styles() -> Path:
    if not STYLES.is_dir():
        pytest.skip(f"style images absent ({STYLES})")
    return STYLES


@pytest.fixture
def shared_content() -> Path:
    if not CONTENT.is_dir():
        pytest.skip(f"content photos absent ({CONTENT})")
    return CONTENT


@pytest.fixture
def shared_train() -> Path:
    if not TRAIN_IMAGES.is_dir():
        pytest.skip(f"training photos absent ({TRAIN_IMAGES}); see ../shared/README.md")
    return TRAIN_IMAGES


# ---------------------------------------------------------------------------------------------
# A CPU without and with native bf16, and the thread count the compile threshold scales with
# (the tests that came from the precision suite: tests/test_device.py, tests/test_configs.py,
# tests/inference, tests/optimizer/test_loss.py, tests/apps/test_stylize.py, tests/benchmarks).


@pytest.fixture
def zen3(monkeypatch) -> None:
    """A CPU without native bf16 (AVX2 only, as an AMD Zen 3)."""
    monkeypatch.setattr(hw, "cpu_native_bf16", lambda: False)
    monkeypatch.setattr(hw, "cpu_capability", lambda: "AVX2")


@pytest.fixture
def zen4(monkeypatch) -> None:
    """A CPU with native bf16 (AVX512-BF16)."""
    monkeypatch.setattr(hw, "cpu_native_bf16", lambda: True)
    monkeypatch.setattr(hw, "cpu_capability", lambda: "AVX512")


@pytest.fixture
def two_threads(monkeypatch) -> None:
    """The compile threshold scales with the threads; fix them."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)


# ---------------------------------------------------------------------------------------------
# A tiny exported model (tests/inference, tests/apps/test_stylize.py).


@pytest.fixture
def model_pt(tmp_path) -> Path:
    (tmp_path / "models").mkdir()
    return export_model(tiny_net(), tmp_path / "models" / "stripes.pt", style="stripes")


# ---------------------------------------------------------------------------------------------
# A striped style image (tests/training, tests/optimizer, tests/studies).


@pytest.fixture
def style_file(tmp_path):
    style = torch.zeros(1, 3, 32, 32)
    style[:, 0, :, ::4] = 1.0
    return str(save_image(style, tmp_path / "style.png"))


# ---------------------------------------------------------------------------------------------
# A content and a style image for the optimizer (tests/optimizer, tests/apps/test_gatys.py).


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    """A smooth content photo-like image and a stripy 'style', both small files."""
    y, x = torch.meshgrid(torch.linspace(0, 1, 60), torch.linspace(0, 1, 80), indexing="ij")
    content = torch.stack([x, y, 0.5 + 0.4 * torch.sin(6 * x * y)]).unsqueeze(0)
    style = torch.stack([(torch.sin(40 * x) > 0).float(), 0.2 + 0 * x,
                         (torch.sin(30 * y) > 0).float()]).unsqueeze(0)
    paths = {"content": tmp_path / "content.png", "style": tmp_path / "style.png"}
    save_image(content, paths["content"])
    save_image(style, paths["style"])
    return paths


# ---------------------------------------------------------------------------------------------
# Photos and a style image for the calibration (tests/studies/test_calibrate.py,
# tests/apps/test_calibrate.py).


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Two small photos (not square: the crop matters) and a striped style image."""
    root = tmp_path_factory.mktemp("calibrate")
    y, x = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 52), indexing="ij")
    paths = {"a": root / "a.png", "b": root / "b.png", "style": root / "style.png"}
    save_image(torch.stack([x, y, 1 - x]).unsqueeze(0), paths["a"])
    save_image(torch.stack([y * x, 0.5 + 0 * x, (torch.sin(9 * y) + 1) / 2]).unsqueeze(0),
               paths["b"])
    sy, sx = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 64), indexing="ij")
    save_image(torch.stack([(torch.sin(40 * sx) > 0).float(), sy, (torch.cos(25 * sy) > 0)
                            .float()]).unsqueeze(0), paths["style"])
    return paths


# ---------------------------------------------------------------------------------------------
# Photos and a style image for training (tests/apps/test_train.py, tests/training).


def make_photos(folder: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(n):
        pixels = (rng.random((int(rng.integers(36, 60)), 48, 3)) * 255).astype("uint8")
        Image.fromarray(pixels).save(folder / f"photo{i}.jpg")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """Six tiny photos (4 train, 2 validation) and a style image."""
    root = tmp_path_factory.mktemp("train")
    make_photos(root / "photos", 6)
    torch.manual_seed(0)
    stripes = torch.zeros(1, 3, 48, 48)
    stripes[:, 0, :, ::4] = 1.0
    stripes[:, 2, ::6, :] = 0.8
    save_image(stripes, root / "style.png")
    return root
