"""The `loss`, `optim` and `distillation` config groups of training as dataclasses: which VGG
layers, how much each loss counts (with per-convention defaults), Adam with its LR schedule, and
distillation's pixel and feature terms. Calibration reads the same `LossConfig`, so the weights
it measures are the ones training uses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from fast_nst.core.losses import CONVENTION_DEFAULTS, LossWeights, as_layer_weights
from fast_nst.core.temporal import StabilityConfig
from fast_nst.errors import FastNSTError

# Johnson et al. 2016 (VGG16 names, present in VGG19): the layers when the config gives none.
JOHNSON_LAYERS = {"content": ("relu2_2",), "style": ("relu1_2", "relu2_2", "relu3_3", "relu4_3")}

# loss.style_weight=auto: train.py measures a weight first (fast_nst.training.calibrate) and puts
# it here.
AUTO = "auto"


@dataclass
class LossConfig:
    """Which VGG layers, and how much each loss counts (null weight: the convention default;
    style_weight `auto`: chosen by train.py's calibration before the module is built)."""

    # a list (weight 1 each) or a mapping {layer: weight}; None: Johnson et al.'s layers
    content_layers: Any = None
    style_layers: Any = None
    content_weight: float | None = None
    style_weight: Any = None  # a number, null or "auto"
    tv_weight: float | None = None
    stability: StabilityConfig = field(default_factory=StabilityConfig)
    by_convention: dict[str, dict[str, float]] = field(
        default_factory=lambda: {k: dict(v["network"]) for k, v in CONVENTION_DEFAULTS.items()})

    def __post_init__(self) -> None:
        if self.content_layers is None:
            self.content_layers = list(JOHNSON_LAYERS["content"])
        if self.style_layers is None:
            self.style_layers = list(JOHNSON_LAYERS["style"])

    def validate(self) -> LossConfig:
        """One-line errors for settings the loss cannot use (weights are checked by resolve)."""
        st = self.stability
        if st.mode not in ("noise", "shift") or st.weight < 0:
            raise FastNSTError("loss.stability needs mode noise or shift and weight >= 0, got "
                               f"{st.mode!r} and {st.weight}")
        if st.max_shift < 1 or st.noise < 0:
            raise FastNSTError("loss.stability needs max_shift >= 1 and noise >= 0, got "
                               f"{st.max_shift} and {st.noise}")
        return self

    def resolve(self, convention: str) -> LossWeights:
        base = {**CONVENTION_DEFAULTS.get(convention, {}).get("network", {}),
                **self.by_convention.get(convention, {})}
        chosen = {"content": self.content_weight, "style": self.style_weight,
                  "tv": self.tv_weight}
        values = {k: float(base.get(k, 0.0)) if v is None else _weight(k, v)
                  for k, v in chosen.items()}
        for name, value in values.items():
            if value < 0:
                raise FastNSTError(f"loss.{name}_weight must be >= 0, got {value}")
        return LossWeights(**values)

    def resolved(self, convention: str) -> dict[str, Any]:
        """The loss as training uses and records it (hparams, the exported `meta`): layer
        tables {layer: weight} and the weights in effect for the VGG convention."""
        weights = self.resolve(convention)
        return {**asdict(self), "content_layers": as_layer_weights(self.content_layers),
                "style_layers": as_layer_weights(self.style_layers),
                "content_weight": weights.content, "style_weight": weights.style,
                "tv_weight": weights.tv}


def _weight(name: str, value: Any) -> float:
    """A loss weight from the config: a number; `auto` and other words are one-line errors."""
    if value == AUTO and name == "style":
        raise FastNSTError("loss.style_weight=auto is resolved by train.py before training "
                           "(fast_nst.training.calibrate.auto_style_weight); give a number here")
    try:
        return float(value)
    except (TypeError, ValueError):
        extra = ", null or auto" if name == "style" else " or null"
        raise FastNSTError(f"loss.{name}_weight must be a number{extra}, got {value!r}") \
            from None


@dataclass
class OptimConfig:
    """Adam, and an optional per-step LR schedule: none, cosine (to `min_lr`) or step."""

    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    schedule: str = "none"
    min_lr: float = 0.0
    step_size: int = 10000
    gamma: float = 0.5

    def validate(self) -> OptimConfig:
        """One-line errors for what Adam or the schedule would refuse mid-run."""
        if self.schedule not in ("none", "cosine", "step"):
            raise FastNSTError(f"unknown optim.schedule {self.schedule!r}; "
                               "use none, cosine or step")
        rules = [("lr", self.lr > 0, "> 0"),
                 ("min_lr", 0 <= self.min_lr <= self.lr, "between 0 and optim.lr"),
                 ("weight_decay", self.weight_decay >= 0, ">= 0"),
                 ("step_size", self.step_size >= 1, ">= 1"),
                 ("gamma", self.gamma > 0, "> 0"),
                 ("betas", len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
                  "two numbers in [0, 1)")]
        for name, ok, wanted in rules:
            if not ok:
                raise FastNSTError(f"optim.{name} must be {wanted}, got {getattr(self, name)!r}")
        return self


@dataclass
class DistillLossConfig:
    """The `distillation` group: how much the pixel and the VGG feature terms count."""

    pixel_weight: float = 1.0
    feature_weight: float = 1.0
    feature_layers: list[str] = field(default_factory=lambda: ["relu1_2"])

    def validate(self) -> DistillLossConfig:
        if self.pixel_weight < 0 or self.feature_weight < 0:
            raise FastNSTError("distillation.pixel_weight and feature_weight must be >= 0, got "
                               f"{self.pixel_weight} and {self.feature_weight}")
        if self.pixel_weight == 0 and self.feature_weight == 0:
            raise FastNSTError("distillation.pixel_weight and feature_weight are both 0: "
                               "nothing to learn; set one of them above 0")
        if self.feature_weight and not self.feature_layers:
            raise FastNSTError("distillation.feature_weight > 0 needs feature_layers, e.g. "
                               "distillation.feature_layers=[relu1_2]")
        return self
