"""fast_nst.cli: `style=<image file>` for every app, and the schemas behind the config groups."""

from __future__ import annotations

import pytest
import yaml
from omegaconf import OmegaConf

from fast_nst.cli import CONF_ROOT, SCHEMAS, register_schemas, style_file_overrides


@pytest.mark.parametrize(("args", "expected"), [
    (["style=udnie", "steps=2"], ["style=udnie", "steps=2"]),  # a painting of conf/style
    (["style=nosuch"], ["style=nosuch"]),  # a typo stays Hydra's "unknown style option"
    (["style=null"], ["style=null"]),
    (["style=../My Painting.JPG"],
     ["style=custom", "style.image=../My Painting.JPG", "style.name=My_Painting"]),
    (["style=b.webp", "style.name=mine"],
     ["style=custom", "style.image=b.webp", "style.name=mine"]),
    (["style2=a.jpg", "content=style.jpg"], ["style2=a.jpg", "content=style.jpg"]),
])
def test_an_image_file_becomes_the_custom_style(args, expected) -> None:
    assert style_file_overrides(args) == expected


def test_an_existing_file_without_an_image_suffix_is_a_file(tmp_path) -> None:
    painting = tmp_path / "painting"
    painting.write_bytes(b"")
    assert style_file_overrides([f"style={painting}"])[:2] == ["style=custom",
                                                              f"style.image={painting}"]


@pytest.mark.parametrize("group", sorted(SCHEMAS))
def test_group_files_start_from_the_schema_and_hold_only_what_differs(group) -> None:
    """The dataclass is the schema: a YAML value equal to its default would be written twice."""
    schema = OmegaConf.structured(SCHEMAS[group])
    files = sorted((CONF_ROOT / group).glob("*.yaml"))
    assert files, group
    for path in files:
        values = yaml.safe_load(path.read_text()) or {}
        assert values.pop("defaults", None) == ["schema", "_self_"], path
        for key, value in values.items():
            assert key in schema.keys(), f"{path}: {key} is not a field of the schema"
            if not OmegaConf.is_missing(schema, key):
                default = OmegaConf.to_container(schema)[key]
                assert value != default, f"{path}: {key}={value!r} is the default"


@pytest.mark.parametrize(("override", "expected"), [
    ("model.widht=full", "unknown config key 'model.widht'; valid keys in model: block, "
                         "downsample, end_kernel, n_residual, norm, output, pixel_scale, "
                         "upsample, width"),  # a schema: no + hint
    ("trainer.foo=1", "unknown config key 'trainer.foo'"),
    ("optim.lr=fast", "Value 'fast' of type 'str' could not be converted to Float"),
])
def test_config_mistakes_are_described_in_one_line(override, expected) -> None:
    from hydra import compose, initialize_config_dir

    from fast_nst.cli import describe_config_error

    register_schemas()
    with initialize_config_dir(str(CONF_ROOT), version_base="1.3"):
        with pytest.raises(Exception) as caught:
            compose("train", overrides=[override])
    message = describe_config_error(caught.value)
    assert message is not None and expected in message and "\n" not in message
    assert ("+model" in message) is False
