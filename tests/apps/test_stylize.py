"""The stylize command (fast_nst.apps.stylize, stylize.py): one-line errors, options, export,
and the path it says it takes."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fast_nst.inference.pipeline import StylizeOptions, stylize_paths
from tests.app_helpers import load_script
from tests.stylize_helpers import tiny_model, write_photo, write_photos

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "stylize.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_cli_error_in_a_real_process_is_one_line_exit_2(tmp_path) -> None:
    src = write_photo(tmp_path / "a.png", 12, 12)
    junk = tmp_path / "junk.pth"
    torch.save({"w": torch.rand(2)}, junk)
    result = run_cli("--model", junk, src, "-o", tmp_path / "o.png")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {junk} is not a style model: expected a fast_nst .pt from train.py, a Lightning "
        ".ckpt or a pytorch/examples fast_neural_style .pth"]
    assert not (tmp_path / "o.png").exists()


def cli(capsys, *args) -> tuple[int, str, str]:
    module = load_script("stylize")
    try:
        module.main([str(a) for a in args])
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys, model_pt) -> None:
    src = write_photo(tmp_path / "a.png", 12, 12)
    (tmp_path / "notes.txt").write_text("x")
    for args in (["--model", tmp_path / "absent.pt", src, "-o", tmp_path / "o.png"],
                 ["--model", model_pt, tmp_path / "missing.png", "-o", tmp_path / "o.png"],
                 ["--model", model_pt, tmp_path / "notes.txt", "-o", tmp_path / "o.png"],
                 ["--model", model_pt, src, "-o", tmp_path / "o.xyz"],
                 ["--model", model_pt, src, "-o", tmp_path / "a.png" / "o.png"],
                 ["--model", model_pt, src]):
        code, _, err = cli(capsys, *args)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "models", "notes.txt"]


def test_cli_stylizes_and_exports(tmp_path, capsys, model_pt) -> None:
    src = write_photo(tmp_path / "a.png", 19, 13)
    code, out, err = cli(capsys, "--model", model_pt, src, "--output", tmp_path / "o.png",
                         "--size", "26", "--preserve-color", "--strength", "0.8",
                         "--precision", "bf16", "--channels-last")
    assert code == 0, err
    assert Image.open(tmp_path / "o.png").size == (18, 26)
    stylize_paths(model_pt, [src], tmp_path / "direct.png", StylizeOptions(
        size=26, preserve_color=True, strength=0.8, precision="bf16", channels_last=True,
        progress=False))  # every flag reached the options
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o.png")),
                          np.asarray(Image.open(tmp_path / "direct.png")))
    code, out, err = cli(capsys, "--model-path", model_pt, "--content-image", src,
                         "--output-image", tmp_path / "e.png", "--content-scale", "2",
                         "--cuda", "0")
    assert code == 0 and Image.open(tmp_path / "e.png").size == (6, 10), err
    code, out, err = cli(capsys, "--model", model_pt, "--export", "onnx", "-o", tmp_path / "m")
    assert code == 0 and "max abs diff" in out and (tmp_path / "m.onnx").is_file(), err


@pytest.mark.usefixtures("two_threads")
def test_stylize_cli_says_its_path_and_warns_for_slow_bf16(tmp_path, capsys, zen3) -> None:
    model = tiny_model(tmp_path)
    write_photos(tmp_path / "in", 1, 20, 24)
    src = tmp_path / "in" / "0.png"
    code, out, err = cli(capsys, "--model", model, src, "-o", tmp_path / "a.png",
                                     "--device", "cpu")
    assert code == 0 and err == "" and out.splitlines()[0] == (
        "stylize: eager fp32 (CPU without native bf16: AVX2; 1 forward call(s))")
    code, out, err = cli(capsys, "--model", model, src, "-o", tmp_path / "b.png",
                                     "--device", "cpu", "--precision", "bf16")
    assert code == 0 and (tmp_path / "b.png").is_file()
    assert err.splitlines() == ["warning: precision bf16 on a CPU without native bf16 (AVX2) "
                                "runs many times slower than float32; leave precision on auto"]


@pytest.mark.usefixtures("two_threads")
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
        code, out, err = cli(capsys, "--model", model, tmp_path / "in" / "0.png",
                                         "-o", tmp_path / "a.png", "--device", "cpu")
    finally:
        logging.getLogger().removeHandler(stale)
    assert code == 0 and err == "", err
    assert [line for line in out.splitlines() if line.startswith("stylize: ")] == [
        "stylize: eager fp32 (CPU without native bf16: AVX2; 1 forward call(s))"]


def test_fast_flag_uses_the_distilled_variant(tmp_path, capsys) -> None:
    """--model udnie --fast: the bundled style's models/fast/udnie.pt, the same image size;
    a model without a fast variant is a one-line error naming the file it looked for."""
    from fast_nst.apps.stylize import main
    from fast_nst.inference.runtime import Stylizer
    from fast_nst.model.files import load_model

    src = write_photo(tmp_path / "in.png", 40, 52)
    main(["--model", "udnie", "--fast", str(src), "-o", str(tmp_path / "out.png"),
          "--no-progress", "--precision", "fp32"])
    out = np.asarray(Image.open(tmp_path / "out.png").convert("RGB"))
    fast = load_model(Path(__file__).resolve().parents[2] / "models" / "fast" / "udnie.pt")
    pixels = torch.from_numpy(np.asarray(Image.open(src).convert("RGB"))).permute(2, 0, 1)
    expected = Stylizer(fast.net, device="cpu")(pixels[None].float() / 255)[0]
    expected = (expected.clamp(0, 1) * 255).round().permute(1, 2, 0).numpy()
    assert out.shape == (40, 52, 3) and np.abs(out - expected).max() <= 1
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", str(tiny_model(tmp_path)), "--fast", str(src), "-o",
              str(tmp_path / "out2.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and "no fast variant" in err[0]
    assert not (tmp_path / "out2.png").exists()
