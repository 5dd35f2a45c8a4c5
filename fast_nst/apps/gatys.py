"""Optimize one image (Gatys et al.): `fast-nst-gatys task=transfer content=photo.jpg
style=painting.jpg` (or `python -m fast_nst.apps.gatys ...`); `video=clip.mp4` optimizes a clip.

Thin Hydra entry point: conf/gatys.yaml (schema: fast_nst.optimizer.config.GatysApp) says what
to do; the work is in fast_nst.optimizer. Outputs go to the Hydra run directory.
"""

from dataclasses import fields
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fast_nst.cli import hydra_app
from fast_nst.optimizer.clip import stylize_clip
from fast_nst.optimizer.config import GatysApp, GatysConfig, validate
from fast_nst.reports.record import run_to_folder, summary


def optimization(app: GatysApp) -> GatysConfig:
    """The app's settings as the optimizer's: the painting of the `style` group is the style
    image, its `size` the style size unless style_size is given."""
    values = {f.name: getattr(app, f.name) for f in fields(GatysConfig)}
    style = app.style
    if style is not None:
        values["style"] = style.image
        values["style_size"] = app.style_size or style.size
    return validate(GatysConfig(**values))


@hydra_app("gatys")
def main(cfg: DictConfig) -> None:
    """One optimization (or a clip, with `video=`), written to the Hydra run directory."""
    app: GatysApp = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    gcfg = optimization(app)
    folder = Path(HydraConfig.get().runtime.output_dir)
    if app.video:
        stylize_clip(gcfg, app.video, folder / app.output)
        return
    result = run_to_folder(gcfg, folder, output=app.output, snapshot_every=app.snapshot_every,
                           tensorboard=app.tensorboard)
    print(f"wrote {folder / app.output}")
    print(summary(result))


if __name__ == "__main__":
    main()
