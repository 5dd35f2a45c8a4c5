"""benchmarks/study_recipes.py: which weights each variant's phases start from."""

from __future__ import annotations

from types import ModuleType

import pytest
from hydra import compose, initialize_config_dir

from fast_nst.cli import CONF_ROOT, register_schemas
from tests.app_helpers import load_script


def load_study() -> ModuleType:
    return load_script("benchmarks/study_recipes")


def composed_init(args: list[str]) -> str | None:
    """The `init` train.py would get from these overrides (hydra.* ones left out)."""
    register_schemas()
    with initialize_config_dir(str(CONF_ROOT), version_base="1.3"):
        cfg = compose("train", overrides=[a for a in args if not a.startswith("hydra.")])
    return cfg.init


@pytest.mark.parametrize(("variant", "style", "expected"), [
    ("baseline", "udnie", None),  # the recipe names models/the_scream.pt: not for the study
    ("progressive", "starry_night", None),
    ("warm", "udnie", "models/the_scream.pt"),
    ("warm", "the_scream", "models/udnie.pt"),
    ("continue", "great_wave", "models/great_wave.pt"),
])
def test_a_first_phase_starts_from_what_its_variant_names(variant, style, expected,
                                                          tmp_path) -> None:
    study = load_study()
    _, overrides = study.VARIANTS[variant][0]
    args = study.phase_args(style, overrides, 8.0, 100, tmp_path / "phase0", None)
    assert composed_init(args) == expected
    assert "++trainer.max_time=00:00:08:00" in args


def test_a_later_phase_starts_from_the_previous_export(tmp_path) -> None:
    study = load_study()
    _, overrides = study.VARIANTS["progressive"][1]
    previous = tmp_path / "phase0" / "udnie.pt"
    args = study.phase_args("udnie", overrides, 2.0, 100, tmp_path / "phase1", previous)
    assert composed_init(args) == str(previous)
    assert "data.batch_size=4" in args
