"""fast_nst.model.network: the transformation network (any size in, same size out, tiny
images included), its options and its exported .pt file."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

import stylize as stylize_app
from fast_nst import FastNSTError
from fast_nst.model.files import export_model, net_from_export
from fast_nst.model.network import (
    DeconvLayer,
    NetConfig,
    SeparableUpsampleLayer,
    TransformerNet,
    padding,
)
from tests.app_helpers import MODEL, write_photo

# pytorch/examples fast_neural_style TransformerNet keys (full width, 5 residual blocks).
EXAMPLES_KEYS = {
    "conv1.conv2d.weight", "in1.weight", "conv3.conv2d.bias", "res5.conv2.conv2d.weight",
    "res5.in2.bias", "deconv1.conv2d.weight", "in5.weight", "deconv3.conv2d.bias",
}


@pytest.mark.parametrize("h, w", [(17, 23), (32, 32), (5, 7), (64, 30)])
def test_any_size_in_same_size_out(h, w) -> None:
    net = TransformerNet(width="half", n_residual=1).eval()
    y = net(torch.rand(2, 3, h, w))
    assert y.shape == (2, 3, h, w)
    assert 0 <= y.min() and y.max() <= 1


@pytest.mark.parametrize("options", [
    {"norm": "batch"}, {"upsample": "deconv"}, {"output": "tanh"}, {"output": "clamp"},
])
def test_architecture_options(options) -> None:
    torch.manual_seed(0)
    net = TransformerNet(width="half", n_residual=2, **options).eval()
    torch.manual_seed(0)
    plain = TransformerNet(width="half", n_residual=2).eval()  # the same weights, defaults
    x = torch.rand(1, 3, 21, 18)
    y = net(x)
    assert y.shape == (1, 3, 21, 18) and 0 <= y.min() and y.max() <= 1
    if "norm" in options:
        assert isinstance(net.in1, torch.nn.BatchNorm2d)
    if "upsample" in options:
        assert isinstance(net.deconv1, DeconvLayer)
    if "output" in options:  # same body, another mapping of its output
        plain._map_output = lambda out: out  # the raw body, padded and cropped as in forward
        body = plain(x)
        expected = (torch.tanh(body) + 1) / 2 if options["output"] == "tanh" \
            else body.clamp(0, 1)
        torch.testing.assert_close(y, expected)


def test_half_width_is_about_four_times_smaller() -> None:
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    full, half = count(TransformerNet(width="full")), count(TransformerNet(width="half"))
    assert 3.5 < full / half < 4.5
    assert 1.6e6 < full < 1.8e6  # Johnson's network: about 1.68M parameters


def test_module_names_match_pytorch_examples() -> None:
    assert EXAMPLES_KEYS <= set(TransformerNet().state_dict())


def test_unknown_option_is_a_one_line_error() -> None:
    with pytest.raises(FastNSTError, match="unknown model.width 'tiny'; use one of full, half"):
        TransformerNet(width="tiny")


def test_export_round_trip(tmp_path) -> None:
    net = TransformerNet(NetConfig(width="half", n_residual=2, output="tanh")).eval()
    x = torch.rand(1, 3, 20, 20)
    path = export_model(net, tmp_path / "style.pt", style="stripes", meta={"steps": 3})
    half = export_model(net, tmp_path / "half.pt", style="stripes", half=True)
    payload = torch.load(path, weights_only=True)
    assert payload["style"] == "stripes" and payload["meta"] == {"steps": 3}
    assert payload["config"]["output"] == "tanh"
    torch.testing.assert_close(net_from_export(payload)(x), net(x))
    small = net_from_export(torch.load(half, weights_only=True))
    torch.testing.assert_close(small(x), net(x), atol=5e-3, rtol=0)
    assert half.stat().st_size < 0.6 * path.stat().st_size


@pytest.mark.parametrize("h, w", [(1, 1), (2, 3), (4, 4), (5, 7), (4, 100), (8, 6)])
def test_tiny_images_keep_their_size(h, w) -> None:
    net = TransformerNet(NetConfig(width="half", n_residual=1)).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, h, w))
    assert out.shape == (2, 3, h, w) and torch.isfinite(out).all()


def test_padding_is_unchanged_for_sizes_that_always_worked() -> None:
    """Sides of 5 px and more are padded to the next multiple of 4 only, as before."""
    assert [padding(s) for s in (5, 6, 7, 8, 9, 255, 256)] == [3, 2, 1, 0, 3, 1, 0]
    assert [padding(s) for s in (1, 2, 3, 4)] == [7, 6, 5, 4]


def test_stylize_a_2x3_png_and_size_1(tmp_path, capsys) -> None:
    src = write_photo(tmp_path / "tiny.png", 3, 2)
    stylize_app.main(["--model", str(MODEL), str(src), "-o", str(tmp_path / "out.png")])
    stylize_app.main(["--model", str(MODEL), str(write_photo(tmp_path / "p.png", 64, 48)),
                      "--size", "1", "-o", str(tmp_path / "one.png")])
    assert Image.open(tmp_path / "out.png").size == (3, 2)
    assert Image.open(tmp_path / "one.png").size == (1, 1)


# The cheaper architectures (docs/studies/architecture.md): fast = model=fast.
CHEAP = {
    "fast": dict(width="quarter", downsample=3, end_kernel=3, upsample="deconv"),
    "inverted-separable": dict(width="quarter", block="inverted", upsample="separable",
                               end_kernel=5, n_residual=2),
    "down3-nearest": dict(width="quarter", downsample=3, n_residual=1),
}


@pytest.mark.parametrize("name", CHEAP)
@pytest.mark.parametrize("h, w", [(1, 1), (9, 13), (37, 50), (64, 64)])
def test_cheap_architectures_keep_any_size(name, h, w) -> None:
    net = TransformerNet(NetConfig(**CHEAP[name])).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, h, w))
    assert out.shape == (2, 3, h, w) and 0 <= out.min() and out.max() <= 1


def test_cheap_architectures_have_their_layers() -> None:
    fast = TransformerNet(NetConfig(**CHEAP["fast"]))
    assert [conv.conv2d.stride for conv, _ in fast.down()] == [(1, 1), (2, 2), (2, 2), (2, 2)]
    assert len(fast.up()) == 3 and isinstance(fast.deconv0, DeconvLayer)
    assert fast.conv1.conv2d.kernel_size == fast.deconv3.conv2d.kernel_size == (3, 3)
    inverted = TransformerNet(NetConfig(**CHEAP["inverted-separable"]))
    assert inverted.res1.depthwise.conv2d.groups == inverted.res1.depthwise.conv2d.in_channels
    assert isinstance(inverted.deconv1, SeparableUpsampleLayer)


def test_three_downsamplings_pad_to_a_multiple_of_8() -> None:
    """Sides are padded to a multiple of 8, and to 16 px at least (2 px at 1/8)."""
    assert [padding(s, 8) for s in (1, 9, 16, 17, 24)] == [15, 7, 0, 7, 0]
    assert NetConfig(downsample=3).multiple == 8 and NetConfig().multiple == 4


@pytest.mark.parametrize(("field", "value"), [("downsample", 4), ("block", "dense"),
                                               ("end_kernel", 7), ("upsample", "pixel")])
def test_unknown_architecture_choice_is_a_one_line_error(field, value) -> None:
    with pytest.raises(FastNSTError, match=f"unknown model.{field} {value!r}; use one of"):
        NetConfig(**{field: value}).validate()
