"""fast-nst-distill end to end: a few steps on tiny photos with random VGG weights, the exported
student through stylize, the loader and ONNX export; one-line errors for bad teachers and
mismatched shapes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fast_nst.apps.distill import main as distill_main
from fast_nst.apps.stylize import main as stylize_main
from fast_nst.inference.export import export_file
from fast_nst.model.files import export_model, load_model
from fast_nst.model.network import NetConfig, TransformerNet
from tests.stylize_helpers import read, write_photo
from tests.test_user_errors import call
from tests.tolerance import PIXEL_ATOL

ROOT = Path(__file__).resolve().parents[2]
FAST = NetConfig(width="quarter", downsample=3, end_kernel=3, upsample="deconv")


def distill_args(workdir: Path, run: str, *extra: str) -> list[str]:
    """A tiny run: random VGG weights, 32 px crops, batch 2, no data workers."""
    return [f"hydra.run.dir={workdir / run}", f"teacher={workdir / 'teacher.pt'}",
            "vgg=random", f"data.data_dir={workdir / 'photos'}",
            f"data.cache_dir={workdir / 'hf'}", "data.image_size=32", "data.batch_size=2",
            "data.num_workers=0", "data.val_size=2", "data.val_dir=null",
            "trainer.max_steps=4", "trainer.val_check_interval=4",
            "trainer.log_every_n_steps=1", "callbacks.model_checkpoint.every_n_train_steps=2",
            *extra]


def run_distill(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "fast_nst.apps.distill", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def teacher(workdir) -> Path:
    torch.manual_seed(1)
    net = TransformerNet(NetConfig(width="half", n_residual=1))
    return export_model(net, workdir / "teacher.pt", style="stripes",
                        meta={"style_image": "style.png", "style_size": 48})


@pytest.fixture(scope="module")
def run(workdir, teacher) -> Path:
    proc = run_distill(distill_args(workdir, "run"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir / "run"


def test_distill_exports_a_student_of_the_fast_architecture(run, teacher) -> None:
    model = load_model(run / "stripes-fast.pt")
    assert model.style == "stripes" and model.net.config == FAST
    # the teacher's training settings travel with the student; how it learned, apart
    assert model.meta["style_image"] == "style.png"
    assert model.meta["distillation"]["teacher"] == str(teacher)
    assert model.meta["steps"] == 4
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    keys = ckpt["state_dict"].keys()
    assert any(k.startswith("net.") for k in keys)
    assert not any(k.startswith(("teacher.", "encoder.")) for k in keys)  # frozen: left out
    assert load_model(run / "checkpoints" / "last.ckpt").net.config == FAST  # stylize reads it
    events = EventAccumulator(str(run / "tb"), size_guidance={"images": 0}).Reload()
    assert {"train/pixel", "train/feature", "train/total", "val/total"} <= set(
        events.Tags()["scalars"])
    assert "val/teacher_student" in events.Tags()["images"]


def test_student_trains_towards_the_teacher(run) -> None:
    """Four steps at lr 1e-3 must lower the pixel loss against the teacher."""
    events = EventAccumulator(str(run / "tb")).Reload()
    pixel = [e.value for e in events.Scalars("train/pixel")]
    assert len(pixel) == 4 and pixel[-1] < pixel[0]


def test_student_goes_through_stylize_and_onnx(run, tmp_path) -> None:
    model = run / "stripes-fast.pt"
    src = write_photo(tmp_path / "in.png", 37, 50)
    stylize_main(["--model", str(model), str(src), "--output", str(tmp_path / "out.png"),
                  "--no-progress"])
    assert read(tmp_path / "out.png").shape == (37, 50, 3)
    _, diff = export_file(model, "onnx", tmp_path / "student.onnx")
    assert diff < PIXEL_ATOL


def test_resume_continues_the_run(workdir, run) -> None:
    proc = run_distill(distill_args(workdir, "run", "trainer.max_steps=6",
                                    f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert load_model(run / "stripes-fast.pt").meta["steps"] == 6


@pytest.mark.parametrize(("extra", "message"), [
    (["teacher=missing.pt"], "missing.pt"),
    (["distillation.pixel_weight=0", "distillation.feature_weight=0"], "nothing to learn"),
    (["model.downsample=4"], "unknown model.downsample 4; use one of 2, 3"),
])
def test_mistakes_are_one_line_errors(workdir, teacher, extra, message, capfd,
                                      monkeypatch) -> None:
    code, _, err = call(distill_main, distill_args(workdir, "bad", *extra), capfd, monkeypatch,
                        hydra=True)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err[-2000:]
    assert lines[0].startswith("error:") and message in lines[0], lines
    assert not (workdir / "bad" / "checkpoints").exists()


def test_mismatched_shapes_are_one_line_errors(workdir, run, teacher, capfd,
                                               monkeypatch) -> None:
    """A warm start or a checkpoint of another architecture than the student's."""
    for extra in ([f"init={teacher}"],  # the half-width teacher is not a fast student
                  [f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "model=half"]):
        code, _, err = call(distill_main, distill_args(workdir, "bad2", *extra), capfd,
                            monkeypatch, hydra=True)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, err[-2000:]
        assert "another architecture" in lines[0] and "model.width" in lines[0], lines
