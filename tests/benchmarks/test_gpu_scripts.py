"""The offline GPU path: `benchmarks/gpu/pack.py` packs what a bare machine needs and
`benchmarks/gpu/train_bundled.sh` trains from it (here on the CPU, tiny and short)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision.models import vgg19

from fast_nst import FastNSTError
from fast_nst.core.vgg import VGGEncoder
from fast_nst.model.files import load_model
from tests.app_helpers import write_photo

ROOT = Path(__file__).resolve().parents[2]


def fake_shared(root: Path) -> Path:
    """A ../shared with random VGG19 weights, four small photos, the four paintings, one photo."""
    (root / "weights").mkdir(parents=True)
    torch.save(vgg19(weights=None).features.state_dict(),
               root / "weights" / "vgg19-caffe-rgb255-features.pth")
    for sub in ("train", "styles", "content"):
        (root / "data" / sub).mkdir(parents=True)
    for i in range(4):
        write_photo(root / "data" / "train" / f"photo{i}.png", 96, 80, seed=i)
    for i, style in enumerate(("udnie", "the_scream", "great_wave", "starry_night")):
        write_photo(root / "data" / "styles" / f"{style}.png", 72, 64, seed=10 + i)
        Image.open(root / "data" / "styles" / f"{style}.png").save(
            root / "data" / "styles" / f"{style}.jpg")
    write_photo(root / "data" / "content" / "cat.png", 80, 72, seed=20)
    return root


def load_pack_module():
    spec = importlib.util.spec_from_file_location("pack", ROOT / "benchmarks" / "gpu" / "pack.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pack_then_train_from_it(tmp_path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("train_bundled.sh needs bash")
    shared, pack = fake_shared(tmp_path / "shared"), tmp_path / "pack"
    load_pack_module().pack(shared, pack, quality=75, wheels=False)

    photos = sorted(p.name for p in (pack / "shared" / "data" / "train").iterdir())
    assert photos == [f"photo{i}.jpg" for i in range(4)]
    cut = pack / "shared" / "weights" / "vgg19-caffe-relu4_3-fp16.pth"
    state = torch.load(cut)
    assert max(int(k.split(".")[0]) for k in state) == 23  # conv4_3
    assert {v.dtype for v in state.values()} == {torch.float16}
    VGGEncoder(["relu4_3"], weights=str(cut), convention="caffe")
    with pytest.raises(FastNSTError, match="only down to relu4_3"):
        VGGEncoder(["relu5_1"], weights=str(cut), convention="caffe")

    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "TRAINER": "cpu", "SKIP_WHEELS": "1",
           "WORKERS": "0", "RUNS": str(tmp_path / "runs"), "FAST_NST_OVERRIDES":
           "trainer.max_steps=2 data.image_size=64 style.size=64 trainer.precision=32 "
           "data.val_image_size=64"}
    result = subprocess.run(
        ["bash", "benchmarks/gpu/train_bundled.sh", str(pack), str(out), "00:00:05:00", "2",
         "the_scream"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "env.txt", "logs.tar.gz", "tensorboard.tar.gz", "the_scream.pt"]
    model = load_model(out / "the_scream.pt")
    assert model.meta["steps"] == 2
    assert model.meta["init"] == "models/the_scream.pt"
    assert model.meta["vgg"]["weights"] == str(cut)
    with tarfile.open(out / "logs.tar.gz") as logs:
        names = logs.getnames()
    assert "the_scream.log" in names and "bundle/the_scream/train.log" in names
    assert not any(name.endswith(".ckpt") for name in names)

    # a style that fails: no export, the exit status says so, and an earlier export is not reused
    env["FAST_NST_OVERRIDES"] += " data.batch_size=0"
    failed = subprocess.run(
        ["bash", "benchmarks/gpu/train_bundled.sh", str(pack), str(tmp_path / "again"),
         "00:00:05:00", "2", "the_scream"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300)
    assert failed.returncode == 1
    assert "the_scream: failed, no export" in failed.stdout
    assert not (tmp_path / "again" / "the_scream.pt").exists()
