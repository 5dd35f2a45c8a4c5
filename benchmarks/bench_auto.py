"""What `stylize.py` with no speed flags gains over fp32 eager on this machine, end to end.

    python benchmarks/bench_auto.py                        # 16 images of 512 px + one alone
    python benchmarks/bench_auto.py --model full --images 8 --rounds 1

Each run is a fresh process that calls `stylize.py`'s main (model loading, planning, compiling
and writing the files included; the interpreter's start-up and imports not), so the figures are
what a user waits for. Runs take turns over `--rounds`: fp32 eager (with the automatic batch
size and workers, and with one image at a time, `--workers 1`, the former default), no flags,
then `--compile`, which stores its compiled shapes on disk. Round 1 starts from empty caches
(a first run on a machine); in later rounds the no-flags run finds what round 1's `--compile`
stored. The PSNR compares each image with its fp32 eager result.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fast_nst.core.images import open_image  # noqa: E402
from fast_nst.device import describe_hardware  # noqa: E402
from fast_nst.errors import ArgumentParser, FastNSTError, exit_on_user_error  # noqa: E402
from fast_nst.model.files import export_model  # noqa: E402
from fast_nst.model.network import NetConfig, TransformerNet  # noqa: E402
from fast_nst.reports.tables import markdown_table  # noqa: E402

SHARED = Path(os.environ.get("FAST_NST_SHARED", ROOT.parent / "shared"))
PHOTOS = SHARED / "data" / "train"
FP32_EAGER = ["--precision", "fp32", "--no-compile", "--no-channels-last"]
CONFIGS = {"fp32 eager": FP32_EAGER,  # automatic batch size and workers, as the no-flags run
           "fp32 eager, one at a time": [*FP32_EAGER, "--workers", "1"],  # the former default
           "auto (no flags)": [],
           "--compile": ["--compile"]}  # stores compiled shapes: round 2's no-flags run finds them


def write_inputs(folder: Path, n: int, size: int) -> None:
    """`n` PNGs of size x size: centre crops of the training photos in ../shared (smooth
    random images where they are absent; those are harder on bf16 than photos)."""
    folder.mkdir(parents=True)
    photos = sorted(PHOTOS.glob("*.jpg"))[:n] if PHOTOS.is_dir() else []
    for i in range(n):
        if i < len(photos):
            image = open_image(photos[i])
            side = min(image.size)
            left, top = (image.width - side) // 2, (image.height - side) // 2
            image = image.crop((left, top, left + side, top + side)).resize(
                (size, size), Image.Resampling.LANCZOS)
        else:
            g = torch.Generator().manual_seed(i)
            low = torch.rand(1, 3, max(2, size // 32), max(2, size // 32), generator=g)
            img = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic")
            image = Image.fromarray((img[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0)
                                    .numpy())
        image.save(folder / f"{i:03d}.png")


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (inductor's compile workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def child(argv: list[str]) -> None:
    """Time stylize.py's main in this process; print wall and CPU seconds as JSON."""
    spec = importlib.util.spec_from_file_location("stylize_cli", ROOT / "stylize.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    start, cpu = time.perf_counter(), cpu_seconds()
    module.main(argv)
    print(json.dumps({"seconds": time.perf_counter() - start, "cpu": cpu_seconds() - cpu}))


def run(model: Path, src: Path, out: Path, flags: list[str], cache: Path
        ) -> tuple[dict[str, float], str]:
    """({seconds, cpu}, the path stylize chose) of one fresh process."""
    argv = ["--model", str(model), str(src), "-o", str(out), "--no-progress", *flags]
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache), "FAST_NST_CACHE": str(cache),
           "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(argv)], env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise FastNSTError(f"stylize failed: {done.stderr.strip().splitlines()[-1:]}")
    chosen = "; ".join(line.removeprefix("stylize: ") for line in
                       (done.stdout + done.stderr).splitlines()
                       if line.startswith("stylize: ")) or "?"
    return json.loads(done.stdout.strip().splitlines()[-1]), chosen


