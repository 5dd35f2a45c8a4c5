"""The compare app (fast_nst.apps.compare): a tiny run end to end, and a one-line error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.studies.test_compare import setup  # noqa: F401 (the fixture)

ROOT = Path(__file__).resolve().parents[2]


def test_the_app_writes_its_report(setup: dict[str, Path], tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "fast_nst.apps.compare", f"hydra.run.dir={out}",
         f"models={{tiny: {setup['model']}}}", f"contents=[{setup['a']}]", "sizes=[32]",
         "inits=[content]", "iterations=[2]", "target_iterations=2", "vgg=random",
         "progress=false"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = (out / "compare.md").read_text()
    assert "tiny" in report and (out / "compare.csv").is_file()


def test_cli_error_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fast_nst.apps.compare", f"hydra.run.dir={tmp_path}",
         f"contents=[{tmp_path / 'nope.jpg'}]"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "content image not found" in result.stderr
    assert "Traceback" not in result.stderr
