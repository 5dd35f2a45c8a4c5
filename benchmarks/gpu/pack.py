"""Pack what a training run on a bare GPU machine needs into one folder (default `.gpu/`).

A machine that can reach no network and takes only a small upload beside the repository needs: the
Caffe VGG19 cut after the deepest loss layer (relu4_3) in float16 (16 MB instead of 80), the
training photos re-encoded as JPEG to fit, the style paintings, the six content photos for the
validation grid, and wheels for hydra-core, omegaconf, antlr4 and datasets (two `datasets`
sets: a current one, and an older one for images whose pyarrow is older).

    python benchmarks/gpu/pack.py --shared ../shared --out .gpu
    # then, on the GPU machine: bash benchmarks/gpu/train_bundled.sh .gpu OUTDIR
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image, ImageOps
from tqdm import tqdm

from fast_nst.core.images import is_image_file
from fast_nst.core.vgg import save_features

STYLES = ("udnie", "the_scream", "great_wave", "starry_night")
WHEELS = {  # folder: requirements (py3.12, manylinux x86-64: the GPU image's Python)
    "wheels": ["hydra-core==1.3.8", "omegaconf==2.3.1", "datasets==5.2.0", "dill==0.4.1",
               "multiprocess==0.70.19", "fsspec==2026.9.0"],
    "wheels-old-pyarrow": ["datasets==4.0.0", "dill==0.3.8", "multiprocess==0.70.16",
                           "fsspec==2025.3.0"],
}
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]


def reencode(src: Path, dst: Path, quality: int) -> None:
    """The photo as a JPEG of `quality` (at 75: 31 MB for the 1,638 photos instead of 55)."""
    buffer = io.BytesIO()  # EXIF is not copied: the rotation it asks for is applied here
    ImageOps.exif_transpose(Image.open(src)).convert("RGB").save(buffer, "JPEG", quality=quality)
    dst.write_bytes(buffer.getvalue())


def download_wheels(folder: Path, requirements: list[str]) -> None:
    """Binary wheels for the GPU image's Python 3.12, without their dependencies."""
    base = [sys.executable, "-m", "pip", "-q"]
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run(base + ["download", "--no-deps", "--only-binary=:all:", "--python-version",
                           "3.12", "--implementation", "cp", *platforms, "-d", str(folder),
                           *requirements], check=True)


def pack(shared: Path, out: Path, quality: int, wheels: bool = True) -> None:
    data = out / "shared" / "data"
    for sub in ("train", "styles", "content"):
        (data / sub).mkdir(parents=True, exist_ok=True)
    vgg = shared / "weights" / "vgg19-caffe-rgb255-features.pth"
    save_features(str(vgg), "relu4_3", out / "shared" / "weights" / "vgg19-caffe-relu4_3-fp16.pth")
    photos = sorted(p for p in (shared / "data" / "train").iterdir() if is_image_file(p))
    for photo in tqdm(photos, desc="photos"):
        reencode(photo, data / "train" / f"{photo.stem}.jpg", quality)
    for style in STYLES:
        shutil.copy(shared / "data" / "styles" / f"{style}.jpg", data / "styles")
    for photo in (shared / "data" / "content").iterdir():
        shutil.copy(photo, data / "content")
    if not wheels:  # a GPU image that already has them, or a dry run here
        return
    for folder, requirements in WHEELS.items():
        download_wheels(out / folder, requirements)
    # antlr4-python3-runtime 4.9.3 (omegaconf's parser) exists only as source: build the wheel.
    subprocess.run([sys.executable, "-m", "pip", "-q", "wheel", "--no-deps", "-w",
                    str(out / "wheels"), "antlr4-python3-runtime==4.9.3"], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--out", type=Path, default=Path(".gpu"))
    parser.add_argument("--quality", type=int, default=75, help="JPEG quality of the photos")
    parser.add_argument("--no-wheels", action="store_true", help="skip the wheel downloads")
    args = parser.parse_args()
    if not (args.shared / "weights").is_dir():
        sys.exit(f"error: no weights folder in {args.shared}; pass --shared PATH")
    pack(args.shared, args.out, args.quality, wheels=not args.no_wheels)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{args.out}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
