"""Distill a trained style network into a fast student: `fast-nst-distill teacher=models/udnie.pt`.

Thin Hydra entry point like `train.py`: conf/distill.yaml says what to build; the work is in
fast_nst.training.distill and Lightning's Trainer. The result is `<run dir>/<style>-fast.pt`,
a normal model file for stylize, the web page, video and ONNX export.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from fast_nst.cli import hydra_app


@hydra_app("distill")
def main(cfg: DictConfig) -> None:
    import pytorch_lightning as pl  # here, not above: --help answers without Lightning

    from fast_nst.precision import trainer_precision
    from fast_nst.training.preflight import check_distill
    from fast_nst.training.resume import fit

    check_distill(cfg, Path(HydraConfig.get().runtime.output_dir))
    datamodule = instantiate(cfg.data)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    module = instantiate(cfg.module)
    trainer = instantiate(cfg.trainer, precision=trainer_precision(cfg.trainer))
    fit(trainer, module, datamodule, cfg.ckpt_path)


if __name__ == "__main__":
    main()
