"""Choose the style weight before training (docs/calibrate.md):
`fast-nst-calibrate style=painting.jpg` or `fast-nst-calibrate 'train=["experiment=bundle/udnie"]'`.

Thin Hydra entry point: conf/calibrate.yaml holds the app's keys (`style`, `train`, `vgg`)
and the `calibration` group (the same settings as train.py's); train.py's config composed with
those overrides decides the loss; the work is in `fast_nst.training.calibrate`.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fast_nst.cli import hydra_app, training_config
from fast_nst.errors import FastNSTError
from fast_nst.reports.calibration import write_report
from fast_nst.training.calibrate import calibrate, setup_from_training
from fast_nst.training.calibration import Settings


def app_overrides(cfg: DictConfig) -> list[str]:
    """train.py overrides for the app's `style` (a painting of conf/style or an image file) and
    `train=[...]`."""
    overrides = [str(o) for o in cfg.train or []]
    choice = HydraConfig.get().runtime.choices.get("style")
    if choice == "custom":
        style = Path(str(cfg.style.image)).expanduser()
        if not style.is_file():
            raise FastNSTError(f"style image not found: {style}")
        overrides += ["style=custom", f"style.image={style.resolve()}",
                      f"style.name={cfg.style.name}"]
    elif choice:
        overrides.append(f"style={choice}")
    return overrides


def vgg_overrides(cfg: DictConfig) -> list[str]:
    """train.py overrides that select the app's VGG weights."""
    choice = HydraConfig.get().runtime.choices.get("vgg")
    extra = [o for o in HydraConfig.get().overrides.task if o.startswith("vgg.")]
    return [f"vgg={choice}", *extra] if choice else [f"vgg.weights={cfg.vgg.weights}"]


@hydra_app("calibrate")
def main(cfg: DictConfig) -> None:
    overrides = app_overrides(cfg)
    training = training_config(overrides)
    training.vgg = cfg.vgg  # the app's vgg group (offline default: caffe) decides
    setup = setup_from_training(training, [*overrides, *vgg_overrides(cfg)])
    settings: Settings = OmegaConf.to_object(cfg.calibration)  # type: ignore[assignment]
    folder = Path(HydraConfig.get().runtime.output_dir)
    result = calibrate(setup, settings)
    write_report(result, folder)
    print(result.summary())
    print(f"wrote {folder / 'calibration.png'}, calibration.csv and calibration.md")


if __name__ == "__main__":
    main()
