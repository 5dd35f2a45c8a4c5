"""The glue between Hydra and every fast_nst Hydra app (train, gatys, experiments, compare,
calibrate, flicker): the one config root conf/ with the dataclass schemas in Hydra's ConfigStore,
`style=<image file>` for any painting, config mistakes as one line with exit status 2, and
library logs in the run's log.

Hydra reports its own errors (an unknown key, an unknown group option, an override it cannot
parse) as several lines and exit status 1 inside `hydra._internal.utils.run_and_report`, unless
the environment variable HYDRA_FULL_ERROR is set: then it re-raises them unchanged. `hydra_app`
sets it for the duration of the call, so the exception reaches this module, which turns it into
`error: ...` (naming the key and the valid choices) like every other user mistake.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import mimetypes
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from fast_nst.configs import StyleConfig
from fast_nst.core.vgg import VGGConfig
from fast_nst.errors import FastNSTError, exit_on_user_error, find_user_error, one_line
from fast_nst.model.network import NetConfig
from fast_nst.optimizer.config import GatysApp
from fast_nst.training.calibration import Settings
from fast_nst.training.settings import DistillLossConfig, LossConfig, OptimConfig

Task = Callable[[Any], Any]
# Lightning's loggers keep their own console handler and do not propagate to the root logger,
# where Hydra puts the run's log file; they get the file handler here.
LIBRARY_LOGGERS = ("pytorch_lightning", "lightning_fabric")
_MAX_LISTED = 40  # valid keys named in one error line
# The one config root: a primary config per app (train, gatys, ...) over shared groups.
CONF_ROOT = Path(__file__).resolve().parents[1] / "conf"
SCHEMAS: dict[str, type] = {"style": StyleConfig, "vgg": VGGConfig, "model": NetConfig,
                            "loss": LossConfig, "optim": OptimConfig, "calibration": Settings,
                            "distillation": DistillLossConfig}


def hydra_app(config_name: str) -> Callable[[Task], Callable[[], None]]:
    """`hydra.main` for fast_nst apps: one-line errors (exit 2), Ctrl-C as one line (exit 130),
    Lightning's log records in Hydra's `<run dir>/<app>.log` and on stdout, and
    `style=<image file>` for any painting (see `style_file_overrides`)."""

    def decorate(task: Task) -> Callable[[], None]:
        import hydra

        register_schemas()

        # Inside the job: mistakes found while it runs (Hydra would add a line of its own to a
        # job that raises, so they exit here).
        @functools.wraps(task)
        @exit_on_user_error
        @_config_errors_as_user_errors
        def job(cfg: Any) -> Any:
            route_library_logs()
            return task(cfg)

        hydra_main = hydra.main(config_path=str(CONF_ROOT), config_name=config_name,
                                version_base="1.3")(job)

        # Outside: mistakes Hydra finds while composing the config, before the job starts.
        @functools.wraps(task)
        @exit_on_user_error
        @_config_errors_as_user_errors
        def main() -> None:
            sys.argv[1:] = style_file_overrides(sys.argv[1:])
            with _hydra_reraises():
                hydra_main()

        return main

    return decorate


def register_schemas() -> None:
    """Store the dataclass of every schema-backed config group as `<group>/schema` (the group's
    YAML files list it first) and the gatys app's as `gatys_schema`."""
    store = ConfigStore.instance()
    for group, node in SCHEMAS.items():
        store.store(group=group, name="schema", node=node)
    store.store(name="gatys_schema", node=GatysApp)


def style_file_overrides(args: list[str], conf: Path = CONF_ROOT) -> list[str]:
    """`style=painting.jpg` -> `style=custom style.image=painting.jpg style.name=painting`.

    `style` is a config group (the paintings in conf/style), so Hydra would read a file path as
    the name of a group option; any value that is not an option is taken as an image file.
    """
    out: list[str] = []
    named = any(a.startswith("style.name=") for a in args)
    for arg in args:
        key, _, value = arg.partition("=")
        if key != "style" or not _looks_like_file(value) or (conf / "style" / f"{value}.yaml"
                                                              ).is_file():
            out.append(arg)
            continue
        out += ["style=custom", f"style.image={value}"]
        if not named:
            out.append(f"style.name={safe_style_name(value)}")
    return out


def _looks_like_file(value: str) -> bool:
    """An image path rather than a style name (a typo of a name stays Hydra's error)."""
    kind = mimetypes.guess_type(value)[0] or ""
    return kind.startswith("image/") or "/" in value or Path(value).is_file()


def safe_style_name(path: str) -> str:
    """A model name from an image path: its stem with anything but [\w-] as `_`."""
    return re.sub(r"[^\w-]+", "_", Path(path).stem).strip("_") or "custom"


