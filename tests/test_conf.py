"""The composed configs of the one root conf/: every trainer config and recipe leaves precision
on auto."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from fast_nst.cli import CONF_ROOT, register_schemas
from fast_nst.model.files import load_model

# The compile threshold scales with the threads: fix them (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("two_threads")


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("overrides", [
    [], ["trainer=cpu"], ["trainer=gpu"], ["trainer=ddp"], ["experiment=local"],
    ["experiment=quick"], ["experiment=johnson2016"], ["experiment=bundle/starry_night"],
    ["experiment=bundle/the_scream"], ["experiment=bundle/great_wave"],
    ["experiment=bundle/udnie"]])
def test_every_trainer_config_and_recipe_defaults_to_auto(overrides) -> None:
    register_schemas()
    with initialize_config_dir(str(CONF_ROOT), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    assert cfg.trainer.precision == "auto"


@pytest.mark.parametrize("style", sorted(p.stem for p in (CONF_ROOT / "experiment" / "bundle")
                                         .glob("*.yaml") if p.stem != "recipe"))
def test_each_bundled_recipe_has_the_weights_its_shipped_model_was_trained_with(style) -> None:
    register_schemas()
    with initialize_config_dir(str(CONF_ROOT), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment=bundle/{style}"])
    meta = load_model(ROOT / "models" / f"{style}.pt").meta
    assert cfg.loss.style_weight == meta["loss"]["style_weight"]
    assert cfg.data.image_size == meta["image_size"]
