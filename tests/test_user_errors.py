"""The bad-input contract, walked across every entry point (stylize.py, train.py,
fast-nst-gatys, fast-nst-compare, fast-nst-calibrate; the config
errors also for experiments and flicker; the web page has its own in tests/web/): exit
status 2, exactly one line on stderr starting `error:`, no traceback, no file under the output's
final name, and nothing already on disk changed. Model files with code payloads in every
extension the loaders accept never run.

Most cases call the `main()` functions in this process (capfd sees every byte written to the
real stdout/stderr); a few subprocesses, started together, prove the real exit path.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import stylize as stylize_app
from fast_nst.apps import calibrate as calibrate_app
from fast_nst.apps import compare as compare_app
from fast_nst.apps import experiments as experiments_app
from fast_nst.apps import flicker as flicker_app
from fast_nst.apps import gatys as gatys_app
from fast_nst.model.network import NetConfig
from tests.app_helpers import load_script

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "udnie.pt"
EXTENSIONS = (".pt", ".ckpt", ".pth")
FORMATS = ("zip", "legacy", "pickle")
HYDRA_BOOKKEEPING = (".hydra", ".log")  # what Hydra itself writes into a run folder


train_app = load_script("train")


class Payload:
    """Unpickling this calls open(marker, "w"): the marker file appears if code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_payload(path: Path, fmt: str, marker: Path) -> Path:
    """A file shaped like a training checkpoint, with a code payload inside."""
    content = {"state_dict": {"net.w": torch.zeros(2)}, "global_step": 2,
               "optimizer_states": [], "hyper_parameters": {"net": {}, "style_name": "stripes"},
               "evil": Payload(marker)}
    if fmt == "pickle":
        path.write_bytes(pickle.dumps(content))
    else:
        torch.save(content, path, _use_new_zipfile_serialization=fmt == "zip")
    return path


