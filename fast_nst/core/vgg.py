"""VGG19 feature encoder: weights, their input convention, layer names, truncation.

The one perceptual backbone that both the optimizer (`gatys`) and the trainer (`module`) use.
Images enter in RGB, 0..1; the encoder applies the input convention of its weights.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from fast_nst.core.images import atomic_path
from fast_nst.errors import FastNSTError
from fast_nst.safe_load import load_torch_file

# torchvision's vgg19().features: conv/relu pairs per block, a max-pool closing each block.
_BLOCK_SIZES = (2, 2, 4, 4, 4)


def _canonical_layer_names() -> list[str]:
    names: list[str] = []
    for block, convs in enumerate(_BLOCK_SIZES, start=1):
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


LAYER_NAMES: tuple[str, ...] = tuple(_canonical_layer_names())
"""Canonical names in the order of torchvision's `vgg19().features` modules."""

_SEQUENTIAL_ALIASES: dict[str, str] = {}
for _n, _name in enumerate((n for n in LAYER_NAMES if n.startswith("conv")), start=1):
    _SEQUENTIAL_ALIASES[f"conv_{_n}"] = _name
    _SEQUENTIAL_ALIASES[f"relu_{_n}"] = _name.replace("conv", "relu")

CONV_LAYERS: tuple[str, ...] = tuple(f"conv_{n}" for n in range(1, 17))
"""The sequential names `conv_1` ... `conv_16` of the classic assignment."""


def canonical_layer(name: str) -> str:
    """Map `conv_7` or `conv3_3` style names to the canonical one; one-line error otherwise."""
    if name in LAYER_NAMES:
        return name
    if name in _SEQUENTIAL_ALIASES:
        return _SEQUENTIAL_ALIASES[name]
    valid = ", ".join(LAYER_NAMES) + "; or conv_1..conv_16, relu_1..relu_16"
    raise FastNSTError(f"unknown VGG19 layer {name!r}; valid names: {valid}")


def layer_index(name: str) -> int:
    """Index of a layer in `vgg19().features`."""
    return LAYER_NAMES.index(canonical_layer(name))


@dataclass(frozen=True)
class InputConvention:
    """How the weights expect pixels: x_in = (x_rgb01 * scale - mean) / std."""

    name: str
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


CONVENTIONS: dict[str, InputConvention] = {
    "torchvision": InputConvention(
        "torchvision", 1.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    ),
    "caffe": InputConvention("caffe", 255.0, (123.68, 116.779, 103.939), (1.0, 1.0, 1.0)),
}

@dataclass
class VGGConfig:
    """The `vgg` config group: weights (`imagenet`, `random` or a file), the input convention
    (`auto`: from the weights, see `resolve_convention`) and the pooling (max or avg)."""

    weights: str = "imagenet"
    convention: str | None = "auto"
    pooling: str = "max"


def resolve_convention(weights: str, convention: str | None) -> InputConvention:
    """Pick the convention: explicit, else torchvision's for `imagenet`/`random`, else the
    sidecar JSON next to a weights file (as `../shared/weights/*.json` provides)."""
    if convention not in (None, "auto"):
        if convention not in CONVENTIONS:
            raise FastNSTError(
                f"unknown input convention {convention!r}; use one of {sorted(CONVENTIONS)}"
            )
        return CONVENTIONS[convention]
    if weights in ("imagenet", "random"):
        return CONVENTIONS["torchvision"]
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FastNSTError(f"VGG weights file not found: {weights}; give vgg.weights=FILE, "
                           "imagenet (downloaded once) or random")
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        info = json.loads(sidecar.read_text()).get("input", {})
        return CONVENTIONS["caffe" if info.get("range") == [0, 255] else "torchvision"]
    raise FastNSTError(
        f"cannot tell the input convention of {weights}; set convention=caffe or torchvision"
    )


def _download_imagenet_features() -> nn.Sequential:
    from torchvision.models import VGG19_Weights, vgg19  # ~2 s to import: only when used

    try:
        return vgg19(weights=VGG19_Weights.IMAGENET1K_V1).features
    except (OSError, RuntimeError) as err:  # URLError is an OSError
        raise FastNSTError(
            f"could not download torchvision's VGG19 weights ({type(err).__name__}); "
            "offline, use the Caffe VGG19 on disk: vgg=caffe (or vgg.weights=FILE)"
        ) from None


def _features_state_dict(path: Path) -> dict[str, Tensor]:
    """Read a state dict of a whole vgg19 or of its `.features`, keyed like `features`."""
    state = load_torch_file(path, what="VGG19 weights")
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise FastNSTError(f"{path} holds a {type(state).__name__}, not a VGG19 state dict")
    features = {k.removeprefix("features."): v for k, v in state.items() if k[0].isdigit()
                or k.startswith("features.")}
    return features


def _bare_features() -> nn.Sequential:
    """`vgg19().features` with torchvision's init, without building the 100M-parameter
    classifier (which costs seconds per encoder on a CPU)."""
    from torchvision.models.vgg import cfgs, make_layers  # ~2 s to import: only when used

    features = make_layers(cfgs["E"])
    for module in features.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
    return features


def load_features(weights: str) -> nn.Sequential:
    """`vgg19().features` with `imagenet` (torchvision download), `random`, or a file's weights.

    A file may hold only the first layers (see `save_features`): the network then ends at the
    ReLU after its last convolution, and asking for a deeper layer is a one-line error."""
    if weights == "imagenet":
        return _download_imagenet_features()
    features = _bare_features()
    if weights == "random":
        return features
    path = Path(weights).expanduser()
    state = _features_state_dict(path)
    end = _prefix_end(state.keys(), features)
    try:
        features[:end].load_state_dict(state, strict=True)
    except RuntimeError:
        raise FastNSTError(
            f"{path} does not hold VGG19 weights (expected keys features.0.weight ... "
            "features.34.bias); pass a torchvision vgg19 state dict"
        ) from None
    return features[:end]


