"""fast_nst.training.callbacks: the default config's cpu_memory callback."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


# The default config's cpu_memory callback, set up for a GPU trainer and then for a CPU one;
# after each, where glibc serves a 64 MiB block: "mapped" MiB of its own mmap (glibc's default
# above 32 MiB) or from the heap (0), and "held" MiB the heap keeps free after it is freed (0:
# given back to the OS). mallinfo2 counts both exactly.
CPU_MEMORY_PROBE = """
import ctypes, sys
from types import SimpleNamespace
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from fast_nst.cli import register_schemas
from pytorch_lightning import accelerators
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena ordblks smblks hblks hblkhd usmblks "
                                               "fsmblks uordblks fordblks keepcost").split()]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype, libc.malloc.restype = Info, ctypes.c_void_p
libc.malloc.argtypes, libc.free.argtypes = [ctypes.c_size_t], [ctypes.c_void_p]
def probe():
    before = libc.mallinfo2().hblkhd
    block = libc.malloc(64 << 20)
    mapped = libc.mallinfo2().hblkhd - before
    libc.free(block)
    return mapped >> 20, libc.mallinfo2().fordblks >> 20
register_schemas()
with initialize_config_dir(sys.argv[1], version_base="1.3"):
    cfg = compose("train", overrides=["data=local", "vgg=random"])
callback = instantiate(cfg.callbacks.cpu_memory)
for accelerator in (accelerators.CUDAAccelerator(), accelerators.CPUAccelerator()):
    callback.setup(SimpleNamespace(accelerator=accelerator), None, "fit")
    print(*probe())
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="the cpu_memory callback tunes glibc's malloc only")
def test_default_cpu_memory_callback_keeps_freed_memory_on_cpu_only() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUN"))}
    proc = subprocess.run([sys.executable, "-c", CPU_MEMORY_PROBE, str(ROOT / "conf")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (gpu_mapped, _), (cpu_mapped, cpu_held) = (
        tuple(map(int, line.split())) for line in proc.stdout.splitlines()[-2:])
    assert gpu_mapped >= 64, proc.stdout  # left alone: glibc's default, a block's own mmap
    assert cpu_mapped == 0 and cpu_held >= 64, proc.stdout  # CPU: heap, kept when freed
