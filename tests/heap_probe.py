"""Where glibc serves a 64 MiB block: "mapped" MiB of its own mmap (glibc's default above
32 MiB) or from the heap (0), and "held" MiB the heap keeps free after it is freed (0: given
back to the OS). mallinfo2 counts both exactly; the tests of the memory settings (fast_nst.device,
the cpu_memory callback, the optimizer) run their code between two probes in a fresh process."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

PRELUDE = """
import ctypes
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
    print(mapped >> 20, libc.mallinfo2().fordblks >> 20)
"""


def heap_probes(script: str, *args: str) -> list[tuple[int, int]]:
    """Run `script` (which calls `probe()`) after PRELUDE with glibc's defaults (no MALLOC_*
    or GLIBC_TUNABLES from the environment); the (mapped, held) MiB of each probe."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUN"))}
    proc = subprocess.run([sys.executable, "-c", PRELUDE + script, *args], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [tuple(map(int, line.split())) for line in proc.stdout.splitlines()
            if line.replace(" ", "").isdigit()]
