"""fast_nst.configs: the one converter from config values to a dataclass, with the schema's
type checks and a one-line error for an unknown key."""

from __future__ import annotations

import pytest

from fast_nst import FastNSTError
from fast_nst.configs import StyleConfig, to_dataclass
from fast_nst.model.network import NetConfig
from fast_nst.training.settings import LossConfig, OptimConfig


def test_values_override_the_defaults_and_are_converted_to_the_field_types() -> None:
    optim = to_dataclass(OptimConfig, {"lr": 2, "betas": [0.5, 0.9]}, "optim")
    assert optim == OptimConfig(lr=2.0, betas=[0.5, 0.9])
    assert isinstance(optim.lr, float)


def test_none_gives_the_defaults_and_an_instance_passes_through() -> None:
    assert to_dataclass(NetConfig, None, "model") == NetConfig()
    net = NetConfig(width="half")
    assert to_dataclass(NetConfig, net, "model") is net


def test_nested_schema_and_post_init_defaults() -> None:
    loss = to_dataclass(LossConfig, {"stability": {"weight": 2}}, "loss")
    assert loss.stability.weight == 2.0 and loss.stability.mode == "noise"
    assert loss.style_layers == ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]  # Johnson's
    mapping = to_dataclass(LossConfig, {"style_layers": {"relu1_1": 0.5}}, "loss")
    assert mapping.style_layers == {"relu1_1": 0.5}


def test_an_unknown_key_names_the_group_and_the_valid_keys() -> None:
    with pytest.raises(FastNSTError, match=r"unknown optim option\(s\) lrr; valid: betas, gamma"):
        to_dataclass(OptimConfig, {"lrr": 1}, "optim")


def test_a_wrong_type_is_one_line_naming_the_group() -> None:
    with pytest.raises(FastNSTError, match=r"^optim: Value 'fast' of type 'str' could not be "
                                           r"converted to Float$"):
        to_dataclass(OptimConfig, {"lr": "fast"}, "optim")


def test_a_style_needs_its_image() -> None:
    assert to_dataclass(StyleConfig, {"image": "a.jpg"}, "style").size == 512
    with pytest.raises(FastNSTError, match="^style: .* missing mandatory value: image$"):
        to_dataclass(StyleConfig, {"name": "x"}, "style")
