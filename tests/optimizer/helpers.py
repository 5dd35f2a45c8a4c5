"""Settings the optimizer tests share: random VGG weights and shallow layers (plumbing)."""

from __future__ import annotations

from fast_nst.core.vgg import VGGConfig

RANDOM = VGGConfig("random", "torchvision")
TINY = {"content_layers": ["relu2_1"], "style_layers": ["relu1_1", "relu2_1"]}  # plumbing: cheap
