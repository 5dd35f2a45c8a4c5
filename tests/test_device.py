"""fast_nst.device: the compute device, precision (`auto` per CPU and GPU, explicit values
winning, the warning for emulated bf16), stylize's fast path per workload, the hardware
line, and the CPU memory setting for training (freed memory reused, not faulted in again).
The hardware probes are replaced."""

from __future__ import annotations

import logging
from collections import Counter

import pytest
import torch

from fast_nst import FastNSTError
from fast_nst import device as hw
from fast_nst import precision as prec
from fast_nst.device import keep_freed_memory, pick_device
from fast_nst.inference import fast_path
from tests.heap_probe import GLIBC, heap_probes

# The compile threshold scales with the threads: fix them (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("two_threads")


CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda", 0), torch.device("mps")


def fake_gpu(monkeypatch, bf16: bool) -> None:
    monkeypatch.setattr(hw, "cuda_bf16", lambda device: bf16)
    monkeypatch.setattr(hw, "gpu_name", lambda device: "Tesla T4" if not bf16 else "A100")


@pytest.mark.parametrize("cuda, mps, expected", [(True, True, "cuda"), (False, True, "mps"),
                                                  (False, False, "cpu")])
def test_auto_device_prefers_cuda_then_mps(monkeypatch, cuda, mps, expected) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert pick_device("auto").type == expected
    assert pick_device("cpu").type == "cpu"