def fake_checkpoint(path: Path, style: str, width: str) -> Path:
    """The keys of a train.py checkpoint (the checks read no weights)."""
    torch.save({"state_dict": {}, "global_step": 2, "optimizer_states": [],
                "hyper_parameters": {"net": asdict(NetConfig(width=width)),
                                     "style_name": style}}, path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Inputs good and bad, model files with payloads, and outputs that already exist."""
    root = tmp_path_factory.mktemp("bad_input")
    rng = np.random.default_rng(0)
    (root / "photos").mkdir()
    for i in range(4):
        pixels = (rng.random((40, 48, 3)) * 255).astype("uint8")
        Image.fromarray(pixels).save(root / "photos" / f"p{i}.jpg")
    Image.fromarray((rng.random((48, 64, 3)) * 255).astype("uint8")).save(root / "photo.png")
    stripes = np.zeros((48, 48, 3), "uint8")
    stripes[:, ::4, 0] = 255
    Image.fromarray(stripes).save(root / "style.png")
    shutil.copy(root / "photos" / "p0.jpg", root / "clip.mp4")  # a JPEG named like a video
    png = (root / "photo.png").read_bytes()
    (root / "truncated.png").write_bytes(png[: len(png) // 2])
    (root / "notimage.png").write_text("not an image\n")
    (root / "notes.txt").write_text("hello\n")
    (root / "empty_dir").mkdir()
    (root / "empty.pt").write_bytes(b"")
    data = MODEL.read_bytes()
    (root / "truncated.pt").write_bytes(data[: len(data) // 2])
    torch.save({"a": torch.ones(2)}, root / "plain.pt")
    fake_checkpoint(root / "other_style.ckpt", "other", "half")
    fake_checkpoint(root / "other_width.ckpt", "stripes", "full")
    (root / "markers").mkdir()
    for ext in EXTENSIONS:
        for fmt in FORMATS:
            write_payload(root / f"payload-{fmt}{ext}", fmt, root / "markers" / f"{fmt}{ext}")
    (root / "existing.png").write_bytes(png)
    reused = root / "runs" / "reused" / "checkpoints"
    reused.mkdir(parents=True)
    (reused / "last.ckpt").write_bytes(b"an earlier run's checkpoint")
    yield root
    assert not any((root / "markers").iterdir()), "a model file ran code while loading"


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


def check_contract(code: int | None, out: str, err: str, expected: str, root: Path,
                   before: dict[str, tuple[int, int]], outputs: tuple[Path, ...] = ()) -> None:
    assert code == 2, (code, err[-2000:])
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    assert expected in lines[0], lines[0]
    assert "Traceback" not in out + err
    for path in outputs:
        assert not path.exists(), f"{path} was written"
    after = snapshot(root)
    changed = sorted(k for k, v in before.items() if after.get(k) != v)
    new = sorted(k for k in set(after) - set(before)
                 if not any(mark in k for mark in HYDRA_BOOKKEEPING))
    assert not changed and not new, (changed, new)


def call(main, argv: list[str], capfd, monkeypatch, hydra: bool) -> tuple[int | None, str, str]:
    """One in-process run of an entry point; its exit status and everything it printed."""
    capfd.readouterr()
    if hydra:
        monkeypatch.setattr(sys, "argv", ["app", *argv])
    with pytest.raises(SystemExit) as exit_info:
        main() if hydra else main(argv)
    out, err = capfd.readouterr()
    return exit_info.value.code, out, err


# --------------------------------------------------------------------------- stylize.py
PAYLOADS = [f"payload-{fmt}{ext}" for ext in EXTENSIONS for fmt in FORMATS]
STYLIZE_CASES = {
    **{f"model {name}": (["--model", "{f}/" + name, "{f}/photo.png"], "never runs code")
       for name in PAYLOADS},
    "missing model": (["--model", "{f}/nope.pt", "{f}/photo.png"], "model not found"),
    "empty model": (["--model", "{f}/empty.pt", "{f}/photo.png"], "is empty"),
    "truncated model": (["--model", "{f}/truncated.pt", "{f}/photo.png"], "torch can read"),
    "not a model": (["--model", "{f}/plain.pt", "{f}/photo.png"], "is not a style model"),
    "missing input": (["{f}/nope.png"], "input not found"),
    "unsupported input": (["{f}/notes.txt"], "unsupported input"),
    "not an image": (["{f}/notimage.png"], "not an image PIL can read"),
    "truncated image": (["{f}/truncated.png"], "truncated or corrupt"),
    "image named like a video": (["{f}/clip.mp4"], "is a JPEG image, not a video"),
    "above --max-pixels": (["{f}/photo.png", "--max-pixels", "1000"], "--max-pixels"),
    "negative --max-pixels": (["{f}/photo.png", "--max-pixels", "-1"], "--max-pixels"),
    "empty folder": (["{f}/empty_dir"], "no images or videos"),
    "size 0": (["{f}/photo.png", "--size", "0"], "--size must be at least 1"),
    "strength 2": (["{f}/photo.png", "--strength", "2"], "--strength"),
    "batch size 0": (["{f}/photo.png", "--batch-size", "0"], "--batch-size"),
    "workers 0": (["{f}/photo.png", "--workers", "0"], "--workers"),
    "size not a number": (["{f}/photo.png", "--size", "abc"],
                          "argument --size: invalid int value: 'abc' (see"),
}


@pytest.mark.parametrize("case", STYLIZE_CASES)
def test_stylize(case, files, capfd, monkeypatch) -> None:
    argv, expected = STYLIZE_CASES[case]
    argv = [a.format(f=files) for a in argv]
    if "--model" not in argv:
        argv = ["--model", str(MODEL), *argv]
    output = files / "out" / "result.png"  # its folder does not exist yet: none may appear
    before = snapshot(files)
    code, out, err = call(stylize_app.main, [*argv, "-o", str(output)], capfd, monkeypatch,
                          hydra=False)
    check_contract(code, out, err, expected, files, before, (output, output.parent))


@pytest.mark.parametrize("argv, expected", [
    (["{f}/photo.png", "-o", "{f}/existing.xyz"], "cannot write images"),
    (["{f}/photo.png", "-o", "{f}/photo.png"], "is an input"),
    (["{f}/photo.png", "{f}/style.png", "-o", "{f}/existing.png"], "need an output folder"),
    (["{f}/nope.png", "-o", "{f}/existing.png"], "input not found"),
], ids=["output extension", "output is the input", "two inputs one file", "existing output"])
def test_stylize_outputs_left_alone(argv, expected, files, capfd, monkeypatch) -> None:
    before = snapshot(files)
    code, out, err = call(stylize_app.main, ["--model", str(MODEL),
                                             *[a.format(f=files) for a in argv]],
                          capfd, monkeypatch, hydra=False)
    check_contract(code, out, err, expected, files, before, (files / "existing.xyz",))


# --------------------------------------------------------------------------- train.py
def train_args(files: Path, run: str) -> list[str]:
    return [f"hydra.run.dir={files / 'runs' / run}", "style=custom", "style.name=stripes",
            f"style.image={files / 'style.png'}", "style.size=48", "vgg=random", "model=half",
            "data=local", f"data.data_dir={files / 'photos'}", "data.image_size=32",
            "data.batch_size=2", "data.num_workers=0", "data.val_dir=null", "trainer=cpu",
            "trainer.max_steps=2"]


TRAIN_CASES = {
    "unknown key": (["trainer.foo=1"], "unknown config key 'trainer.foo'; valid keys in trainer"),
    "unknown style": (["style=nosuch"], "unknown style option 'nosuch'; choose one of:"),
    "bad override": (["x=["], "cannot parse the override"),
    "key the trainer does not take": (["+trainer.foo=1"], "unexpected keyword argument 'foo'"),
    "seed not a number": (["seed=abc"], "seed must be an integer"),
    "unset variable": (["ckpt_path=${{oc.env:FAST_NST_NO_SUCH_VARIABLE}}"],
                       "FAST_NST_NO_SUCH_VARIABLE"),
    "style too small": (["style.size=5"], "raise style.size"),
    "crop too small": (["data.image_size=8", "loss=gatys"], "data.image_size=8"),
    "missing checkpoint": (["ckpt_path={f}/nope.ckpt"], "not found"),
    "empty checkpoint": (["ckpt_path={f}/empty.pt"], "is empty"),
    "truncated checkpoint": (["ckpt_path={f}/truncated.pt"], "torch can read"),
    "exported model as checkpoint": ([f"ckpt_path={MODEL}"], "use init="),
    "not a checkpoint": (["ckpt_path={f}/plain.pt"], "not a fast_nst training checkpoint"),
    "checkpoint of another style": (["ckpt_path={f}/other_style.ckpt"], "trains style 'other'"),
    "checkpoint of another width": (["ckpt_path={f}/other_width.ckpt"], "model.width=full"),
    **{f"ckpt_path {name}": ([f"ckpt_path={{f}}/{name}"], "never runs code")
       for name in PAYLOADS},
    "init payload": (["init={f}/payload-zip.pt"], "never runs code"),
    "vgg weights payload": (["vgg.weights={f}/payload-legacy.pth", "vgg.convention=caffe"],
                            "never runs code"),
    "reused run folder": (["hydra.run.dir={f}/runs/reused"], "ckpt_path="),
    "zero step size": (["optim.schedule=step", "optim.step_size=0"],
                       "optim.step_size must be >= 1"),
    "negative learning rate": (["optim.lr=-1"], "optim.lr must be > 0"),
    "three betas": (["optim.betas=[0.9,0.99,0.999]"], "optim.betas must be two numbers"),
    "cosine without an end": (["optim=adam_cosine", "trainer.max_steps=-1"],
                              "needs a finite run: set trainer.max_steps"),
    "no grid images": (["module.val_max_images=0"], "val_max_images must be at least 1"),
    # refused before loss.style_weight=auto calibrates (minutes, and files in the run folder)
    "bad init before calibration": (["init={f}/nope.pt", "loss.style_weight=auto"],
                                    "not found"),
    "data folder typo before calibration": (["data.data_dir={f}/typo",
                                             "loss.style_weight=auto"], "folder not found"),
}


@pytest.mark.parametrize("case", TRAIN_CASES)
def test_train(case, files, capfd, monkeypatch) -> None:
    extra, expected = TRAIN_CASES[case]
    run = files / "runs" / case.replace(" ", "_")
    argv = train_args(files, run.name) + [e.format(f=files) for e in extra]
    before = snapshot(files)
    code, out, err = call(train_app.main, argv, capfd, monkeypatch, hydra=True)
    outputs = [run / "checkpoints", run / "tb", run / "stripes.pt"]
    check_contract(code, out, err, expected, files, before, tuple(outputs))


@pytest.mark.parametrize("vgg, recipe", [("random", "data=local"),
                                         ("imagenet", "data=local vgg=caffe")])
def test_train_offline_hub_fails_at_once(vgg, recipe, files, capfd, monkeypatch) -> None:
    """No network needed: the hub's address is one that never resolves."""
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "https_proxy", "HTTPS_PROXY",
                 "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    run = files / "runs" / f"offline_{vgg}"
    argv = [a for a in train_args(files, run.name) if not a.startswith(("data", "vgg"))]
    before = snapshot(files)
    code, out, err = call(train_app.main, [*argv, "data=hub", f"vgg={vgg}"], capfd,
                          monkeypatch, hydra=True)
    check_contract(code, out, err, recipe + " (or experiment=local)", files, before,
                   (run / "checkpoints", run / "tb"))


# --------------------------------------------------------------------------- the optimizer
GATYS_CASES = {
    "missing content": (["content={f}/nope.jpg"], "image not found"),
    "style not an image": (["style={f}/notimage.png"], "not an image PIL can read"),
    "content above max_pixels": (["max_pixels=1000"], "max_pixels=N"),
    "vgg weights payload": (["vgg.weights={f}/payload-zip.pth"], "never runs code"),
    "output too small": (["size=20"], "raise size"),
    "unknown task": (["task=nosuch"], "task"),
    "unknown key": (["nosuch=1"], "unknown config key 'nosuch'"),
    "output extension typo": (["output=result.txt"], "result.txt"),  # before the steps run
    "image option on a video": (["video={f}/clip.mp4", "preserve_color=luminance"],
                                "preserve_color apply to images, not to a video"),
}


@pytest.mark.parametrize("case", GATYS_CASES)
def test_gatys(case, files, capfd, monkeypatch) -> None:
    extra, expected = GATYS_CASES[case]
    run = files / "runs" / f"gatys_{case.replace(' ', '_')}"
    argv = [f"hydra.run.dir={run}", f"content={files / 'photo.png'}",
            f"style={files / 'style.png'}", "vgg=random", "size=32", "steps=2", "progress=false",
            *[e.format(f=files) for e in extra]]
    before = snapshot(files)
    code, out, err = call(gatys_app.main, argv, capfd, monkeypatch, hydra=True)
    check_contract(code, out, err, expected, files, before,
                   (run / "output.png", run / "losses.csv", run / "tensorboard"))


# --------------------------------------------------------------------------- compare
@pytest.mark.parametrize("extra, expected", [
    (["+models.evil={f}/payload-pickle.pt"], "never runs code"),
    (["contents=[{f}/nope.jpg]"], "content image not found"),
    (["+models.plain={f}/plain.pt"], "is not a style model"),
], ids=["payload model", "missing content", "not a model"])
def test_compare(extra, expected, files, capfd, monkeypatch) -> None:
    run = files / "runs" / f"compare_{len(expected)}"
    argv = [f"hydra.run.dir={run}", f"contents=[{files / 'photo.png'}]", "vgg=random",
            "sizes=[32]", "iterations=[2]", "progress=false",
            *[e.format(f=files) for e in extra]]
    before = snapshot(files)
    code, out, err = call(compare_app.main, argv, capfd, monkeypatch, hydra=True)
    check_contract(code, out, err, expected, files, before,
                   (run / "compare.md", run / "compare.csv"))


# --------------------------------------------------------------------------- calibrate
@pytest.mark.parametrize("extra, expected", [
    (["style={f}/nope.jpg"], "style image not found"),
    (["style={f}/notimage.png"], "not an image PIL can read"),
    (["calibration.weights=[]"], "no style weights to try"),
    (['train=["loss=nosuch"]'], "unknown loss option 'nosuch'"),
    (["calibration.photos=[{f}/nope.jpg]"], "not found"),
    (["train=[experiment=bundle/udnie,vgg=caffe]"],
     """quote each item: 'train=["experiment=bundle/udnie","vgg=caffe"]'"""),
], ids=["missing style", "style not an image", "no weights", "bad train override",
        "missing photo", "unquoted train list"])
def test_calibrate(extra, expected, files, capfd, monkeypatch) -> None:
    run = files / "runs" / f"calibrate_{len(expected)}"
    argv = [f"hydra.run.dir={run}", f"style={files / 'style.png'}", "vgg=random",
            f"calibration.photos=[{files / 'photo.png'}]", "calibration.steps=1",
            "calibration.count=2", "calibration.progress=false",
            'train=["data.image_size=32","style.size=48"]', *[e.format(f=files) for e in extra]]
    before = snapshot(files)
    code, out, err = call(calibrate_app.main, argv, capfd, monkeypatch, hydra=True)
    check_contract(code, out, err, expected, files, before,
                   (run / "calibration.csv", run / "calibration.png", run / "calibration.md"))


# --------------------------------------------------------------------------- every Hydra app
APPS = {"train": train_app, "gatys": gatys_app, "experiments": experiments_app,
        "compare": compare_app, "flicker": flicker_app, "calibrate": calibrate_app}


@pytest.mark.parametrize("app", APPS)
@pytest.mark.parametrize("override, expected", [
    ("nosuch=1", "unknown config key 'nosuch'; valid keys in the config: "),
    ("vgg=nosuch", "unknown vgg option 'nosuch'; choose one of: caffe, imagenet, random"),
])
def test_config_mistakes_in_every_hydra_app(app, override, expected, files, capfd,
                                            monkeypatch) -> None:
    run = files / "runs" / f"config_{app}"
    before = snapshot(files)
    code, out, err = call(APPS[app].main, [f"hydra.run.dir={run}", override], capfd,
                          monkeypatch, hydra=True)
    check_contract(code, out, err, expected, files, before, (run,))


# --------------------------------------------------------------------------- real processes
@pytest.fixture(scope="module")
def processes(files) -> dict[str, tuple[subprocess.CompletedProcess, dict]]:
    """A few real command lines, started together, each with the snapshot taken before."""
    commands = {
        "stylize": [str(ROOT / "stylize.py"), "--model", str(files / "payload-legacy.pth"),
                    str(files / "photo.png"), "-o", str(files / "existing.png")],
        "train": [str(ROOT / "train.py"), *train_args(files, "process"),
                  f"ckpt_path={files / 'payload-zip.ckpt'}"],
        "gatys": ["-m", "fast_nst.apps.gatys", f"hydra.run.dir={files / 'runs' / 'process_gatys'}",
                  f"content={files / 'notimage.png'}", "vgg=random"],
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    before = snapshot(files)
    started = {name: subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for name, argv in commands.items()}
    done = {}
    try:
        for name, proc in started.items():
            out, err = proc.communicate(timeout=300)
            done[name] = (subprocess.CompletedProcess(proc.args, proc.returncode, out, err),
                          before)
    finally:
        for proc in started.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return done


@pytest.mark.parametrize("name, expected", [
    ("stylize", "never runs code"),
    ("train", "never runs code"),
    ("gatys", "not an image PIL can read"),
])
def test_real_exit_path(name, expected, processes, files) -> None:
    proc, before = processes[name]
    outputs = (files / "runs" / "process" / "checkpoints",
               files / "runs" / "process" / "checkpoints" / "interrupted.ckpt",
               files / "runs" / "process_gatys" / "output.png")
    check_contract(proc.returncode, proc.stdout, proc.stderr, expected, files, before, outputs)
