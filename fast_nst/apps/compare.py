"""Networks against the optimizer (docs/compare.md): `fast-nst-compare 'sizes=[256]'`.

Thin Hydra entry point: conf/compare.yaml says what to compare; the work is in
`fast_nst.studies.compare` and its report in `fast_nst.reports.compare`.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fast_nst.cli import hydra_app
from fast_nst.reports.compare import write_report
from fast_nst.studies.compare import compare


@hydra_app("compare")
def main(cfg: DictConfig) -> None:
    values = OmegaConf.to_container(cfg, resolve=True)
    values["shared"] = values.pop("paths")["shared"]  # where the bundled paintings are
    folder = Path(HydraConfig.get().runtime.output_dir)
    rows = compare(values, folder)
    print(write_report(rows, values, folder))
    print(f"wrote {folder / 'compare.md'}, compare.csv and compare_<size>.png")


if __name__ == "__main__":
    main()
