"""fast_nst.optimizer.loss: the precision of the VGG passes."""

from __future__ import annotations

import pytest
import torch

from fast_nst.optimizer.config import GatysConfig
from fast_nst.optimizer.loss import autocast_dtype

# The compile threshold scales with the threads: fix them (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("two_threads")


CPU = torch.device("cpu")


def test_optimizer_precision_follows_the_rule(zen3) -> None:
    assert autocast_dtype(GatysConfig(precision="auto"), CPU) is None
    assert autocast_dtype(GatysConfig(), CPU) is None  # fp32 by default: the ground truth
    with pytest.warns(UserWarning, match="many times slower"):
        assert autocast_dtype(GatysConfig(precision="bf16"), CPU) == torch.bfloat16


def test_optimizer_auto_uses_bf16_with_native_bf16(zen4) -> None:
    assert autocast_dtype(GatysConfig(precision="auto"), CPU) == torch.bfloat16
