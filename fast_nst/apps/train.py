"""Train a feed-forward style network: `fast-nst-train style=starry_night data=local vgg=caffe`
(or `python train.py ...`).

Thin Hydra entry point: conf/train.yaml and its groups say what to build; the work is in
fast_nst.training (data, module, callbacks) and Lightning's Trainer. Resume only with ckpt_path
(fast_nst.training.resume); everything is checked (fast_nst.training.preflight) before a file
is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fast_nst.cli import hydra_app

if TYPE_CHECKING:
    from fast_nst.training.calibration import Calibration


@hydra_app("train")
def main(cfg: DictConfig) -> None:
    # Lightning and the training modules are imported here, not above: `--help` and `--cfg`
    # then answer in a few seconds instead of paying for Lightning's import.
    import pytorch_lightning as pl

    from fast_nst.precision import trainer_precision
    from fast_nst.training.preflight import check_training
    from fast_nst.training.resume import fit

    check_training(cfg, Path(HydraConfig.get().runtime.output_dir))
    datamodule = instantiate(cfg.data)  # checks its folders, before a calibration takes minutes
    calibration = auto_style_weight(cfg)  # loss.style_weight=auto: measure and choose it first
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    module = instantiate(cfg.module, calibration=calibration and calibration.as_meta())
    # precision: auto is resolved here, from the device that will train (fast_nst.precision).
    trainer = instantiate(cfg.trainer, precision=trainer_precision(cfg.trainer))
    if calibration is not None:
        calibration.log(trainer)
    fit(trainer, module, datamodule, cfg.ckpt_path)  # checkpoints load with weights_only


def auto_style_weight(cfg: DictConfig) -> Calibration | None:
    """With loss.style_weight=auto: calibrate into `<run>/calibration/`, put the chosen weight
    into `cfg.loss.style_weight` and return the result (None when the weight is given)."""
    from fast_nst.reports.calibration import write_report
    from fast_nst.training.calibrate import calibrate, setup_from_training
    from fast_nst.training.calibration import Settings
    from fast_nst.training.settings import AUTO

    if cfg.loss.get("style_weight") != AUTO:
        return None
    run = HydraConfig.get()
    setup = setup_from_training(cfg, list(run.overrides.task))
    folder = Path(run.runtime.output_dir) / "calibration"
    folder.mkdir(parents=True, exist_ok=True)
    settings: Settings = OmegaConf.to_object(cfg.calibration)  # type: ignore[assignment]
    result = calibrate(setup, settings)
    write_report(result, folder)
    cfg.loss.style_weight = result.suggestion.weight
    print(f"calibration: loss.style_weight={result.suggestion.weight:g} "
          f"({result.suggestion.reason}); grid in {folder}")
    return result


if __name__ == "__main__":
    main()
