"""fast_nst.model.files: every model kind loads (and stylizes), the bundled models,
and files that are not models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fast_nst import FastNSTError
from fast_nst.core.images import load_image
from fast_nst.inference.pipeline import StylizeOptions, stylize_paths
from fast_nst.model.files import (
    BUNDLED_MODELS,
    bundled_models,
    export_model,
    fast_models,
    find_model,
    load_model,
)
from tests.stylize_helpers import QUIET, fake_checkpoint, fake_examples_pth, tiny_net, write_photo

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted(p.stem for p in (ROOT / "conf" / "experiment" / "bundle").glob("*.yaml")
                 if p.stem != "recipe")


def test_exported_pt_loads_with_its_style(model_pt) -> None:
    model = load_model(model_pt)
    assert (model.kind, model.style) == ("export", "stripes")
    x = torch.rand(1, 3, 20, 20)
    torch.testing.assert_close(model.net(x), tiny_net()(x))


def test_lightning_checkpoint_loads_net_weights(tmp_path) -> None:
    net = tiny_net(output="tanh", n_residual=2)
    model = load_model(fake_checkpoint(tmp_path / "last.ckpt", net))
    assert (model.kind, model.style) == ("checkpoint", "waves")
    assert model.net.config == net.config
    x = torch.rand(1, 3, 18, 22)
    torch.testing.assert_close(model.net(x), net(x))


def test_examples_pth_loads_in_their_0_255_convention(tmp_path) -> None:
    path, net = fake_examples_pth(tmp_path / "mosaic.pth")
    model = load_model(path)
    assert (model.kind, model.style) == ("examples", "mosaic")
    assert model.net.config.pixel_scale == 255.0 and model.net.config.output == "clamp"
    seen = []
    model.net.conv1.register_forward_hook(lambda m, inp, out: seen.append(inp[0].max().item()))
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(model.net(x), net(x))
    assert seen[0] > 2.0  # the first convolution sees 0..255 pixels


@pytest.mark.parametrize("content", ["random_pth", "text", "list", "empty"])
def test_unrelated_files_are_one_line_errors(tmp_path, content) -> None:
    path = tmp_path / "model.pth"
    if content == "random_pth":
        torch.save({"weight": torch.rand(3, 3), "bias": torch.rand(3)}, path)
    elif content == "text":
        path.write_text("not a model\n")
    elif content == "list":
        torch.save([1, 2, 3], path)
    else:
        path.write_bytes(b"")
    with pytest.raises(FastNSTError) as err:
        load_model(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_missing_model_and_bad_weights_are_errors(tmp_path) -> None:
    with pytest.raises(FastNSTError, match="model not found"):
        load_model(tmp_path / "absent.pt")
    path, _ = fake_examples_pth(tmp_path / "broken.pth")
    state = torch.load(path)
    state["in1.weight"] = torch.rand(7)
    torch.save(state, path)
    with pytest.raises(FastNSTError, match="do not fit"):
        load_model(path)


@pytest.mark.parametrize("kind", ["pt", "ckpt", "pth"])
def test_every_model_kind_stylizes(tmp_path, kind) -> None:
    if kind == "pt":
        model = export_model(tiny_net(), tmp_path / "m.pt", style="s")
    elif kind == "ckpt":
        model = fake_checkpoint(tmp_path / "m.ckpt", tiny_net())
    else:
        model, _ = fake_examples_pth(tmp_path / "m.pth")
    src = write_photo(tmp_path / "in.png", 15, 26)
    stylize_paths(model, [src], tmp_path / "out.png", StylizeOptions(**QUIET, precision="fp32"))
    assert Image.open(tmp_path / "out.png").size == (26, 15)
    with torch.no_grad():  # the file's own network, run directly on the photo
        expected = load_model(model).net.float().eval()(load_image(src)) * 255
    got = torch.from_numpy(np.asarray(Image.open(tmp_path / "out.png"), np.float32))
    assert (got.permute(2, 0, 1) - expected[0]).abs().max() <= 1.0


def test_every_recipe_has_its_model_and_back() -> None:
    assert len(RECIPES) >= 4
    assert sorted(bundled_models()) == RECIPES


@pytest.mark.parametrize("style", RECIPES)
def test_bundled_model_loads_and_stylizes(style: str) -> None:
    path = BUNDLED_MODELS / f"{style}.pt"
    assert path.stat().st_size <= 7 * 2**20
    model = load_model(path)
    assert model.kind == "export" and model.style == style
    assert {"style_image", "style_size", "loss", "vgg", "steps"} <= set(model.meta)
    y, x = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 56), indexing="ij")
    content = torch.stack([x, y, 0.5 + 0 * x]).unsqueeze(0)
    with torch.no_grad():
        out = model.net(content)
    assert out.shape == content.shape and torch.isfinite(out).all()
    assert 0 <= out.min() and out.max() <= 1
    assert (out - content).abs().mean() > 0.05  # it did restyle the image


@pytest.mark.parametrize("style", RECIPES)
def test_every_bundled_style_has_a_fast_variant(style: str) -> None:
    """models/fast/<style>.pt: the distilled CPU network, judged by its teacher's loss."""
    fast = load_model(find_model(style, fast=True))
    assert fast.path == BUNDLED_MODELS / "fast" / f"{style}.pt"
    assert fast.style == style and fast.net.config.width == "quarter"
    assert fast.meta["distillation"]["teacher"].endswith(f"{style}.pt")
    assert fast.meta["style_image"] == load_model(BUNDLED_MODELS / f"{style}.pt"
                                                  ).meta["style_image"]
    assert fast_models()[f"{style} (fast)"] == fast.path


def test_find_model_takes_paths_and_bundled_names(tmp_path) -> None:
    own = export_model(tiny_net(), tmp_path / "mine.pt", style="mine")
    assert find_model(own) == own
    assert find_model("udnie") == BUNDLED_MODELS / "udnie.pt"
    assert find_model(tmp_path / "nothing.pt") == tmp_path / "nothing.pt"  # the loader says so
    with pytest.raises(FastNSTError, match=r"no fast variant of .*mine.pt \(looked for "
                                           r".*fast/mine.pt\); make one with `fast-nst-distill"):
        find_model(own, fast=True)
    (tmp_path / "fast").mkdir()
    fast = export_model(tiny_net(), tmp_path / "fast" / "mine.pt", style="mine")
    assert find_model(own, fast=True) == fast
