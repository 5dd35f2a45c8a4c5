"""Resuming training, explicitly: `ckpt_path` is checked before anything starts, a run folder
that already holds checkpoints is never resumed (or overwritten) silently, and
`interrupted.ckpt` is written only when training made progress.

Lightning resumes on its own when `fit(ckpt_path=None)` meets an `OnExceptionCheckpoint`
callback: it then picks the newest `last*.ckpt`/on-exception file of the checkpoint folder. A
reused run folder thus resumed without being asked (with another `style=` it exported the old
style's network under the new name). `InterruptCheckpoint` does the same job as
`OnExceptionCheckpoint` without being one, so `ckpt_path=None` means a fresh start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from fast_nst.errors import FastNSTError, Interrupted
from fast_nst.model.network import SHAPE_FIELDS
from fast_nst.safe_load import load_torch_file

_CHECKPOINT_KEYS = ("state_dict", "hyper_parameters", "global_step", "optimizer_states")


def check_checkpoint(path: str | os.PathLike, style_name: str,
                     net: Mapping[str, Any]) -> dict[str, Any]:
    """Read `ckpt_path` safely (no code runs) and check that it is a fast_nst training
    checkpoint for this style and architecture; one-line errors otherwise."""
    payload = load_torch_file(path, what="training checkpoint (ckpt_path)")
    if isinstance(payload, dict) and payload.get("format") == "fast_nst.transformer":
        raise FastNSTError(f"ckpt_path={path} is an exported model, not a training checkpoint; "
                           f"to start from its weights use init={path}")
    missing = [k for k in _CHECKPOINT_KEYS if not isinstance(payload, dict) or k not in payload]
    hparams = payload.get("hyper_parameters") if isinstance(payload, dict) else None
    if missing or not isinstance(hparams, dict) or not isinstance(hparams.get("net"), dict):
        raise FastNSTError(f"ckpt_path={path} is not a fast_nst training checkpoint (a "
                           "checkpoints/*.ckpt written by train.py); "
                           f"missing {', '.join(missing) or 'hyper_parameters.net'}")
    trained = hparams.get("style_name")
    if trained != style_name:
        raise FastNSTError(f"ckpt_path={path} trains style {trained!r}, not {style_name!r}; "
                           f"resume with the style it was trained for, or start {style_name!r} "
                           f"from its network with init={path}")
    differ = [f"model.{k}={hparams['net'].get(k)} (config: {net.get(k)})"
              for k in SHAPE_FIELDS if hparams["net"].get(k) != net.get(k)]
    if differ:
        raise FastNSTError(f"ckpt_path={path} is another architecture: {', '.join(differ)}; "
                           "resume with the run's settings (its .hydra/overrides.yaml)")
    return payload


def check_run_folder(checkpoints: str | os.PathLike, ckpt_path: str | None) -> None:
    """A run folder that already holds checkpoints is resumed only when asked: a fresh run
    there would mix two runs' checkpoints and TensorBoard curves."""
    folder = Path(checkpoints)
    found = sorted(folder.glob("*.ckpt"), key=lambda p: p.stat().st_mtime) \
        if folder.is_dir() else []
    if found and not ckpt_path:
        raise FastNSTError(f"the run folder {folder.parent} already holds checkpoints of an "
                           f"earlier run; to continue it add ckpt_path={found[-1]}, for a new "
                           "run choose another hydra.run.dir")


class InterruptCheckpoint(pl.Callback):
    """On Ctrl-C or a crash, `<dirpath>/<filename>.ckpt` to resume from; written only when
    training got past the step it started at (an untrained checkpoint is no use), and removed
    when a later run in the same folder finishes (its `last.ckpt` is newer)."""

    def __init__(self, dirpath: str, filename: str = "interrupted") -> None:
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self.start_step: int | None = None
        self.saved: Path | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start_step = trainer.global_step

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                     exception: BaseException) -> None:
        if self.start_step is None or trainer.global_step <= self.start_step:
            return
        trainer.save_checkpoint(self.path)
        self.saved = self.path

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Lightning calls this hook only when fit ends normally (not after an exception).
        if self.saved is None and trainer.is_global_zero:
            self.path.unlink(missing_ok=True)


def fit(trainer: pl.Trainer, module: pl.LightningModule, datamodule: Any,
        ckpt_path: str | None) -> None:
    """`trainer.fit`, reading checkpoints without running code (`weights_only`), with Ctrl-C as
    one line that says where to resume (Lightning itself exits with status 1)."""
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except SystemExit:
        if not trainer.interrupted:
            raise
        saved = [cb.saved for cb in trainer.callbacks
                 if isinstance(cb, InterruptCheckpoint) and cb.saved is not None]
        where = f"; resume with ckpt_path={saved[0]}" if saved else ""
        raise Interrupted(f"training stopped at step {trainer.global_step}{where}") from None
