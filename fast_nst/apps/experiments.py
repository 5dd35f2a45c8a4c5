"""The classic Gatys experiments (docs/optimizer.md):
`fast-nst-experiments run=all|reconstruction|texture|style_weights|init|optimizers`.

Thin Hydra entry point: conf/gatys_experiments.yaml holds each experiment's grid; the
work is in `fast_nst.studies.experiments`.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fast_nst.cli import hydra_app
from fast_nst.studies.experiments import run_experiment, selected

GATYS_KEYS = ("content", "style", "size", "vgg", "progress", "device")


@hydra_app("gatys_experiments")
def main(cfg: DictConfig) -> None:
    """`fast-nst-experiments run=all|reconstruction|texture|...`."""
    values = OmegaConf.to_container(cfg, resolve=True)
    names = selected(values["run"])
    folder = Path(values.get("out") or HydraConfig.get().runtime.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    base = {k: values[k] for k in GATYS_KEYS}
    base["style"] = values["style"]["image"]  # the painting of the `style` group
    for name in names:
        print(f"{name}: running ...", flush=True)
        paths = run_experiment(name, base, values[name], folder)
        print(f"{name}: " + ", ".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    main()
