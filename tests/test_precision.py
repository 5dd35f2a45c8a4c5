"""Precision and the fast path chosen from the hardware (fast_nst.device), with the probes
replaced: each branch of `auto`, explicit values winning, the warning for emulated bf16,
stylize's choice of precision / layout / compile per workload, and the benchmarks' argument
errors."""

from __future__ import annotations

import importlib.util
import io
import logging
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from fast_nst import FastNSTError
from fast_nst import device as hw
from fast_nst.gatys import GatysConfig, autocast_dtype
from fast_nst.stylize import StylizeOptions, Stylizer, plan_jobs, plan_work, stylize_paths
from fast_nst.transformer import NetConfig, TransformerNet, export_model

ROOT = Path(__file__).resolve().parents[1]
CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda", 0), torch.device("mps")


@pytest.fixture
def zen3(monkeypatch) -> None:
    """A CPU without native bf16 (AVX2 only, as an AMD Zen 3)."""
    monkeypatch.setattr(hw, "cpu_native_bf16", lambda: False)
    monkeypatch.setattr(hw, "cpu_capability", lambda: "AVX2")


@pytest.fixture
def zen4(monkeypatch) -> None:
    """A CPU with native bf16 (AVX512-BF16)."""
    monkeypatch.setattr(hw, "cpu_native_bf16", lambda: True)
    monkeypatch.setattr(hw, "cpu_capability", lambda: "AVX512")


def fake_gpu(monkeypatch, bf16: bool) -> None:
    monkeypatch.setattr(hw, "cuda_bf16", lambda device: bf16)
    monkeypatch.setattr(hw, "gpu_name", lambda device: "Tesla T4" if not bf16 else "A100")


# ---------------------------------------------------------------------------- precision: auto


def test_auto_on_a_cpu_without_native_bf16_is_float32(zen3) -> None:
    p = hw.resolve_precision("auto", CPU)
    assert (p.name, p.short, p.warning) == ("32-true", "fp32", None)
    assert p.reason == "CPU without native bf16: AVX2"


def test_auto_on_a_cpu_with_native_bf16_is_bf16_mixed(zen4) -> None:
    p = hw.resolve_precision("auto", CPU)
    assert (p.name, p.short) == ("bf16-mixed", "bf16")
    assert p.reason == "CPU with native bf16: AVX512"


@pytest.mark.parametrize("bf16, name, short", [(True, "bf16-mixed", "bf16"),
                                               (False, "16-mixed", "fp16")])
def test_auto_on_cuda_gpus_with_and_without_bf16(monkeypatch, zen3, bf16, name, short) -> None:
    fake_gpu(monkeypatch, bf16)
    p = hw.resolve_precision("auto", CUDA)
    assert (p.name, p.short) == (name, short)
    assert p.reason == ("CUDA GPU with bf16: A100" if bf16 else "CUDA GPU without bf16: Tesla T4")


def test_auto_on_mps_is_float32(zen4) -> None:
    assert hw.resolve_precision("auto", MPS).name == "32-true"


def test_explicit_precision_always_wins(monkeypatch, zen4) -> None:
    fake_gpu(monkeypatch, bf16=False)
    assert hw.resolve_precision(32, CPU).name == "32"
    assert hw.resolve_precision("32-true", CPU).name == "32-true"
    assert hw.resolve_precision("bf16-mixed", CUDA).name == "bf16-mixed"
    assert hw.resolve_precision("fp32", CUDA).name == "32-true"  # stylize's names map over
    assert hw.resolve_precision("16-mixed", CPU).reason == "explicit"


def test_explicit_bf16_on_a_cpu_without_it_warns_and_is_kept(zen3) -> None:
    p = hw.resolve_precision("bf16-mixed", CPU)
    assert p.name == "bf16-mixed"
    assert p.warning == ("precision bf16-mixed on a CPU without native bf16 (AVX2) runs many "
                         "times slower than float32; leave precision on auto")


def test_explicit_bf16_on_a_cpu_with_it_does_not_warn(zen4) -> None:
    assert hw.resolve_precision("bf16-mixed", CPU).warning is None


# ---------------------------------------------------------------------------- training


