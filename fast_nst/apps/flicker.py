"""Measure flicker on a synthetic clip (docs/video.md):
`fast-nst-flicker 'models={plain: a.pt, stable: b.pt}' gatys.enabled=true`.

Thin Hydra entry point: conf/flicker.yaml describes the clip and the methods; the work
is in `fast_nst.studies.flicker`.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fast_nst.cli import hydra_app
from fast_nst.studies.flicker import markdown, run


@hydra_app("flicker")
def main(cfg: DictConfig) -> None:
    values = OmegaConf.to_container(cfg, resolve=True)
    values["style"] = values["style"]["image"]  # the painting of the `style` group
    folder = Path(HydraConfig.get().runtime.output_dir)
    rows = run(values, folder)
    print(markdown(rows))
    print(f"wrote {folder / 'flicker.md'} and flicker.csv")


if __name__ == "__main__":
    main()
