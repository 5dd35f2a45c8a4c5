"""Model files, written and read: the compact `.pt` that train.py exports (`export_model`), and
every file stylize accepts (that `.pt`, a Lightning `.ckpt`, a pytorch/examples
fast_neural_style `.pth`), each turned into a `StyleModel` (the network plus where it came from);
the bundled models.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fast_nst.configs import to_dataclass
from fast_nst.core.images import atomic_path
from fast_nst.errors import FastNSTError
from fast_nst.model.network import NetConfig, TransformerNet
from fast_nst.safe_load import load_torch_file

EXPORT_FORMAT = "fast_nst.transformer"  # a file-format name, kept from the first release
EXPORT_VERSION = 1


def export_model(net: TransformerNet, path: str | os.PathLike, *, style: str,
                 meta: dict[str, Any] | None = None, half: bool = False) -> Path:
    """Write the compact model file that `stylize.py` reads (atomically).

    Holds weights (fp16 storage when `half`), the network config, the style name and `meta`
    (the training settings that matter: plain Python values only).
    """
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu()
             for k, v in net.state_dict().items()}
    payload = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "style": style,
               "config": asdict(net.config), "meta": dict(meta or {}), "state_dict": state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def is_exported(payload: Any) -> bool:
    return isinstance(payload, dict) and payload.get("format") == EXPORT_FORMAT


def net_from_export(payload: dict[str, Any]) -> TransformerNet:
    """Rebuild a TransformerNet from an `export_model` payload (weights cast to float32)."""
    net = TransformerNet(to_dataclass(NetConfig, payload["config"], "the model file's network"))
    state = {k: v.float() if v.is_floating_point() else v
             for k, v in payload["state_dict"].items()}
    net.load_state_dict(state)
    return net.eval()


MODEL_KINDS = ("export", "checkpoint", "examples")
EXAMPLES_CONFIG = dict(width="full", n_residual=5, norm="instance", upsample="nearest",
                       output="clamp", pixel_scale=255.0)
# Old PyTorch InstanceNorm2d tracked running stats; the examples' .pth files still carry them.
_LEGACY_NORM_KEY = re.compile(r"(^|\.)in\d+\.(running_mean|running_var|num_batches_tracked)$")


@dataclass
class StyleModel:
    """A network ready for inference, with where it came from."""

    net: TransformerNet
    style: str
    kind: str  # one of MODEL_KINDS
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)  # training settings (style, VGG, losses)


def _load_state(net: TransformerNet, state: dict[str, Tensor], path: Path, kind: str) -> None:
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise FastNSTError(f"{path}: weights do not fit the {kind} network ({first[:150]})") \
            from None


def _is_examples_state(payload: Any) -> bool:
    return (isinstance(payload, dict) and all(isinstance(v, Tensor) for v in payload.values())
            and "conv1.conv2d.weight" in payload and "deconv3.conv2d.weight" in payload)


def _from_checkpoint(payload: dict[str, Any], path: Path) -> StyleModel:
    hparams = payload.get("hyper_parameters") or {}
    net = TransformerNet(to_dataclass(NetConfig, hparams["net"], f"{path}: network config"))
    state = {k[len("net."):]: v for k, v in payload["state_dict"].items() if k.startswith("net.")}
    if not state:
        raise FastNSTError(f"{path}: Lightning checkpoint has no `net.*` weights")
    _load_state(net, state, path, "checkpoint's")
    style = hparams.get("style_name") or path.stem
    return StyleModel(net.eval(), str(style), "checkpoint", path, dict(hparams))


def _from_examples(state: dict[str, Tensor], path: Path) -> StyleModel:
    state = {k: v for k, v in state.items() if not _LEGACY_NORM_KEY.search(k)}
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"res(\d+)\.", k))}
    width = "half" if state["conv1.conv2d.weight"].shape[0] == 16 else "full"
    config = NetConfig(**{**EXAMPLES_CONFIG, "width": width, "n_residual": len(blocks)})
    net = TransformerNet(config)
    _load_state(net, state, path, "fast_neural_style")
    return StyleModel(net.eval(), path.stem, "examples", path)


BUNDLED_MODELS = Path(__file__).resolve().parents[2] / "models"
FAST_FOLDER = "fast"  # models/fast/<style>.pt: the distilled CPU network of models/<style>.pt


def bundled_models(folder: str | os.PathLike = BUNDLED_MODELS) -> dict[str, Path]:
    """{style: path} of the models shipped in `folder` (the repo's models/*.pt)."""
    models = {p.stem: p for p in sorted(Path(folder).glob("*.pt"))}
    if not models:
        raise FastNSTError(f"no models in {folder}; train one with "
                           "`python train.py experiment=bundle/starry_night`")
    return models


def fast_models(folder: str | os.PathLike = BUNDLED_MODELS) -> dict[str, Path]:
    """{"<style> (fast)": path} of the fast variants shipped in `folder`/fast (may be empty)."""
    return {f"{p.stem} (fast)": p for p in sorted((Path(folder) / FAST_FOLDER).glob("*.pt"))}


def fast_variant(path: str | os.PathLike) -> Path:
    """The fast variant of a model file: `<its folder>/fast/<its name>.pt`, which must exist."""
    path = Path(path)
    fast = path.parent / FAST_FOLDER / f"{path.stem}.pt"
    if not fast.is_file():
        raise FastNSTError(f"no fast variant of {path} (looked for {fast}); make one with "
                           f"`fast-nst-distill teacher={path}` and move its {path.stem}-fast.pt "
                           f"there as {fast.name}, or drop --fast")
    return fast


def find_model(name: str | os.PathLike, *, fast: bool = False,
               folder: str | os.PathLike = BUNDLED_MODELS) -> Path:
    """A model file from a path or a bundled style's name (`udnie`); `fast`: its fast variant."""
    path = Path(name)
    if not path.exists() and path.suffix == "" and (Path(folder) / f"{name}.pt").is_file():
        path = Path(folder) / f"{name}.pt"
    return fast_variant(path) if fast else path


def load_model(path: str | os.PathLike) -> StyleModel:
    """Detect the model kind (export .pt, Lightning .ckpt, examples .pth) and build the net."""
    path = Path(path)
    payload = load_torch_file(path)
    if is_exported(payload):
        try:
            net = net_from_export(payload)
        except (KeyError, TypeError, RuntimeError) as err:
            raise FastNSTError(f"{path}: damaged fast_nst model file ({err})") from None
        return StyleModel(net, str(payload.get("style") or path.stem), "export", path,
                          dict(payload.get("meta") or {}))
    if (isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict)
            and isinstance(payload.get("hyper_parameters"), dict)
            and "net" in payload["hyper_parameters"]):
        return _from_checkpoint(payload, path)
    if _is_examples_state(payload):
        return _from_examples(payload, path)
    raise FastNSTError(f"{path} is not a style model: expected a fast_nst .pt from train.py, "
                       "a Lightning .ckpt or a pytorch/examples fast_neural_style .pth")
