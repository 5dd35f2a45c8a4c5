"""The classic experiments: tiny sizes, random VGG weights (plumbing)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from PIL import Image

from fast_nst.core.images import save_image
from fast_nst.errors import FastNSTError
from fast_nst.studies.experiments import run_experiment, selected


@pytest.fixture
def base(tmp_path: Path) -> dict:
    content, style = tmp_path / "content.png", tmp_path / "style.png"
    save_image(torch.rand(1, 3, 30, 40), content)
    save_image(torch.rand(1, 3, 40, 40), style)
    return {"content": str(content), "style": str(style), "size": 32, "progress": False,
            "device": "cpu", "vgg": {"weights": "random", "convention": "torchvision",
                                     "pooling": "max"},
            # plumbing only: shallow layers keep the VGG passes cheap
            "content_layers": ["relu2_1"], "style_layers": ["relu1_1", "relu2_1"]}


SPECS = {
    "reconstruction": {"layers": ["conv_1", "conv_3"], "seeds": [0, 1], "steps": 2},
    "texture": {"layer_sets": {"1-2": ["conv_1", "conv_2"], "3": ["conv_3"]}, "seeds": [0],
                "steps": 2},
    "style_weights": {"weights": None, "defaults": {"torchvision": [1.0, 1e5], "caffe": [1.0]},
                      "init": "noise", "steps": 2},
    "init": {"inits": ["content", "noise"], "checkpoints": [1, 3]},
    "optimizers": {"optimizers": ["lbfgs", "adam", "sgd", "rmsprop"], "lr": {"adam": 0.05},
                   "init": "content", "steps": 2},
}


# rows x columns of each sheet, and table rows
SHAPES = {"reconstruction": (2, 3, 4), "texture": (1, 3, 2), "style_weights": (1, 2, 2),
          "init": (2, 2, 4), "optimizers": (1, 4, 4)}


@pytest.mark.parametrize("name", list(SPECS))
def test_each_experiment_writes_grid_csv_and_markdown(name: str, base: dict,
                                                      tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    paths = run_experiment(name, base, SPECS[name], out)
    assert Image.open(paths["grid"]).size[0] > 32 * SHAPES[name][1]
    with open(paths["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == SHAPES[name][2]
    assert all(float(r["total"]) > 0 for r in rows)
    assert {"content", "style", "total", "seconds"} <= set(rows[0])
    md = paths["md"].read_text().splitlines()
    assert md[0].startswith("### ") and len([x for x in md if x.startswith("| ")]) == 1 + len(rows)
    if name == "optimizers":
        assert Image.open(paths["plot"]).size == (600, 400)
        assert [r["optimizer"] for r in rows] == ["lbfgs", "adam", "sgd", "rmsprop"]
    if name == "init":
        assert [int(r["steps"]) for r in rows] == [1, 3, 1, 3]
        assert float(rows[1]["seconds"]) >= float(rows[0]["seconds"])
        # each row scores the image shown above it: after one update the content-init image
        # has left the photo (the loss before that update would have a content term of 0)
        assert rows[0]["init"] == "content" and float(rows[0]["content"]) > 0


def test_selected_experiments() -> None:
    assert selected("all") == ["reconstruction", "texture", "style_weights", "init",
                               "optimizers"]
    assert selected(["init", "texture"]) == ["init", "texture"]
    with pytest.raises(FastNSTError, match="unknown experiment 'paint'"):
        selected("paint")
