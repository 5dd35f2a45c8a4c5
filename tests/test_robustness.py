"""What the bad-input fixes made work: tiny images, the pixel limit and lifting it, stale
temporary files, Ctrl-C as one line with finished outputs kept, explicit resume that keeps
`last.ckpt` the newest, and Lightning's log records in the run's train.log."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

import stylize as stylize_app
from fast_nst.io import open_image, save_image
from fast_nst.stylize import Pipeline
from fast_nst.transformer import NetConfig, TransformerNet

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "udnie.pt"


def _load_train() -> object:
    spec = importlib.util.spec_from_file_location("train", ROOT / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_app = _load_train()


def write_photo(path: Path, w: int, h: int, seed: int = 0) -> Path:
    pixels = (np.random.default_rng(seed).random((h, w, 3)) * 255).astype("uint8")
    Image.fromarray(pixels).save(path)
    return path


# --------------------------------------------------------------------------- image sizes
@pytest.mark.parametrize("h, w", [(1, 1), (2, 3), (4, 4), (5, 7), (4, 100), (8, 6)])
def test_tiny_images_keep_their_size(h, w) -> None:
    net = TransformerNet(NetConfig(width="half", n_residual=1)).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, h, w))
    assert out.shape == (2, 3, h, w) and torch.isfinite(out).all()


def test_padding_is_unchanged_for_sizes_that_always_worked() -> None:
    """Sides of 5 px and more are padded to the next multiple of 4 only, as before."""
    from fast_nst.transformer import padding

    assert [padding(s) for s in (5, 6, 7, 8, 9, 255, 256)] == [3, 2, 1, 0, 3, 1, 0]
    assert [padding(s) for s in (1, 2, 3, 4)] == [7, 6, 5, 4]


def test_stylize_a_2x3_png_and_size_1(tmp_path, capsys) -> None:
    src = write_photo(tmp_path / "tiny.png", 3, 2)
    stylize_app.main(["--model", str(MODEL), str(src), "-o", str(tmp_path / "out.png")])
    stylize_app.main(["--model", str(MODEL), str(write_photo(tmp_path / "p.png", 64, 48)),
                      "--size", "1", "-o", str(tmp_path / "one.png")])
    assert Image.open(tmp_path / "out.png").size == (3, 2)
    assert Image.open(tmp_path / "one.png").size == (1, 1)


def test_pixel_limit_refuses_and_can_be_lifted(tmp_path, monkeypatch, capsys) -> None:
    """Pillow's own bomb check (here shrunk to 2,000 px) no longer escapes as a traceback:
    the limit is fast_nst's, named in the error, and --max-pixels lifts it."""
    src = write_photo(tmp_path / "p.png", 64, 48)  # 3,072 px
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(Exception, match=r"3,072 pixels\), above the limit of 3,000"):
        open_image(src, max_pixels=3000)
    assert open_image(src, max_pixels=None).size == (64, 48)
    assert Image.MAX_IMAGE_PIXELS == 1000  # restored after each open
    stylize_app.main(["--model", str(MODEL), str(src), "-o", str(tmp_path / "a.png"),
                      "--max-pixels", "0"])
    stylize_app.main(["--model", str(MODEL), str(src), "-o", str(tmp_path / "b.png"),
                      "--max-pixels", "3072"])
    monkeypatch.undo()
    assert Image.open(tmp_path / "a.png").size == Image.open(tmp_path / "b.png").size == (64, 48)


# --------------------------------------------------------------------------- files
def test_stale_temporaries_are_removed_on_the_next_write(tmp_path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = int(gone.stdout)
    stale = tmp_path / f".out.{dead}.abc123.tmp.png"
    running = tmp_path / f".out.{__import__('os').getpid()}.def456.tmp.png"  # a live writer
    other = tmp_path / f".other.{dead}.ghi789.tmp.png"  # another file's temporary
    for path in (stale, running, other):
        path.write_bytes(b"half written")
    save_image(torch.rand(1, 3, 8, 8), tmp_path / "out.png")
    assert not stale.exists() and running.exists() and other.exists()
    assert (tmp_path / "out.png").is_file()


def test_ctrl_c_keeps_finished_outputs_in_one_line(tmp_path, monkeypatch, capfd) -> None:
    inputs = [write_photo(tmp_path / f"{name}.png", 24, 16, seed) for seed, name in
              enumerate("abc")]
    calls = []
    real = Pipeline.pixels

    def interrupt_second(self, pixels, progress=False):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, pixels, progress)

    monkeypatch.setattr(Pipeline, "pixels", interrupt_second)
    out = tmp_path / "styled"
    with pytest.raises(SystemExit) as exit_info:
        stylize_app.main(["--model", str(MODEL), *map(str, inputs), "-o", str(out),
                          "--batch-size", "1", "--no-progress"])
    _, err = capfd.readouterr()
    assert exit_info.value.code == 130
    assert err.strip().splitlines() == ["interrupted: stopped by Ctrl-C; finished outputs "
                                        "are kept"]
    left = [p.name for p in out.iterdir()]  # the one image finished; no temporaries
    assert len(left) == 1 and left[0] in {f"{n}_udnie.png" for n in "abc"}, left


# --------------------------------------------------------------------------- training
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
                               "+callbacks.ctrl_c._target_=test_robustness.CtrlCAt",
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
