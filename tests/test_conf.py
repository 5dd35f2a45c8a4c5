"""The composed configs of the one root conf/: every trainer config and recipe leaves precision
on auto."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from fast_nst.cli import CONF_ROOT, register_schemas

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
