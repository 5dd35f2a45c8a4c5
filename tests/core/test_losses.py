from __future__ import annotations

import torch

from fast_nst.core.losses import (
    LossWeights,
    PerceptualLoss,
    StyleLoss,
    _SymmetricGram,
    content_loss,
    gram_matrix,
    total_variation,
)
from fast_nst.core.vgg import VGGEncoder


def test_gram_is_symmetric_and_normalised_by_chw() -> None:
    f = torch.randn(2, 5, 4, 3)
    g = gram_matrix(f)
    assert g.shape == (2, 5, 5)
    torch.testing.assert_close(g, g.transpose(1, 2))
    expected = torch.einsum("bchw,bdhw->bcd", f, f) / (5 * 4 * 3)
    torch.testing.assert_close(g, expected)
    ones = gram_matrix(torch.ones(1, 4, 6, 6))
    torch.testing.assert_close(ones, torch.full((1, 4, 4), 1 / 4))


def test_gram_is_float32_under_bf16_autocast() -> None:
    f = torch.randn(1, 8, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        g = gram_matrix(f.bfloat16())
    assert g.dtype == torch.float32
    torch.testing.assert_close(g, gram_matrix(f.bfloat16().float()))


def test_symmetric_gram_backward_matches_finite_differences() -> None:
    f = torch.randn(2, 3, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_SymmetricGram.apply, (f,))


def test_gram_gradient_equals_autograd_of_the_plain_formula() -> None:
    """The one-matmul backward gives what autograd gives for bmm(f, f^T) / norm, mask too."""
    # float64: the two formulas sum in other orders, and float32 rounding differs between CPUs
    x = torch.randn(2, 8, 6, 5, dtype=torch.float64)
    mask = torch.rand(1, 1, 6, 5, dtype=torch.float64)
    weights = torch.randn(2, 8, 8, dtype=torch.float64)  # an asymmetric upstream gradient
    for m in (None, mask):
        ours = x.clone().requires_grad_()
        (gram_matrix(ours, m) * weights).sum().backward()
        plain = x.clone().requires_grad_()
        f = (plain if m is None else plain * m).reshape(2, 8, 30)
        norm = 8 * 30 if m is None else 8 * m.sum()
        (torch.bmm(f, f.transpose(1, 2)) / norm * weights).sum().backward()
        torch.testing.assert_close(ours.grad, plain.grad)


def test_masked_gram_is_the_region_statistics() -> None:
    f = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(gram_matrix(f, torch.ones(1, 1, 32, 32)), gram_matrix(f))
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., :, :16] = 1  # left half of the image = left half of the features
    torch.testing.assert_close(gram_matrix(f, mask), gram_matrix(f[..., :, :4]))


def test_total_variation() -> None:
    assert total_variation(torch.full((1, 3, 8, 8), 0.3)).item() == 0.0
    assert total_variation(torch.rand(1, 3, 8, 8)).item() > 0.01
    stripes = torch.zeros(1, 1, 4, 4)
    stripes[..., ::2] = 1.0  # vertical stripes: every horizontal neighbour differs by 1
    assert total_variation(stripes).item() == 1.0


def test_content_loss_zero_on_identical_features() -> None:
    f = {"a": torch.randn(1, 2, 3, 3)}
    assert content_loss(f, f, {"a": 1.0}).item() == 0.0
    g = {"a": f["a"] + 1}
    assert content_loss(f, g, {"a": 2.0}).item() == 2.0


def test_style_target_broadcasts_over_batch() -> None:
    enc = VGGEncoder(["relu1_1", "relu2_1"], weights="random")
    loss = PerceptualLoss(enc, {"relu2_1": 1.0}, {"relu1_1": 1.0, "relu2_1": 0.5},
                          LossWeights(content=1.0, style=10.0, tv=0.1))
    loss.set_style(torch.rand(1, 3, 24, 24))
    image = torch.rand(1, 3, 16, 16)
    single = loss(image, loss.content_targets(image))
    double = loss(image.expand(2, -1, -1, -1), loss.content_targets(image.expand(2, -1, -1, -1)))
    assert single["content"].item() == 0.0
    # A batch of 1 and of 2 may run other convolution kernels (float32 sums in other orders):
    # equal within 1e-5 relative, far below the 2x a double-counted batch would give.
    torch.testing.assert_close(single["style"], double["style"], rtol=1e-5, atol=0)
    torch.testing.assert_close(single["total"], single["style"] + single["tv"])


def test_style_loss_is_zero_against_its_own_target() -> None:
    enc = VGGEncoder(["relu1_1"], weights="random")
    loss = PerceptualLoss(enc, {}, {"relu1_1": 1.0}, LossWeights(content=0, style=1, tv=0))
    style = torch.rand(1, 3, 16, 16)
    loss.set_style(style)
    assert loss(style)["style"].item() < 1e-10
    assert loss(torch.rand(1, 3, 16, 16))["style"].item() > 0


def test_style_loss_without_target_says_so() -> None:
    import pytest

    with pytest.raises(RuntimeError, match="set_targets"):
        StyleLoss({"relu1_1": 1.0})({"relu1_1": torch.rand(1, 2, 2, 2)})
