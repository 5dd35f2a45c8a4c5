"""Shared fixtures: tiny images, a random-weight VGG for plumbing, the real weights for quality."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FAST_NST_SHARED", ROOT.parent / "shared"))
CAFFE_WEIGHTS = SHARED / "weights" / "vgg19-caffe-rgb255-features.pth"
STYLES = SHARED / "data" / "styles"
CONTENT = SHARED / "data" / "content"
TRAIN_IMAGES = SHARED / "data" / "train"


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
