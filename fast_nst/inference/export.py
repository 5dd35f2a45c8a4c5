"""Export a style network to ONNX or TorchScript, checked against PyTorch right after writing."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fast_nst.core.images import atomic_path
from fast_nst.errors import FastNSTError
from fast_nst.inference.jobs import make_folder, safe_name
from fast_nst.model.files import StyleModel, load_model
from fast_nst.model.network import TransformerNet

# ---------------------------------------------------------------------------------------------
# Export: ONNX and TorchScript, each checked against PyTorch right after writing


class PortableNet(nn.Module):
    """TransformerNet.forward rewritten so that TorchScript and ONNX keep H and W dynamic.

    (Tracing the original would freeze its pad-to-a-multiple and crop sizes.) It shares the
    original's parameters and runs its layers in the same order, for every architecture.
    Inputs need both sides >= 2x the padding multiple (8 px, 16 with three downsamplings).
    """

    def __init__(self, net: TransformerNet) -> None:
        super().__init__()
        c = net.config
        self.pixel_scale = float(c.pixel_scale)
        self.output_kind = c.output
        self.multiple = c.multiple
        self.down = nn.ModuleList([conv for conv, _ in net.down()])
        self.down_norms = nn.ModuleList([norm for _, norm in net.down()])
        self.blocks = nn.ModuleList(net.blocks())
        self.up = nn.ModuleList([layer for layer, _ in net.up()])
        self.up_norms = nn.ModuleList([norm for _, norm in net.up()])
        self.tail = net.deconv3

    def forward(self, images: Tensor) -> Tensor:
        h, w, m = images.shape[2], images.shape[3], self.multiple
        x = F.pad(images * self.pixel_scale, [0, (m - w % m) % m, 0, (m - h % m) % m],
                  mode="reflect")
        for conv, norm in zip(self.down, self.down_norms):  # noqa: B905
            x = F.relu(norm(conv(x)))
        for block in self.blocks:
            x = block(x)
        for layer, norm in zip(self.up, self.up_norms):  # noqa: B905
            x = F.relu(norm(layer(x)))
        y = self.tail(x)[:, :, :h, :w] / self.pixel_scale
        if self.output_kind == "sigmoid":
            return torch.sigmoid(y)
        if self.output_kind == "tanh":
            return (torch.tanh(y) + 1.0) / 2.0
        return y.clamp(0.0, 1.0)


EXPORT_FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
EXPORT_TOLERANCE = 1e-3  # max abs difference (0..1 pixels) accepted after export
CHECK_SIZES = ((1, 3, 64, 64), (2, 3, 37, 50))  # one size a multiple of 4, one not


def _export_onnx(module: nn.Module, path: Path) -> Callable[[Tensor], Tensor]:
    import onnxruntime as ort

    example = torch.rand(1, 3, 64, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(path), input_names=["image"],
                          output_names=["stylized"], opset_version=17, dynamo=False,
                          dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                        "stylized": {0: "batch", 2: "height", 3: "width"}})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(None, {"image": x.numpy()})[0])


def _export_torchscript(module: nn.Module, path: Path) -> Callable[[Tensor], Tensor]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(module)
        scripted.save(str(path))
        loaded = torch.jit.load(str(path), map_location="cpu")
    return loaded


def export_file(model: str | os.PathLike | StyleModel, fmt: str, output: str | os.PathLike,
                *, tolerance: float = EXPORT_TOLERANCE) -> tuple[Path, float]:
    """Write the network as ONNX (dynamic batch, H, W) or TorchScript, reload it, and compare
    with PyTorch on two input sizes. Returns (path, max abs diff); an error above `tolerance`
    (nothing is left on disk then)."""
    if fmt not in EXPORT_FORMATS:
        raise FastNSTError(f"unknown export format {fmt!r}; use onnx or torchscript")
    if not isinstance(model, StyleModel):
        model = load_model(model)
    path = Path(output)
    if path.is_dir():
        path = path / f"{safe_name(model.style)}{EXPORT_FORMATS[fmt]}"
    if not path.suffix:
        path = path.with_suffix(EXPORT_FORMATS[fmt])
    make_folder(path.parent)
    net = model.net.float().cpu().eval()
    module = PortableNet(net).eval()
    with atomic_path(path) as tmp:
        exported = (_export_onnx if fmt == "onnx" else _export_torchscript)(module, tmp)
        diff = 0.0
        with torch.inference_mode():
            for shape in CHECK_SIZES:
                x = torch.rand(shape)
                diff = max(diff, (exported(x) - net(x)).abs().max().item())
        if not math.isfinite(diff) or diff > tolerance:
            raise FastNSTError(f"{fmt} export differs from PyTorch by {diff:.2e} "
                               f"(> {tolerance:.0e}); nothing written")
    return path, diff

