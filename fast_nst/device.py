"""What the machine at hand is: the compute device (`pick_device`, `trainer_device`), what its
CPU or GPU can do (the probes, which tests replace), a line describing it for benchmark tables,
and the CPU memory setting that training needs (`keep_freed_memory`). The precision that
follows from it is `fast_nst.precision`; stylize's fast path `fast_nst.inference.fast_path`.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import platform
from pathlib import Path
from typing import Any

import torch

from fast_nst.errors import FastNSTError

log = logging.getLogger(__name__)


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
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise FastNSTError(f"device {name} asked for but this machine has "
                           f"{torch.cuda.device_count()} CUDA GPU(s), numbered from 0")
    if device.type == "mps" and not has_mps:
        raise FastNSTError("device mps asked for but MPS is not available; use auto or cpu")
    return device


# ---------------------------------------------------------------------------------------------
# Probes (tests replace these)


def cpu_capability() -> str:
    """The vector ISA torch's own kernels use: AVX512, AVX2, DEFAULT, SVE256, ..."""
    return str(torch.backends.cpu.get_cpu_capability())


def cpu_native_bf16() -> bool:
    """oneDNN runs bf16 convolutions in hardware: AVX512-BF16 or AMX on x86, BF16 on Arm.

    Without it bf16 is emulated and many times slower than float32 (24x for a training step on
    an AVX2 CPU). oneDNN's own probe follows ONEDNN_MAX_CPU_ISA (so an AVX2 machine can be
    emulated); on x86 it also says yes for plain AVX-512, so the bf16 instructions must be
    there too.
    """
    if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        return False
    if platform.machine().lower() in ("x86_64", "amd64", "i686", "x86"):
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return True


def cuda_bf16(device: torch.device) -> bool:
    """bf16 tensor cores: compute capability 8.0 (Ampere) or newer, or ROCm. torch's
    `is_bf16_supported()` also says yes for emulated bf16 on older GPUs."""
    if torch.version.hip:
        return True
    return torch.cuda.get_device_capability(device)[0] >= 8


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def gpu_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device)


def describe_hardware() -> str:
    """One line for the top of a benchmark table: where the figures come from."""
    bf16 = "yes" if cpu_native_bf16() else "no"
    gpus = ", ".join(gpu_name(torch.device("cuda", i)) for i in range(torch.cuda.device_count())
                     ) if torch.cuda.is_available() else "none"
    return (f"hardware: CPU {cpu_name()}; torch CPU capability {cpu_capability()}; native bf16 "
            f"{bf16}; {torch.get_num_threads()} threads; GPU {gpus}; torch {torch.__version__}")


def trainer_device(accelerator: Any, devices: Any = None) -> torch.device:
    """The device a Lightning Trainer with these options will train on (the first one)."""
    accelerator = str(accelerator)
    if accelerator in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise FastNSTError(f"trainer.accelerator={accelerator} but no CUDA GPU is visible; "
                               "use trainer=cpu")
        index = devices[0] if isinstance(devices, (list, tuple)) and devices else 0
        return pick_device(f"cuda:{int(index)}")
    if accelerator in ("cpu", "mps"):
        return torch.device(accelerator)
    if accelerator == "auto":
        return pick_device("auto")
    return torch.device("meta")  # tpu, hpu, ...: no rule here, float32


# ---------------------------------------------------------------------------------------------
# CPU memory

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of handing it back to the OS (once per
    process; later calls are free).

    By default glibc serves every large block (most activations) with its own mmap and unmaps
    it on free, so each CPU training step faults all its activations' pages back in and the
    kernel zeroes them: up to a third of a float32 step at 256 px on a 2-core AMD EPYC
    (docs/training.md, "Memory on a CPU"). From the heap, untrimmed, later steps reuse the
    same pages. The price: the process holds its peak memory between steps (a full-width
    256 px step: 2.7 GB held, against a 2.55 GB peak and ~1.9 GB between steps before).
    Returns False, changing nothing, where the C library is not glibc.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL("libc.so.6")
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, -1))
