"""A few optimizer steps of a StyleTransferModule on one batch, outside Lightning."""

from __future__ import annotations

import torch
from torch import Tensor


def train_steps(module, batch: Tensor, optimizer: torch.optim.Optimizer, steps: int
                ) -> list[float]:
    """The total loss before each of `steps` steps on `batch`."""
    totals = []
    for _ in range(steps):
        _, terms = module.compute_losses(batch)
        optimizer.zero_grad()
        terms["total"].backward()
        optimizer.step()
        totals.append(terms["total"].item())
    return totals
