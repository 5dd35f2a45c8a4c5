"""fast_nst.inference.runtime: colour preservation, strength, lower precision and compiled
shapes of the `Stylizer`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fast_nst import FastNSTError
from fast_nst.core.color import rgb_to_yiq
from fast_nst.inference.pipeline import StylizeOptions, stylize_paths
from fast_nst.inference.runtime import Stylizer, finish
from fast_nst.model.network import NetConfig, TransformerNet
from tests.stylize_helpers import QUIET, read, write_photo


def test_colour_preservation_keeps_the_input_chroma(tmp_path, model_pt) -> None:
    src = write_photo(tmp_path / "in.png", 40, 40)
    stylize_paths(model_pt, [src], tmp_path / "plain.png", StylizeOptions(**QUIET))
    stylize_paths(model_pt, [src], tmp_path / "keep.png", StylizeOptions(**QUIET,
                                                                         preserve_color=True))
    yiq = {k: rgb_to_yiq(torch.from_numpy(read(tmp_path / f"{k}.png").copy()).permute(2, 0, 1)
                         [None].float() / 255) for k in ("in", "plain", "keep")}
    chroma_err = (yiq["keep"][:, 1:] - yiq["in"][:, 1:]).abs().mean().item()
    plain_err = (yiq["plain"][:, 1:] - yiq["in"][:, 1:]).abs().mean().item()
    assert chroma_err < 0.01 < plain_err  # chroma kept (8-bit rounding and clamping aside)
    luma_err = (yiq["keep"][:, :1] - yiq["plain"][:, :1]).abs().mean().item()
    assert luma_err < 0.02  # the luminance is the stylized one


def test_strength_blends_content_and_style() -> None:
    content, styled = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(finish(styled, content, strength=0.0), content)
    torch.testing.assert_close(finish(styled, content, strength=1.0), styled)
    torch.testing.assert_close(finish(styled, content, strength=0.25),
                               0.75 * content + 0.25 * styled)
    with pytest.raises(FastNSTError, match="strength"):
        StylizeOptions(strength=1.5).validate()


def test_bf16_runs_close_to_fp32(tmp_path, model_pt) -> None:
    src = write_photo(tmp_path / "in.png", 32, 48)
    stylize_paths(model_pt, [src], tmp_path / "fp32.png", StylizeOptions(**QUIET,
                                                                         precision="fp32"))
    stylize_paths(model_pt, [src], tmp_path / "bf16.png", StylizeOptions(
        **QUIET, precision="bf16", channels_last=True))
    a, b = read(tmp_path / "fp32.png") / 255.0, read(tmp_path / "bf16.png") / 255.0
    psnr = 10 * np.log10(1 / np.mean((a - b) ** 2))
    assert psnr > 30


@pytest.mark.usefixtures("two_threads")
def test_cpu_bf16_runs_a_bf16_copy_with_a_float32_first_layer() -> None:
    torch.manual_seed(0)
    net = TransformerNet(NetConfig(width="half", n_residual=1)).eval()
    stylizer = Stylizer(net, device="cpu", precision="bf16")
    low = stylizer.net
    assert low.conv1.module.conv2d.weight.dtype == low.in1.module.weight.dtype == torch.float32
    assert low.conv2.conv2d.weight.dtype == low.deconv3.conv.weight.dtype == torch.bfloat16
    assert net.conv2.conv2d.weight.dtype == torch.float32  # the caller's network is untouched
    x = torch.rand(2, 3, 32, 40)
    out, ref = stylizer(x), net(x).detach()
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert 0 < (out - ref).abs().max() < 0.05
