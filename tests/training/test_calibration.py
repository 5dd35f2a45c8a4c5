"""fast_nst.training.calibration: the rule that suggests a style weight, on hand-made numbers."""

from __future__ import annotations

import math

import pytest

from fast_nst.errors import FastNSTError
from fast_nst.training.calibration import Rule, Settings, crossing, suggest, weight_range


def test_rule_picks_the_interpolated_style_crossing() -> None:
    weights, content = [0.1, 1.0, 10.0], [0.01, 0.1, 0.3]
    s = suggest(weights, [0.2, 0.6, 1.0], content, Rule(style_progress=0.75, max_content=0.5))
    # 0.75 lies 3/8 of the way from 0.6 (w=1) to 1.0 (w=10): 10 ** 0.375 = 2.37
    assert (s.weight, s.limit) == (2.4, "style")


def test_rule_stops_at_the_content_bound() -> None:
    s = suggest([0.1, 1.0, 10.0], [0.2, 0.6, 1.0], [0.1, 0.6, 0.9], Rule(0.75, 0.5))
    # content reaches 0.5 at 4/5 of the way from 0.1 to 1: 10 ** -0.2 = 0.63, before the style
    assert (s.weight, s.limit) == (0.63, "content")


def test_rule_at_the_ends_of_the_range() -> None:
    short = suggest([0.1, 1.0, 10.0], [0.1, 0.2, 0.3], [0.0, 0.1, 0.2], Rule(0.75, 0.5))
    assert (short.weight, short.limit) == (10.0, "range") and "raise the range" in short.reason
    early = suggest([0.1, 1.0], [0.9, 1.2], [0.0, 0.1], Rule(0.75, 0.5))
    assert early.weight == 0.1 and "lower the range" in early.reason
    nan = suggest([0.1, 1.0, 10.0], [math.nan, 0.5, 1.0], [0.0, 0.1, 0.2], Rule(0.75, 0.5))
    assert nan.weight == pytest.approx(10 ** 0.5, rel=0.02)  # NaN points are skipped
    with pytest.raises(FastNSTError, match="no style progress"):
        suggest([1.0], [math.nan], [0.0], Rule())


def test_crossing_never_reached() -> None:
    assert crossing([1.0, 2.0], [0.1, 0.2], 0.5) is None


def test_weight_range_is_log_spaced_around_the_default() -> None:
    settings = Settings(photos=["a.jpg"], span=(0.5, 50.0), count=3)
    assert weight_range(settings, 0.2) == pytest.approx([0.1, 1.0, 10.0])
    assert weight_range(Settings(photos=["a.jpg"], weights=[3, 1]), 0.2) == [1.0, 3.0]
    for bad in (Settings(photos=["a.jpg"], weights=[]), Settings(photos=["a.jpg"], count=0),
                Settings(photos=["a.jpg"], span=(2.0, 1.0)),
                Settings(photos=["a.jpg"], weights=[0, 1])):
        with pytest.raises(FastNSTError, match="no style weights to try"):
            weight_range(bad, 0.2)


@pytest.mark.parametrize("photos", [[], ["a/img.jpg", "b/img.jpg"]])
def test_photos_must_be_given_with_distinct_names(photos) -> None:
    with pytest.raises(FastNSTError, match="one or more photos with distinct file names"):
        Settings(photos=photos)
