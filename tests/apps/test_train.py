"""train.py end to end: runs, checkpoints, export, TensorBoard, resume, DDP on CPU, one-line
errors."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fast_nst.model.files import net_from_export
from fast_nst.model.network import NetConfig
from fast_nst.precision import auto_precision

ROOT = Path(__file__).resolve().parents[2]


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