def _config_errors_as_user_errors(func: Callable) -> Callable:
    """Re-raise a config mistake (see `describe_config_error`) as a one-line FastNSTError."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as err:
            message = None if find_user_error(err) else describe_config_error(err)
            if message is None:
                raise
            raise FastNSTError(message) from None

    return wrapper


@contextlib.contextmanager
def _hydra_reraises() -> Iterator[None]:
    """HYDRA_FULL_ERROR=1 for the call: Hydra raises instead of printing and exiting 1."""
    before = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = before


def describe_config_error(err: BaseException) -> str | None:
    """One line for a config mistake Hydra or OmegaConf raised; None for anything else."""
    from hydra.errors import (
        HydraException,
        InstantiationException,
        MissingConfigException,
        OverrideParseException,
    )
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    cause = err.__cause__
    if isinstance(err, MissingConfigException) and err.missing_cfg_file:
        group, _, name = str(err.missing_cfg_file).rpartition("/")
        options = [o for o in err.options or [] if o != "schema"]  # the dataclass, not a choice
        if options:
            return (f"unknown {group or 'config'} option {name!r}; choose one of: "
                    f"{', '.join(options)}")
        return f"cannot load config {err.missing_cfg_file!r}: {_first_line(err)}"
    if isinstance(err, OverrideParseException):
        hint = ""
        if re.fullmatch(r"[\w.+~]+=\[.*=.*\]", err.override or ""):  # a list of overrides
            key, _, items = err.override.partition("=")
            quoted = ",".join(f'"{i.strip()}"' for i in items.strip("[]").split(","))
            hint = f"; quote each item: '{key}=[{quoted}]'"
        return f"cannot parse the override {err.override!r}: {_first_line(err)}{hint}"
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and cause.full_key:
        return _unknown_key(cause)
    if isinstance(err, InstantiationException):
        # Config values that do not fit a constructor (e.g. +trainer.foo=1) are user mistakes;
        # anything else raised while building is a bug and keeps its traceback.
        if isinstance(cause, TypeError):
            target = re.search(r"target '([^']+)'", str(err))
            what = target.group(1) if target else "an object"
            return f"the config does not fit {what}: {_first_line(cause)}"
        return None
    if isinstance(err, (HydraException, OmegaConfBaseException)):
        detail = f" ({_first_line(cause)})" if cause is not None else ""
        return f"config error: {_first_line(err)}{detail}"
    return None


def _unknown_key(cause: Any) -> str:
    key = str(cause.full_key)
    parent = cause.parent_node
    valid = []
    if parent is not None and hasattr(parent, "keys"):
        valid = sorted(str(k) for k in parent.keys() if k not in ("_target_", "hydra"))
    where = key.rpartition(".")[0] or "the config"
    listed = ", ".join(valid[:_MAX_LISTED]) + (", ..." if len(valid) > _MAX_LISTED else "")
    choices = f"; valid keys in {where}: {listed}" if valid else ""
    if parent is not None and dataclasses.is_dataclass(OmegaConf.get_type(parent)):
        return f"unknown config key {key!r}{choices}"  # a schema: no key can be added
    return f"unknown config key {key!r}{choices} (to add a new key write +{key}=VALUE)"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return one_line(text[0]) if text else type(err).__name__


def route_library_logs() -> None:
    """Send Lightning's log records to Hydra's log file (they bypass the root logger) and its
    console output to stdout, so stderr carries only warnings and errors."""
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.propagate:
            continue  # the root logger's handlers (Hydra's console and file) already get it
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler and handler.stream in (sys.stderr,
                                                                            sys.__stderr__):
                handler.setStream(sys.stdout)
        for handler in list(logger.handlers):  # an earlier job's file (multirun, tests)
            if isinstance(handler, logging.FileHandler) and handler not in files:
                logger.removeHandler(handler)
        for handler in files:
            if handler not in logger.handlers:
                logger.addHandler(handler)


def training_config(overrides: list[str]) -> DictConfig:
    """train.py's config composed with `overrides`, as train.py would compose it. Inside
    another Hydra app, Hydra's global state is set aside and restored (and `${hydra:...}` paths
    resolve to that app's); outside one, this run's Hydra config is set from the composition."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        register_schemas()
        with initialize_config_dir(str(CONF_ROOT), version_base="1.3", job_name="train"):
            cfg = compose("train", overrides=overrides, return_hydra_config=True)
        if not HydraConfig.initialized():
            HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        return cfg
    except HydraException as err:
        detail = describe_config_error(err) or str(err).splitlines()[0]
        raise FastNSTError(f"in train=[...]: {detail}") from err
    finally:
        restore_gh_from_backup(backup)
