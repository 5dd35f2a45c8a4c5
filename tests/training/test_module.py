"""fast_nst.training.module: the Lightning module's options, losses (the stability term
included) and, with the real VGG19 weights, a falling loss."""

from __future__ import annotations

import pytest
import torch

from fast_nst import FastNSTError
from fast_nst.core.images import load_image
from fast_nst.training.module import StyleTransferModule
from tests.training.helpers import train_steps


def test_unknown_option_names_the_group(workdir) -> None:
    with pytest.raises(FastNSTError, match="unknown loss option.*style_wieght"):
        StyleTransferModule("s", str(workdir / "style.png"), vgg={"weights": "random"},
                            loss={"style_wieght": 1.0})


def test_loss_falls_with_real_weights(caffe_weights, shared_content, shared_styles) -> None:
    """Caffe VGG19, default loss weights, half width, 64 px: the total loss on a fixed batch
    falls to less than half its start within 20 Adam steps."""
    module = StyleTransferModule(
        "starry_night", str(shared_styles / "starry_night.jpg"), style_size=128,
        net={"width": "half"}, vgg={"weights": str(caffe_weights), "convention": "caffe"})
    batch = torch.cat([load_image(shared_content / f"{n}.jpg", size=(64, 64))
                       for n in ("chelsea_cat", "coffee")])
    totals = train_steps(module, batch, module.configure_optimizers(), 20)
    assert module.hparams.loss["style_weight"] == module.perceptual.weights.style == 0.2
    assert sum(totals[-3:]) / 3 < 0.5 * totals[0], totals


def test_content_targets_stop_early_with_the_same_features(workdir) -> None:
    module = StyleTransferModule("s", str(workdir / "style.png"), vgg={"weights": "random"},
                                 net={"width": "half"})
    images = torch.rand(2, 3, 32, 32)
    full = module.perceptual.encoder(images)
    targets = module.perceptual.content_targets(images)
    assert set(targets) == {"relu2_2"} and torch.equal(targets["relu2_2"], full["relu2_2"])


def _module(style_file: str, weight: float) -> StyleTransferModule:
    torch.manual_seed(0)
    return StyleTransferModule(
        "s", style_file, 32, net={"width": "half", "n_residual": 1}, vgg={"weights": "random"},
        loss={"style_weight": 1e3, "stability": {"weight": weight, "mode": "noise",
                                                  "noise": 0.05}})


def _response_to_noise(net: torch.nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return (net(x + 0.05 * torch.randn_like(x)) - net(x)).abs().mean().item()


def test_stability_training_lowers_the_response_to_input_noise(style_file) -> None:
    """Trains the same tiny net 30 steps with and without the option (same seed, random VGG)
    and checks the stable one changes its output less when the input gets noise, which is
    what per-frame flicker comes from."""
    x = torch.rand(4, 3, 32, 32)
    responses = {}
    for weight in (0.0, 100.0):
        module = _module(style_file, weight).train()
        opt = torch.optim.Adam(module.net.parameters(), lr=1e-2)
        for _ in range(30):
            _, terms = module.compute_losses(x)
            assert ("stability" in terms) == (weight > 0)
            opt.zero_grad()
            terms["total"].backward()
            opt.step()
        torch.manual_seed(1)
        responses[weight] = _response_to_noise(module.net.eval(), x)
    assert responses[100.0] < 0.7 * responses[0.0]


def test_bad_stability_mode_is_a_one_line_error(style_file) -> None:
    with pytest.raises(FastNSTError, match="loss.stability needs mode noise or shift"):
        StyleTransferModule("s", style_file, 32, vgg={"weights": "random"},
                            loss={"stability": {"mode": "blur"}})
