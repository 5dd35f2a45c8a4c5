"""fast_nst.inference.export: ONNX and TorchScript files that match PyTorch."""

from __future__ import annotations

import pytest
import torch

from fast_nst import FastNSTError
from fast_nst.inference.export import export_file
from fast_nst.model.files import export_model, load_model
from fast_nst.model.network import NetConfig, TransformerNet
from tests.tolerance import PIXEL_ATOL


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_parity(tmp_path, model_pt, fmt) -> None:
    path, diff = export_file(model_pt, fmt, tmp_path / "exported")
    assert path.is_file() and diff < PIXEL_ATOL
    net = load_model(model_pt).net
    x = torch.rand(1, 3, 45, 31)  # a size the export never saw
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        y = torch.from_numpy(session.run(None, {"image": x.numpy()})[0])
    else:
        y = torch.jit.load(str(path))(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y, net(x), atol=PIXEL_ATOL, rtol=0)  # float32 in both


def test_failed_export_check_leaves_no_file(tmp_path, model_pt) -> None:
    with pytest.raises(FastNSTError, match="differs from PyTorch"):
        export_file(model_pt, "torchscript", tmp_path / "m.pt", tolerance=-1.0)
    assert list(tmp_path.iterdir()) == [tmp_path / "models"]


@pytest.mark.parametrize("config", [
    dict(width="quarter", downsample=3, end_kernel=3, upsample="deconv"),  # model=fast
    dict(width="quarter", block="inverted", upsample="separable", end_kernel=5, n_residual=2),
], ids=["fast", "inverted-separable"])
def test_every_architecture_exports(tmp_path, config) -> None:
    """PortableNet follows the network's own layer lists, so new architectures export too."""
    net = TransformerNet(NetConfig(**config)).eval()
    model = export_model(net, tmp_path / "student.pt", style="s")
    for fmt in ("onnx", "torchscript"):
        path, diff = export_file(model, fmt, tmp_path / f"student-{fmt}")
        assert path.is_file() and diff < PIXEL_ATOL
