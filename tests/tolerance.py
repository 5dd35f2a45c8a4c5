"""Tolerances that hold on every x86 CPU torch supports.

oneDNN and ATen choose their kernels by the CPU's vector ISA (AVX2, AVX-512, AMX), and each
kernel sums in its own order, so the same float32 network gives results that differ in their
last bits between CPUs (2e-4 on the output of a widened batch-norm network on a Zen 3, under
1e-4 on a Zen 5). A test therefore compares in one of two ways, by what it claims:

- two computations of the same function (a widened network, the blocked last convolution, a
  warm start): both in float64, where rounding is ~1e-16 relative, so `FLOAT64_ATOL` is a
  million times the rounding yet far below any real difference (a wrong weight moves outputs
  by 1e-3 or more);
- a float32 path against another float32 path that the test cannot run in float64 (a
  compiled network, an ONNX file): within `PIXEL_ATOL`, a quarter of one 8-bit level of the
  0..1 output, so no saved pixel moves by more than one level whatever the CPU; a real
  mistake (a wrong layer, a lost crop) moves outputs by tenths.
"""

from __future__ import annotations

import copy

from torch import nn

FLOAT64_ATOL = 1e-9
PIXEL_ATOL = 0.25 / 255


def float64(module: nn.Module) -> nn.Module:
    """A float64 copy of `module` (the original is left as it is)."""
    return copy.deepcopy(module).double()