def test_absent_devices_are_one_line_errors(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(FastNSTError, match="no CUDA GPU is visible; use auto or cpu"):
        pick_device("cuda:1")
    with pytest.raises(FastNSTError, match="MPS is not available"):
        pick_device("mps")
    with pytest.raises(FastNSTError, match="unknown device 'gpu0'"):
        pick_device("gpu0")


def test_a_gpu_index_beyond_the_machine_is_a_one_line_error(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert pick_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(FastNSTError, match="device cuda:3 asked for but this machine has 1 "
                                           "CUDA GPU"):
        pick_device("cuda:3")


def test_auto_on_a_cpu_without_native_bf16_is_float32(zen3) -> None:
    p = prec.resolve_precision("auto", CPU)
    assert (p.name, p.short, p.warning) == ("32-true", "fp32", None)
    assert p.reason == "CPU without native bf16: AVX2"


def test_auto_on_a_cpu_with_native_bf16_is_bf16_mixed(zen4) -> None:
    p = prec.resolve_precision("auto", CPU)
    assert (p.name, p.short) == ("bf16-mixed", "bf16")
    assert p.reason == "CPU with native bf16: AVX512"


@pytest.mark.parametrize("bf16, name, short", [(True, "bf16-mixed", "bf16"),
                                               (False, "16-mixed", "fp16")])
def test_auto_on_cuda_gpus_with_and_without_bf16(monkeypatch, zen3, bf16, name, short) -> None:
    fake_gpu(monkeypatch, bf16)
    p = prec.resolve_precision("auto", CUDA)
    assert (p.name, p.short) == (name, short)
    assert p.reason == ("CUDA GPU with bf16: A100" if bf16 else "CUDA GPU without bf16: Tesla T4")


def test_auto_on_mps_is_float32(zen4) -> None:
    assert prec.resolve_precision("auto", MPS).name == "32-true"


def test_explicit_precision_always_wins(monkeypatch, zen4) -> None:
    fake_gpu(monkeypatch, bf16=False)
    assert prec.resolve_precision(32, CPU).name == "32"
    assert prec.resolve_precision("32-true", CPU).name == "32-true"
    assert prec.resolve_precision("bf16-mixed", CUDA).name == "bf16-mixed"
    assert prec.resolve_precision("fp32", CUDA).name == "32-true"  # stylize's names map over
    assert prec.resolve_precision("16-mixed", CPU).reason == "explicit"


def test_explicit_bf16_on_a_cpu_without_it_warns_and_is_kept(zen3) -> None:
    p = prec.resolve_precision("bf16-mixed", CPU)
    assert p.name == "bf16-mixed"
    assert p.warning == ("precision bf16-mixed on a CPU without native bf16 (AVX2) runs many "
                         "times slower than float32; leave precision on auto")


def test_explicit_bf16_on_a_cpu_with_it_does_not_warn(zen4) -> None:
    assert prec.resolve_precision("bf16-mixed", CPU).warning is None


def test_trainer_precision_logs_auto_once_with_its_reason(zen3, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="fast_nst"):
        name = prec.trainer_precision({"accelerator": "cpu", "precision": "auto"})
    assert name == "32-true"
    assert [r.getMessage() for r in caplog.records] == [
        "precision auto -> 32-true (CPU without native bf16: AVX2)"]


def test_trainer_precision_warns_for_explicit_bf16_and_keeps_it(zen3, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="fast_nst"):
        name = prec.trainer_precision({"accelerator": "cpu", "precision": "bf16-mixed"})
    assert name == "bf16-mixed"
    assert [(r.levelname, "many times slower" in r.getMessage()) for r in caplog.records] == [
        ("WARNING", True)]


def test_trainer_on_a_gpu_that_is_absent_is_a_one_line_error(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(FastNSTError, match="no CUDA GPU is visible; use trainer=cpu"):
        prec.trainer_precision({"accelerator": "gpu", "precision": "auto"})


def test_trainer_on_a_gpu_resolves_from_that_gpu(monkeypatch, zen4) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    fake_gpu(monkeypatch, bf16=False)
    assert prec.trainer_precision({"accelerator": "gpu", "devices": [1]}) == "16-mixed"
    with pytest.raises(FastNSTError, match="device cuda:2 asked for but this machine has 2"):
        prec.trainer_precision({"accelerator": "gpu", "devices": [2]})


BIG_FOLDER = Counter({(4, 512, 512): 40})  # 160 images of 512 px: 42 MP, pays in fp32 only
HUGE_FOLDER = Counter({(4, 512, 512): 160})  # 640 images: 168 MP, pays in bf16 too
SMALL_FOLDER = Counter({(4, 512, 512): 4})  # 16 images: a compile would not pay
ONE_IMAGE = Counter({(1, 512, 512): 1})


@pytest.mark.parametrize("case, work, expected", [
    ("native bf16, one image", ONE_IMAGE, ("bf16", False, False)),
    ("native bf16, a small folder", SMALL_FOLDER, ("bf16", False, False)),
    ("native bf16, a big folder", BIG_FOLDER, ("bf16", False, False)),
    ("native bf16, a huge folder", HUGE_FOLDER, ("bf16", False, True)),
    ("no native bf16, one image", ONE_IMAGE, ("fp32", False, False)),
    ("no native bf16, a small folder", SMALL_FOLDER, ("fp32", False, False)),
    ("no native bf16, a big folder", BIG_FOLDER, ("fp32", False, True)),
])
def test_stylize_auto_path_per_cpu_and_workload(monkeypatch, case, work, expected) -> None:
    monkeypatch.setattr(hw, "cpu_native_bf16", lambda: case.startswith("native"))
    monkeypatch.setattr(hw, "cpu_capability", lambda: "AVX2")
    path = fast_path.choose_fast_path(CPU, work=work)
    assert (path.precision, path.channels_last, path.compile) == expected
    assert path.shapes == (frozenset(work) if path.compile else frozenset())


@pytest.mark.parametrize("bf16, precision", [(True, "bf16"), (False, "fp16")])
def test_stylize_auto_path_on_cuda(monkeypatch, bf16, precision) -> None:
    fake_gpu(monkeypatch, bf16)
    path = fast_path.choose_fast_path(CUDA, work=BIG_FOLDER)
    assert (path.precision, path.channels_last, path.compile) == (precision, True, True)


def test_stylize_auto_path_on_mps_is_float32_eager() -> None:
    path = fast_path.choose_fast_path(MPS, work=BIG_FOLDER)
    assert (path.precision, path.channels_last, path.compile) == ("fp32", False, False)


def test_only_shapes_with_enough_work_are_compiled(monkeypatch, zen4) -> None:
    # bf16 on 2 threads: 128 MP per shape (17 MP, 64 images of 512 px, measured no gain)
    work = Counter({(4, 512, 512): 160, (1, 512, 512): 1, (1, 768, 768): 250, (2, 64, 64): 50,
                    (1, 1024, 1024): 128, (4, 512, 384): 16})
    assert fast_path.choose_fast_path(CPU, work=work).shapes == {(4, 512, 512), (1, 768, 768),
                                                          (1, 1024, 1024)}
    # fp32: a quarter of that
    assert fast_path.choose_fast_path(CPU, precision="fp32", work=Counter(
        {(1, 1024, 1024): 32, (4, 512, 512): 16})).shapes == {(1, 1024, 1024)}
    monkeypatch.setattr(torch, "get_num_threads", lambda: 16)  # each pixel 8x cheaper
    assert fast_path.choose_fast_path(CPU, work=Counter({(1, 768, 768): 2000, (4, 512, 512): 160})
                               ).shapes == {(1, 768, 768)}


def test_a_stored_compile_and_earlier_runs_count_toward_a_compile(zen4) -> None:
    past = {(4, 512, 512): fast_path.ShapeHistory(stored=True),  # loads in 0.1 s: 4 calls repay it
            (1, 512, 384): fast_path.ShapeHistory(pixels=121_000_000),  # + 7.9 MP now: 128.9 >= 128
            (1, 512, 512): fast_path.ShapeHistory(stored=True)}  # one call: never waits for a load
    asked = []

    def history(shape, precision, channels_last):
        asked.append((precision, channels_last))
        return past.get(shape, fast_path.ShapeHistory())

    work = Counter({(4, 512, 512): 4, (1, 512, 384): 40, (1, 256, 256): 40, (1, 512, 512): 1})
    path = fast_path.choose_fast_path(CPU, work=work, history=history)
    assert path.shapes == {(4, 512, 512), (1, 512, 384)}
    assert "compiled for 2 shape(s) (1 already on disk)" in path.reason
    assert set(asked) == {("bf16", False)}
    assert not fast_path.choose_fast_path(CPU, work=work).compile  # the same work, no history


def test_explicit_stylize_flags_win(zen4) -> None:
    path = fast_path.choose_fast_path(CPU, precision="fp32", compile=False, work=BIG_FOLDER)
    assert (path.precision, path.channels_last, path.compile) == ("fp32", False, False)
    path = fast_path.choose_fast_path(CPU, compile=True, channels_last=True, work=ONE_IMAGE)
    assert (path.precision, path.channels_last, path.compile, path.shapes) == (
        "bf16", True, True, None)  # an explicit --compile compiles every shape


def test_hardware_line_names_cpu_capability_bf16_threads_and_gpu(zen3, monkeypatch) -> None:
    monkeypatch.setattr(hw, "cpu_name", lambda: "AMD Ryzen 9 5950X")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    line = hw.describe_hardware()
    assert line.startswith("hardware: CPU AMD Ryzen 9 5950X; torch CPU capability AVX2; "
                           f"native bf16 no; {torch.get_num_threads()} threads; GPU none")


M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)


class FakeCLibrary:
    """Stands in for `ctypes` and the libc it loads: records what is loaded and each mallopt
    call, which returns `result` (glibc: 1 on success, 0 when it refuses)."""

    def __init__(self, result: int = 1) -> None:
        self.result, self.loaded, self.calls = result, [], []

    def CDLL(self, name: str) -> FakeCLibrary:  # noqa: N802 (ctypes' name)
        self.loaded.append(name)
        return self

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return self.result


class FakePlatform:
    def __init__(self, system: str, libc: tuple[str, str]) -> None:
        self.system, self.libc_ver = (lambda: system), (lambda: libc)


def fake_c_library(monkeypatch, system: str, libc: tuple[str, str],
                   result: int = 1) -> FakeCLibrary:
    fake = FakeCLibrary(result)
    monkeypatch.setattr("fast_nst.device.ctypes", fake)
    monkeypatch.setattr("fast_nst.device.platform", FakePlatform(system, libc))
    return fake


def test_glibc_is_told_to_use_no_mmap_and_never_trim(monkeypatch) -> None:
    libc = fake_c_library(monkeypatch, "Linux", ("glibc", "2.36"))
    assert keep_freed_memory.__wrapped__() is True  # past the once-per-process cache
    assert libc.loaded == ["libc.so.6"]
    assert sorted(libc.calls) == sorted([(M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, -1)])


def test_a_refused_setting_is_reported(monkeypatch) -> None:
    libc = fake_c_library(monkeypatch, "Linux", ("glibc", "2.36"), result=0)
    assert keep_freed_memory.__wrapped__() is False
    assert libc.calls  # it tried


@pytest.mark.parametrize("system, libc", [("Linux", ("musl", "")), ("Linux", ("", "")),
                                          ("Darwin", ("", "")), ("Windows", ("", ""))])
def test_other_c_libraries_are_left_alone(monkeypatch, system, libc) -> None:
    fake = fake_c_library(monkeypatch, system, libc)
    assert keep_freed_memory.__wrapped__() is False
    assert fake.loaded == [] and fake.calls == []


# keep_freed_memory() between two heap probes (tests/heap_probe.py).
KEEP_FREED = """
from fast_nst.device import keep_freed_memory
probe()
assert keep_freed_memory()
probe()
"""


@pytest.mark.skipif(not GLIBC, reason="keep_freed_memory tunes glibc's malloc only")
def test_freed_memory_stays_in_the_heap_on_glibc() -> None:
    (default_mapped, _), (kept_mapped, kept_held) = heap_probes(KEEP_FREED)
    assert default_mapped >= 64  # glibc's default: the block's own mmap
    assert kept_mapped == 0  # no mmap: from the heap
    assert kept_held >= 64  # no trim: still held after free, for the next step
