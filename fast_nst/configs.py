"""Settings as dataclasses: the one converter from config values to a dataclass (OmegaConf's,
with its type checks) and the `style` group's schema. `fast_nst.cli.register_schemas` stores
every schema with Hydra's ConfigStore, so conf/ YAML files hold only values that differ.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, TypeVar

from omegaconf import MISSING, DictConfig, OmegaConf, SCMode
from omegaconf.errors import OmegaConfBaseException

from fast_nst.errors import FastNSTError

T = TypeVar("T")


@dataclass
class StyleConfig:
    """The painting: `name` names the trained model (`<name>.pt`), `image` is its file and
    `size` the long side it is resized to for the style targets (None: as it is)."""

    name: str = "custom"
    image: str = MISSING
    size: int | None = 512


def to_objects(cfg: DictConfig) -> dict[str, Any]:
    """A composed config as plain Python, every schema-backed node as its dataclass."""
    return OmegaConf.to_container(cfg, resolve=True,
                                  structured_config_mode=SCMode.INSTANTIATE)  # type: ignore


def to_dataclass(cls: type[T], values: Any, what: str) -> T:
    """`cls` from an instance or a mapping of overrides (None: the defaults), checked as Hydra
    checks a config; an unknown key or a wrong type is a one-line error naming `what`."""
    if values is None or isinstance(values, cls):
        return values if values is not None else OmegaConf.to_object(OmegaConf.structured(cls))
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - known)
    if unknown:
        raise FastNSTError(f"unknown {what} option(s) {', '.join(map(str, unknown))}; "
                           f"valid: {', '.join(sorted(known))}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), values)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as err:
        detail = str(err).strip().splitlines()[0]
        raise FastNSTError(f"{what}: {detail}") from None
