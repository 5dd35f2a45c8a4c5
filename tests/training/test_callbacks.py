"""fast_nst.training.callbacks: the default config's cpu_memory callback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.heap_probe import GLIBC, heap_probes

ROOT = Path(__file__).resolve().parents[2]


# The default config's cpu_memory callback, set up for a GPU trainer and then for a CPU one,
# each followed by a heap probe (tests/heap_probe.py).
CPU_MEMORY_PROBE = """
import sys
from types import SimpleNamespace
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from fast_nst.cli import register_schemas
from pytorch_lightning import accelerators
register_schemas()
with initialize_config_dir(sys.argv[1], version_base="1.3"):
    cfg = compose("train", overrides=["data=local", "vgg=random"])
callback = instantiate(cfg.callbacks.cpu_memory)
for accelerator in (accelerators.CUDAAccelerator(), accelerators.CPUAccelerator()):
    callback.setup(SimpleNamespace(accelerator=accelerator), None, "fit")
    probe()
"""


@pytest.mark.skipif(not GLIBC, reason="the cpu_memory callback tunes glibc's malloc only")
def test_default_cpu_memory_callback_keeps_freed_memory_on_cpu_only() -> None:
    (gpu_mapped, _), (cpu_mapped, cpu_held) = heap_probes(CPU_MEMORY_PROBE, str(ROOT / "conf"))
    assert gpu_mapped >= 64  # left alone: glibc's default, a block's own mmap
    assert cpu_mapped == 0 and cpu_held >= 64  # CPU: from the heap, kept when freed
