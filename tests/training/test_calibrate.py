"""Style-weight calibration: the measured table against an independent recomputation, and
train.py's loss.style_weight=auto."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fast_nst.cli import training_config
from fast_nst.core.images import load_image, save_image
from fast_nst.core.losses import LossWeights, PerceptualLoss
from fast_nst.core.vgg import VGGEncoder
from fast_nst.errors import FastNSTError
from fast_nst.reports.calibration import write_report
from fast_nst.training.calibrate import calibrate as run_calibration
from fast_nst.training.calibrate import setup_from_training
from fast_nst.training.calibration import Rule, Settings, suggest
from fast_nst.training.module import StyleTransferModule
from fast_nst.training.photos import val_transform
from fast_nst.training.settings import LossConfig

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}


def tiny_overrides(files: dict[str, Path]) -> list[str]:
    return ["style=custom", f"style.image={files['style']}", "style.name=stripes",
            "style.size=48", "vgg=random", "data.image_size=32",
            "loss.style_layers=[relu1_1,relu2_1]"]


def tiny_settings(files: dict[str, Path], **overrides: object) -> Settings:
    values = {"photos": [str(files["a"]), str(files["b"])], "weights": [1e3, 1e5],
              "steps": 3, "device": "cpu", "progress": False, **overrides}
    return Settings(**values)


def test_setup_is_the_trainers_loss(files) -> None:
    """The calibration's loss (composed from train.py's config) is the one the module builds."""
    overrides = [*tiny_overrides(files), "loss.content_weight=2.5", "loss.style_weight=auto"]
    setup = setup_from_training(training_config(overrides))
    module = StyleTransferModule("s", str(files["style"]), style_size=48,
                                 vgg={"weights": "random"},
                                 loss={"style_layers": ["relu1_1", "relu2_1"],
                                       "content_weight": 2.5})
    for key in ("content_layers", "style_layers", "content_weight", "style_weight", "tv_weight"):
        assert setup.meta["loss"][key] == module.hparams.loss[key], key
    assert setup.meta["style_size"] == 48 and setup.image_size == 32
    with pytest.raises(FastNSTError, match="resolved by train.py"):
        LossConfig(style_weight="auto").resolve("caffe")
    with pytest.raises(FastNSTError, match="must be a number, null or auto"):
        LossConfig(style_weight="lots").resolve("caffe")


def test_table_holds_the_measured_numbers(files, tmp_path) -> None:
    setup = setup_from_training(training_config(tiny_overrides(files)))
    result = run_calibration(setup, tiny_settings(files))
    write_report(result, tmp_path)
    for name in ("calibration.png", "calibration.csv", "calibration.md"):
        assert (tmp_path / name).stat().st_size > 0
    assert not list(tmp_path.glob(".*tmp*"))  # no half-written files left behind
    sheet = Image.open(tmp_path / "calibration.png")
    assert sheet.width > 4 * 32 and sheet.height > 2 * 32  # 2 rows; photo, 2 weights, style
    with open(tmp_path / "calibration.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["photo"], float(r["style_weight"])) for r in rows] == [
        ("a", 1e3), ("a", 1e5), ("b", 1e3), ("b", 1e5)]

    # Recompute the losses of one cell (photo b, weight 1e5) independently of the calibration.
    torch.manual_seed(0)  # as the calibration does before building its random VGG
    encoder = VGGEncoder(["relu2_2", "relu1_1", "relu2_1"], weights="random")
    loss = PerceptualLoss(encoder, {"relu2_2": 1.0}, {"relu1_1": 1.0, "relu2_1": 1.0},
                          LossWeights(content=1.0, style=1.0, tv=0.0))
    loss.set_style(load_image(files["style"], long_side=48))
    photo = val_transform(32)(Image.open(files["b"]).convert("RGB")).unsqueeze(0)  # as training
    targets = loss.content_targets(photo)
    cell = next(c for c in result.cells if c.photo == "b" and c.weight == 1e5)
    with torch.no_grad():
        terms = loss(cell.image, targets)
        photo_terms = loss(photo, targets)
    row = rows[3]
    assert float(row["content"]) == pytest.approx(float(terms["content"]), rel=1e-4)
    assert float(row["style"]) == pytest.approx(float(terms["style"]), rel=1e-4)
    assert float(row["photo_style"]) == pytest.approx(float(photo_terms["style"]), rel=1e-3)
    assert float(row["style"]) < float(row["photo_style"])  # the optimizer moved towards the style
    progress = (math.log(float(row["photo_style"])) - math.log(float(row["style"]))) / (
        math.log(float(row["photo_style"])) - math.log(float(row["painting_style"])))
    assert float(row["style_progress"]) == pytest.approx(progress)
    text = (tmp_path / "calibration.md").read_text()
    assert f"{float(row['content']):.4g}" in text and f"{float(row['style']):.4g}" in text
    assert f"loss.style_weight={result.suggestion.weight:g}" in text
    assert result.suggestion.weight == suggest(result.weights, result.mean_progress(),
                                               result.mean_content_ratio(), Rule()).weight


def test_auto_records_its_choice_in_meta(files, tmp_path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        save_image(torch.rand(1, 3, 36, 40), photos / f"p{i}.png")
    run = tmp_path / "run"
    args = [f"hydra.run.dir={run}", *tiny_overrides(files), "model=half", "data=local",
            f"data.data_dir={photos}", f"data.cache_dir={tmp_path / 'hf'}",
            "data.batch_size=2", "data.num_workers=0", "data.val_size=2", "data.val_dir=null",
            "trainer=cpu", "trainer.max_steps=2", "trainer.val_check_interval=2",
            "loss.style_weight=auto", f"calibration.photos=[{files['a']},{files['b']}]",
            "calibration.count=2", "calibration.steps=2", "calibration.progress=false"]
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = torch.load(run / "stripes.pt", weights_only=True)["meta"]
    chosen = meta["calibration"]["style_weight"]
    assert meta["loss"]["style_weight"] == chosen  # the network trained with the choice
    assert meta["calibration"]["weights"] == pytest.approx([6.5e3, 6.5e5])
    assert len(meta["calibration"]["cells"]) == 4 and meta["calibration"]["steps"] == 2
    with open(run / "calibration" / "calibration.csv") as f:
        table = list(csv.DictReader(f))
    assert [float(r["style"]) for r in table] == pytest.approx(
        [c["style"] for c in meta["calibration"]["cells"]])
    assert f"calibration: loss.style_weight={chosen:g}" in proc.stdout
    events = EventAccumulator(str(run / "tb"), size_guidance={"images": 0}).Reload()
    assert "calibration" in events.Tags()["images"]
