"""Train a feed-forward style network: `fast-nst-train style=starry_night data=local vgg=caffe`
(or `python train.py ...`).

Thin Hydra entry point: conf/train.yaml and its groups say what to build; the work is in
fast_nst.training (data, module, callbacks) and Lightning's Trainer. Resume only with ckpt_path
(fast_nst.training.resume); everything is checked (fast_nst.training.preflight) before a file
is written.
"""

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from fast_nst.cli import hydra_app


@hydra_app("train")
def main(cfg: DictConfig) -> None:
    # Lightning and the training modules are imported here, not above: `--help` and `--cfg`
    # then answer in a few seconds instead of paying for Lightning's import.
    import pytorch_lightning as pl

    from fast_nst.device import trainer_precision
    from fast_nst.studies.calibrate import auto_style_weight
    from fast_nst.training.preflight import check_training
    from fast_nst.training.resume import fit

    check_training(cfg, Path(HydraConfig.get().runtime.output_dir))
    datamodule = instantiate(cfg.data)  # checks its folders, before a calibration takes minutes
    calibration = auto_style_weight(cfg)  # loss.style_weight=auto: measure and choose it first
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    module = instantiate(cfg.module, calibration=calibration and calibration.as_meta())
    # precision: auto is resolved here, from the device that will train (fast_nst.device).
    trainer = instantiate(cfg.trainer, precision=trainer_precision(cfg.trainer))
    if calibration is not None:
        calibration.log(trainer)
    fit(trainer, module, datamodule, cfg.ckpt_path)  # checkpoints load with weights_only


if __name__ == "__main__":
    main()
