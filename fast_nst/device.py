"""What the machine at hand can do, and the choices that follow from it: the compute device
(`pick_device`), the precision (`resolve_precision`: `auto` is bf16 where the hardware runs it
natively, fp16 on older CUDA GPUs, float32 elsewhere), the stylization fast path
(`choose_fast_path`) and the CPU memory setting that training needs (`keep_freed_memory`).
Training, stylize, the optimizer, compare, flicker and the benchmarks all ask this module, so
one machine gets one answer everywhere.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import math
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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


# ---------------------------------------------------------------------------------------------
# Precision: auto from the device, explicit values win


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
        return "bf16" if "bf16" in self.name else "fp16" if self.name.startswith("16") else "fp32"


def auto_precision(device: torch.device) -> Precision:
    """bf16-mixed on a CUDA GPU with bf16 or a CPU with native bf16, 16-mixed on an older CUDA
    GPU, 32-true otherwise (MPS included)."""
    if device.type == "cuda":
        if cuda_bf16(device):
            return Precision("bf16-mixed", f"CUDA GPU with bf16: {gpu_name(device)}")
        return Precision("16-mixed", f"CUDA GPU without bf16: {gpu_name(device)}")
    if device.type == "cpu":
        if cpu_native_bf16():
            return Precision("bf16-mixed", f"CPU with native bf16: {cpu_capability()}")
        return Precision("32-true", f"CPU without native bf16: {cpu_capability()}")
    return Precision("32-true", f"{device.type}: float32")


_STYLIZE_NAMES = {"fp32": "32-true", "bf16": "bf16-mixed", "fp16": "16-mixed"}


def resolve_precision(requested: Any, device: torch.device) -> Precision:
    """`auto` -> `auto_precision(device)`; anything else is kept (stylize's fp32/bf16/fp16 are
    mapped to Lightning's names), with a warning for bf16 on a CPU without native bf16."""
    value = str(requested)
    if value == "auto":
        return auto_precision(device)
    name = _STYLIZE_NAMES.get(value, value)
    warning = None
    if "bf16" in name and device.type == "cpu" and not cpu_native_bf16():
        warning = (f"precision {value} on a CPU without native bf16 ({cpu_capability()}) runs "
                   "many times slower than float32; leave precision on auto")
    return Precision(name, "explicit", warning)


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


def trainer_precision(trainer: Any) -> str:
    """The Trainer's precision with `auto` resolved (Lightning does not take `auto`); logged
    once with its reason, or with a warning when an explicit choice will be slow."""
    device = trainer_device(trainer.get("accelerator", "auto"), trainer.get("devices"))
    precision = resolve_precision(trainer.get("precision", "auto"), device)
    if precision.warning:
        log.warning(precision.warning)
    elif precision.reason != "explicit":
        log.info("precision auto -> %s (%s)", precision.name, precision.reason)
    return precision.name


# ---------------------------------------------------------------------------------------------
# The stylization fast path

# Compiling one input shape pays once the pixels that go through it exceed this, per thread.
# Measured end to end on 2 threads of an AMD EPYC Zen 5 (docs/speed.md, 64 images of 512 px,
# 17 MP): a compile costs 15-20 s with an empty inductor cache, a few with a warm one. Compiled
# float32 saves about 0.6 s per megapixel over eager float32 (pays from ~32 MP on 2 threads);
# compiled bf16 saves only ~0.15 s per megapixel over the eager bf16 copy (first convolution in
# float32, no autocast), so it needs ~4x the work. More threads make each pixel cheaper and the
# compile no cheaper, so the bar rises with them. On GPUs it is not measured: the bar the CPU
# rule started from.
COMPILE_PIXELS_PER_THREAD = {"fp32": 16_000_000, "bf16": 64_000_000, "fp16": 16_000_000}
COMPILE_PIXELS_PER_THREAD_GPU = 8_000_000
# A shape already compiled on disk (fast_nst.inference.aot) costs ~0.1 s to load, which about
# 2 megapixels on 2 threads repay (8 images of 512 px; compiled saves 25-45 % per call).
CACHED_PIXELS_PER_THREAD = 1_000_000


@dataclass(frozen=True)
class ShapeHistory:
    """What earlier runs left on this CPU for one network, precision and input shape."""

    stored: bool = False  # compiled and stored on disk (fast_nst.inference.aot)
    pixels: int = 0  # pixels it ran eager before, which count toward a compile


def worth_compiling(shape: tuple[int, ...], calls: int, precision: str = "fp32",
                    device_type: str = "cpu", history: ShapeHistory = ShapeHistory()) -> bool:
    """A compiled shape costs one slow first call (a quick load when stored on disk); it pays
    with several calls and enough work (`shape` = (batch, height, width) of one call), this
    run's plus the pixels earlier runs ran eager (a compile is stored, so it serves them all)."""
    if history.stored:
        per_thread = CACHED_PIXELS_PER_THREAD
    else:
        per_thread = COMPILE_PIXELS_PER_THREAD[precision] if device_type == "cpu" else \
            COMPILE_PIXELS_PER_THREAD_GPU
    need = per_thread * max(1, torch.get_num_threads())
    earlier = 0 if history.stored else history.pixels
    return calls >= 2 and calls * math.prod(shape) + earlier >= need


@dataclass(frozen=True)
class FastPath:
    """How stylize runs the network: autocast precision, memory layout, torch.compile (for
    `shapes` only, or every shape when None), why, and a warning for a slow explicit choice."""

    precision: str  # fp32 | bf16 | fp16
    channels_last: bool
    compile: bool
    reason: str
    shapes: frozenset[tuple[int, int, int]] | None = None
    warning: str | None = None

    def describe(self) -> str:
        how = "compiled" if self.compile else "eager"
        layout = " + channels-last" if self.channels_last else ""
        return f"{how} {self.precision}{layout} ({self.reason})"


def choose_fast_path(device: torch.device, *, precision: str = "auto",
                     channels_last: bool | None = None, compile: bool | None = None,
                     work: Mapping[tuple[int, int, int], int] | None = None,
                     history: Callable[[tuple[int, int, int], str, bool], ShapeHistory]
                     | None = None) -> FastPath:
    """The fastest correct path on `device` for `work`, {(batch, height, width): calls}.

    bf16 where the hardware runs it natively (fp16 on older CUDA GPUs), float32 elsewhere;
    channels-last on CUDA GPUs (tensor cores; on a CPU the bf16 network is faster without);
    a compile (CPU and CUDA) for the shapes whose work repays it, so one image never waits for
    one; on a CPU, `history(shape, precision, channels_last)` says which shapes are compiled
    already (cheap to load) and how much earlier runs did without. Explicit values win.
    """
    resolved = resolve_precision(precision, device)
    reason = resolved.reason if resolved.reason != "explicit" else f"--precision {precision}"
    if channels_last is None:
        channels_last = resolved.short != "fp32" and device.type == "cuda"
    shapes = None
    if compile is None:
        past = {s: history(s, resolved.short, channels_last) if history and device.type == "cpu"
                else ShapeHistory() for s in (work or {})}
        shapes = frozenset(s for s, n in (work or {}).items()
                           if worth_compiling(s, n, resolved.short, device.type, past[s]))
        compile = bool(shapes) and device.type in ("cpu", "cuda")
        calls = sum((work or {}).values())
        stored = f" ({sum(past[s].stored for s in shapes)} already on disk)" if history else ""
        reason += f"; {f'compiled for {len(shapes)} shape(s){stored}, ' if compile else ''}" \
                  f"{calls} forward call(s)"
    return FastPath(resolved.short, channels_last, compile, reason, shapes, resolved.warning)


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
