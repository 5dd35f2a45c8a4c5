"""fast_nst.reports.record: what a run leaves on disk."""

from __future__ import annotations

from pathlib import Path

from fast_nst.optimizer.config import GatysConfig
from fast_nst.reports.record import run_to_folder
from tests.optimizer.helpers import RANDOM, TINY


def test_run_to_folder_writes_outputs(images: dict[str, Path], tmp_path: Path) -> None:
    cfg = GatysConfig(content=str(images["content"]), style=str(images["style"]), size=32,
                      steps=4, vgg=RANDOM, progress=False, **TINY)
    run_to_folder(cfg, tmp_path / "run", snapshot_every=2)
    folder = tmp_path / "run"
    assert (folder / "output.png").is_file()
    assert sorted(p.name for p in (folder / "snapshots").iterdir()) == [
        "step_000002.png", "step_000004.png"]
    lines = (folder / "losses.csv").read_text().splitlines()
    assert lines[0].startswith("stage,step,evaluations,seconds,content,style,tv,total")
    assert len(lines) == 5
    assert any((folder / "tensorboard").iterdir())
