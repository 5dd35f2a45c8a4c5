"""The demo app (fast_nst.apps.demo): no models is a one-line error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_without_models_is_a_one_line_error(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "fast_nst.apps.demo", "--models", str(tmp_path),
                             "-o", str(tmp_path / "out")], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0 and "no models in" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()
