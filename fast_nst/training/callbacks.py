"""Lightning callbacks for training runs: export the trained network, keep freed CPU memory for
reuse, and a ModelCheckpoint whose `last.ckpt` is the final step (conf/callbacks/default.yaml).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.accelerators import CPUAccelerator
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities import rank_zero_info

from fast_nst.device import keep_freed_memory
from fast_nst.model.files import export_model


class ExportModel(pl.Callback):
    """At the end of training, write `<dirpath>/<name>.pt` with `export_model` (name: the
    module's `export_name`, else its style name; distillation writes `<style>-fast.pt`).

    Args:
        dirpath: output folder (default: the trainer's `default_root_dir`, Hydra's run dir).
        half: store the weights as float16 (half the file size; stylize casts back).
    """

    def __init__(self, dirpath: str | None = None, half: bool = False) -> None:
        self.dirpath, self.half = dirpath, half
        self.path: Path | None = None
        self._started = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or not hasattr(pl_module, "export_meta"):
            return
        folder = Path(self.dirpath or trainer.default_root_dir)
        folder.mkdir(parents=True, exist_ok=True)
        name = pl_module.hparams.style_name
        meta = {**pl_module.export_meta(), "steps": int(trainer.global_step),
                "epochs": int(trainer.current_epoch), "precision": str(trainer.precision),
                "world_size": int(trainer.world_size),
                "train_seconds": round(time.perf_counter() - self._started, 1)}
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "describe"):
            meta["dataset"] = datamodule.describe()
            meta["image_size"] = meta["dataset"].get("image_size")
        stem = getattr(pl_module, "export_name", name)
        self.path = export_model(pl_module.net, folder / f"{stem}.pt", style=name, meta=meta,
                                 half=self.half)
        rank_zero_info(f"exported the trained network to {self.path}")


class CPUMemory(pl.Callback):
    """On a CPU run, keep freed tensor memory for reuse (`fast_nst.device.keep_freed_memory`):
    float32 steps 9-37% and bf16-mixed steps 3-18% faster on a 2-core AMD EPYC
    (docs/benchmarks.md)."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if isinstance(trainer.accelerator, CPUAccelerator):
            keep_freed_memory()


class Checkpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint whose `last.ckpt` always holds the final step.

    Lightning 2.6 skips the end-of-training `last` save once any periodic checkpoint was
    written, so a run of 4,500 steps with a checkpoint every 2,000 would leave `last` at 4,000.
    """

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
