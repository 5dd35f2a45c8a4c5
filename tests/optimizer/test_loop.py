"""The optimization loop: quality with the real weights (tiny images), plumbing with random ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from fast_nst.core.color import rgb_to_yiq
from fast_nst.core.images import load_image
from fast_nst.core.vgg import VGGConfig
from fast_nst.errors import FastNSTError
from fast_nst.optimizer.config import GatysConfig
from fast_nst.optimizer.loop import run
from fast_nst.optimizer.loss import build_loss
from tests.heap_probe import GLIBC, heap_probes
from tests.optimizer.helpers import RANDOM, TINY


def test_reconstruction_loss_drops_by_a_large_fraction(caffe_weights: Path,
                                                       shared_content: Path) -> None:
    cfg = GatysConfig(task="reconstruct", content=str(shared_content / "chelsea_cat.jpg"),
                      size=48, steps=40, content_layers=["relu2_1"], tv_weight=0,
                      vgg=VGGConfig(str(caffe_weights), "caffe"), progress=False)
    result = run(cfg)
    first, final = result.history[0]["content"], result.final["content"]
    assert final < 0.05 * first, (first, final)
    assert result.final["style"] == 0.0
    assert result.steps == 40 and result.evaluations == 40  # one evaluation per L-BFGS step


def test_texture_gram_loss_drops(caffe_weights: Path, shared_styles: Path) -> None:
    cfg = GatysConfig(task="texture", style=str(shared_styles / "starry_night.jpg"), size=48,
                      steps=30, style_layers=["relu1_1", "relu2_1", "relu3_1"], tv_weight=0,
                      vgg=VGGConfig(str(caffe_weights), "caffe"), progress=False)
    result = run(cfg)
    first, final = result.history[0]["style"], result.final["style"]
    assert final < 0.1 * first, (first, final)
    assert result.final["content"] == 0.0


def test_transfer_keeps_the_output_size(images: dict[str, Path]) -> None:
    cfg = GatysConfig(content=str(images["content"]), style=str(images["style"]), size=40,
                      steps=2, vgg=RANDOM, progress=False, coarse_sizes=[24], coarse_steps=2,
                      **TINY)
    result = run(cfg)
    assert result.image.shape == (1, 3, 30, 40)  # 80x60 content at long side 40
    assert result.steps == 4 and [r["stage"] for r in result.history] == [0, 0, 1, 1]
    assert 0 <= result.image.min() and result.image.max() <= 1


def test_one_vgg_pass_per_step(images: dict[str, Path]) -> None:
    """Targets are computed once; each L-BFGS step runs the encoder exactly once."""
    cfg = GatysConfig(content=str(images["content"]), style=str(images["style"]), size=32,
                      steps=5, vgg=RANDOM, progress=False, **TINY)
    loss = build_loss(cfg)
    calls = []
    loss.encoder.register_forward_hook(lambda *_: calls.append(1))
    run(cfg, loss=loss)
    assert len(calls) == 1 + 1 + 5 + 1  # content target, style target, 5 steps, final losses


# A tiny CPU run of the optimizer between two heap probes (tests/heap_probe.py).
HEAP_AFTER_RUN = """
import sys
from fast_nst.core.vgg import VGGConfig
from fast_nst.optimizer.config import GatysConfig
from fast_nst.optimizer.loop import run
probe()
run(GatysConfig(task="texture", style=sys.argv[1], size=16, steps=1, progress=False,
                vgg=VGGConfig("random", "torchvision"), style_layers=["relu1_1"], device="cpu"))