def psnr(a: Path, b: Path) -> float:
    files = sorted(a.glob("*.png")) if a.is_dir() else [a]
    values = []
    for f in files:
        x = np.asarray(Image.open(f), dtype=np.float64) / 255
        y = np.asarray(Image.open(b / f.name if b.is_dir() else b), dtype=np.float64) / 255
        mse = np.mean((x - y) ** 2)
        values.append(math.inf if mse == 0 else 10 * math.log10(1 / mse))
    return min(values)


def model_file(name: str, tmp: Path) -> Path:
    if name != "full":
        if not Path(name).is_file():
            raise FastNSTError(f"model not found: {name}")
        return Path(name)
    torch.manual_seed(0)
    return export_model(TransformerNet(NetConfig(width="full")).eval(), tmp / "full.pt",
                        style="full")


def check_args(args: argparse.Namespace) -> None:
    for name, least in (("images", 1), ("size", 16), ("rounds", 1)):
        if getattr(args, name) < least:
            raise FastNSTError(f"--{name} must be at least {least}, got {getattr(args, name)}")


@exit_on_user_error
def main() -> None:
    p = ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=16, help="same-size images in the folder")
    p.add_argument("--size", type=int, default=512, help="their side (px)")
    p.add_argument("--model", default=str(ROOT / "models" / "starry_night.pt"),
                   help="a model file, or `full` (a full-width network, random weights)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(json.loads(args.child))
    check_args(args)
    print(describe_hardware() + "\n")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = model_file(args.model, tmp)
        write_inputs(tmp / "in", args.images, args.size)
        inputs = {f"folder of {args.images}": tmp / "in", "one image": tmp / "in" / "000.png"}
        rows = []
        for round_ in range(1, args.rounds + 1):
            for label, src in inputs.items():
                seconds, outs, chose = {}, {}, {}
                for config, flags in CONFIGS.items():
                    out = tmp / f"out_{round_}_{len(rows)}_{config[:4]}"
                    out = out.with_suffix(".png") if src.is_file() else out
                    seconds[config], chose[config] = run(model, src, out, flags,
                                                         tmp / "inductor")
                    outs[config] = out
                    print(f"round {round_}: {label}: {config}: {seconds[config]['seconds']:.1f} s"
                          f", CPU {seconds[config]['cpu']:.1f} s ({chose[config]})",
                          file=sys.stderr, flush=True)
                n = args.images if src.is_dir() else 1
                base, auto = seconds["fp32 eager"], seconds["auto (no flags)"]
                single = seconds["fp32 eager, one at a time"]
                rows.append({
                    "round": round_, "input": label, "auto chose": chose["auto (no flags)"],
                    "fp32 eager (ms/image)": f"{base['seconds'] / n * 1000:.0f}",
                    "fp32 eager, one at a time (ms/image)": f"{single['seconds'] / n * 1000:.0f}",
                    "auto (ms/image)": f"{auto['seconds'] / n * 1000:.0f}",
                    "speed-up": f"{base['seconds'] / auto['seconds']:.2f}x",
                    "speed-up vs one at a time": f"{single['seconds'] / auto['seconds']:.2f}x",
                    "--compile (ms/image)": f"{seconds['--compile']['seconds'] / n * 1000:.0f}",
                    "CPU-time speed-up": f"{base['cpu'] / auto['cpu']:.2f}x",
                    "min PSNR vs fp32 (dB)":
                        f"{psnr(outs['auto (no flags)'], outs['fp32 eager']):.1f}"})
    print(f"{Path(model).name}, {args.size} x {args.size} px; ms per image end to end "
          "(round 1: empty inductor cache); speed-up in wall time and in CPU time\n")
    print(markdown_table(rows), end="")


if __name__ == "__main__":
    main()
