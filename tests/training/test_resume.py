"""fast_nst.training.resume: explicit resume keeps `last.ckpt` the newest, a used run folder
is never resumed silently, Ctrl-C saves a checkpoint and says where; Lightning's log
records end up in the run's train.log."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from fast_nst.model.files import load_model
from tests.app_helpers import load_script, write_photo

ROOT = Path(__file__).resolve().parents[2]


train_app = load_script("train")


class CtrlCAt(pl.Callback):
    """Raises KeyboardInterrupt after `step` steps, as Ctrl-C would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args, **kwargs) -> None:
        if trainer.global_step >= self.step:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def train_files(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("resume")
    (root / "photos").mkdir()
    for i in range(4):
        write_photo(root / "photos" / f"p{i}.jpg", 48, 40, i)
    stripes = np.zeros((48, 48, 3), "uint8")
    stripes[:, ::4, 0] = 255
    Image.fromarray(stripes).save(root / "style.png")
    return root


def train(root: Path, run: str, *extra: str, monkeypatch, capfd) -> tuple[int, str, str]:
    argv = [f"hydra.run.dir={root / run}", "style=custom", "style.name=stripes",
            f"style.image={root / 'style.png'}", "style.size=48", "vgg=random", "model=half",
            "data=local", f"data.data_dir={root / 'photos'}", "data.image_size=32",
            "data.batch_size=2", "data.num_workers=0", "data.val_dir=null", "data.val_size=1",
            "trainer=cpu", "trainer.max_steps=3", "trainer.log_every_n_steps=1",
            "trainer.num_sanity_val_steps=0", "trainer.val_check_interval=2",
            "callbacks.model_checkpoint.every_n_train_steps=2", "~callbacks.progress_bar",
            "+trainer.enable_progress_bar=false", *extra]
    monkeypatch.setattr(sys, "argv", ["train.py", *argv])
    capfd.readouterr()
    code = 0
    try:
        train_app.main()
    except SystemExit as exit_info:
        code = exit_info.code
    out, err = capfd.readouterr()
    return code, out, err


def step_of(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["global_step"]


def test_resume_in_the_same_folder_keeps_last_ckpt_the_newest(train_files, monkeypatch,
                                                               capfd) -> None:
    code, out, err = train(train_files, "run", monkeypatch=monkeypatch, capfd=capfd)
    assert code == 0, err[-2000:]
    ckpts = train_files / "run" / "checkpoints"
    assert step_of(ckpts / "last.ckpt") == 3
    log = (train_files / "run" / "train.log").read_text()
    assert "exported the trained network" in log and "max_steps=3" in log  # Lightning's lines
    exported = load_model(train_files / "run" / "stripes.pt")  # the weights of the last step
    last = torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert exported.style == "stripes" and exported.net.state_dict().keys() == {
        k.removeprefix("net.") for k in last if k.startswith("net.")}
    for key, value in exported.net.state_dict().items():
        torch.testing.assert_close(value.float(), last[f"net.{key}"].float(), atol=2e-3,
                                   rtol=2e-3)  # the file may hold fp16 weights

    # Resumed from step 2 in the same folder, ending off the checkpoint interval (5 % 2 != 0)
    code, out, err = train(train_files, "run", f"ckpt_path={ckpts / 'step000002.ckpt'}",
                           "trainer.max_steps=5", monkeypatch=monkeypatch, capfd=capfd)
    assert code == 0, err[-2000:]
    assert step_of(ckpts / "last.ckpt") == 5
    assert sorted(p.name for p in ckpts.iterdir()) == [
        "last.ckpt", "step000002.ckpt", "step000004.ckpt"]  # no last-v1.ckpt

    # Without ckpt_path the folder is not resumed (or overwritten) silently
    before = (ckpts / "last.ckpt").stat().st_mtime_ns
    code, out, err = train(train_files, "run", "style.name=other", monkeypatch=monkeypatch,
                           capfd=capfd)
    assert code == 2 and err.strip().splitlines() == [
        f"error: the run folder {train_files / 'run'} already holds checkpoints of an earlier "
        f"run; to continue it add ckpt_path={ckpts / 'last.ckpt'}, for a new run choose "
        "another hydra.run.dir"]
    assert (ckpts / "last.ckpt").stat().st_mtime_ns == before
    assert not (train_files / "run" / "other.pt").exists()


def test_ctrl_c_saves_a_checkpoint_and_says_where(train_files, monkeypatch, capfd) -> None:
    handler = signal.getsignal(signal.SIGINT)  # Lightning ignores SIGINT while it shuts down
    try:
        code, out, err = train(train_files, "stopped", "trainer.max_steps=50",
                               "+callbacks.ctrl_c._target_=tests.training.test_resume.CtrlCAt",
                               "+callbacks.ctrl_c.step=2", monkeypatch=monkeypatch,
                               capfd=capfd)
    finally:
        signal.signal(signal.SIGINT, handler)
    saved = train_files / "stopped" / "checkpoints" / "interrupted.ckpt"
    assert code == 130, err[-2000:]
    assert err.strip().splitlines() == [
        f"interrupted: training stopped at step 2; resume with ckpt_path={saved}; finished "
        "outputs are kept"]
    assert step_of(saved) == 2 and "Traceback" not in out + err
