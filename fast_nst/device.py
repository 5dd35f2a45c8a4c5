"""Pick the compute device: one rule for the optimizer, the trainer's tools and stylize.
Also the one CPU memory setting that training needs (`keep_freed_memory`)."""

from __future__ import annotations

import ctypes
import functools
import platform

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


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of handing it back to the OS (once per
    process; later calls are free).

    By default glibc serves every large block (most activations) with its own mmap and unmaps
    it on free, so each CPU training step faults all its activations' pages back in and the
    kernel zeroes them: up to a third of a float32 step at 256 px on the development machine
    (README, "Precision"). From the heap, untrimmed, later steps reuse the
    same pages. The price: the process holds its peak memory between steps (a full-width
    256 px step: 2.7 GB held, against a 2.55 GB peak and ~1.9 GB between steps before).
    Returns False, changing nothing, where the C library is not glibc.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL("libc.so.6")
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, -1))
