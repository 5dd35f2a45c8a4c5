"""The calibration app (fast_nst.apps.calibrate): its files, the train.py command it suggests,
one-line errors."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}


def run_app(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fast_nst.apps.calibrate", *args], cwd=ROOT,
                          env=ENV, capture_output=True, text=True, timeout=240)


def test_app_writes_grid_table_and_command(files, tmp_path) -> None:
    train = ",".join(f'"{o}"' for o in ["data.image_size=32", "style.size=48",
                                         "loss.style_layers=[relu1_1,relu2_1]"])
    proc = run_app(f"style={files['style']}", f"train=[{train}]", "vgg=random",
                   f"calibration.photos=[{files['a']}]", "calibration.count=2",
                   "calibration.steps=2", "calibration.progress=false",
                   f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {"calibration.png", "calibration.csv", "calibration.md"} <= {
        p.name for p in tmp_path.iterdir()}
    command = next(line.strip() for line in proc.stdout.splitlines()
                   if line.strip().startswith("python train.py"))
    for part in ("style=custom", f"style.image={files['style']}", "data.image_size=32",
                 "vgg=random", "loss.style_weight="):
        assert part in command, command
    with open(tmp_path / "calibration.csv") as f:  # 1.3e4 (torchvision) x span [0.5, 50]
        assert [float(r["style_weight"]) for r in csv.DictReader(f)] == pytest.approx(
            [6.5e3, 6.5e5])


@pytest.mark.parametrize("args, expected", [
    (["style=/nonexistent/painting.jpg"], "style image not found: /nonexistent/painting.jpg"),
    (["calibration.weights=[]"], "no style weights to try"),
])
def test_app_mistakes_are_one_line_errors(files, tmp_path, args, expected) -> None:
    style = [] if args[0].startswith("style=") else [f"style={files['style']}"]
    proc = run_app(*style, *args, "vgg=random", f"calibration.photos=[{files['a']}]",
                   f"hydra.run.dir={tmp_path}")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith("error: ") and expected in lines[0], lines
    assert not list(tmp_path.glob("calibration*"))
