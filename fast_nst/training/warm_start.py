"""Warm start: begin training from a trained model file (anything `stylize.py` loads) instead of
random weights, the fast way to a new style. The architecture must match the config's, except
that a narrower network is widened to the config's width (`fast_nst.model.widen`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pytorch_lightning.utilities import rank_zero_info

from fast_nst.errors import FastNSTError
from fast_nst.model.files import load_model  # the one model loader (export, ckpt, examples
from fast_nst.model.network import SHAPE_FIELDS, NetConfig, TransformerNet
from fast_nst.model.widen import can_widen, widen


@dataclass
class WarmStart:
    """A trained network and the config it is trained further with."""

    net: TransformerNet
    config: NetConfig


def warm_start(path: str, config: NetConfig) -> WarmStart:
    """The trained network in `path` and the config to train it further; one-line errors."""
    model = load_model(path)
    trained = model.net.config
    widens = can_widen(trained.width, config.width)
    differ = [f"model.{k}={getattr(trained, k)} (config: {getattr(config, k)})"
              for k in SHAPE_FIELDS
              if getattr(trained, k) != getattr(config, k) and not (k == "width" and widens)]
    if differ:
        raise FastNSTError(f"init={path} is another architecture: {', '.join(differ)}; "
                           "set those model options to match")
    # the output mapping and pixel scale say what the weights mean: taken from the model file
    adopted = NetConfig(**{**asdict(config), "output": trained.output,
                           "pixel_scale": trained.pixel_scale})
    net = model.net
    if widens:
        net = widen(net, config.width)
        rank_zero_info(f"widened {trained.width} -> {config.width} width (same output)")
    rank_zero_info(f"warm start from {path} ({model.kind}, style {model.style})")
    return WarmStart(net, adopted)
