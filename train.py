"""Train a feed-forward style network: `python train.py style=starry_night data=local vgg=caffe`.

Thin Hydra entry point: the config (conf/config.yaml and its groups) says what to build; the
work is in fast_nst.data, fast_nst.module and Lightning's Trainer.
"""

import hydra
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig

from fast_nst.calibrate import auto_style_weight
from fast_nst.errors import exit_on_user_error


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    calibration = auto_style_weight(cfg)  # loss.style_weight=auto: measure and choose it first
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data)
    module = instantiate(cfg.module, calibration=calibration and calibration.as_meta())
    trainer = instantiate(cfg.trainer)
    if calibration is not None:
        calibration.log(trainer)
    # weights_only: a checkpoint is read without running code (see fast_nst.safe_load).
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)


if __name__ == "__main__":
    main()
