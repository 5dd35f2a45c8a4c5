"""CPU memory setting for training: freed tensor memory is reused, not faulted in again."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from fast_nst.device import keep_freed_memory

# Three training-like steps (conv, ReLU, loss, backward) on a 41 MB activation, above glibc's
# largest mmap threshold; prints the page faults they caused after two warm-up steps.
PROBE = """
import resource, sys, torch
from fast_nst.device import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
conv = torch.nn.Conv2d(8, 8, 3, padding=1)
x = torch.rand(2, 8, 800, 800)
def step():
    torch.relu(conv(x)).square().mean().backward()
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
step(); step()
before = faults()
for _ in range(3):
    step()
print(faults() - before)
"""

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def page_faults(mode: str) -> int:
    proc = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                          timeout=120, check=True)
    return int(proc.stdout.split()[-1])


@pytest.mark.skipif(not GLIBC, reason="keep_freed_memory tunes glibc's malloc only")
def test_freed_memory_is_reused_without_page_faults() -> None:
    default, kept = page_faults("default"), page_faults("keep")
    # By default each step faults at least its 41 MB activation in again (10,000 pages of
    # 4 KiB, three steps); kept, the pages stay mapped and are reused.
    assert default > 3 * 41_000_000 // 4096, default
    assert kept < default / 10, (kept, default)


@pytest.mark.skipif(GLIBC, reason="on glibc it applies; checked above")
def test_other_c_libraries_are_left_alone() -> None:
    assert keep_freed_memory() is False
