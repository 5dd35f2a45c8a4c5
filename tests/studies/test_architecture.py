"""fast_nst.studies.architecture: multiply-adds counted right, the speed and quality tables."""

from __future__ import annotations

import pytest
from torch import nn

from fast_nst.model.files import BUNDLED_MODELS, load_model
from fast_nst.model.network import NetConfig, TransformerNet
from fast_nst.studies.architecture import (
    VARIANTS,
    content_photos,
    multiply_adds,
    quality_rows,
    speed_rows,
)
from tests.conftest import SHARED


def test_multiply_adds_of_a_conv_and_a_transposed_conv() -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1),
                        nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1))
    # conv: 16x16 outputs x 8 x 3 x 3 x 3; transposed: 16x16 inputs x 8 x 4 x 3 x 3
    assert multiply_adds(net, 16) == 256 * 8 * 27 + 256 * 8 * 4 * 9


def test_fast_network_does_a_fifth_of_the_half_networks_work() -> None:
    half = multiply_adds(TransformerNet(NetConfig(width="half")), 256)
    fast = multiply_adds(TransformerNet(NetConfig(**VARIANTS["fast (model=fast)"])), 256)
    assert 2.6e9 < half < 2.9e9  # Johnson's layers at half width: about 11 GMAC at 512 px
    assert fast * 5 < half


def test_speed_rows_name_every_variant_against_the_first() -> None:
    variants = {k: VARIANTS[k] for k in ("half (bundled)", "fast (model=fast)")}
    rows = speed_rows(variants, size=32, rounds=1)
    assert [r["variant"] for r in rows] == list(variants)
    assert rows[0]["speedup"] == 1.0 and all(r["ms_fp32"] > 0 for r in rows)
    assert rows[1]["params_k"] < rows[0]["params_k"] and rows[1]["gmac"] < rows[0]["gmac"]


def test_a_teacher_scores_itself_at_ratio_one(caffe_weights, shared_content) -> None:
    teacher = load_model(BUNDLED_MODELS / "udnie.pt")
    vgg = {"weights": str(caffe_weights), "convention": "caffe", "pooling": "max"}
    rows = quality_rows(teacher, {"same": teacher}, content_photos(SHARED)[:1], 64, vgg,
                        str(SHARED))
    assert [r["model"] for r in rows] == ["teacher", "same"]
    assert rows[0]["content"] > 0 and rows[0]["style"] > 0
    assert rows[1]["content_ratio"] == pytest.approx(1.0) == rows[1]["style_ratio"]
