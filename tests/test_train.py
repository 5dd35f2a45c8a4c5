"""Feed-forward training end to end: train.py runs, checkpoints, export, TensorBoard, resume,
DDP on CPU, one-line errors; and with the real VGG19 weights the loss falls."""

from __future__ import annotations

import csv
import os
import platform
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fast_nst import FastNSTError
from fast_nst.device import auto_precision
from fast_nst.io import load_image, save_image
from fast_nst.module import StyleTransferModule
from fast_nst.transformer import NetConfig, net_from_export

ROOT = Path(__file__).resolve().parents[1]


def make_photos(folder: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(n):
        pixels = (rng.random((int(rng.integers(36, 60)), 48, 3)) * 255).astype("uint8")
        Image.fromarray(pixels).save(folder / f"photo{i}.jpg")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """Six tiny photos (4 train, 2 validation) and a style image."""
    root = tmp_path_factory.mktemp("train")
    make_photos(root / "photos", 6)
    torch.manual_seed(0)
    stripes = torch.zeros(1, 3, 48, 48)
    stripes[:, 0, :, ::4] = 1.0
    stripes[:, 2, ::6, :] = 0.8
    save_image(stripes, root / "style.png")
    return root


def train_args(workdir: Path, run: str, *extra: str) -> list[str]:
    """A tiny run: random VGG weights, half width, 32 px, batch 2, no data workers."""
    return [
        f"hydra.run.dir={workdir / run}", "style=custom", "style.name=stripes",
        f"style.image={workdir / 'style.png'}", "style.size=48", "vgg=random", "model=half",
        "data=local", f"data.data_dir={workdir / 'photos'}", f"data.cache_dir={workdir / 'hf'}",
        "data.image_size=32", "data.batch_size=2", "data.num_workers=0", "data.val_size=2",
        "data.val_dir=null",
        "trainer=cpu", "trainer.max_steps=5", "trainer.val_check_interval=4",
        "trainer.log_every_n_steps=1", "callbacks.model_checkpoint.every_n_train_steps=2",
        "loss.style_weight=1.0e3", *extra,
    ]


def run_train(args: list[str], timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny_run(workdir) -> Path:
    proc = run_train(train_args(workdir, "run"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir / "run"


def test_run_writes_checkpoints_model_and_tensorboard(tiny_run) -> None:
    ckpts = tiny_run / "checkpoints"
    assert {p.name for p in ckpts.glob("*.ckpt")} >= {"last.ckpt", "step000002.ckpt",
                                                      "step000004.ckpt"}
    ckpt = torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 5
    hp = ckpt["hyper_parameters"]
    assert hp["net"] == asdict(NetConfig(width="half")) and hp["style_name"] == "stripes"
    keys = ckpt["state_dict"].keys()
    assert any(k.startswith("net.") for k in keys)
    assert not any(k.startswith("perceptual.encoder.") for k in keys)  # frozen VGG left out
    assert {"torch", "numpy", "python"} <= set(ckpt["rng_states"])

    payload = torch.load(tiny_run / "stripes.pt", map_location="cpu", weights_only=True)
    net = net_from_export(payload)
    assert payload["style"] == "stripes" and payload["config"] == hp["net"]
    meta = payload["meta"]
    # trainer=cpu leaves precision on auto: resolved from this CPU, logged, recorded in meta
    auto = auto_precision(torch.device("cpu"))
    assert meta["steps"] == 5 and meta["image_size"] == 32 and meta["precision"] == auto.name
    assert f"precision auto -> {auto.name} ({auto.reason})" in (tiny_run / "train.log").read_text()
    assert meta["loss"]["style_weight"] == 1.0e3 and "relu4_3" in meta["loss"]["style_layers"]
    assert meta["dataset"]["name"] == "imagefolder"
    assert 0 < meta["train_seconds"] < 240 and meta["init"] is None
    state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items()
             if k.startswith("net.")}
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())

    events = EventAccumulator(str(tiny_run / "tb"), size_guidance={"images": 0}).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/content", "train/style", "train/tv", "train/total"} <= scalars
    assert {"val/content", "val/style", "val/total"} <= scalars
    assert len(events.Scalars("train/total")) == 5  # every step (log_every_n_steps=1)
    assert "val/stylized" in events.Tags()["images"]
    grids = events.Images("val/stylized")
    assert [g.step for g in grids] == [0, 4]  # the untrained net (sanity check), then step 4
    # 2 validation photos side by side: contents on top, stylized below (32 px + 2 px padding)
    assert (grids[-1].width, grids[-1].height) == (70, 70)
    assert "style" in events.Tags()["images"]


def test_resume_continues_at_the_saved_step_exactly(workdir, tiny_run) -> None:
    """From step 2 to 5 again: same step count, and the same weights as without the stop."""
    ckpt = tiny_run / "checkpoints" / "step000002.ckpt"
    proc = run_train(train_args(workdir, "resumed", f"ckpt_path={ckpt}"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = torch.load(workdir / "resumed" / "checkpoints" / "last.ckpt",
                         map_location="cpu", weights_only=False)
    assert resumed["global_step"] == 5
    events = EventAccumulator(str(workdir / "resumed" / "tb")).Reload()
    assert [e.step for e in events.Scalars("train/total")] == [2, 3, 4]  # steps 3..5
    original = torch.load(tiny_run / "stripes.pt", weights_only=True)["state_dict"]
    again = torch.load(workdir / "resumed" / "stripes.pt", weights_only=True)["state_dict"]
    for key, value in original.items():
        torch.testing.assert_close(again[key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_ddp_with_two_cpu_processes(workdir) -> None:
    proc = run_train(train_args(workdir, "ddp", "trainer.strategy=ddp", "trainer.devices=2",
                                "trainer.accelerator=cpu", "trainer.max_steps=2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (workdir / "ddp" / "stripes.pt").is_file()
    ckpt = torch.load(workdir / "ddp" / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 2
    payload = torch.load(workdir / "ddp" / "stripes.pt", weights_only=True)
    assert payload["meta"]["world_size"] == 2


@pytest.mark.parametrize("case, extra, expected", [
    ("missing style", ["style.image=/nonexistent/painting.jpg"], "style image not found"),
    ("empty folder", ["data.data_dir={empty}"], "holds no image files"),
    ("unknown layer", ["loss.style_layers=[relu1_1,relu9_9]"], "unknown VGG19 layer 'relu9_9'"),
])
def test_user_mistakes_are_one_line_errors(workdir, case, extra, expected) -> None:
    (workdir / "empty").mkdir(exist_ok=True)
    extra = [e.format(empty=workdir / "empty") for e in extra]
    proc = run_train(train_args(workdir, f"error_{case.replace(' ', '_')}", *extra), 120)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    assert "Traceback" not in proc.stdout + proc.stderr


def test_unknown_option_names_the_group(workdir) -> None:
    with pytest.raises(FastNSTError, match="unknown loss option.*style_wieght"):
        StyleTransferModule("s", str(workdir / "style.png"), vgg={"weights": "random"},
                            loss={"style_wieght": 1.0})


def test_loss_falls_with_real_weights(caffe_weights, shared_content, shared_styles) -> None:
    """Caffe VGG19, default loss weights, half width, 64 px: the total loss on a fixed batch
    falls to less than half its start within 20 Adam steps."""
    module = StyleTransferModule(
        "starry_night", str(shared_styles / "starry_night.jpg"), style_size=128,
        net={"width": "half"}, vgg={"weights": str(caffe_weights), "convention": "caffe"})
    batch = torch.cat([load_image(shared_content / f"{n}.jpg", size=(64, 64))
                       for n in ("chelsea_cat", "coffee")])
    optimizer = module.configure_optimizers()
    totals = []
    for _ in range(20):
        _, terms = module.compute_losses(batch)
        optimizer.zero_grad()
        terms["total"].backward()
        optimizer.step()
        totals.append(terms["total"].item())
    assert module.hparams.loss["style_weight"] == module.perceptual.weights.style == 0.2
    assert sum(totals[-3:]) / 3 < 0.5 * totals[0], totals


def test_content_targets_stop_early_with_the_same_features(workdir) -> None:
    module = StyleTransferModule("s", str(workdir / "style.png"), vgg={"weights": "random"},
                                 net={"width": "half"})
    images = torch.rand(2, 3, 32, 32)
    full = module.perceptual.encoder(images)
    targets = module.perceptual.content_targets(images)
    assert set(targets) == {"relu2_2"} and torch.equal(targets["relu2_2"], full["relu2_2"])


# The default config's cpu_memory callback, set up for a trainer on `argv[2]`, then three
# training-like steps on a 41 MB activation: the page faults they cause.
CPU_MEMORY_PROBE = """
import resource, sys, torch
from types import SimpleNamespace
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from pytorch_lightning import accelerators
with initialize_config_dir(sys.argv[1], version_base="1.3"):
    cfg = compose("config", overrides=["data=local", "vgg=random"])
accelerator = getattr(accelerators, sys.argv[2])()
instantiate(cfg.callbacks.cpu_memory).setup(SimpleNamespace(accelerator=accelerator), None, "fit")
conv, x = torch.nn.Conv2d(8, 8, 3, padding=1), torch.rand(2, 8, 800, 800)
step = lambda: torch.relu(conv(x)).square().mean().backward()
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
step(); step()
before = faults()
for _ in range(3):
    step()
print(faults() - before)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="the cpu_memory callback tunes glibc's malloc only")
def test_default_cpu_memory_callback_keeps_freed_memory_on_cpu_only() -> None:
    def faults(accelerator: str) -> int:
        proc = subprocess.run([sys.executable, "-c", CPU_MEMORY_PROBE, str(ROOT / "conf"),
                               accelerator], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return int(proc.stdout.split()[-1])

    on_gpu, on_cpu = faults("CUDAAccelerator"), faults("CPUAccelerator")
    assert on_gpu > 3 * 41_000_000 // 4096, on_gpu  # left alone: every step faults again
    assert on_cpu < on_gpu / 10, (on_cpu, on_gpu)


def test_bench_train_prints_its_table_and_writes_curves(tmp_path, workdir,
                                                         shared_train) -> None:
    """The #4 measuring tool runs end to end (tiny: 32 px, random VGG, a few steps)."""
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_train.py"), "--size", "32",
         "--steps", "2", "--warmup", "1", "--rounds", "1", "--widths", "half",
         "--curve-steps", "3", "--curve-widths", "half", "--vgg", "random",
         "--style", str(workdir / "style.png"), "--out", str(out)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "throughput.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["width"], r["precision"]) for r in rows] == [("half", "32-true"),
                                                            ("half", "bf16-mixed")]
    first, second = ({k: float(v) for k, v in r.items() if k not in ("width", "precision")}
                     for r in rows)
    assert first["speedup"] == 1.0 and first["s_per_step"] > 0 and second["s_per_step"] > 0
    assert second["speedup"] == pytest.approx(first["s_per_step"] / second["s_per_step"],
                                              rel=1e-3)
    assert second["images_per_s"] == pytest.approx(4 / second["s_per_step"], rel=1e-3)
    assert re.search(r"networks in float32 on 8 other crops: 32-true \S+, bf16-mixed \S+; "
                     r"bf16/fp32 = \d", proc.stdout)
    lines = (out / "loss_curve_half.csv").read_text().splitlines()
    assert lines[0] == "step,32-true,bf16-mixed" and len(lines) == 4
    assert (out / "loss_curve_half.png").stat().st_size > 1000
