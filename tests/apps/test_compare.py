"""The compare app (fast_nst.apps.compare): a one-line error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_cli_error_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fast_nst.apps.compare", f"hydra.run.dir={tmp_path}",
         f"contents=[{tmp_path / 'nope.jpg'}]"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "content image not found" in result.stderr
    assert "Traceback" not in result.stderr
