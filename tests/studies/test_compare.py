"""fast_nst.studies.compare: networks against the optimizer, on a random tiny net."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from fast_nst.core.images import save_image
from fast_nst.errors import FastNSTError
from fast_nst.model.files import export_model, load_model
from fast_nst.model.network import TransformerNet
from fast_nst.optimizer.inputs import load_inputs
from fast_nst.optimizer.loss import build_loss, style_targets
from fast_nst.studies.compare import Curve, compare, gatys_config

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
            "progress": False, "precision": "fp32", "vgg": VGG,
            "shared": str(paths["style"].parent), **overrides}


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
        # matched_at: the first iteration at or below the network's loss
        first_below = next((k for k, v in enumerate(row["curve"]) if v <= row["network"]), None)
        assert row["matched_at"] == first_below, (row["matched_at"], row["curve"])
        # the content image itself scores far below an untrained net's output (~70x); from
        # noise L-BFGS needs a few iterations (noise ~2x above the net, 4 iterations ~4x below)
        assert first_below is not None, (row["init"], row["network"], row["curve"])
        assert (first_below == 0) == (row["init"] == "content"), (row["init"], row["curve"])
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
    """From noise (which starts above the net's loss and falls below it within 4 iterations),
    the stopped run is the full run cut at its match, same numbers."""
    def once(stop: bool) -> dict:
        torch.manual_seed(0)  # the same random VGG in both runs
        rows = compare(config(setup, contents=[str(setup["a"])], inits=["noise"],
                              iterations=[4], stop_when_matched=stop), tmp_path)
        return rows[0]

    full, stopped = once(False), once(True)
    matched = full["matched_at"]
    assert matched is not None and 0 < matched < 4, full["raw_curve"]
    assert stopped["matched_at"] == matched
    assert stopped["raw_curve"] == full["raw_curve"][:matched + 1]  # stopped there, not at 4
    assert stopped["lbfgs_4"] is None and full["lbfgs_4"] == full["curve"][4]


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
