"""Pick the compute device: one rule for the optimizer, the trainer's tools and stylize."""

from __future__ import annotations

import torch

from fast_nst.errors import FastNSTError


def pick_device(name: str = "auto") -> torch.device:
    """`auto` is cuda, then mps, then cpu; an explicit device that is absent is an error."""
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise FastNSTError(f"unknown device {name!r}; use auto, cpu, cuda or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FastNSTError("device cuda asked for but no CUDA GPU is visible; use auto or cpu")
    if device.type == "mps" and not has_mps:
        raise FastNSTError("device mps asked for but MPS is not available; use auto or cpu")
    return device
