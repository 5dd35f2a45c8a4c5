"""fast_nst.inference.blocks: the last convolution computed on 2x2 pixel blocks gives the same
outputs as the layer it replaces."""

from __future__ import annotations

import pytest
import torch

from fast_nst.inference.blocks import BlockConv, with_block_output
from fast_nst.inference.runtime import Stylizer
from fast_nst.model.network import ConvLayer, TransformerNet, UpsampleConvLayer
from tests.tolerance import FLOAT64_ATOL, PIXEL_ATOL


@pytest.mark.parametrize(("cin", "cout", "kernel"), [(16, 3, 9), (5, 2, 3), (4, 7, 1)])
def test_block_conv_computes_the_same_sums(cin: int, cout: int, kernel: int) -> None:
    torch.manual_seed(0)
    layer = ConvLayer(cin, cout, kernel).double()
    x = torch.randn(2, cin, 12, 20, dtype=torch.float64)
    blocked = BlockConv(layer)
    assert blocked.conv.weight.shape == (cout * 4, cin * 4, kernel // 2 + 1, kernel // 2 + 1)
    torch.testing.assert_close(blocked(x), layer(x), rtol=0, atol=1e-12)


def test_the_copy_replaces_only_the_last_layer_and_leaves_the_network_alone() -> None:
    net = TransformerNet(width="half", n_residual=1).double().eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fast = with_block_output(net)
    assert isinstance(fast.deconv3, BlockConv) and isinstance(net.deconv3, ConvLayer)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    x = torch.rand(1, 3, 21, 34, dtype=torch.float64)  # odd sides: the network pads them
    with torch.no_grad():  # float64: the same sums up to rounding on any CPU
        torch.testing.assert_close(fast(x), net(x), rtol=0, atol=FLOAT64_ATOL)


def test_only_a_plain_last_convolution_is_replaced() -> None:
    net = TransformerNet(width="half", n_residual=1, upsample="deconv")
    assert isinstance(with_block_output(net).deconv3, BlockConv)  # the last layer is still a conv
    net.deconv3 = UpsampleConvLayer(16, 3, 3)  # a subclass that upsamples: left as it is
    assert type(with_block_output(net).deconv3) is UpsampleConvLayer
    net.deconv3 = torch.nn.Identity()
    assert isinstance(with_block_output(net).deconv3, torch.nn.Identity)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_stylizer_output_matches_the_plain_network(precision: str) -> None:
    torch.manual_seed(1)
    net = TransformerNet(width="half", n_residual=2).eval()
    x = torch.rand(1, 3, 30, 44)
    with torch.no_grad():
        expected = net(x)
    out = Stylizer(net, device="cpu", precision=precision)(x)
    assert isinstance(Stylizer(net, device="cpu").net.deconv3, BlockConv)
    tolerance = PIXEL_ATOL if precision == "fp32" else 0.05  # bf16: the network's own rounding
    assert (out - expected).abs().max().item() < tolerance