def _prefix_end(keys: Iterable[str], features: nn.Sequential) -> int:
    """Where a file's layers end: after the ReLU following its deepest convolution (all of
    `features` when the file is empty or malformed, so that strict loading reports it)."""
    convs = {int(key.split(".")[0]) for key in keys if key.split(".")[0].isdecimal()}
    last_conv = max(i for i, module in enumerate(features) if isinstance(module, nn.Conv2d))
    if not convs or max(convs) >= last_conv:
        return len(features)  # a full file keeps pool5
    return max(convs) + 2


def save_features(weights: str, upto: str, path: str | Path, half: bool = True) -> Path:
    """Write the layers of `weights` down to `upto` (e.g. `relu4_3`) as a features state dict:
    a smaller file for machines that only need those layers (float16: a fifth of the full
    file's size at relu4_3). `load_features` reads it back; the dtype follows the module."""
    features = load_features(weights)
    if layer_index(upto) >= len(features):
        raise FastNSTError(f"{weights} holds VGG19 only down to {LAYER_NAMES[len(features) - 1]}"
                           f", not {canonical_layer(upto)}")
    features = features[: layer_index(upto) + 1]
    state = {k: (v.half() if half else v).clone() for k, v in features.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


class VGGEncoder(nn.Module):
    """Frozen VGG19 cut after the deepest requested layer; one forward returns every layer.

    Args:
        layers: layer names in either scheme (`relu2_2` or `relu_4`); keys of the output dict
            are the names as given.
        weights: `imagenet`, `random`, or a path to a state-dict file.
        convention: `torchvision`, `caffe`, or `auto` (see `resolve_convention`).
        pooling: `max` (torchvision) or `avg` (Gatys et al. found it gives smoother images).
    """

    def __init__(
        self,
        layers: Iterable[str],
        weights: str = "imagenet",
        convention: str | None = "auto",
        pooling: str = "max",
    ) -> None:
        super().__init__()
        self.layers: tuple[str, ...] = tuple(dict.fromkeys(layers))
        if not self.layers:
            raise FastNSTError("VGGEncoder needs at least one layer name")
        indices = {name: layer_index(name) for name in self.layers}
        if pooling not in ("max", "avg"):
            raise FastNSTError(f"unknown pooling {pooling!r}; use max or avg")
        self.convention = resolve_convention(str(weights), convention)
        features = load_features(str(weights))
        if max(indices.values()) >= len(features):
            raise FastNSTError(
                f"{weights} holds VGG19 only down to {LAYER_NAMES[len(features) - 1]}; layer "
                f"{canonical_layer(deepest(self.layers))} needs the full weights file")
        features = features[: max(indices.values()) + 1]
        if pooling == "avg":
            for i, module in enumerate(features):
                if isinstance(module, nn.MaxPool2d):
                    features[i] = nn.AvgPool2d(kernel_size=2, stride=2)
        for module in features:
            if isinstance(module, nn.ReLU):
                module.inplace = False  # a conv output requested as a layer must survive
        self.features = features.requires_grad_(False).eval()
        self._outputs: dict[int, list[str]] = {}
        for name, index in indices.items():
            self._outputs.setdefault(index, []).append(name)
        conv = self.convention
        self.register_buffer("mean", torch.tensor(conv.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(conv.std).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> VGGEncoder:
        """Stay in eval mode whatever the parent module does."""
        return super().train(False)

    def normalize(self, images: Tensor) -> Tensor:
        """RGB 0..1 images to the weights' input convention."""
        return (images * self.convention.scale - self.mean) / self.std

    def forward(self, images: Tensor, upto: Iterable[str] | None = None) -> dict[str, Tensor]:
        """The requested layers; with `upto` (some layer names), stop after the deepest of them
        (a content-only pass at relu2_2 need not run the style layers down to relu4_3)."""
        last = len(self.features) - 1 if upto is None else max(map(layer_index, upto), default=-1)
        # Channels-last lets oneDNN/cuDNN skip a layout reorder around every conv and pool
        # (up to 12% off a training step, 6% off an optimizer step on the development CPU).
        x = self.normalize(images).contiguous(memory_format=torch.channels_last)
        out: dict[str, Tensor] = {}
        for index, module in enumerate(self.features):
            if index > last:
                break
            x = module(x)
            for name in self._outputs.get(index, ()):
                out[name] = x
        return out


def deepest(layers: Sequence[str]) -> str:
    """The deepest of some layer names (the one that decides the encoder's cost)."""
    return max(layers, key=layer_index)


def min_side(layers: Iterable[str]) -> int:
    """The smallest image side that still reaches the deepest of `layers`: every pool up to it
    (itself included, when it is one) halves the image, and a side of 0 stops the forward pass."""
    last = max(layer_index(name) for name in layers)
    return 2 ** sum(1 for name in LAYER_NAMES[:last + 1] if name.startswith("pool"))


def check_side(layers: Iterable[str], height: int, width: int, what: str, fix: str) -> None:
    """One-line error when an image is too small for the deepest of `layers`."""
    layers = list(layers)
    need = min_side(layers)
    if min(height, width) < need:
        raise FastNSTError(f"the {what} is {width}x{height} px, too small for VGG layer "
                           f"{canonical_layer(deepest(layers))} (short side >= {need}); {fix}")