def test_trainer_precision_logs_auto_once_with_its_reason(zen3, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="fast_nst"):
        name = hw.trainer_precision({"accelerator": "cpu", "precision": "auto"})
    assert name == "32-true"
    assert [r.getMessage() for r in caplog.records] == [
        "precision auto -> 32-true (CPU without native bf16: AVX2)"]


def test_trainer_precision_warns_for_explicit_bf16_and_keeps_it(zen3, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="fast_nst"):
        name = hw.trainer_precision({"accelerator": "cpu", "precision": "bf16-mixed"})
    assert name == "bf16-mixed"
    assert [(r.levelname, "many times slower" in r.getMessage()) for r in caplog.records] == [
        ("WARNING", True)]


def test_trainer_on_a_gpu_that_is_absent_is_a_one_line_error(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(FastNSTError, match="no CUDA GPU is visible; use trainer=cpu"):
        hw.trainer_precision({"accelerator": "gpu", "precision": "auto"})


def test_trainer_on_a_gpu_resolves_from_that_gpu(monkeypatch, zen4) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    fake_gpu(monkeypatch, bf16=False)
    assert hw.trainer_precision({"accelerator": "gpu", "devices": [1]}) == "16-mixed"


@pytest.mark.parametrize("overrides", [
    [], ["trainer=cpu"], ["trainer=gpu"], ["trainer=ddp"], ["experiment=local"],
    ["experiment=quick"], ["experiment=johnson2016"], ["experiment=bundle/starry_night"],
    ["experiment=bundle/the_scream"], ["experiment=bundle/great_wave"],
    ["experiment=bundle/udnie"]])
def test_every_trainer_config_and_recipe_defaults_to_auto(overrides) -> None:
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    assert cfg.trainer.precision == "auto"


# ---------------------------------------------------------------------------- stylize

BIG_FOLDER = Counter({(4, 512, 512): 40})  # 160 images of 512 px: 42 MP, pays in fp32 only
HUGE_FOLDER = Counter({(4, 512, 512): 160})  # 640 images: 168 MP, pays in bf16 too
SMALL_FOLDER = Counter({(4, 512, 512): 4})  # 16 images: a compile would not pay
ONE_IMAGE = Counter({(1, 512, 512): 1})


@pytest.fixture(autouse=True)
def two_threads(monkeypatch) -> None:
    """The compile threshold scales with the threads; fix them."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)


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
    path = hw.choose_fast_path(CPU, work=work)
    assert (path.precision, path.channels_last, path.compile) == expected
    assert path.shapes == (frozenset(work) if path.compile else frozenset())


@pytest.mark.parametrize("bf16, precision", [(True, "bf16"), (False, "fp16")])
def test_stylize_auto_path_on_cuda(monkeypatch, bf16, precision) -> None:
    fake_gpu(monkeypatch, bf16)
    path = hw.choose_fast_path(CUDA, work=BIG_FOLDER)
    assert (path.precision, path.channels_last, path.compile) == (precision, True, True)


def test_stylize_auto_path_on_mps_is_float32_eager() -> None:
    path = hw.choose_fast_path(MPS, work=BIG_FOLDER)
    assert (path.precision, path.channels_last, path.compile) == ("fp32", False, False)


def test_only_shapes_with_enough_work_are_compiled(monkeypatch, zen4) -> None:
    # bf16 on 2 threads: 128 MP per shape (17 MP, 64 images of 512 px, measured no gain)
    work = Counter({(4, 512, 512): 160, (1, 512, 512): 1, (1, 768, 768): 250, (2, 64, 64): 50,
                    (1, 1024, 1024): 128, (4, 512, 384): 16})
    assert hw.choose_fast_path(CPU, work=work).shapes == {(4, 512, 512), (1, 768, 768),
                                                          (1, 1024, 1024)}
    # fp32: a quarter of that
    assert hw.choose_fast_path(CPU, precision="fp32", work=Counter(
        {(1, 1024, 1024): 32, (4, 512, 512): 16})).shapes == {(1, 1024, 1024)}
    monkeypatch.setattr(torch, "get_num_threads", lambda: 16)  # each pixel 8x cheaper
    assert hw.choose_fast_path(CPU, work=Counter({(1, 768, 768): 2000, (4, 512, 512): 160})
                               ).shapes == {(1, 768, 768)}


def test_explicit_stylize_flags_win(zen4) -> None:
    path = hw.choose_fast_path(CPU, precision="fp32", compile=False, work=BIG_FOLDER)
    assert (path.precision, path.channels_last, path.compile) == ("fp32", False, False)
    path = hw.choose_fast_path(CPU, compile=True, channels_last=True, work=ONE_IMAGE)
    assert (path.precision, path.channels_last, path.compile, path.shapes) == (
        "bf16", True, True, None)  # an explicit --compile compiles every shape


def write_photos(folder: Path, n: int, h: int, w: int, stem: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        pixels = (rng.random((h, w, 3)) * 255).astype("uint8")
        Image.fromarray(pixels).save(folder / f"{stem}{i}.png")


def test_plan_work_counts_batches_and_tiles(tmp_path) -> None:
    write_photos(tmp_path / "in", 9, 24, 32)
    write_photos(tmp_path / "big", 1, 300, 200, stem="big")
    jobs = plan_jobs([tmp_path / "in", tmp_path / "big"], tmp_path / "out", style="s")
    work = plan_work(jobs, StylizeOptions(batch_size=4, tile=128, overlap=32))
    # 9 small images: 2 batches of 4 and 1 of 1; the 200 x 300 image: 2 x 3 tiles of 128 px
    assert work == {(4, 24, 32): 2, (1, 24, 32): 1, (1, 128, 128): 6}


def tiny_model(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    net = TransformerNet(NetConfig(width="half", n_residual=1)).eval()
    return export_model(net, tmp_path / "tiny.pt", style="tiny")


def test_auto_stylizes_in_float32_without_native_bf16(tmp_path, zen3) -> None:
    model = tiny_model(tmp_path)
    write_photos(tmp_path / "in", 1, 40, 48)
    src = tmp_path / "in" / "0.png"
    opts = {"device": "cpu", "progress": False}
    stylize_paths(model, [src], tmp_path / "auto.png", StylizeOptions(**opts))
    stylize_paths(model, [src], tmp_path / "fp32.png", StylizeOptions(**opts, precision="fp32"))
    stylize_paths(model, [src], tmp_path / "bf16.png", StylizeOptions(**opts, precision="bf16"))
    read = {k: np.asarray(Image.open(tmp_path / f"{k}.png")) for k in ("auto", "fp32", "bf16")}
    assert np.array_equal(read["auto"], read["fp32"])
    assert not np.array_equal(read["bf16"], read["fp32"])  # so the comparison can fail


def test_compiled_shapes_only_the_planned_ones(monkeypatch) -> None:
    """A Stylizer compiled for one shape runs every other shape eagerly (no recompile)."""
    seen = []

    def fake_compile(net, **kwargs):
        return lambda x: seen.append(tuple(x.shape)) or net(x)

    monkeypatch.setattr(torch, "compile", fake_compile)
    torch.manual_seed(0)
    net = TransformerNet(NetConfig(width="half", n_residual=1)).eval()
    stylizer = Stylizer(net, device="cpu", compile=True, compile_shapes=frozenset({(2, 16, 16)}))
    a, b = torch.rand(2, 3, 16, 16), torch.rand(1, 3, 20, 16)
    assert torch.equal(stylizer(a), net(a).detach()) and torch.equal(stylizer(b), net(b).detach())
    assert seen == [(2, 3, 16, 16)]


def run_stylize_cli(capsys, *args) -> tuple[int, str, str]:
    spec = importlib.util.spec_from_file_location("stylize_cli", ROOT / "stylize.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        module.main([str(a) for a in args])
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_stylize_cli_says_its_path_and_warns_for_slow_bf16(tmp_path, capsys, zen3) -> None:
    model = tiny_model(tmp_path)
    write_photos(tmp_path / "in", 1, 20, 24)
    src = tmp_path / "in" / "0.png"
    code, out, err = run_stylize_cli(capsys, "--model", model, src, "-o", tmp_path / "a.png",
                                     "--device", "cpu")
    assert code == 0 and err == "" and out.splitlines()[0] == (
        "stylize: eager fp32 (CPU without native bf16: AVX2; 1 forward call(s))")
    code, out, err = run_stylize_cli(capsys, "--model", model, src, "-o", tmp_path / "b.png",
                                     "--device", "cpu", "--precision", "bf16")
    assert code == 0 and (tmp_path / "b.png").is_file()
    assert err.splitlines() == ["warning: precision bf16 on a CPU without native bf16 (AVX2) "
                                "runs many times slower than float32; leave precision on auto"]


def test_stylize_cli_messages_ignore_stale_root_handlers(tmp_path, capsys, zen3) -> None:
    """A handler another tool left on the root logger (here on a closed stream) neither breaks
    nor doubles the path line."""
    stream = io.StringIO()
    stale = logging.StreamHandler(stream)
    logging.getLogger().addHandler(stale)
    stream.close()
    try:
        model = tiny_model(tmp_path)
        write_photos(tmp_path / "in", 1, 20, 24)
        code, out, err = run_stylize_cli(capsys, "--model", model, tmp_path / "in" / "0.png",
                                         "-o", tmp_path / "a.png", "--device", "cpu")
    finally:
        logging.getLogger().removeHandler(stale)
    assert code == 0 and err == "", err
    assert [line for line in out.splitlines() if line.startswith("stylize: ")] == [
        "stylize: eager fp32 (CPU without native bf16: AVX2; 1 forward call(s))"]


# ---------------------------------------------------------------------------- the optimizer


def test_optimizer_precision_follows_the_rule(zen3) -> None:
    assert autocast_dtype(GatysConfig(precision="auto"), CPU) is None
    assert autocast_dtype(GatysConfig(), CPU) is None  # fp32 by default: the ground truth
    with pytest.warns(UserWarning, match="many times slower"):
        assert autocast_dtype(GatysConfig(precision="bf16"), CPU) == torch.bfloat16


def test_optimizer_auto_uses_bf16_with_native_bf16(zen4) -> None:
    assert autocast_dtype(GatysConfig(precision="auto"), CPU) == torch.bfloat16


# ---------------------------------------------------------------------------- benchmarks


def test_hardware_line_names_cpu_capability_bf16_threads_and_gpu(zen3, monkeypatch) -> None:
    monkeypatch.setattr(hw, "cpu_name", lambda: "AMD Ryzen 9 5950X")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    line = hw.describe_hardware()
    assert line.startswith("hardware: CPU AMD Ryzen 9 5950X; torch CPU capability AVX2; "
                           f"native bf16 no; {torch.get_num_threads()} threads; GPU none")


def run_bench(monkeypatch, capsys, bench: str, *args: str) -> tuple[int, str]:
    """A benchmark's main() in this process (its imports are already loaded here)."""
    spec = importlib.util.spec_from_file_location(bench, ROOT / "benchmarks" / bench)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", [bench, *args])
    try:
        module.main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("bench, args, message", [
    ("bench_stylize.py", ["--sizes", "256,x"], "--sizes must be comma-separated integers"),
    ("bench_stylize.py", ["--repeats", "0"], "--repeats must be at least 1"),
    ("bench_train.py", ["--widths", "quarter"], "--widths takes full and/or half"),
    ("bench_train.py", ["--batch", "two"], "argument --batch: invalid int value: 'two'"),
    ("bench_gatys.py", ["--sizes", "8"], "--sizes must each be at least 32 px"),
])
def test_bench_bad_arguments_are_one_line_errors(monkeypatch, capsys, bench, args,
                                                 message) -> None:
    code, err = run_bench(monkeypatch, capsys, bench, *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("error: ") and message in lines[0]


def test_bench_stylize_memory_0x0_in_a_real_process() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_stylize.py"),
                           "--memory", "0x0"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: --memory sides must be at least 32 px, got '0x0'"]


def test_cpu_bf16_runs_a_bf16_copy_with_a_float32_first_layer() -> None:
    torch.manual_seed(0)
    net = TransformerNet(NetConfig(width="half", n_residual=1)).eval()
    stylizer = Stylizer(net, device="cpu", precision="bf16")
    low = stylizer.net
    assert low.conv1.module.conv2d.weight.dtype == low.in1.module.weight.dtype == torch.float32
    assert low.conv2.conv2d.weight.dtype == low.deconv3.conv2d.weight.dtype == torch.bfloat16
    assert net.conv2.conv2d.weight.dtype == torch.float32  # the caller's network is untouched
    x = torch.rand(2, 3, 32, 40)
    out, ref = stylizer(x), net(x).detach()
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert 0 < (out - ref).abs().max() < 0.05
