"""Precision: one vocabulary and one rule for every command.

The names: stylize and the optimizer say fp32, bf16 or fp16 (`SHORT_NAMES`); Lightning's
Trainer says 32-true, bf16-mixed, 16-mixed (and others of its own); each maps to one torch
dtype (`TABLE`). The rule (`resolve_precision`): `auto` is bf16 where the hardware runs it
natively, fp16 on older CUDA GPUs, float32 elsewhere; an explicit value wins, with a warning
where it will be slow. Training, stylize, the optimizer, compare, flicker and the benchmarks all
ask this module, so one machine gets one answer everywhere.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from fast_nst import device as hw
from fast_nst.errors import FastNSTError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Name:
    """One precision under each of its names."""

    short: str  # stylize's and the optimizer's name
    dtype: torch.dtype  # the autocast (or cast) dtype
    lightning: str  # the Trainer's name


TABLE = (Name("fp32", torch.float32, "32-true"), Name("bf16", torch.bfloat16, "bf16-mixed"),
         Name("fp16", torch.float16, "16-mixed"))
SHORT_NAMES = tuple(n.short for n in TABLE)
DTYPES = {n.short: n.dtype for n in TABLE}


def short_of(name: str) -> str:
    """The short name of any precision name: Lightning's (bf16-true, 16-mixed, 32, ...) or short."""
    return "bf16" if "bf16" in name else "fp16" if name.startswith(("16", "fp16")) else "fp32"


def short_of_dtype(dtype: torch.dtype) -> str:
    return next(n.short for n in TABLE if n.dtype == dtype)


def lightning_name(name: str) -> str:
    """A short name as Lightning's; any other name unchanged."""
    return next((n.lightning for n in TABLE if n.short == name), name)


@dataclass(frozen=True)
class Precision:
    """A resolved precision in Lightning's names (32-true, bf16-mixed, 16-mixed, ...), why it
    was chosen, and a warning for an explicit choice that will be slow here."""

    name: str
    reason: str
    warning: str | None = None

    @property
    def short(self) -> str:
        """The autocast dtype as stylize names it: fp32, bf16 or fp16."""
        return short_of(self.name)


def auto_precision(device: torch.device) -> Precision:
    """bf16-mixed on a CUDA GPU with bf16 or a CPU with native bf16, 16-mixed on an older CUDA
    GPU, 32-true otherwise (MPS included)."""
    if device.type == "cuda":
        if hw.cuda_bf16(device):
            return Precision("bf16-mixed", f"CUDA GPU with bf16: {hw.gpu_name(device)}")
        return Precision("16-mixed", f"CUDA GPU without bf16: {hw.gpu_name(device)}")
    if device.type == "cpu":
        if hw.cpu_native_bf16():
            return Precision("bf16-mixed", f"CPU with native bf16: {hw.cpu_capability()}")
        return Precision("32-true", f"CPU without native bf16: {hw.cpu_capability()}")
    return Precision("32-true", f"{device.type}: float32")


def resolve_precision(requested: Any, device: torch.device) -> Precision:
    """`auto` -> `auto_precision(device)`; anything else is kept (stylize's fp32/bf16/fp16 are
    mapped to Lightning's names), with a warning for bf16 on a CPU without native bf16."""
    value = str(requested)
    if value == "auto":
        return auto_precision(device)
    name = lightning_name(value)
    warning = None
    if "bf16" in name and device.type == "cpu" and not hw.cpu_native_bf16():
        warning = (f"precision {value} on a CPU without native bf16 ({hw.cpu_capability()}) runs "
                   "many times slower than float32; leave precision on auto")
    return Precision(name, "explicit", warning)


def trainer_precision(trainer: Any) -> str:
    """The Trainer's precision with `auto` resolved (Lightning does not take `auto`); logged
    once with its reason, or with a warning when an explicit choice will be slow."""
    device = hw.trainer_device(trainer.get("accelerator", "auto"), trainer.get("devices"))
    precision = resolve_precision(trainer.get("precision", "auto"), device)
    if precision.warning:
        log.warning(precision.warning)
    elif precision.reason != "explicit":
        log.info("precision auto -> %s (%s)", precision.name, precision.reason)
    return precision.name


def stylize_dtype(device: torch.device, precision: str) -> torch.dtype:
    """The dtype stylize runs at: `auto` by the rule, else fp32, bf16 or fp16 (checked)."""
    if precision == "auto":
        precision = resolve_precision(precision, device).short
    if precision not in DTYPES:
        raise FastNSTError(f"unknown precision {precision!r}; use auto or one of "
                           f"{', '.join(SHORT_NAMES)}")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise FastNSTError("this GPU has no bf16; use --precision fp16 or fp32")
    return DTYPES[precision]