probe()
"""


@pytest.mark.skipif(not GLIBC, reason="the optimizer tunes glibc's malloc only")
def test_cpu_runs_keep_freed_memory(images: dict[str, Path]) -> None:
    (mapped_before, _), (mapped_after, held_after) = heap_probes(HEAP_AFTER_RUN,
                                                                 str(images["style"]))
    assert mapped_before >= 64  # glibc's default: a big block is its own mmap
    assert mapped_after == 0 and held_after >= 64  # after: from the heap, kept when freed


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam", "sgd", "rmsprop"])
def test_each_optimizer_lowers_the_loss(optimizer: str, caffe_weights: Path,
                                        shared_content: Path) -> None:
    cfg = GatysConfig(task="reconstruct", content=str(shared_content / "coffee.jpg"), size=32,
                      steps=15, optimizer=optimizer, content_layers=["relu2_1"], tv_weight=0,
                      vgg=VGGConfig(str(caffe_weights), "caffe"), progress=False)
    result = run(cfg)
    # plain SGD is the slow one on this badly conditioned problem (see experiment 5)
    fraction = {"lbfgs": 0.3, "adam": 0.7, "rmsprop": 0.7, "sgd": 0.95}[optimizer]
    assert result.final["total"] < fraction * result.history[0]["total"], optimizer


def test_same_seed_same_result(images: dict[str, Path]) -> None:
    def once(seed: int) -> torch.Tensor:
        cfg = GatysConfig(content=str(images["content"]), style=str(images["style"]), size=32,
                          steps=3, init="noise", seed=seed, vgg=RANDOM, progress=False, **TINY)
        return run(cfg).image

    a, b, c = once(1), once(1), once(2)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_luminance_transfer_keeps_the_content_chroma(caffe_weights: Path, shared_content: Path,
                                                     shared_styles: Path) -> None:
    def chroma_error(preserve: str | None) -> float:
        cfg = GatysConfig(content=str(shared_content / "chelsea_cat.jpg"),
                          style=str(shared_styles / "the_scream.jpg"), size=48, steps=10,
                          style_layers=["relu1_1", "relu2_1", "relu3_1"], style_weight=100,
                          preserve_color=preserve, vgg=VGGConfig(str(caffe_weights), "caffe"),
                          progress=False)
        out = run(cfg).image
        content = load_image(cfg.content, long_side=48)
        return (rgb_to_yiq(out)[:, 1:] - rgb_to_yiq(content)[:, 1:]).abs().mean().item()

    kept, plain = chroma_error("luminance"), chroma_error(None)
    assert kept < 0.02, kept  # only the clamp to 0..1 can move I and Q
    assert kept < plain / 3, (kept, plain)


def test_outside_the_mask_stays_close_to_the_content(caffe_weights: Path, shared_content: Path,
                                                     shared_styles: Path, tmp_path: Path) -> None:
    content = shared_content / "chelsea_cat.jpg"
    width, height = Image.open(content).size
    mask = Image.new("L", (width, height), 0)
    mask.paste(255, (0, 0, width // 2, height))  # style on the left half only
    mask.save(tmp_path / "mask.png")
    cfg = GatysConfig(content=str(content), style=str(shared_styles / "starry_night.jpg"),
                      mask=str(tmp_path / "mask.png"), size=64, steps=20,
                      style_layers=["relu1_1", "relu2_1", "relu3_1"], style_weight=100,
                      vgg=VGGConfig(str(caffe_weights), "caffe"), progress=False)
    out = run(cfg).image
    base = load_image(content, long_side=64)
    diff = (out - base).abs().mean(1)[0]
    w = diff.shape[1]
    inside, outside = diff[:, : w // 2 - 8].mean().item(), diff[:, w // 2 + 8:].mean().item()
    assert outside < 0.05, outside
    assert outside < inside / 3, (inside, outside)


def test_two_styles_for_two_regions(images: dict[str, Path], tmp_path: Path) -> None:
    mask = Image.new("L", (80, 60), 0)
    mask.paste(255, (0, 0, 40, 60))
    mask.save(tmp_path / "mask.png")
    cfg = GatysConfig(content=str(images["content"]), style=str(images["style"]),
                      style2=str(images["content"]), mask=str(tmp_path / "mask.png"), size=32,
                      steps=2, vgg=RANDOM, progress=False, **TINY)
    loss = build_loss(cfg)
    result = run(cfg, loss=loss)
    assert len(loss.style.targets) == 2 and result.image.shape == (1, 3, 24, 32)
    first, second = (t.mask for t in loss.style.targets)
    assert first.shape[-2:] == (24, 32)  # the mask at the output's size
    assert first[..., :, :14].min() > 0.9 and first[..., :, 18:].max() < 0.1  # white: style
    torch.testing.assert_close(first + second, torch.ones_like(first))  # black: style2


def test_callbacks_and_extra_loss(images: dict[str, Path]) -> None:
    seen = []
    cfg = GatysConfig(content=str(images["content"]), style=str(images["style"]), size=32,
                      steps=3, vgg=RANDOM, progress=False, **TINY)
    result = run(cfg, on_step=lambda row, image: seen.append(row["step"]),
                 extra_loss=lambda image: image.mean() * 0 + 100.0)
    assert seen == [1, 2, 3]
    for row in result.history:  # the extra term is recorded and is part of the objective
        assert row["extra"] == pytest.approx(100.0)
        assert row["total"] == pytest.approx(row["content"] + row["style"] + row["tv"] + 100.0)


def _bad(images: dict[str, Path], tmp_path: Path) -> dict[str, dict]:
    wrong = tmp_path / "small_mask.png"
    Image.new("L", (10, 10), 255).save(wrong)
    good = {"content": str(images["content"]), "style": str(images["style"])}
    return {
        "image not found": {**good, "content": str(tmp_path / "missing.jpg")},
        "unknown VGG19 layer 'relu9_9'": {**good, "style_layers": ["relu1_1", "relu9_9"]},
        "unknown optimizer 'newton'": {**good, "optimizer": "newton"},
        "give a mask of the same size as the content": {**good, "mask": str(wrong)},
        "unknown task": {**good, "task": "paint"},
        "needs init_file": {**good, "init": "file"},
        "task=texture needs style": {"task": "texture"},
    }


def test_bad_inputs_give_one_line_errors(images: dict[str, Path], tmp_path: Path) -> None:
    for message, values in _bad(images, tmp_path).items():
        cfg = GatysConfig(**{**TINY, **values}, size=32, steps=1, vgg=RANDOM, progress=False)
        with pytest.raises(FastNSTError, match=message.replace("(", r"\(")) as err:
            run(cfg)
        assert "\n" not in str(err.value)
