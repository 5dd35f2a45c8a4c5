"""Stylize's fast path: the precision, memory layout and compile that suit the device and the
work at hand (`choose_fast_path`), and when a compile pays (`worth_compiling`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from fast_nst.precision import resolve_precision

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
