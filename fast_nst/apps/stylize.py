"""Stylize images, folders, large images and videos with a trained network; or export it.

    fast-nst-stylize --model candy.pt photo.jpg --output out.jpg   # or: python stylize.py ...
    fast-nst-stylize --model udnie --fast clip.mp4 -o clip_udnie.mp4  # bundled, distilled
    python stylize.py --model candy.pt photos/ --recursive --output styled/ --size 1024
    python stylize.py --model candy.pt clip.mp4 --output clip_candy.mp4
    python stylize.py --model candy.pt --export onnx --output candy.onnx

Flags of pytorch/examples `neural_style.py eval` also work: --content-image, --output-image,
--content-scale, --cuda, --export_onnx. Everything else is in `fast_nst.inference.pipeline`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator

from fast_nst.core.images import MAX_PIXELS
from fast_nst.errors import ArgumentParser, FastNSTError, exit_on_user_error
from fast_nst.inference.export import export_file
from fast_nst.inference.pipeline import StylizeOptions, stylize_paths
from fast_nst.model.files import find_model
from fast_nst.precision import SHORT_NAMES

DEFAULTS = StylizeOptions()  # the flags' defaults are the options' (written once)


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="images, videos or folders")
    p.add_argument("--model", "--model-path", required=True,
                   help="exported .pt from train.py, Lightning .ckpt, fast_neural_style .pth, "
                   "or a bundled style's name (udnie)")
    p.add_argument("--fast", action="store_true",
                   help="use the model's fast variant (models/fast/<style>.pt, distilled: "
                   "several times faster on a CPU, slightly less faithful)")
    p.add_argument("--output", "-o", "--output-image", dest="output",
                   help="output file (one input) or folder")
    p.add_argument("--content-image", action="append", default=[], help="same as INPUT")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--size", type=int, help="resize so the long side is N px")
    size.add_argument("--scale", type=float, help="resize by a factor")
    size.add_argument("--content-scale", type=float, help="downscale by a factor (examples)")
    p.add_argument("--preserve-color", action="store_true",
                   help="keep the input's colours (luminance-only transfer)")
    p.add_argument("--strength", type=float, default=DEFAULTS.strength,
                   help="0 = input, 1 = fully stylized (default 1)")
    p.add_argument("--tile", type=int, help="tile size in px for large images "
                   "(default: 768 px tiles above 4 megapixels)")
    p.add_argument("--overlap", type=int,
                   help="tile overlap in px (default 128, at most a quarter of the tile)")
    p.add_argument("--tile-stats", default=DEFAULTS.tile_stats, choices=("tile", "global"),
                   help="instance-norm statistics per tile (fast) or of the whole image "
                   "(matches untiled output; about 7x slower)")
    p.add_argument("--device", default=DEFAULTS.device,
                   help="auto (cuda, mps, cpu), cpu, cuda, cuda:1, mps")
    p.add_argument("--cuda", type=int, choices=(0, 1), help="examples' flag: 1 = --device cuda")
    p.add_argument("--precision", default=DEFAULTS.precision, choices=("auto", *SHORT_NAMES),
                   help="auto (default): bf16 where the hardware runs it natively (GPUs, CPUs "
                   "with AVX512-BF16/AMX), fp16 on older GPUs, else fp32")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="NHWC layout (default: on CUDA GPUs with bf16/fp16; off on a CPU)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="compile the network per input shape (slow first call; on a CPU stored "
                   "on disk for later runs; default: when many same-size images, tiles or "
                   "frames, in this run and earlier ones, repay it)")
    p.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size,
                   help="same-size images per forward call (default: on a CPU about 131,000 "
                   "pixels per call: one of 512 px, 2 of 256 px, 8 of 128 px; 4 on a GPU)")
    p.add_argument("--workers", type=int, default=DEFAULTS.workers,
                   help="on a CPU, images in flight at once, one thread each (default: one per "
                   "thread when there are two or more eager forward calls per thread of up to "
                   "a megapixel each, so file reading and writing overlap the network; 1: one "
                   "image at a time on every thread)")
    p.add_argument("--max-pixels", type=int, default=DEFAULTS.max_pixels,
                   help=f"refuse larger images, a guard against decompression bombs "
                   f"(default {MAX_PIXELS:,}, Pillow's limit; 0: no limit)")
    p.add_argument("--recursive", "-r", action="store_true", help="descend into subfolders")
    p.add_argument("--pattern", default=DEFAULTS.pattern,
                   help="output names in a folder: {stem} {style} {ext} {name}")
    p.add_argument("--overwrite", action="store_true", help="allow replacing an input file")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--export", choices=("onnx", "torchscript"),
                   help="write the network in this format to --output instead of stylizing")
    p.add_argument("--export_onnx", metavar="PATH", help="examples' flag: --export onnx -o PATH")
    return p


class _Messages(logging.Handler):
    """The chosen fast path on stdout and warnings on stderr, one line each (stderr carries
    only warnings and errors)."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            print("warning: " + record.getMessage(), file=sys.stderr)
        else:
            print(record.getMessage())


@contextlib.contextmanager
def show_messages() -> Iterator[None]:
    """fast_nst's log records as lines while the command runs (and not after: `main` may be
    called again in the same process)."""
    logger, handler = logging.getLogger("fast_nst"), _Messages()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # printed here, once, whatever the root logger's handlers are
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    with show_messages():
        run(args)


def run(args: argparse.Namespace) -> None:
    """The command, once its arguments are parsed."""
    if args.export_onnx:
        args.export, args.output = "onnx", args.export_onnx
    args.model = find_model(args.model, fast=args.fast)
    if args.output is None:
        raise FastNSTError("give --output (a file for one input, else a folder)")
    if args.export:
        path, diff = export_file(args.model, args.export, args.output)
        print(f"wrote {path} ({args.export}; max abs diff vs PyTorch {diff:.1e})")
        return
    inputs = args.inputs + args.content_image
    if not inputs:
        raise FastNSTError("give at least one INPUT image, video or folder")
    scale = 1 / args.content_scale if args.content_scale else args.scale
    options = StylizeOptions(
        size=args.size, scale=scale, preserve_color=args.preserve_color, strength=args.strength,
        tile=args.tile, overlap=args.overlap, tile_stats=args.tile_stats,
        device={None: args.device, 0: "cpu", 1: "cuda"}[args.cuda], precision=args.precision,
        channels_last=args.channels_last, compile=args.compile, batch_size=args.batch_size,
        workers=args.workers, max_pixels=args.max_pixels,
        pattern=args.pattern, recursive=args.recursive, overwrite=args.overwrite,
        progress=not args.no_progress)
    written = stylize_paths(args.model, inputs, args.output, options)
    print(f"wrote {len(written)} file(s)" + (f": {written[0]}" if len(written) == 1 else ""))


if __name__ == "__main__":
    main()
