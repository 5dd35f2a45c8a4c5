"""The ground-truth comparison on a tiny network, tiny images and a random-weight VGG."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fast_nst.compare import Curve, compare, gatys_config
from fast_nst.errors import FastNSTError
from fast_nst.gatys import build_loss, load_inputs, style_targets
from fast_nst.io import save_image
from fast_nst.stylize import load_model
from fast_nst.transformer import TransformerNet, export_model

ROOT = Path(__file__).resolve().parents[1]
VGG = {"weights": "random", "convention": "torchvision", "pooling": "max"}
LOSS = {"content_layers": {"relu2_1": 1.0}, "style_layers": {"relu1_1": 1.0, "relu2_1": 0.5},
        "content_weight": 1.0, "style_weight": 1e3, "tv_weight": 0.0}


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    """A random half-width net exported with training meta, a style and two content images."""
    y, x = torch.meshgrid(torch.linspace(0, 1, 24), torch.linspace(0, 1, 32), indexing="ij")
    paths = {"style": tmp_path / "style.png", "a": tmp_path / "a.png", "b": tmp_path / "b.png"}
    save_image(torch.stack([(torch.sin(30 * x) > 0).float(), y, x]).unsqueeze(0), paths["style"])
    save_image(torch.stack([x, y, 1 - x]).unsqueeze(0), paths["a"])
    save_image(torch.stack([y, 0.5 + 0 * x, x * y]).unsqueeze(0), paths["b"])
    meta = {"style_image": str(paths["style"]), "style_size": 32, "vgg": VGG, "loss": LOSS}
    paths["model"] = export_model(TransformerNet(width="half", n_residual=1),
                                  tmp_path / "tiny.pt", style="tiny", meta=meta)
    return paths


def config(paths: dict[str, Path], **overrides: object) -> dict:
    return {"models": {"tiny": str(paths["model"])}, "contents": [str(paths["a"]), str(paths["b"])],
            "sizes": [32], "inits": ["content", "noise"], "iterations": [2, 4],
            "target_iterations": 2, "stop_when_matched": False, "seed": 0, "device": "cpu",
            "progress": False, "vgg": VGG, "shared": str(paths["style"].parent), **overrides}


def test_report_holds_the_measured_numbers(setup: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report"
    out.mkdir()
    rows = compare(config(setup), out)
    assert len(rows) == 4  # 2 images x 1 size x 2 inits
    for name in ("compare.md", "compare.csv", "compare_32.png", "compare_curves.json"):
        assert (out / name).stat().st_size > 0
    with open(out / "compare.csv") as f:
        saved = list(csv.DictReader(f))
    text = (out / "compare.md").read_text()
    for row, line in zip(rows, saved, strict=True):
        assert len(row["curve"]) == 5  # iterations 0..4
        assert row["curve"] == sorted(row["curve"], reverse=True)  # best so far
        assert all(b <= r for b, r in zip(row["curve"], row["raw_curve"], strict=True))
        assert row["lbfgs_2"] == row["curve"][2] and row["lbfgs_4"] == row["curve"][4]
        assert float(line["lbfgs_4"]) == pytest.approx(row["lbfgs_4"])
        assert f"{row['network']:.4g}" in text and f"{row['lbfgs_4']:.4g}" in text
        matched = row["matched_at"]
        if matched is not None:  # the first iteration at or below the network's loss
            assert row["curve"][matched] <= row["network"]
            assert all(v > row["network"] for v in row["curve"][:matched])
    noise = [r for r in rows if r["init"] == "noise"]
    assert all(r["curve"][4] < r["curve"][0] for r in noise)  # L-BFGS lowers the loss


def test_network_loss_is_its_output_under_the_training_loss(setup: dict[str, Path],
                                                            tmp_path: Path) -> None:
    torch.manual_seed(0)  # the random VGG: the same weights in compare and below
    rows = compare(config(setup, inits=["content"], contents=[str(setup["a"])]), tmp_path)
    torch.manual_seed(0)  # as in compare: loading the model draws, then the random VGG
    model = load_model(setup["model"])
    cfg = gatys_config(model, str(setup["a"]), 32, VGG, str(tmp_path))
    assert cfg.style_layer_weights == [1.0, 0.5] and cfg.style_weight == 1e3
    loss = build_loss(cfg)
    inputs = load_inputs(cfg)
    loss.style.set_targets(style_targets(loss, inputs.styles, None, 1.0, torch.device("cpu")))
    with torch.no_grad():
        expected = loss(model.net(inputs.content), loss.content_targets(inputs.content))
    assert rows[0]["network"] == pytest.approx(float(expected["total"]), rel=1e-4)


def test_stop_when_matched_ends_the_run_at_the_match(setup: dict[str, Path],
                                                     tmp_path: Path) -> None:
    rows = compare(config(setup, inits=["content"], iterations=[50],
                          stop_when_matched=True), tmp_path)
    matched = [row for row in rows if row["matched_at"] is not None]
    assert matched, "L-BFGS never reached the tiny random network's loss in 50 iterations"
    for row in matched:
        assert len(row["curve"]) == row["matched_at"] + 1 < 51  # stopped there, not at 50


def test_curve_match() -> None:
    curve = Curve([9.0, 5.0, 3.0, 2.0], [0.0, 1.0, 2.0, 3.0])
    assert curve.matched_at(3.0) == 2 and curve.matched_at(1.0) is None
    assert Curve([9.0, 4.0, 7.0, 3.0], [0.0] * 4).best == [9.0, 4.0, 4.0, 3.0]  # an overshoot


def test_bad_inputs_are_one_line_errors(setup: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(FastNSTError, match="content image not found"):
        compare(config(setup, contents=[str(tmp_path / "missing.png")]), tmp_path)
    with pytest.raises(FastNSTError, match="trained with torchvision"):
        compare(config(setup, vgg={**VGG, "convention": "caffe"}), tmp_path)
    bare = export_model(TransformerNet(width="half", n_residual=1), tmp_path / "bare.pt",
                        style="bare")
    with pytest.raises(FastNSTError, match="records no training loss"):
        compare(config(setup, models={"bare": str(bare)}), tmp_path)


def test_cli_error_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fast_nst.compare", f"hydra.run.dir={tmp_path}",
         f"contents=[{tmp_path / 'nope.jpg'}]"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "content image not found" in result.stderr
    assert "Traceback" not in result.stderr
