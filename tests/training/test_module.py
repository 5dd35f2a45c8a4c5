"""fast_nst.training.module: the Lightning module's options, losses (the stability term
included) and, with the real VGG19 weights, a falling loss."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from fast_nst import FastNSTError
from fast_nst.core.images import load_image
from fast_nst.training.common import cosine_factor
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
    convs = [m for m in module.perceptual.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    calls: list[int] = []
    hook = convs[-1].register_forward_hook(lambda *_: calls.append(1))
    try:
        targets = module.perceptual.content_targets(images)
        module.perceptual.encoder(images)  # the hook itself works: the full pass reaches it
    finally:
        hook.remove()
    assert set(targets) == {"relu2_2"} and torch.equal(targets["relu2_2"], full["relu2_2"])
    assert calls == [1]  # the content targets never ran the deepest layer (relu4_3's)


def _cosine_module(workdir, total: int) -> tuple[StyleTransferModule, object]:
    module = StyleTransferModule("s", str(workdir / "style.png"), vgg={"weights": "random"},
                                 net={"width": "half", "n_residual": 1},
                                 optim={"schedule": "cosine", "lr": 1e-3, "min_lr": 1e-5})
    module.trainer = SimpleNamespace(estimated_stepping_batches=total)
    setup = module.configure_optimizers()
    return module, setup["lr_scheduler"]["scheduler"]


def _lrs(scheduler, steps: int) -> list[float]:
    lrs = []
    for _ in range(steps):
        lrs.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return lrs


def test_cosine_decays_to_min_lr_over_the_run(workdir) -> None:
    _, scheduler = _cosine_module(workdir, 10)
    lrs = _lrs(scheduler, 13)
    assert lrs[0] == pytest.approx(1e-3) and lrs[5] == pytest.approx((1e-3 + 1e-5) / 2)
    assert all(a > b for a, b in zip(lrs[:10], lrs[1:11], strict=True))
    assert lrs[10:] == pytest.approx([1e-5] * 3)  # held at min_lr past the end


def test_resumed_cosine_decays_over_the_new_length(workdir) -> None:
    """A run of 10 steps resumed at step 6 with 20 in all: the state restored from the
    checkpoint must not bring the old length back (the LR would climb again after step 10)."""
    _, old = _cosine_module(workdir, 10)
    _lrs(old, 6)
    _, new = _cosine_module(workdir, 20)
    new.optimizer.load_state_dict(old.optimizer.state_dict())
    new.load_state_dict(old.state_dict())
    lrs = _lrs(new, 14)  # step 6 runs at the LR restored with the optimizer; then the new curve
    assert lrs[1] == pytest.approx(cosine_factor(7, 20, 0.01) * 1e-3)
    assert all(a > b for a, b in zip(lrs[1:-1], lrs[2:], strict=True))  # falls to step 20
    assert lrs[-1] == pytest.approx(cosine_factor(19, 20, 0.01) * 1e-3)


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
    with pytest.raises(FastNSTError, match="max_shift >= 1 and noise >= 0, got 0 and"):
        StyleTransferModule("s", style_file, 32, vgg={"weights": "random"},
                            loss={"stability": {"mode": "shift", "max_shift": 0, "weight": 1}})
