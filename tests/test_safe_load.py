"""No model file can run code while it loads: pickle payloads in every format and extension,
through every loader (stylize's models, VGG weights, training resume)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fast_nst import FastNSTError
from fast_nst.core.vgg import VGGEncoder
from fast_nst.model.files import load_model
from fast_nst.safe_load import load_torch_file

ROOT = Path(__file__).resolve().parents[1]
EXTENSIONS = [".pt", ".ckpt", ".pth", ".bin", ""]
FORMATS = ["zip", "legacy", "pickle"]


class Payload:
    """Unpickling this calls open(marker, "w"): the marker file appears if code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def hostile_file(folder: Path, fmt: str, ext: str) -> tuple[Path, Path]:
    """A file shaped like a Lightning checkpoint with a code payload inside; and its marker."""
    marker = folder / f"ran-{fmt}{ext or '-none'}"
    path = folder / f"model-{fmt}{ext}"
    payload = {"state_dict": {"net.w": torch.zeros(2)}, "hyper_parameters": {"net": {}},
               "evil": Payload(marker)}
    if fmt == "pickle":
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path, _use_new_zipfile_serialization=fmt == "zip")
    return path, marker


@pytest.mark.parametrize("ext", EXTENSIONS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_no_loader_runs_a_payload(tmp_path, fmt, ext) -> None:
    path, marker = hostile_file(tmp_path, fmt, ext)
    with pytest.raises(FastNSTError) as err:
        load_model(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    with pytest.raises(FastNSTError):
        VGGEncoder(["relu1_1"], weights=str(path), convention="caffe")
    assert not marker.exists(), "loading a model file ran code from it"


def test_refusal_says_why(tmp_path) -> None:
    path, marker = hostile_file(tmp_path, "zip", ".ckpt")
    with pytest.raises(FastNSTError, match="never runs code from a model file"):
        load_torch_file(path)
    assert not marker.exists()


@pytest.mark.parametrize("text", ["not a model\n", "abc def\n", "#!/bin/sh\necho hi\n", "hello"])
def test_a_text_file_is_not_called_code(tmp_path, text) -> None:
    """A text file renamed .pt is unreadable, not a file that asks to run code."""
    (tmp_path / "notes.pt").write_text(text)
    with pytest.raises(FastNSTError, match="is not a model file torch can read") as err:
        load_torch_file(tmp_path / "notes.pt")
    assert "runs code" not in str(err.value) and "weights_only" not in str(err.value)


def test_a_plain_pickle_that_names_code_is_called_code(tmp_path) -> None:
    """torch cannot parse a plain pickle (protocol 4+ frames); one naming a callable is code."""
    path, marker = hostile_file(tmp_path, "pickle", ".pt")
    with pytest.raises(FastNSTError, match="never runs code from a model file"):
        load_torch_file(path)
    assert not marker.exists()
    plain = tmp_path / "numbers.pt"
    plain.write_bytes(pickle.dumps({"a": [1, 2.0, "x"]}))
    with pytest.raises(FastNSTError, match="is not a model file torch can read"):
        load_torch_file(plain)


def test_empty_missing_and_folder(tmp_path) -> None:
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(FastNSTError, match="is empty"):
        load_torch_file(tmp_path / "empty.pt")
    with pytest.raises(FastNSTError, match="not found"):
        load_torch_file(tmp_path / "nope.pt")
    with pytest.raises(FastNSTError, match="is a folder"):
        load_torch_file(tmp_path)


def test_plain_tensors_still_load(tmp_path) -> None:
    torch.save({"a": torch.ones(2), "b": [1, "x", (2.0,)]}, tmp_path / "ok.pt")
    loaded = load_torch_file(tmp_path / "ok.pt")
    assert torch.equal(loaded["a"], torch.ones(2)) and loaded["b"] == [1, "x", (2.0,)]


@pytest.mark.parametrize("ext", [".ckpt", ".pth"])
def test_stylize_cli_refuses_payload_in_one_line(tmp_path, ext) -> None:
    path, marker = hostile_file(tmp_path, "zip", ext)
    photo = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (16, 16), "red").save(photo)
    proc = subprocess.run([sys.executable, str(ROOT / "stylize.py"), "--model", str(path),
                           str(photo), "-o", str(tmp_path / "out.png")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in proc.stderr
    assert not marker.exists() and not (tmp_path / "out.png").exists()
